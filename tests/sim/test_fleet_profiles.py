"""The demo fleet's spacecraft profiles: every satellite has a plausible one, and the planner finds at least one
satellite that cannot afford all its contacts while the satellites the demo's goal depends on keep theirs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from skymesh.core.model import StationKind, StationState, TimeWindow
from skymesh.scheduler.inputs import PlanRequest, PlanTarget
from skymesh.scheduler.spacecraft import plan_with_spacecraft
from skymesh.sim.fleet import build_demo_fleet

NOW = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def test_every_demo_satellite_has_a_plausible_profile_and_one_is_power_constrained() -> None:
    fleet = build_demo_fleet(NOW)
    profiles = {s.target_id: s.spacecraft for s in fleet.satellites}
    assert all(p is not None for p in profiles.values())
    cubesats = [s.spacecraft for s in fleet.satellites if s.spacecraft and "CUBESAT" in s.name.upper()]
    assert cubesats and all(20 <= p.battery_capacity_wh <= 40 and p.charge_power_w < 10 for p in cubesats)
    assert len({p.battery_capacity_wh for p in profiles.values() if p}) > 5  # they vary

    stations = [replace(s, state=StationState.ONLINE) for s in fleet.stations if s.kind == StationKind.GROUND_STATION]
    req = PlanRequest(TimeWindow(NOW, NOW + timedelta(hours=6)), stations, [PlanTarget(t) for t in fleet.satellites])
    result = plan_with_spacecraft(req)
    forecasts = {f.target_id: f for f in result.spacecraft_forecasts}
    assert set(forecasts) == set(profiles)
    constrained = [f for f in forecasts.values() if "unaffordable" in f.detail]
    assert constrained, "no demo satellite is power-constrained"
    assert not any(f.below_min_soc for f in forecasts.values())
    planned = {a.target_id for a in result.assignments}
    assert set(fleet.soon) <= planned


def test_demo_soon_passes_are_scheduled_even_when_the_first_plan_is_late() -> None:
    # At this start the demo used to pick a 45-59 s pass over gs-tokyo: the scheduler dropped it as TOO_SHORT (its
    # default min_pass_s is 60 s), so the satellite announced as rising "soon" got no contact there.
    now = datetime(2026, 12, 2, 23, 56, tzinfo=UTC)
    fleet = build_demo_fleet(now)
    assert fleet.soon
    stations = [replace(s, state=StationState.ONLINE) for s in fleet.stations if s.kind == StationKind.GROUND_STATION]
    for delay_s in (0.0, 60.0):  # the first plan is made after the agents connect
        t0 = now + timedelta(seconds=delay_s)
        req = PlanRequest(TimeWindow(t0, t0 + timedelta(hours=6)), stations, [PlanTarget(t) for t in fleet.satellites])
        result = plan_with_spacecraft(req)
        for target_id, (station_id, aos) in fleet.soon.items():
            starts = [
                a.window.start for a in result.assignments if a.target_id == target_id and a.station_id == station_id
            ]
            assert starts and min(starts) <= max(aos, t0) + timedelta(seconds=1), (target_id, station_id, delay_s)
