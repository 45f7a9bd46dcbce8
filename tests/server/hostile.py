"""Hypothesis strategies derived from the proto descriptors, for the hostile-input suite (tests/server/test_hostile.py).

`message_strategy(descriptor)` builds any message of that type: every field optional, strings of extreme lengths and
with NUL, NaN and infinities, undefined enum values, integers at the edges of their width, nested messages a few
levels deep. Nothing here knows SkyMesh's rules: it only reads the contracts.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

_LONG = (63, 64, 65, 256, 257, 5000)

_STRINGS: SearchStrategy[str] = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.sampled_from("ab\x00/..-"), max_size=12),
    st.sampled_from(_LONG).map(lambda n: "x" * n),
)


def _ints(low: int, high: int) -> SearchStrategy[int]:
    # Mostly small values (so a message gets past the first check and reaches deeper code), and the edges.
    return st.one_of(st.integers(max(low, -2), min(high, 3)), st.sampled_from([low, high]), st.integers(low, high))


_I32, _I64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
_INTS: dict[int, SearchStrategy[int]] = {
    _d.FieldDescriptor.TYPE_INT32: _ints(*_I32),
    _d.FieldDescriptor.TYPE_SINT32: _ints(*_I32),
    _d.FieldDescriptor.TYPE_SFIXED32: _ints(*_I32),
    _d.FieldDescriptor.TYPE_UINT32: _ints(0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_FIXED32: _ints(0, 2**32 - 1),
    _d.FieldDescriptor.TYPE_INT64: _ints(*_I64),
    _d.FieldDescriptor.TYPE_SINT64: _ints(*_I64),
    _d.FieldDescriptor.TYPE_SFIXED64: _ints(*_I64),
    _d.FieldDescriptor.TYPE_UINT64: _ints(0, 2**64 - 1),
    _d.FieldDescriptor.TYPE_FIXED64: _ints(0, 2**64 - 1),
}
_NOW_S = 1_790_000_000
_WELL_KNOWN: dict[str, SearchStrategy[dict[str, int]]] = {
    # Mostly plausible times, sometimes any int64 at all.
    "google.protobuf.Timestamp": st.fixed_dictionaries(
        {"seconds": st.one_of(st.integers(_NOW_S - 86400, _NOW_S + 86400), _ints(*_I64))},
        optional={"nanos": _ints(*_I32)},
    ),
    "google.protobuf.Duration": st.fixed_dictionaries({"seconds": _ints(-(10**6), 10**6)}),
}


def _scalar(fd: _d.FieldDescriptor, depth: int) -> SearchStrategy[Any]:
    kind = fd.type
    if kind == _d.FieldDescriptor.TYPE_MESSAGE:
        assert fd.message_type is not None
        return message_strategy(fd.message_type, depth + 1)
    if kind == _d.FieldDescriptor.TYPE_STRING:
        return _STRINGS
    if kind == _d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == _d.FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if kind == _d.FieldDescriptor.TYPE_FLOAT:
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == _d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == _d.FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 120)  # defined values and undefined ones (proto3 enums are open)
    return _INTS[kind]


def _field(fd: _d.FieldDescriptor, depth: int) -> SearchStrategy[Any]:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key, value = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key, depth), _scalar(value, depth), max_size=3)
    if fd.is_repeated:
        return st.lists(_scalar(fd, depth), max_size=3)
    return _scalar(fd, depth)


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        fd = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name) if fd.is_repeated else None
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)  # type: ignore[index]
                else:
                    target[key] = item  # type: ignore[index]
        elif fd.is_repeated:
            target.extend(value)  # type: ignore[union-attr]
        elif isinstance(value, Message):
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def message_strategy(descriptor: _d.Descriptor, depth: int = 0) -> SearchStrategy[Message]:
    """Any message of this type (nested messages stop after a few levels)."""
    cls = GetMessageClass(descriptor)
    if descriptor.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[descriptor.full_name].map(lambda values: _build(cls, values))
    if depth > 3:
        return st.just(cls())
    fields = {fd.name: _field(fd, depth) for fd in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, values))
