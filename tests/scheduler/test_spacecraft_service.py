"""Spacecraft profiles through the SchedulerService over real gRPC: contacts the battery cannot afford are dropped
with SPACECRAFT_POWER, the returned plan passes the simulator's plan check, and every profile gets a forecast."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest

from skymesh.api.convert import spacecraft_forecast_from_proto, timestamp_to_datetime
from skymesh.api.scheduler.v1 import scheduler_pb2 as pb
from skymesh.api.scheduler.v1 import scheduler_pb2_grpc as pb_grpc
from skymesh.core.model import SatelliteTarget, SpacecraftProfile, TimeWindow
from skymesh.scheduler.inputs import Assignment, PlanRequest, PlanTarget
from skymesh.scheduler.planning import compute_plan
from skymesh.scheduler.reasons import ReasonCode
from skymesh.scheduler.service import SchedulerServicer, start_server
from skymesh.scheduler.spacecraft import enforce_min_soc, plan_with_spacecraft
from skymesh.scheduler.wire import plan_request_to_proto
from skymesh.sim.inloop import PlannedActivity, check_plan
from tests.scheduler.conftest import T0, ground_station, iss_like

HEALTHY = SpacecraftProfile(
    "ok", battery_capacity_wh=80, min_soc=0.2, charge_power_w=40,
    payload_data_rate_bytes_per_s=5e4, downlink_rate_bytes_per_s=1e6,
)  # fmt: skip
# Idle it just holds its charge (3 W of sun, 1 W of payload); one 60 W downlink of a few minutes empties the
# 3 Wh between its initial and minimum state of charge.
STARVING = SpacecraftProfile(
    "dead", battery_capacity_wh=10, min_soc=0.5, charge_power_w=3, initial_soc=0.8,
    activity_power_w={"payload": 1.0, "downlink": 60.0, "standby": 0.5},
    payload_data_rate_bytes_per_s=1e3, downlink_rate_bytes_per_s=1e5,
)  # fmt: skip


def _request() -> PlanRequest:
    ok = replace(iss_like("ok", seed=2), spacecraft=replace(HEALTHY, name="ok"))
    dead = replace(iss_like("dead", seed=3, priority=9), spacecraft=replace(STARVING, name="dead"))
    plain = iss_like("plain", seed=4)
    return PlanRequest(
        TimeWindow(T0, T0 + timedelta(hours=12)),
        [ground_station("gs", 48.0, 11.0)],
        [PlanTarget(ok), PlanTarget(dead), PlanTarget(plain)],
        request_id="sc-1",
    )


def _passes_check(req: PlanRequest, assignments: Sequence[Assignment]) -> bool:
    sats = [t.target for t in req.targets if isinstance(t.target, SatelliteTarget) and t.target.spacecraft]
    ids = [s.target_id for s in sats]
    plan = [
        PlannedActivity(ids.index(a.target_id), "downlink", a.window.start, a.window.end)
        for a in assignments
        if a.target_id in ids
    ]
    profiles = [s.spacecraft for s in sats if s.spacecraft is not None]
    tles = [(s.tle_line1, s.tle_line2) for s in sats]
    return check_plan(profiles, tles, plan, req.window.start, req.window.end).ok


@pytest.fixture
async def stub() -> AsyncIterator[pb_grpc.SchedulerServiceStub]:
    server, port = await start_server("127.0.0.1:0", servicer=SchedulerServicer(isolate=False))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield pb_grpc.SchedulerServiceStub(ch)
    finally:
        await server.stop(grace=None)


async def test_unaffordable_contacts_are_dropped_and_the_plan_passes_the_check(
    stub: pb_grpc.SchedulerServiceStub,
) -> None:
    req = _request()
    res = await stub.ComputePlan(plan_request_to_proto(req))
    by_target: dict[str, list[pb.Assignment]] = {}
    for a in res.assignments:
        by_target.setdefault(a.target_id, []).append(a)
    assert "dead" not in by_target
    assert by_target["ok"] and by_target["plain"]
    why = {e.target_id: {r.code for r in e.reasons} for e in res.unscheduled}
    assert pb.REASON_CODE_SPACECRAFT_POWER in why["dead"]
    assert "ok" not in why
    assert {"spacecraft_valuer_s", "spacecraft_check_s"} <= set(res.stats.timings_s)
    assert res.stats.runtime_s >= res.stats.timings_s["spacecraft_check_s"] > 0

    # The plan as returned passes the simulator's check.
    windows = [(a.target_id, timestamp_to_datetime(a.window.start), timestamp_to_datetime(a.window.end))
               for a in res.assignments]  # fmt: skip
    assert _passes_check(req, [Assignment("gs", t, TimeWindow(a, b)) for t, a, b in windows])

    forecasts = {f.target_id: spacecraft_forecast_from_proto(f) for f in res.spacecraft_forecasts}
    assert set(forecasts) == {"ok", "dead"}  # "plain" has no profile
    for f in forecasts.values():
        assert not f.below_min_soc
        assert f.min_soc <= f.min_state_of_charge <= f.state_of_charge <= 1.0
        assert req.window.start <= f.min_state_of_charge_time <= req.window.end
        assert f.state_of_charge_time == req.window.end
    # Nothing downlinked from "dead": 12 h of 1 kB/s payload data is still on board.
    assert forecasts["dead"].data_on_board_bytes == pytest.approx(12 * 3600 * 1e3, rel=0.01)
    assert forecasts["dead"].min_soc == 0.5
    assert forecasts["ok"].data_on_board_bytes < 12 * 3600 * 5e4


async def test_without_profiles_the_plan_is_unchanged(stub: pb_grpc.SchedulerServiceStub) -> None:
    req = _request()
    bare = replace(
        req,
        targets=[PlanTarget(replace(t.target, spacecraft=None)) for t in req.targets],  # type: ignore[type-var]
    )
    res = await stub.ComputePlan(plan_request_to_proto(bare))
    assert not res.spacecraft_forecasts
    local = compute_plan(bare)
    assert [(a.target_id, a.station_id) for a in res.assignments] == [
        (a.target_id, a.station_id) for a in local.assignments
    ]
    assert {a.target_id for a in res.assignments} >= {"ok", "dead", "plain"}


def test_a_spacecraft_below_its_minimum_even_idle_is_reported_not_chased() -> None:
    # Payload draw beyond its charging: the battery crosses its floor with or without contacts.
    drained = SpacecraftProfile(
        "drained", battery_capacity_wh=20, min_soc=0.3, charge_power_w=2, payload_data_rate_bytes_per_s=1e3,
        downlink_rate_bytes_per_s=1e5, activity_power_w={"payload": 25.0, "downlink": 10.0, "standby": 1.0},
    )  # fmt: skip
    target = replace(iss_like("drained", seed=5), spacecraft=drained)
    req = PlanRequest(TimeWindow(T0, T0 + timedelta(hours=6)), [ground_station("gs", 48.0, 11.0)], [PlanTarget(target)])
    res = plan_with_spacecraft(req)
    [f] = res.spacecraft_forecasts
    assert f.below_min_soc
    assert "even without contacts" in f.detail
    assert f.min_state_of_charge < 0.3


def test_the_plan_check_drops_contacts_of_a_plan_made_blind_to_power() -> None:
    # A plan computed without the simulator keeps "dead"'s passes; the check drops exactly those, with reasons.
    req = _request()
    blind = compute_plan(req)
    assert any(a.target_id == "dead" for a in blind.assignments)
    checked = enforce_min_soc(req, blind)
    assert _passes_check(req, checked.assignments)
    dead_before = [a for a in blind.assignments if a.target_id == "dead"]
    dead_after = [a for a in checked.assignments if a.target_id == "dead"]
    # The two long passes (60 W for over 6 min) go; the short one the recharged battery can afford stays.
    assert len(dead_after) == 1 and len(dead_before) == 3 and dead_after[0] == dead_before[-1]
    [e] = [e for e in checked.unscheduled if e.target_id == "dead"]
    power = [r for r in e.reasons if r.code == ReasonCode.SPACECRAFT_POWER]
    assert power and all("minimum state of charge 50%" in r.detail and r.station_id == "gs" for r in power)
    assert len(power) == 2
    dropped = sum(a.score for a in dead_before[:2])
    assert checked.stats.objective == pytest.approx(blind.stats.objective - dropped)
    forecasts = {f.target_id: f for f in checked.spacecraft_forecasts}
    assert not forecasts["dead"].below_min_soc
    assert forecasts["dead"].detail == "2 planned contact(s) dropped by the plan check"
    # Unchanged for the satellite that can afford its passes.
    assert [a for a in checked.assignments if a.target_id == "ok"] == [
        a for a in blind.assignments if a.target_id == "ok"
    ]
