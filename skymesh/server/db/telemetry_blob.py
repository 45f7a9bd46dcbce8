"""The stored form of one telemetry batch: columns packed in one blob (telemetry.data, migration 0018).

A batch is stored columnar: the sample times as one int64 array and one float64 array per channel, so the ingest hot
path (issue 8) packs a few arrays instead of building and serializing a JSON object per sample, and a stored batch is
8 bytes per time and per value instead of ~70 bytes of JSON per sample (a 100k-sample batch was ~7 MB as JSON).

Layout (version 1, every integer and float little-endian):

    offset  size      field
    0       1         version: 1
    1       4         n: uint32, samples in the batch
    5       2         c: uint16, channels
    7       ...       c times (uint16 byte length, UTF-8 channel name), in column order
    ...     8 n       sample times: int64 microseconds since 1970-01-01T00:00:00Z (UTC), in the order sent
    ...     8 n c     one float64 column of n values per channel, in the order of the names

A channel absent from a sample is NaN in its column: agents' values are finite (the server refuses NaN and
infinities), so NaN is free to mean "no value". Decoding gives back exactly what was sent: microsecond times (the
resolution the server kept before, as ISO text) and the float64 values bit for bit.

Rows written before migration 0018 keep their JSON (`samples`, `[{"at": iso, "values": {channel: value}}]`) and are
read through `from_json`; `data` is NULL on them.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["VERSION", "TelemetryColumns", "from_json", "pack", "unpack"]

VERSION = 1
_HEAD = struct.Struct("<BIH")
_NAME_LEN = struct.Struct("<H")
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_BIG_ENDIAN = sys.byteorder == "big"
_NAN = math.nan


@dataclass(frozen=True)
class TelemetryColumns:
    """One batch, columnar: `times_us[i]` is sample i's time, `columns[name][i]` its value (NaN: none)."""

    times_us: Sequence[int]
    columns: Mapping[str, Sequence[float]]

    def __len__(self) -> int:
        return len(self.times_us)

    def samples(self) -> Iterator[tuple[int, datetime, dict[str, float]]]:
        """(index, time, values present) per sample, in order."""
        items = list(self.columns.items())
        for i, us in enumerate(self.times_us):
            values = {}
            for name, column in items:
                value = column[i]
                if value == value:  # not NaN
                    values[name] = value
            yield i, _EPOCH_UTC + timedelta(microseconds=us), values


def pack(times_us: Sequence[int], columns: Mapping[str, Sequence[float]]) -> bytes:
    """The blob of one batch (layout in the module docstring). Every column has one value per time."""
    n = len(times_us)
    parts = [_HEAD.pack(VERSION, n, len(columns))]
    for name in columns:
        encoded = name.encode()
        parts.append(_NAME_LEN.pack(len(encoded)))
        parts.append(encoded)
    times = array("q", times_us)
    arrays: list[array[Any]] = [times]
    for name, column in columns.items():
        if len(column) != n:
            raise ValueError(f"channel {name!r} has {len(column)} values for {n} times")
        arrays.append(array("d", column))
    for a in arrays:
        if _BIG_ENDIAN:
            a.byteswap()
        parts.append(a.tobytes())
    return b"".join(parts)


def unpack(blob: bytes) -> TelemetryColumns:
    """The batch in `blob`; ValueError when it is not a version-1 blob of consistent length."""
    view = memoryview(blob)
    if len(view) < _HEAD.size:
        raise ValueError("telemetry blob too short")
    version, n, c = _HEAD.unpack_from(view, 0)
    if version != VERSION:
        raise ValueError(f"telemetry blob version {version} (this server reads {VERSION})")
    offset = _HEAD.size
    names = []
    for _ in range(c):
        (length,) = _NAME_LEN.unpack_from(view, offset)
        offset += _NAME_LEN.size
        names.append(bytes(view[offset : offset + length]).decode())
        offset += length
    if len(view) != offset + 8 * n * (c + 1):
        raise ValueError(f"telemetry blob of {len(view)} bytes does not hold {n} samples x {c} channels")
    times = array("q")
    times.frombytes(view[offset : offset + 8 * n])
    offset += 8 * n
    columns: dict[str, array[float]] = {}
    for name in names:
        column = array("d")
        column.frombytes(view[offset : offset + 8 * n])
        offset += 8 * n
        columns[name] = column
    if _BIG_ENDIAN:
        times.byteswap()
        for column in columns.values():
            column.byteswap()
    return TelemetryColumns(times, columns)


def from_json(samples: Sequence[Mapping[str, Any]]) -> TelemetryColumns:
    """A batch as stored before migration 0018 (`[{"at": iso, "values": {channel: value}}]`), columnar."""
    times: list[int] = []
    columns: dict[str, list[float]] = {}
    for i, sample in enumerate(samples):
        at = datetime.fromisoformat(sample["at"])
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        times.append((at - _EPOCH_UTC) // timedelta(microseconds=1))
        for name, value in (sample.get("values") or {}).items():
            column = columns.get(str(name))
            if column is None:
                column = columns[str(name)] = [_NAN] * i
            column.append(float(value))
        for column in columns.values():
            if len(column) == i:
                column.append(_NAN)
    return TelemetryColumns(times, columns)
