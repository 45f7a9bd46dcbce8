"""Real-time twin on a manual clock, and the scheduler-facing in-loop API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from skymesh.core.clock import ManualClock
from skymesh.core.errors import InvalidArgument
from skymesh.sim.activities import Activity, ModeRule
from skymesh.sim.comms import GroundStation
from skymesh.sim.engine import EngineConfig, EventKind, Simulation
from skymesh.sim.inloop import (
    ContactWindow,
    PlannedActivity,
    SpacecraftProfile,
    check_plan,
    evaluate_contacts,
)
from skymesh.sim.orbit import TLEOrbits
from skymesh.sim.realtime import RealtimeTwin
from skymesh.sim.spacecraft import SpacecraftParams

ISS = (
    "1 25544U 98067A   22300.50000000  .00016717  00000+0  30000-3 0  9991",
    "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50000000 10001",
)
START = datetime(2022, 10, 27, 12, tzinfo=UTC)


def iss_sim() -> Simulation:
    sc = SpacecraftParams("iss", battery_capacity_wh=50.0, initial_soc=0.8, charge_power_w=20.0)
    return Simulation(TLEOrbits([ISS], START), [sc], [Activity("work", 15.0)], [ModeRule("work")], START,
                      [GroundStation("gs", 48.0, 11.0, 500.0, 5.0)], EngineConfig(step_s=30.0))  # fmt: skip


async def test_realtime_twin_follows_the_clock() -> None:
    clock = ManualClock(START)
    sim = iss_sim()
    twin = RealtimeTwin(sim, clock)
    task = asyncio.create_task(twin.run(period_s=60.0))
    for _ in range(30):
        await asyncio.sleep(0)
        clock.advance(60.0)
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert twin.time_s == pytest.approx(1800.0, abs=60.0)
    reached = twin.time_s
    fast = sim.run(reached)
    np.testing.assert_allclose(twin.state.energy_ws, fast.final_state.energy_ws, rtol=1e-9)


def test_realtime_time_multiplier() -> None:
    clock = ManualClock(START)
    twin = RealtimeTwin(iss_sim(), clock, time_multiplier=100.0)
    clock.advance(36.0)
    twin.advance_to()
    assert twin.time_s == pytest.approx(3600.0)
    assert twin.advance_to() is None


def passes(hours: float = 12.0) -> list[tuple[float, float]]:
    res = iss_sim().run(hours * 3600)
    t, v = res.edges(EventKind.CONTACT, 0)
    aos = [x for x, s in zip(t, v, strict=True) if s > 0]
    los = [x for x, s in zip(t, v, strict=True) if s < 0]
    return [(a, b) for a, b in zip(aos, [b for b in los if b > aos[0]], strict=False)]


def profile(**kw: object) -> SpacecraftProfile:
    args: dict[str, object] = dict(
        name="iss",
        battery_capacity_wh=50.0,
        min_soc=0.3,
        charge_power_w=20.0,
        initial_soc=0.9,
        payload_data_rate_bytes_per_s=1000.0,
        downlink_rate_bytes_per_s=1e5,
        activity_power_w={"standby": 2.0, "payload": 10.0, "downlink": 25.0},
    )
    args.update(kw)
    return SpacecraftProfile(**args)  # type: ignore[arg-type]


def test_evaluate_contacts_values_data_on_board() -> None:
    windows = [ContactWindow(0, START + timedelta(seconds=a), START + timedelta(seconds=b), "gs") for a, b in passes()]
    assert len(windows) >= 2
    values = evaluate_contacts([profile()], [ISS], windows, START, START + timedelta(hours=12))
    first = values[0]
    # payload runs at 1000 B/s from START until the first window, nothing downlinked before it
    assert first.data_on_board_bytes == pytest.approx(1000.0 * (windows[0].start - START).total_seconds(), rel=1e-6)
    assert first.downlinkable_bytes == pytest.approx(
        min(first.data_on_board_bytes, 1e5 * (windows[0].end - windows[0].start).total_seconds())
    )
    # the second window only sees what was produced since the first one drained the storage
    gap = (windows[1].start - windows[0].end).total_seconds()
    assert values[1].data_on_board_bytes == pytest.approx(1000.0 * gap, rel=1e-3)
    assert all(0.0 <= v.soc_at_start <= 1.0 for v in values)


def test_check_plan_names_the_activity_that_drains_the_battery() -> None:
    p = profile(activity_power_w={"standby": 2.0, "payload": 10.0, "downlink": 25.0, "heater": 200.0})
    plan = [PlannedActivity(0, "heater", START + timedelta(hours=1), START + timedelta(hours=2))]
    report = check_plan([p], [ISS], plan, START, START + timedelta(hours=4))
    assert not report.ok
    v = report.violations[0]
    assert v.item == 0 and v.activity == "heater"
    # 50 Wh from 0.9 to 0.3 at <= 200 W (+20 W when sunlit) takes 9-11 minutes after the heater starts
    minutes = (v.time - plan[0].start).total_seconds() / 60
    assert 8.0 < minutes < 12.0
    gentle = check_plan([profile()], [ISS], [PlannedActivity(0, "downlink", START + timedelta(hours=1),
                                                              START + timedelta(hours=1, minutes=10))],
                        START, START + timedelta(hours=4))  # fmt: skip
    assert gentle.ok and min(gentle.min_soc) > 0.3


def test_inloop_rejects_bad_input() -> None:
    with pytest.raises(InvalidArgument) as info:
        evaluate_contacts([profile()], [ISS], [ContactWindow(3, START, START + timedelta(minutes=5))], START,
                          START + timedelta(hours=1))  # fmt: skip
    assert info.value.field == "contact_windows[0].satellite"
    with pytest.raises(InvalidArgument):
        profile(min_soc=1.5)


async def _drive(clock: ManualClock, steps: int, seconds: float) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)
        clock.advance(seconds)
        await asyncio.sleep(0)


def _paseos_pair_sim(initial_soc: float) -> Simulation:
    sc = SpacecraftParams("sat1", battery_capacity_wh=1.0, initial_soc=initial_soc, charge_power_w=0.0)
    acts = [Activity("idle", 0.0), Activity("activity_A", 10.0, constraint=lambda s: s.soc > 0.1, fallback="idle")]
    return Simulation(TLEOrbits([ISS], START), [sc], acts, [ModeRule("idle")], START, config=EngineConfig(step_s=30))


async def test_perform_activity_runs_the_body_and_switches_back() -> None:
    """PASEOS's perform_activity in real-time mode: the activity runs while the user's coroutine does (here it
    sleeps 120 s of clock time), then the spacecraft is back on its default activity."""
    clock = ManualClock(START)
    twin = RealtimeTwin(_paseos_pair_sim(0.9), clock)
    seen: list[str] = []

    async def body(duration_s: float) -> None:
        seen.append(twin.simulation.activities[int(twin.state.activity[0])].name)
        await clock.sleep(duration_s)

    driver = asyncio.create_task(_drive(clock, 40, 10.0))
    outcome = await twin.perform_activity(0, "activity_A", body, 120.0, period_s=10.0)
    await driver
    assert outcome == "finished"
    assert seen == ["activity_A"]
    assert int(twin.state.activity[0]) == 0
    used_ws = 0.9 * 3600 - float(twin.state.energy_ws[0])
    assert used_ws == pytest.approx(10.0 * 120.0, abs=10.0 * 10.0 + 1.0)  # within one period of the clock


async def test_perform_activity_is_cancelled_when_its_constraint_fails() -> None:
    clock = ManualClock(START)
    twin = RealtimeTwin(_paseos_pair_sim(0.2), clock)  # 720 Ws, 360 Ws above SoC 0.1: 36 s at 10 W
    cancelled: list[bool] = []

    async def body() -> None:
        try:
            await clock.sleep(600.0)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    driver = asyncio.create_task(_drive(clock, 20, 10.0))
    outcome = await twin.perform_activity(0, "activity_A", body, period_s=10.0)
    await asyncio.sleep(0)
    driver.cancel()
    assert outcome == "constraint"
    assert cancelled == [True]
    assert float(twin.state.energy_ws[0]) == pytest.approx(0.1 * 3600, abs=1.0)
    with pytest.raises(InvalidArgument):
        await twin.perform_activity(0, "dance", body)
