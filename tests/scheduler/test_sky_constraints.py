"""Celestial constraints beyond visibility: twilight per request, hour-angle and Moon-illumination limits per target,
and the weather at stations, each explained when it is what excluded a target."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import station_from_proto, station_to_proto, target_from_proto, target_to_proto
from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import CelestialTarget, TimeWindow, Weather
from skymesh.scheduler.inputs import MappingOptions, PlanRequest, PlanTarget
from skymesh.scheduler.planning import compute_plan
from skymesh.scheduler.reasons import ReasonCode
from skymesh.scheduler.wire import plan_request_from_proto, plan_request_to_proto

from .test_explain import NIGHT0, _scope

WINDOW = TimeWindow(NIGHT0, NIGHT0 + timedelta(hours=24))
CHILE = _scope("chile", -30.17, -70.8)


def _m42(**kw: object) -> PlanTarget:
    return PlanTarget(CelestialTarget("m42", "M42", 83.8, -5.4, magnitude=4.0, **kw))  # type: ignore[arg-type]


def _why(req: PlanRequest) -> dict[str, set[tuple[ReasonCode, str]]]:
    res = compute_plan(req)
    return {e.target_id: {(r.code, r.station_id) for r in e.reasons} for e in res.unscheduled}


def test_twilight_on_the_wire_sets_how_dark_night_is() -> None:
    starts = {}
    for twilight in (
        scheduler_pb2.TWILIGHT_CIVIL,
        scheduler_pb2.TWILIGHT_NAUTICAL,
        scheduler_pb2.TWILIGHT_ASTRONOMICAL,
    ):
        msg = plan_request_to_proto(PlanRequest(WINDOW, [CHILE], [_m42()]))
        msg.twilight = twilight
        req = plan_request_from_proto(msg)
        assert plan_request_to_proto(req).twilight == twilight
        (a,) = compute_plan(req).assignments
        starts[twilight] = a.window.start
    # M42 sets in the evening in March: the darker the night asked for, the later the first start.
    assert (
        starts[scheduler_pb2.TWILIGHT_CIVIL]
        < starts[scheduler_pb2.TWILIGHT_NAUTICAL]
        < starts[scheduler_pb2.TWILIGHT_ASTRONOMICAL]
    )
    assert plan_request_from_proto(plan_request_to_proto(PlanRequest(WINDOW, [], []))).options == MappingOptions()
    msg = plan_request_to_proto(PlanRequest(WINDOW, [], []))
    msg.twilight = 9  # type: ignore[assignment]
    with pytest.raises(InvalidArgument, match="twilight"):
        plan_request_from_proto(msg)


def test_hour_angle_limit_excludes_a_target_past_the_meridian_with_a_reason() -> None:
    # At nautical dusk on 1 March M42 is ~0.6 h past the meridian from Chile.
    assert compute_plan(PlanRequest(WINDOW, [CHILE], [_m42(max_hour_angle_h=0.75)])).assignments
    assert _why(PlanRequest(WINDOW, [CHILE], [_m42(max_hour_angle_h=0.25)])) == {
        "m42": {(ReasonCode.HOUR_ANGLE, "chile")}
    }


def test_moon_illumination_limit_excludes_a_target_in_bright_time_with_a_reason() -> None:
    # Full Moon on 3 March 2026: ~95 % lit.
    lit = [_m42(min_moon_separation_deg=0.0, max_moon_illumination=0.99)]
    assert compute_plan(PlanRequest(WINDOW, [CHILE], lit)).assignments
    assert _why(PlanRequest(WINDOW, [CHILE], [_m42(min_moon_separation_deg=0.0, max_moon_illumination=0.5)])) == {
        "m42": {(ReasonCode.MOON, "chile")}
    }
    with pytest.raises(InvalidArgument, match="max_moon_illumination"):
        CelestialTarget("x", "x", 1.0, 1.0, max_moon_illumination=1.5)
    with pytest.raises(InvalidArgument, match="max_hour_angle_h"):
        CelestialTarget("x", "x", 1.0, 1.0, max_hour_angle_h=-1.0)


def test_new_target_and_station_fields_round_trip_the_wire() -> None:
    t = CelestialTarget("m42", "M42", 83.8, -5.4, max_hour_angle_h=2.5, max_moon_illumination=0.4)
    assert target_from_proto(target_to_proto(t)) == t
    s = station_from_proto(station_to_proto(CHILE))
    assert s.weather == Weather.UNSPECIFIED
    msg = station_to_proto(CHILE)
    msg.weather = common_pb2.WEATHER_CLOUDY
    assert station_from_proto(msg).weather == Weather.CLOUDY
    msg.weather = 7  # type: ignore[assignment]
    with pytest.raises(InvalidArgument, match="weather"):
        station_from_proto(msg)


def test_weather_closes_telescopes_to_clouds_and_ground_stations_only_when_closed() -> None:
    from .conftest import T0, ground_station, iss_like

    tenerife = _scope("tenerife", 28.3, -16.5)
    targets = [_m42()]
    cloudy = replace(CHILE, weather=Weather.CLOUDY)
    # One telescope cloudy, the other clear: M42 goes to the clear one.
    res = compute_plan(PlanRequest(WINDOW, [cloudy, replace(tenerife, weather=Weather.CLEAR)], targets))
    assert {a.station_id for a in res.assignments} == {"tenerife"}
    # Both closed by weather: M42 is explained with WEATHER, naming both.
    res = compute_plan(PlanRequest(WINDOW, [cloudy, replace(tenerife, weather=Weather.CLOSED)], targets))
    [(target_id, [reason])] = [(e.target_id, list(e.reasons)) for e in res.unscheduled]
    assert (target_id, reason.code) == ("m42", ReasonCode.WEATHER)
    assert "chile" in reason.detail and "tenerife" in reason.detail
    # Ground stations ignore clouds, but CLOSED stops them.
    sat_window = TimeWindow(T0, T0 + timedelta(hours=24))
    sats = [PlanTarget(iss_like("iss"))]
    gs = ground_station("munich", 48.0, 11.0)
    assert compute_plan(PlanRequest(sat_window, [replace(gs, weather=Weather.CLOUDY)], sats)).assignments
    assert _why(PlanRequest(sat_window, [replace(gs, weather=Weather.CLOSED)], sats)) == {
        "iss": {(ReasonCode.WEATHER, "munich")}
    }
