"""The simulator in the scheduler's loop: value candidate ground contacts and check plans against the battery.

Pure functions, numpy in and frozen dataclasses out; nothing here talks to a service.

* `SpacecraftProfile` (defined in `skymesh.core.model`, re-exported here): what the scheduler knows of a
  spacecraft (battery Wh, minimum SoC, charge power, activity power draws, storage, payload and downlink data
  rates, optional thermal parameters).
* `evaluate_contacts(profiles, tles, contact_windows, start, end)`: simulates each spacecraft from `start` with its
  idle activity (payload by default) between the candidate windows and downlink inside them, and returns, per
  window, the data on board at its start, what it can downlink (min(on board, rate x duration)), and the SoC at
  its start and end. Windows are valued in the order they come, as if all of them were taken.
* `check_plan(profiles, tles, plan, start, end)`: runs a planned timeline (activities and downlinks with start and
  end) and reports every point where a spacecraft crosses below its minimum SoC, naming the planned item running
  then (or None when the spacecraft was idle), with the time to the engine's tolerance.

Example:
    profiles = [SpacecraftProfile("sat-1", battery_capacity_wh=80, min_soc=0.3, charge_power_w=40,
                                  payload_data_rate_bytes_per_s=5e4, downlink_rate_bytes_per_s=1e6)]
    values = evaluate_contacts(profiles, [(line1, line2)], [ContactWindow(0, aos, los)], start, end)
    report = check_plan(profiles, [(line1, line2)], [PlannedActivity(0, "downlink", aos, los)], start, end)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from skymesh.core.clock import ensure_utc
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import SpacecraftProfile
from skymesh.sim.activities import Activity, ModeRule
from skymesh.sim.engine import EngineConfig, Simulation
from skymesh.sim.orbit import TLEOrbits
from skymesh.sim.spacecraft import SpacecraftParams

__all__ = [
    "ContactValue",
    "ContactWindow",
    "PlanCheck",
    "PlanViolation",
    "PlannedActivity",
    "SpacecraftProfile",
    "check_plan",
    "evaluate_contacts",
]


@dataclass(frozen=True)
class ContactWindow:
    satellite: int  # index into profiles / tles
    start: datetime
    end: datetime
    station: str = ""


@dataclass(frozen=True)
class ContactValue:
    window: ContactWindow
    data_on_board_bytes: float
    downlinkable_bytes: float
    soc_at_start: float
    soc_at_end: float
    above_min_soc: bool


@dataclass(frozen=True)
class PlannedActivity:
    satellite: int
    activity: str  # a key of the profile's activity_power_w; "downlink" drains storage
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PlanViolation:
    satellite: int
    time: datetime
    activity: str
    item: int | None  # index into the plan, None when the spacecraft was idle


@dataclass(frozen=True)
class PlanCheck:
    violations: tuple[PlanViolation, ...]
    min_soc: tuple[float, ...]  # lowest recorded SoC per spacecraft over the horizon
    min_soc_time: tuple[datetime, ...] = ()  # when each spacecraft reached it
    final_soc: tuple[float, ...] = ()  # per spacecraft at the end of the horizon
    final_stored_bytes: tuple[float, ...] = ()  # data on board per spacecraft at the end of the horizon

    @property
    def ok(self) -> bool:
        return not self.violations


def _build(profiles: Sequence[SpacecraftProfile], tles: Sequence[tuple[str, str]], start: datetime,
           step_s: float) -> tuple[Simulation, list[str]]:  # fmt: skip
    if len(profiles) != len(tles):
        raise InvalidArgument(f"{len(profiles)} profiles for {len(tles)} TLEs", field="profiles")
    if not profiles:
        raise InvalidArgument("at least one profile is needed", field="profiles")
    names = sorted({k for p in profiles for k in p.activity_power_w})
    acts = [Activity(name, 0.0) for name in names]  # draws are per spacecraft (activity_power_w)
    scs = [
        SpacecraftParams(
            name=p.name, battery_capacity_wh=p.battery_capacity_wh, initial_soc=p.initial_soc,
            charge_power_w=p.charge_power_w, thermal=p.thermal, storage_capacity_bytes=p.storage_capacity_bytes,
            initial_stored_bytes=p.initial_stored_bytes, downlink_rate_bytes_per_s=p.downlink_rate_bytes_per_s,
            activity_power_w=dict(p.activity_power_w),
        )
        for p in profiles
    ]  # fmt: skip
    cfg = EngineConfig(step_s=step_s, decision_step_s=1e12, tolerance_s=min(0.5, step_s))
    sim = Simulation(TLEOrbits(tles, start), scs, acts, [ModeRule(names[0])], start, config=cfg)
    # payload data rate is per spacecraft: put it on the idle activity's column
    for i, p in enumerate(profiles):
        sim.fleet.data_rate_bytes_per_s[i, sim.activity_index[p.idle_activity]] = p.payload_data_rate_bytes_per_s
    return sim, names


def _seconds(t: datetime, start: datetime, field: str) -> float:
    return (ensure_utc(t, field) - start).total_seconds()


def evaluate_contacts(
    profiles: Sequence[SpacecraftProfile],
    tles: Sequence[tuple[str, str]],
    contact_windows: Sequence[ContactWindow],
    start: datetime,
    end: datetime,
    *,
    step_s: float = 60.0,
) -> list[ContactValue]:
    """Value candidate contacts: data on board and battery state at each window (see the module docstring)."""
    start = ensure_utc(start, "start")
    horizon = _seconds(end, start, "end")
    if not horizon > 0:
        raise InvalidArgument("must be after start", field="end")
    sim, _ = _build(profiles, tles, start, step_s)
    schedule: list[tuple[int, float, int]] = []
    windows: list[tuple[int, float, float]] = []
    probes: list[tuple[int, float]] = []
    for i, p in enumerate(profiles):
        schedule.append((i, 0.0, sim.activity_index[p.idle_activity]))
    for k, w in enumerate(contact_windows):
        if not 0 <= w.satellite < len(profiles):
            raise InvalidArgument("no such satellite", field=f"contact_windows[{k}].satellite")
        t0, t1 = _seconds(w.start, start, "start"), _seconds(w.end, start, "end")
        if not t1 > t0:
            raise InvalidArgument("end must be after start", field=f"contact_windows[{k}]")
        idle = sim.activity_index[profiles[w.satellite].idle_activity]
        schedule += [(w.satellite, t0, sim.activity_index["downlink"]), (w.satellite, t1, idle)]
        windows.append((w.satellite, t0, t1))
        probes += [(w.satellite, t0), (w.satellite, t1)]
    result = sim.run(horizon, schedule=sorted(schedule, key=lambda s: s[1]), contact_windows=windows, probes=probes)
    out = []
    for k, w in enumerate(contact_windows):
        p = profiles[w.satellite]
        on_board = float(result.probe_stored_bytes[2 * k])
        duration = (w.end - w.start).total_seconds()
        soc0, soc1 = float(result.probe_soc[2 * k]), float(result.probe_soc[2 * k + 1])
        out.append(ContactValue(w, on_board, min(on_board, p.downlink_rate_bytes_per_s * duration), soc0, soc1,
                                bool(min(soc0, soc1) >= p.min_soc)))  # fmt: skip
    return out


def check_plan(
    profiles: Sequence[SpacecraftProfile],
    tles: Sequence[tuple[str, str]],
    plan: Sequence[PlannedActivity],
    start: datetime,
    end: datetime,
    *,
    step_s: float = 60.0,
) -> PlanCheck:
    """Which planned items drive a spacecraft below its minimum SoC (see the module docstring)."""
    start = ensure_utc(start, "start")
    horizon = _seconds(end, start, "end")
    if not horizon > 0:
        raise InvalidArgument("must be after start", field="end")
    sim, names = _build(profiles, tles, start, step_s)
    schedule = [(i, 0.0, sim.activity_index[p.idle_activity]) for i, p in enumerate(profiles)]
    windows = []
    spans = []
    for k, item in enumerate(plan):
        if not 0 <= item.satellite < len(profiles):
            raise InvalidArgument("no such satellite", field=f"plan[{k}].satellite")
        if item.activity not in profiles[item.satellite].activity_power_w:
            raise InvalidArgument(f"unknown activity {item.activity!r}", field=f"plan[{k}].activity")
        t0, t1 = _seconds(item.start, start, "start"), _seconds(item.end, start, "end")
        if not t1 > t0:
            raise InvalidArgument("end must be after start", field=f"plan[{k}]")
        idle = sim.activity_index[profiles[item.satellite].idle_activity]
        schedule += [(item.satellite, t0, sim.activity_index[item.activity]), (item.satellite, t1, idle)]
        spans.append((item.satellite, t0, t1, k))
        if item.activity == "downlink":
            windows.append((item.satellite, t0, t1))
    floor = np.array([p.min_soc for p in profiles])
    result = sim.run(horizon, schedule=sorted(schedule, key=lambda s: s[1]), contact_windows=windows, soc_floor=floor)
    violations = []
    for sat, t, act in zip(result.floor_sat, result.floor_time_s, result.floor_activity, strict=True):
        index = next((k for s, t0, t1, k in spans if s == sat and t0 <= t < t1 and plan[k].activity == names[act]),
                     None)  # fmt: skip
        violations.append(PlanViolation(int(sat), start + timedelta(seconds=float(t)), names[int(act)], index))
    lowest = np.argmin(result.soc, axis=0)
    return PlanCheck(
        tuple(violations),
        tuple(float(x) for x in np.min(result.soc, axis=0)),
        tuple(start + timedelta(seconds=float(result.times_s[k])) for k in lowest.tolist()),
        tuple(float(x) for x in result.soc[-1]),
        tuple(float(x) for x in result.stored_bytes[-1]),
    )
