"""Spacecraft profiles and forecasts on the wire: round trips, wire defaults, and bad values naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skymesh.api import convert
from skymesh.api.common.v1 import common_pb2
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import SatelliteTarget, SpacecraftForecast, SpacecraftProfile, ThermalParams

L1 = "1 25544U 98067A   24001.50000000  .00016717  00000-0  10270-3 0  9001"
L2 = "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.49815361 00001"


def _sat(profile: SpacecraftProfile | None) -> SatelliteTarget:
    return SatelliteTarget("sat-1", "Sat 1", 25544, L1, L2, band="UHF", spacecraft=profile)


@given(
    battery=st.floats(1, 500),
    min_soc=st.floats(0, 1),
    initial=st.floats(0, 1),
    charge=st.floats(0, 200),
    storage=st.one_of(st.just(math.inf), st.floats(1e6, 1e12)),
    payload=st.floats(0, 1e6),
    downlink=st.floats(0, 1e8),
    draw=st.floats(0, 100),
)
def test_profile_round_trips_inside_a_satellite_target(
    battery: float, min_soc: float, initial: float, charge: float, storage: float, payload: float,
    downlink: float, draw: float,
) -> None:  # fmt: skip
    profile = SpacecraftProfile(
        "sat-1", battery, min_soc, charge, initial_soc=initial,
        activity_power_w={"payload": draw, "downlink": 2 * draw, "standby": 1.0}, storage_capacity_bytes=storage,
        payload_data_rate_bytes_per_s=payload, downlink_rate_bytes_per_s=downlink,
    )  # fmt: skip
    target = _sat(profile)
    assert convert.target_from_proto(convert.target_to_proto(target)) == target


def test_thermal_and_idle_activity_round_trip_and_no_profile_stays_none() -> None:
    thermal = ThermalParams(6.0, 290.0, 0.9, 0.8, 0.1, 0.1, 0.3, 900.0)
    profile = SpacecraftProfile(
        "sat-1", 30.0, 0.3, 5.0, activity_power_w={"science": 8.0, "downlink": 12.0}, idle_activity="science",
        initial_soc=0.0, thermal=thermal,
    )  # fmt: skip
    assert convert.target_from_proto(convert.target_to_proto(_sat(profile))) == _sat(profile)
    assert convert.target_from_proto(convert.target_to_proto(_sat(None))) == _sat(None)
    assert not convert.target_to_proto(_sat(None)).satellite.HasField("spacecraft")


def test_wire_defaults_full_battery_unlimited_storage_default_draws() -> None:
    msg = common_pb2.SpacecraftProfile(battery_capacity_wh=30, min_soc=0.3, charge_power_w=4)
    p = convert.spacecraft_profile_from_proto(msg, "cube")
    assert (p.name, p.initial_soc, p.storage_capacity_bytes, p.idle_activity) == ("cube", 1.0, math.inf, "payload")
    assert set(p.activity_power_w) == {"standby", "payload", "downlink"}


def _target_msg(**profile: object) -> common_pb2.Target:
    msg = convert.target_to_proto(_sat(SpacecraftProfile("sat-1", 30.0, 0.3, 5.0)))
    for key, value in profile.items():
        setattr(msg.satellite.spacecraft, key, value)
    return msg


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"battery_capacity_wh": 0.0}, "battery_capacity_wh", "must be positive"),
        ({"battery_capacity_wh": math.nan}, "battery_capacity_wh", "finite"),
        ({"min_soc": 1.5}, "min_soc", "[0, 1]"),
        ({"initial_soc": -0.1}, "initial_soc", "[0, 1]"),
        ({"charge_power_w": -1.0}, "charge_power_w", ">= 0"),
        ({"storage_capacity_bytes": -5.0}, "storage_capacity_bytes", ">= 0"),
        ({"downlink_rate_bytes_per_s": math.inf}, "downlink_rate_bytes_per_s", "finite"),
        ({"idle_activity": "science"}, "activity_power_w", "'science'"),
    ],
)
def test_bad_profile_values_name_the_field(change: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        convert.target_from_proto(_target_msg(**change))
    assert err.value.field == f"target.satellite.spacecraft.{field}"
    assert rule in str(err.value)


def test_bad_activity_draw_and_thermal_name_the_field() -> None:
    msg = _target_msg()
    msg.satellite.spacecraft.activity_power_w["downlink"] = -3.0
    with pytest.raises(InvalidArgument) as err:
        convert.target_from_proto(msg)
    assert err.value.field == "target.satellite.spacecraft.activity_power_w['downlink']"
    msg = _target_msg()
    msg.satellite.spacecraft.thermal.mass_kg = 0.0
    with pytest.raises(InvalidArgument) as err:
        convert.target_from_proto(msg)
    assert err.value.field == "target.satellite.spacecraft.thermal.mass_kg"


def test_forecast_round_trip_and_validation() -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    f = SpacecraftForecast("sat-1", 0.8, t + timedelta(hours=6), 0.35, t + timedelta(hours=2), 1.5e7, False, 0.3, "x")
    assert convert.spacecraft_forecast_from_proto(convert.spacecraft_forecast_to_proto(f)) == f
    bad = convert.spacecraft_forecast_to_proto(f)
    bad.min_state_of_charge = 2.0
    with pytest.raises(InvalidArgument) as err:
        convert.spacecraft_forecast_from_proto(bad, "forecasts[0]")
    assert err.value.field == "forecasts[0].min_state_of_charge"
