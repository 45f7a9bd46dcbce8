"""Field limits of every message a SkyMesh service receives, declared once beside the contracts, and the check.

The rules (docs/protocol.md "Limits"):
- generic, applied by walking each message's descriptor: every string is at most `_DEFAULT_STRING_CHARS`
  characters (identifiers ending in `_id`: `_ID_CHARS`) and contains no NUL; every bytes field is at most
  `_DEFAULT_BYTES`; every float and double is finite; every enum holds one of its defined values; unsigned integers
  fit a signed column of their width (uint32 < 2^31, uint64 < 2^63: the database stores them signed); every
  repeated field and map has at most `_DEFAULT_ITEMS` entries; timestamps and durations are in their documented
  range (years 1..9999, +-10,000 years);
- per field, keyed by the field's full name (`package.Message.field`, or `package.Message.field[key]` for a map's
  keys), where a field needs a tighter or a looser limit (`FIELD_RULES`);
- per request, a serialized size limit by package (`message_size_limit`).

`parse(cls, raw)` is what a server uses as its request deserializer: it refuses oversized, malformed (including
invalid UTF-8) and out-of-limits messages with `MessageRefused`, which carries the SkyMeshError to answer with
(INVALID_ARGUMENT naming the field, or RESOURCE_EXHAUSTED naming the limit) and the parsed message where there is
one. Nothing here touches a database; the checks are the same whatever stores the data.

Imports: protobuf and `skymesh.core.errors` only (the station agent uses the limits too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from google.protobuf import descriptor as _d
from google.protobuf.message import DecodeError, Message

from skymesh.core.errors import InvalidArgument, ResourceExhausted, SkyMeshError

__all__ = [
    "AGENT_MAX_MESSAGE_BYTES",
    "ALERT_MAX_PACKET_BYTES",
    "CHECKED_WHEN_CONVERTED",
    "FIELD_RULES",
    "MAX_SAMPLE_CHANNELS",
    "MAX_TELEMETRY_SAMPLES",
    "FieldRule",
    "MessageRefused",
    "check",
    "check_items",
    "message_size_limit",
    "parse",
    "split_telemetry_samples",
    "telemetry_columns",
]

_M = TypeVar("_M", bound=Message)

# Advertised to agents in Welcome; the agent builds no message larger than these. 256 KiB of telemetry is about
# 14,000 values, which the server reads, checks, converts and stores in tens of milliseconds of its event loop: a
# station sending the largest batches it may cannot stall the other streams (1 MiB took about 330 ms).
AGENT_MAX_MESSAGE_BYTES = 256 * 1024
MAX_TELEMETRY_SAMPLES = 1000
MAX_SAMPLE_CHANNELS = 64
# IngestAlert's packet; the server's gRPC receive limit (8 MiB) stays above packet plus envelope.
ALERT_MAX_PACKET_BYTES = 7 * 1024 * 1024

_DEFAULT_STRING_CHARS = 256
_ID_CHARS = 64
_TEXT_CHARS = 4096
_DEFAULT_BYTES = 64 * 1024
_DEFAULT_ITEMS = 1000
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_TIMESTAMP_MIN_S, _TIMESTAMP_MAX_S = -62_135_596_800, 253_402_300_799  # 0001-01-01 .. 9999-12-31T23:59:59
_DURATION_MAX_S = 315_576_000_000


@dataclass(frozen=True)
class FieldRule:
    """Limits of one field; None keeps the generic rule. `max_len` counts characters (strings) or bytes."""

    max_len: int | None = None
    max_items: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    allow_nonfinite: bool = False


_AGENT = "skymesh.api.agent.v1"
_COMMON = "skymesh.api.common.v1"
_CONTROL = "skymesh.api.control.v1"
_SCHED = "skymesh.api.scheduler.v1"

FIELD_RULES: dict[str, FieldRule] = {
    # Agent stream
    f"{_AGENT}.Hello.agent_version": FieldRule(max_len=64),
    f"{_AGENT}.Hello.protocol_version": FieldRule(min_value=1),
    f"{_AGENT}.Hello.pending_boot_ids": FieldRule(max_items=64),
    f"{_AGENT}.Capabilities.bands": FieldRule(max_items=64),
    f"{_AGENT}.Capabilities.filters": FieldRule(max_items=64),
    f"{_AGENT}.Capabilities.drivers": FieldRule(max_items=64),
    f"{_AGENT}.TelemetryBatch.samples": FieldRule(max_items=MAX_TELEMETRY_SAMPLES),
    f"{_AGENT}.TelemetrySample.values": FieldRule(max_items=MAX_SAMPLE_CHANNELS),
    f"{_AGENT}.TelemetrySample.values[key]": FieldRule(max_len=64),
    f"{_AGENT}.JobUpdate.progress": FieldRule(min_value=0.0, max_value=1.0),
    f"{_AGENT}.JobUpdate.detail": FieldRule(max_len=_TEXT_CHARS),
    f"{_AGENT}.CommandUpdate.detail": FieldRule(max_len=_TEXT_CHARS),
    f"{_AGENT}.ScheduleAck.error": FieldRule(max_len=_TEXT_CHARS),
    f"{_AGENT}.Photometry.filter": FieldRule(max_len=32),
    f"{_AGENT}.Artifact.kind": FieldRule(max_len=32),
    f"{_AGENT}.Artifact.sha256": FieldRule(max_len=64),
    f"{_AGENT}.ObservationRecord.quality_flags": FieldRule(max_items=64),
    f"{_AGENT}.ObservationRecord.quality_flags[]": FieldRule(max_len=64),
    f"{_AGENT}.ObservationRecord.headers": FieldRule(max_items=256),
    f"{_AGENT}.ObservationRecord.headers[key]": FieldRule(max_len=72),
    f"{_AGENT}.ObservationRecord.artifacts": FieldRule(max_items=64),
    f"{_AGENT}.UploadArtifactRequest.resource_name": FieldRule(max_len=300),
    f"{_AGENT}.UploadArtifactRequest.data": FieldRule(max_len=512 * 1024),
    f"{_AGENT}.UploadArtifactRequest.kind": FieldRule(max_len=32),
    f"{_AGENT}.UploadArtifactRequest.sha256": FieldRule(max_len=64),
    f"{_AGENT}.QueryUploadStatusRequest.resource_name": FieldRule(max_len=300),
    # Shared types and the control API
    f"{_COMMON}.Station.name": FieldRule(max_len=200),
    f"{_COMMON}.Station.bands[]": FieldRule(max_len=32),
    f"{_COMMON}.Station.filters[]": FieldRule(max_len=32),
    f"{_COMMON}.Target.name": FieldRule(max_len=200),
    f"{_COMMON}.Target.aliases[]": FieldRule(max_len=200),
    f"{_COMMON}.CelestialTarget.filters[]": FieldRule(max_len=32),
    f"{_COMMON}.SatelliteTarget.tle_line1": FieldRule(max_len=80),
    f"{_COMMON}.SatelliteTarget.tle_line2": FieldRule(max_len=80),
    f"{_COMMON}.SatelliteTarget.band": FieldRule(max_len=32),
    f"{_COMMON}.SatelliteTarget.elements_source": FieldRule(max_len=64),
    f"{_CONTROL}.Campaign.name": FieldRule(max_len=200),
    f"{_CONTROL}.Campaign.description": FieldRule(max_len=_TEXT_CHARS),
    f"{_CONTROL}.WatchRequest.telemetry_station_ids": FieldRule(max_items=16),
    f"{_CONTROL}.WatchRequest.telemetry_station_ids[]": FieldRule(max_len=64),
    f"{_CONTROL}.UpdateElementsRequest.tle_line1": FieldRule(max_len=80),
    f"{_CONTROL}.UpdateElementsRequest.tle_line2": FieldRule(max_len=80),
    f"{_CONTROL}.UpdateElementsRequest.elements_source": FieldRule(max_len=64),
    # An alert packet as the broker sent it: Rubin/ZTF avro with cutouts runs to a few hundred KiB.
    f"{_CONTROL}.IngestAlertRequest.packet": FieldRule(max_len=ALERT_MAX_PACKET_BYTES),
    f"{_CONTROL}.IngestAlertRequest.origin": FieldRule(max_len=300),
    # The scheduler plans for the whole network in one request (10,000 stations is the design goal).
    f"{_SCHED}.ComputePlanRequest.stations": FieldRule(max_items=100_000),
    f"{_SCHED}.ComputePlanRequest.targets": FieldRule(max_items=1_000_000),
    f"{_SCHED}.ComputePlanRequest.frozen": FieldRule(max_items=1_000_000),
    f"{_SCHED}.RankTargetsRequest.targets": FieldRule(max_items=1_000_000),
    f"{_SCHED}.Demand.time_critical": FieldRule(max_items=10_000),
    f"{_SCHED}.ExplainPlanRequest.assignments": FieldRule(max_items=1_000_000),
}

_SIZE_LIMITS: tuple[tuple[str, int], ...] = (
    (f"{_SCHED}.", 256 << 20),
    (f"{_AGENT}.ConnectRequest", AGENT_MAX_MESSAGE_BYTES),
    (f"{_AGENT}.UploadArtifactRequest", 1 << 20),  # 512 KiB chunks and their envelope
    (f"{_AGENT}.", AGENT_MAX_MESSAGE_BYTES),
    (f"{_CONTROL}.IngestAlertRequest", ALERT_MAX_PACKET_BYTES + 64 * 1024),
    ("", 1 << 20),
)


def message_size_limit(full_name: str) -> int:
    """The largest serialized request of this type a service accepts, in bytes."""
    for prefix, limit in _SIZE_LIMITS:
        if full_name.startswith(prefix):
            return limit
    raise AssertionError("unreachable: the empty prefix matches")


class MessageRefused(Exception):
    """A request refused by `parse`: `error` is what to answer; `message` the parsed request, if it parsed."""

    def __init__(self, error: SkyMeshError, message: Message | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.message = message


# Repeated fields whose items a server checks where it converts them, in the same pass over them (`parse`'s
# `deferred`): the agent stream's telemetry samples, checked and made columnar by `telemetry_columns` (issue 8: the
# two passes were about a sixth of the server's CPU per message). Their count is still checked here.
CHECKED_WHEN_CONVERTED = frozenset({"skymesh.api.agent.v1.TelemetryBatch.samples"})


def parse(cls: type[_M], raw: bytes, *, deferred: frozenset[str] = frozenset()) -> _M:
    """Deserialize and check one request; raises MessageRefused. The items of the repeated fields named in
    `deferred` (full names, see `CHECKED_WHEN_CONVERTED`) are left to the caller's conversion, which must check them
    by the same rules (`check_items`, `telemetry_columns`)."""
    name = cls.DESCRIPTOR.full_name
    message = cls()
    try:
        message.ParseFromString(raw)
    except DecodeError:
        error = InvalidArgument(f"not a valid serialized {name} (malformed protobuf or invalid UTF-8)", field="body")
        raise MessageRefused(error) from None
    limit = message_size_limit(name)
    if len(raw) > limit:
        too_large = ResourceExhausted(
            f"message of {len(raw)} bytes is over the limit of {limit} bytes for {name}",
            field="body",
            reason="MESSAGE_TOO_LARGE",
            details={"limit-bytes": str(limit)},
        )
        raise MessageRefused(too_large, message)
    try:
        check(message, deferred=deferred)
    except InvalidArgument as exc:
        raise MessageRefused(exc, message) from None
    return message


def check(message: Message, prefix: str = "", *, deferred: frozenset[str] = frozenset()) -> None:
    """Raise InvalidArgument naming the first field of `message` that breaks its rule (the items of `deferred`
    repeated fields excepted: see `parse`)."""
    for fd, value in message.ListFields():
        path = f"{prefix}{fd.name}"
        rule = FIELD_RULES.get(fd.full_name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            _check_map(fd, value, path, rule)
        elif fd.is_repeated:
            _check_count(len(value), path, rule)
            if fd.full_name in deferred:
                continue
            if fd.message_type is not None and fd.message_type.full_name == _SAMPLE and _samples_ok(value):
                continue  # telemetry, the hot path: every sample passes (else the walk below names the offender)
            item_rule = FIELD_RULES.get(f"{fd.full_name}[]", rule)
            if fd.message_type is not None and len(value) >= _PASSED_MIN_ITEMS:
                _check_messages(fd, value, path, item_rule)
                continue
            for i, item in enumerate(value):
                _check_value(fd, item, f"{path}[{i}]", item_rule)
        else:
            _check_value(fd, value, path, rule, deferred)


_SAMPLE = f"{_AGENT}.TelemetrySample"

# Messages of long repeated fields that passed, by field and serialized bytes. The scheduler is sent the same
# catalogue (hundreds of targets) with every ranked list, and walking every field of every target again was most of
# parsing the request. Equal bytes in the same field are an equal message under the same rules (the item's rule is
# the field's, its nested rules its type's), so a kept item passes exactly as walking it would; an item that fails is
# never kept, so bad input fails as before, naming the same field. Bounded by the bytes kept, not only the count (a
# client sending large distinct items cannot grow it past the bound); cleared when full.
_PASSED_MIN_ITEMS = 64
_MAX_PASSED_BYTES = 32 * 1024 * 1024
_passed: set[tuple[str, bytes]] = set()
_passed_bytes = 0


def _check_messages(fd: _d.FieldDescriptor, items: Any, path: str, rule: FieldRule | None) -> None:
    global _passed_bytes
    for i, item in enumerate(items):
        key = (fd.full_name, item.SerializeToString(deterministic=True))
        if key in _passed:
            continue
        _check_value(fd, item, f"{path}[{i}]", rule)
        if _passed_bytes + len(key[1]) > _MAX_PASSED_BYTES:
            _passed.clear()
            _passed_bytes = 0
        _passed.add(key)
        _passed_bytes += len(key[1])


def _samples_ok(samples: Any) -> bool:
    """True when every TelemetrySample passes what `check` would check (timestamp range, channel count, key length
    and NULs, finite values), with a few builtin calls per sample instead of a walk over each field; False when any
    might not, and the caller walks them to name the field."""
    if FIELD_RULES.get(f"{_SAMPLE}.values[value]") is not None:
        return False
    count_rule = FIELD_RULES.get(f"{_SAMPLE}.values")
    count_limit = _DEFAULT_ITEMS
    if count_rule is not None and count_rule.max_items is not None:
        count_limit = count_rule.max_items
    key_rule = FIELD_RULES.get(f"{_SAMPLE}.values[key]")
    key_limit = _default_string_limit("key")
    if key_rule is not None and key_rule.max_len is not None:
        key_limit = key_rule.max_len
    isfinite, fsum = math.isfinite, math.fsum
    try:
        for sample in samples:
            at = sample.at
            if not _TIMESTAMP_MIN_S <= at.seconds <= _TIMESTAMP_MAX_S or not 0 <= at.nanos < 1_000_000_000:
                return False
            values = sample.values
            if not values:
                continue
            if len(values) > count_limit:
                return False
            keys = list(values)
            if max(map(len, keys)) > key_limit or any("\x00" in k for k in keys):
                return False
            if not isfinite(fsum(values.values())):
                return False
    except (OverflowError, ValueError):  # huge finite values overflow the sum; inf + -inf
        return False
    return True


def check_items(message: Message, name: str, path: str) -> None:
    """Check the items of `message`'s repeated field `name` as `check` does (the field's path is `path`): what
    `parse` left out for a `deferred` field, for its converter to call when `telemetry_columns` is not sure."""
    fd: _d.FieldDescriptor = message.DESCRIPTOR.fields_by_name[name]  # type: ignore[assignment]
    items = getattr(message, name)
    rule = FIELD_RULES.get(fd.full_name)
    _check_count(len(items), path, rule)
    if fd.message_type is not None and fd.message_type.full_name == _SAMPLE and _samples_ok(items):
        return
    item_rule = FIELD_RULES.get(f"{fd.full_name}[]", rule)
    for i, item in enumerate(items):
        _check_value(fd, item, f"{path}[{i}]", item_rule)


def telemetry_columns(samples: Any) -> tuple[list[int], dict[str, list[float]]] | None:
    """TelemetrySamples checked and made columnar in one pass (issue 8: the agent stream's hot path): the sample
    times as int microseconds since 1970 and one list of values per channel, or None when a sample might break a
    rule of `check` (time out of range, too many or bad channel names, a value not finite), has no time, has an
    empty channel name, or names other channels than the first sample (then the caller checks with `check_items`,
    which names the field, and converts the general way).

    The common batch, every sample with the same channels, costs a few builtin calls per sample: the values go into
    one flat list checked by one `fsum` and are sliced into columns at the end; the names are checked once."""
    count_rule = FIELD_RULES.get(f"{_SAMPLE}.values")
    key_rule = FIELD_RULES.get(f"{_SAMPLE}.values[key]")
    if FIELD_RULES.get(f"{_SAMPLE}.values[value]") is not None:
        return None
    count_limit = (
        count_rule.max_items if count_rule is not None and count_rule.max_items is not None else _DEFAULT_ITEMS
    )
    key_limit = (
        key_rule.max_len if key_rule is not None and key_rule.max_len is not None else _default_string_limit("key")
    )
    lo, hi = _TIMESTAMP_MIN_S, _TIMESTAMP_MAX_S
    times: list[int] = []
    flat: list[float] = []
    names: tuple[str, ...] | None = None
    for sample in samples:
        at = sample.at
        seconds, nanos = at.seconds, at.nanos
        if not (lo <= seconds <= hi and 0 <= nanos < 1_000_000_000 and (seconds or nanos)):
            return None
        times.append(seconds * 1_000_000 + nanos // 1000)
        values = sample.values
        keys = tuple(values)
        if keys != names:
            if names is not None or not _channel_names_ok(keys, count_limit, key_limit):
                return None
            names = keys
        flat.extend(map(values.__getitem__, keys))  # a map's values() is a slow Python view
    try:
        if not math.isfinite(math.fsum(flat)):
            return None
    except (OverflowError, ValueError):  # huge finite values overflow the sum; inf + -inf
        return None
    if not names:
        return times, {}
    width = len(names)
    return times, {name: flat[j::width] for j, name in enumerate(names)}


def _channel_names_ok(keys: tuple[str, ...], count_limit: int, key_limit: int) -> bool:
    if len(keys) > count_limit:
        return False
    return all(0 < len(k) <= key_limit and "\x00" not in k for k in keys)


def _check_count(count: int, path: str, rule: FieldRule | None) -> None:
    limit = rule.max_items if rule is not None and rule.max_items is not None else _DEFAULT_ITEMS
    if count > limit:
        raise InvalidArgument(f"has {count} entries; at most {limit} allowed", field=path)


def _check_map(fd: _d.FieldDescriptor, value: Any, path: str, rule: FieldRule | None) -> None:
    _check_count(len(value), path, rule)
    entry = fd.message_type
    assert entry is not None
    key_fd = entry.fields_by_name["key"]
    value_fd = entry.fields_by_name["value"]
    key_rule = FIELD_RULES.get(f"{fd.full_name}[key]")
    value_rule = FIELD_RULES.get(f"{fd.full_name}[value]")
    if _scalar_map_ok(key_fd, value_fd, value, key_rule, value_rule):
        return  # the common case, checked with builtins; else find and name the offending entry below
    for key, item in value.items():
        _check_value(key_fd, key, f"{path}[key]", key_rule)
        _check_value(value_fd, item, f"{path}[{key!r}]", value_rule)


def _scalar_map_ok(
    key_fd: _d.FieldDescriptor,
    value_fd: _d.FieldDescriptor,
    value: Any,
    key_rule: FieldRule | None,
    value_rule: FieldRule | None,
) -> bool:
    """True when a map<string, double|float> (telemetry channels) passes every rule, checked without a Python call
    per entry: a batch of thousands of values must not hold the server's event loop for long."""
    if key_fd.type != _d.FieldDescriptor.TYPE_STRING or value_rule is not None:
        return False
    if value_fd.type not in (_d.FieldDescriptor.TYPE_DOUBLE, _d.FieldDescriptor.TYPE_FLOAT):
        return False
    keys = list(value.keys())
    if keys and max(map(len, keys)) > _string_limit(key_fd, key_rule):
        return False
    if any("\x00" in k for k in keys):
        return False
    try:
        return math.isfinite(math.fsum(value.values()))
    except (OverflowError, ValueError):  # inf + -inf, or huge finite values: the walk names the entry
        return False


def _check_value(
    fd: _d.FieldDescriptor, value: Any, path: str, rule: FieldRule | None, deferred: frozenset[str] = frozenset()
) -> None:
    kind = fd.type
    if kind == _d.FieldDescriptor.TYPE_MESSAGE:
        assert fd.message_type is not None
        _check_well_known(fd.message_type.full_name, value, path)
        check(value, f"{path}.", deferred=deferred)
    elif kind == _d.FieldDescriptor.TYPE_STRING:
        limit = _string_limit(fd, rule)
        if len(value) > limit:
            raise InvalidArgument(f"is {len(value)} characters long; at most {limit} allowed", field=path)
        if "\x00" in value:
            raise InvalidArgument("must not contain NUL characters", field=path)
        if _is_identifier(fd.name) and not _printable_token(value):
            # Identifiers travel in trailing metadata (a refused message is named by its boot id and seq) and in
            # logs and file names: printable ASCII without spaces, whatever grammar the id itself follows.
            raise InvalidArgument("must be printable ASCII without spaces or control characters", field=path)
    elif kind == _d.FieldDescriptor.TYPE_BYTES:
        limit = rule.max_len if rule is not None and rule.max_len is not None else _DEFAULT_BYTES
        if len(value) > limit:
            raise InvalidArgument(f"is {len(value)} bytes long; at most {limit} allowed", field=path)
    elif kind in (_d.FieldDescriptor.TYPE_DOUBLE, _d.FieldDescriptor.TYPE_FLOAT):
        if not math.isfinite(value) and not (rule is not None and rule.allow_nonfinite):
            raise InvalidArgument(f"must be a finite number, not {value}", field=path)
        _check_range(value, path, rule)
    elif kind == _d.FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        if value not in fd.enum_type.values_by_number:
            raise InvalidArgument(f"{value} is not a defined {fd.enum_type.name} value", field=path)
    elif kind == _d.FieldDescriptor.TYPE_BOOL:
        return
    else:  # integers
        if kind in (_d.FieldDescriptor.TYPE_UINT32, _d.FieldDescriptor.TYPE_FIXED32) and value > _INT32_MAX:
            raise InvalidArgument(f"{value} is out of range; at most {_INT32_MAX}", field=path)
        if kind in (_d.FieldDescriptor.TYPE_UINT64, _d.FieldDescriptor.TYPE_FIXED64) and value > _INT64_MAX:
            raise InvalidArgument(f"{value} is out of range; at most {_INT64_MAX}", field=path)
        _check_range(value, path, rule)


def _check_range(value: float, path: str, rule: FieldRule | None) -> None:
    if rule is None:
        return
    if rule.min_value is not None and value < rule.min_value:
        raise InvalidArgument(f"{value} is below the minimum {rule.min_value:g}", field=path)
    if rule.max_value is not None and value > rule.max_value:
        raise InvalidArgument(f"{value} is above the maximum {rule.max_value:g}", field=path)


def _check_well_known(full_name: str, value: Any, path: str) -> None:
    if full_name == "google.protobuf.Timestamp":
        if not _TIMESTAMP_MIN_S <= value.seconds <= _TIMESTAMP_MAX_S or not 0 <= value.nanos < 1_000_000_000:
            raise InvalidArgument("timestamp out of range (years 1 to 9999)", field=path)
    elif full_name == "google.protobuf.Duration" and (
        abs(value.seconds) > _DURATION_MAX_S or abs(value.nanos) >= 1_000_000_000
    ):
        raise InvalidArgument("duration out of range (+-10,000 years)", field=path)


def _string_limit(fd: _d.FieldDescriptor, rule: FieldRule | None) -> int:
    if rule is not None and rule.max_len is not None:
        return rule.max_len
    return _default_string_limit(fd.name)


@cache
def _is_identifier(name: str) -> bool:
    return name == "id" or name.endswith("_id") or name.endswith("_ids")


def _printable_token(value: str) -> bool:
    # "!" .. "~": printable ASCII but the space (the same test as a walk over the characters, in C).
    return value.isascii() and value.isprintable() and " " not in value


@cache
def _default_string_limit(name: str) -> int:
    if _is_identifier(name):
        return _ID_CHARS
    if name in ("detail", "reason", "error", "description", "message"):
        return _TEXT_CHARS
    return _DEFAULT_STRING_CHARS


def split_telemetry_samples(
    samples: Iterable[_M], *, max_samples: int = MAX_TELEMETRY_SAMPLES, max_bytes: int = AGENT_MAX_MESSAGE_BYTES
) -> Iterator[list[_M]]:
    """Group telemetry samples into batches of at most `max_samples` samples and about `max_bytes` serialized
    (leaving room for the envelope), in order: what an agent does so that no batch it spools is ever refused."""
    budget = max_bytes - 1024
    batch: list[_M] = []
    size = 0
    for sample in samples:
        sample_size = sample.ByteSize() + 6  # field tag and length prefix
        if batch and (len(batch) >= max_samples or size + sample_size > budget):
            yield batch
            batch, size = [], 0
        batch.append(sample)
        size += sample_size
    if batch:
        yield batch
