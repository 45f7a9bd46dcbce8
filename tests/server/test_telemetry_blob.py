"""The columnar telemetry blob (skymesh.server.db.telemetry_blob): what is packed comes back exactly (times to the
microsecond, values bit for bit, channels a sample lacks stay absent); a blob that is not one is refused."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skymesh.server.db.records import TelemetryIn
from skymesh.server.db.telemetry_blob import from_json, pack, unpack

_values = st.floats(allow_nan=False, allow_infinity=False)
_times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
_samples = st.lists(
    st.tuples(_times, st.dictionaries(st.sampled_from(["az", "el", "temp.°C", "x" * 300]), _values, max_size=4)),
    min_size=1,
    max_size=20,
)


def _decoded(data: bytes) -> list[tuple[datetime, dict[str, float]]]:
    return [(at, values) for _, at, values in unpack(data).samples()]


@given(samples=_samples)
def test_json_samples_come_back_exactly(samples: list[tuple[datetime, dict[str, float]]]) -> None:
    batch = TelemetryIn.from_samples([{"at": at.isoformat(), "values": values} for at, values in samples])
    assert batch.at == samples[0][0]
    back = _decoded(batch.data)
    assert back == samples
    for (_, got), (_, sent) in zip(back, samples, strict=True):  # -0.0 stays -0.0
        assert {k: math.copysign(1, v) for k, v in got.items()} == {k: math.copysign(1, v) for k, v in sent.items()}


def test_layout_is_the_documented_one() -> None:
    at = datetime(2026, 12, 3, 12, 0, 0, 250, tzinfo=UTC)
    json: list[dict[str, Any]] = [
        {"at": at.isoformat(), "values": {"az": 1.5}},
        {"at": (at + timedelta(seconds=1)).isoformat(), "values": {"az": 2.5, "el": -3.0}},
    ]
    data = TelemetryIn.from_samples(json).data
    us = 1_796_299_200_000_250
    nan = struct.pack("<d", math.nan)
    expected = (
        struct.pack("<BIH", 1, 2, 2)
        + struct.pack("<H", 2) + b"az" + struct.pack("<H", 2) + b"el"
        + struct.pack("<2q", us, us + 1_000_000)
        + struct.pack("<2d", 1.5, 2.5)
        + nan + struct.pack("<d", -3.0)
    )  # fmt: skip
    assert data == expected
    assert _decoded(data) == [(at, {"az": 1.5}), (at + timedelta(seconds=1), {"az": 2.5, "el": -3.0})]


def test_a_blob_that_is_not_one_is_refused() -> None:
    good = pack([1, 2], {"az": [1.0, 2.0]})
    for bad, message in [
        (b"", "too short"),
        (b"\x02" + good[1:], "version 2"),
        (good[:-1], "does not hold"),
        (good + b"\x00", "does not hold"),
    ]:
        with pytest.raises(ValueError, match=message):
            unpack(bad)
    with pytest.raises(ValueError, match="3 times"):
        pack([1, 2, 3], {"az": [1.0]})
    assert list(from_json([]).samples()) == []
