"""Wire <-> domain converters: round trips, and bad input rejected with the full field path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skymesh.api import convert
from skymesh.api.common.v1 import common_pb2
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, TimeWindow


@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    alt=st.floats(-100, 5000),
    min_el=st.floats(0, 89),
    bands=st.lists(st.sampled_from(["VHF", "UHF", "S", "X"]), unique=True),
)
def test_station_round_trip(lat: float, lon: float, alt: float, min_el: float, bands: list[str]) -> None:
    station = Station(
        station_id="gs-1",
        name="GS 1",
        kind=StationKind.GROUND_STATION,
        location=GeoLocation(lat, lon, alt),
        min_elevation_deg=min_el,
        bands=tuple(bands),
    )
    assert convert.station_from_proto(convert.station_to_proto(station)) == station


def test_station_with_bad_latitude_names_the_full_path() -> None:
    msg = common_pb2.Station(
        station_id="x",
        kind=common_pb2.STATION_KIND_TELESCOPE,
        location=common_pb2.GeoLocation(latitude_deg=123.0),
    )
    with pytest.raises(InvalidArgument) as info:
        convert.station_from_proto(msg)
    assert info.value.field == "station.location.latitude_deg"


def test_station_without_kind_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as info:
        convert.station_from_proto(common_pb2.Station(station_id="x", location=common_pb2.GeoLocation()))
    assert info.value.field == "station.kind"


def test_celestial_target_round_trip_and_priority_rule() -> None:
    target = CelestialTarget("delta-cep", "delta Cep", ra_deg=337.29, dec_deg=58.415, magnitude=4.0, priority=7)
    back = convert.target_from_proto(convert.target_to_proto(target))
    assert back == target
    bad = convert.target_to_proto(target)
    bad.priority = 11
    with pytest.raises(InvalidArgument) as info:
        convert.target_from_proto(bad)
    assert info.value.field == "target.priority"


def test_time_window_round_trip() -> None:
    start = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    window = TimeWindow(start, start + timedelta(hours=2))
    assert convert.time_window_from_proto(convert.time_window_to_proto(window)) == window
    with pytest.raises(InvalidArgument) as info:
        convert.time_window_from_proto(common_pb2.TimeWindow(start=convert.timestamp_from_datetime(start)))
    assert info.value.field == "window.end"
