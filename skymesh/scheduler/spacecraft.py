"""Spacecraft constraints in the plan: a `ContactValuer` backed by the simulator (`skymesh.sim.inloop`).

For satellites with a `SpacecraftProfile`, every candidate pass is simulated (`evaluate_contacts`: battery and data
on board at each window, as if all candidate windows were taken, which is conservative for the battery). A pass
that would leave the battery below the profile's minimum state of charge gets factor 0 (dropped, reason
SPACECRAFT_POWER); the others get 0.5 + 0.5 x (fraction of the pass's downlink capacity the data on board fills),
so full data stores win ties. Satellites without a profile keep factor 1.

`plan_with_spacecraft(req)` is what the service runs: it takes the profiles from the request's satellite targets
(`SatelliteTarget.spacecraft`), values contacts with `sim_contact_valuer`, then runs the plan through `check_plan`
(`enforce_min_soc`). A kept contact during which (or after which, before the next one) a spacecraft crosses below
its minimum SoC is dropped with reason SPACECRAFT_POWER and the plan is checked again, until it passes or what is
left cannot be helped (the spacecraft crosses below its minimum even with no contacts, or only frozen jobs
remain). Every satellite with a profile gets a `SpacecraftForecast` (SoC at the window's end and its minimum,
data on board at the end). Requests without profiles are planned exactly as `compute_plan` plans them.

Use: `plan_with_spacecraft(req)`, or `compute_plan(req, valuer=sim_contact_valuer(profiles))` for valuing only.
Imports: numpy, `skymesh.sim` (allowed: the simulator sits below the services) and the scheduler's mapping.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np

from skymesh.core.model import SatelliteTarget, SpacecraftForecast
from skymesh.scheduler.inputs import Assignment, Explanation, PlanRequest, PlanResult
from skymesh.scheduler.opportunities import Compiled
from skymesh.scheduler.pages import ExplanationPage, plan_fingerprint, resign_token
from skymesh.scheduler.planning import ContactValuer, compute_plan, explain_plan
from skymesh.scheduler.reasons import Reason, ReasonCode
from skymesh.scheduler.viscache import VisibilityCache
from skymesh.sim.inloop import (
    ContactWindow,
    PlanCheck,
    PlannedActivity,
    SpacecraftProfile,
    check_plan,
    evaluate_contacts,
)

__all__ = ["enforce_min_soc", "explain_with_spacecraft", "plan_with_spacecraft", "profiles_of", "sim_contact_valuer"]


def sim_contact_valuer(profiles: Mapping[str, SpacecraftProfile], *, step_s: float = 60.0) -> ContactValuer:
    """A valuer for the satellites named in `profiles` (keyed by target_id)."""

    def value(c: Compiled) -> list[float]:
        ops = c.problem.opportunities
        factor = np.ones(len(ops))
        sats = [
            (r, pt.target)
            for r, pt in enumerate(c.targets)
            if isinstance(pt.target, SatelliteTarget) and pt.target_id in profiles
        ]
        if not sats or not len(ops):
            return factor.tolist()
        slot = {r: k for k, (r, _) in enumerate(sats)}
        prof = [profiles[t.target_id] for _, t in sats]
        tles = [(t.tle_line1, t.tle_line2) for _, t in sats]
        idx = [i for i in np.argsort(ops.start_s, kind="stable").tolist() if int(ops.request[i]) in slot]
        if not idx:
            return factor.tolist()
        windows = [
            ContactWindow(
                slot[int(ops.request[i])],
                c.t0 + timedelta(seconds=float(ops.start_s[i])),
                c.t0 + timedelta(seconds=float(ops.end_s[i])),
                c.stations[int(ops.resource[i])].station_id,
            )
            for i in idx
        ]
        end = c.t0 + timedelta(seconds=float(ops.end_s[idx].max()) + step_s)
        for i, v in zip(idx, evaluate_contacts(prof, tles, windows, c.t0, end, step_s=step_s), strict=True):
            p = prof[v.window.satellite]
            if not v.above_min_soc:
                factor[i] = 0.0
                continue
            capacity = p.downlink_rate_bytes_per_s * (ops.end_s[i] - ops.start_s[i])
            filled = min(1.0, v.downlinkable_bytes / capacity) if capacity > 0 else 1.0
            factor[i] = 0.5 + 0.5 * filled
        return factor.tolist()

    return value


def profiles_of(req: PlanRequest) -> dict[str, SatelliteTarget]:
    """The request's satellite targets that carry a spacecraft profile, by target_id."""
    return {
        pt.target.target_id: pt.target
        for pt in req.targets
        if isinstance(pt.target, SatelliteTarget) and pt.target.spacecraft is not None
    }


def _combine(first: ContactValuer, second: ContactValuer | None) -> ContactValuer:
    if second is None:
        return first
    return lambda c: (np.asarray(first(c)) * np.asarray(second(c))).tolist()


def _hhmm(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%MZ")


def plan_with_spacecraft(
    req: PlanRequest,
    *,
    isolate: bool = False,
    valuer: ContactValuer | None = None,
    step_s: float = 60.0,
    visibility_cache: VisibilityCache | None = None,
) -> PlanResult:
    """Plan, valuing and checking contacts of satellites with spacecraft profiles (see the module docstring)."""
    sats = profiles_of(req)
    if not sats:
        return compute_plan(req, isolate=isolate, valuer=valuer, visibility_cache=visibility_cache)
    profiles = {k: t.spacecraft for k, t in sats.items() if t.spacecraft is not None}
    simulated = sim_contact_valuer(profiles, step_s=step_s)
    valued: dict[str, tuple[int, int]] = dict.fromkeys(sats, (0, 0))  # target_id -> (unaffordable, candidates)

    valuer_s = [0.0]

    def counted(c: Compiled) -> list[float]:
        started = time.perf_counter()
        factors = simulated(c)
        valuer_s[0] += time.perf_counter() - started
        for r, f in zip(c.problem.opportunities.request.tolist(), factors, strict=True):
            target_id = c.targets[int(r)].target_id
            if target_id in valued:
                zero, total = valued[target_id]
                valued[target_id] = (zero + int(f <= 0), total + 1)
        return factors

    t0 = time.perf_counter()
    result = compute_plan(req, isolate=isolate, valuer=_combine(counted, valuer), visibility_cache=visibility_cache)
    t1 = time.perf_counter()
    checked = enforce_min_soc(req, result, step_s=step_s, valued=valued)
    t2 = time.perf_counter()
    timings = {**checked.stats.timings_s, "spacecraft_valuer_s": valuer_s[0], "spacecraft_check_s": t2 - t1}
    return dataclasses.replace(checked, stats=dataclasses.replace(checked.stats, runtime_s=t2 - t0, timings_s=timings))


def enforce_min_soc(
    req: PlanRequest,
    result: PlanResult,
    *,
    step_s: float = 60.0,
    valued: Mapping[str, tuple[int, int]] | None = None,
) -> PlanResult:
    """Check `result` with the simulator; drop contacts that take a spacecraft below its minimum SoC; forecast.

    `valued`: per target_id, (candidate contacts the valuer found unaffordable, candidates), for the forecast's
    detail. Returns `result` unchanged when no target of `req` has a spacecraft profile.
    """
    sats = profiles_of(req)
    if not sats:
        return result
    ids = list(sats)
    slot = {k: i for i, k in enumerate(ids)}
    prof = [t.spacecraft for t in sats.values() if t.spacecraft is not None]
    tles = [(sats[k].tle_line1, sats[k].tle_line2) for k in ids]
    start, end = req.window.start, req.window.end

    def check(kept: list[Assignment]) -> tuple[PlanCheck, list[Assignment]]:
        mine = sorted((a for a in kept if a.target_id in slot), key=lambda a: a.window.start)
        plan = [PlannedActivity(slot[a.target_id], "downlink", a.window.start, a.window.end) for a in mine]
        return check_plan(prof, tles, plan, start, end, step_s=step_s), mine

    # Where each spacecraft crosses its floor with no contacts at all: violations from then on cannot be helped.
    idle = check_plan(prof, tles, [], start, end, step_s=step_s)
    unavoidable: dict[int, datetime] = {}
    for v in idle.violations:
        unavoidable.setdefault(v.satellite, v.time)
    kept = list(result.assignments)
    dropped: list[tuple[Assignment, datetime]] = []
    report, mine = check(kept)
    for _ in range(len(kept) + 1):
        first: dict[int, tuple[datetime, int | None]] = {}
        for v in sorted(report.violations, key=lambda v: v.time):
            first.setdefault(v.satellite, (v.time, v.item))
        drop: list[tuple[Assignment, datetime]] = []
        for sat, (when, item) in first.items():
            if sat in unavoidable and when >= unavoidable[sat] - timedelta(seconds=step_s):
                continue
            culprit = mine[item] if item is not None else None
            if culprit is None or culprit.job_id:  # idle then, or a frozen job: drop the latest contact before
                before = [a for a in mine if slot[a.target_id] == sat and a.window.start <= when and not a.job_id]
                culprit = before[-1] if before else None
            if culprit is not None:
                drop.append((culprit, when))
        if not drop:
            break
        dropped += drop
        gone = {id(a) for a, _ in drop}
        kept = [a for a in kept if id(a) not in gone]
        report, mine = check(kept)
    return _finish(req, result, kept, dropped, report, ids, prof, unavoidable, valued or {})


def _finish(
    req: PlanRequest,
    result: PlanResult,
    kept: list[Assignment],
    dropped: list[tuple[Assignment, datetime]],
    report: PlanCheck,
    ids: list[str],
    prof: list[SpacecraftProfile],
    unavoidable: Mapping[int, datetime],
    valued: Mapping[str, tuple[int, int]],
) -> PlanResult:
    reasons: dict[str, list[Reason]] = {e.target_id: list(e.reasons) for e in result.unscheduled}
    for a, when in dropped:
        p = prof[ids.index(a.target_id)]
        detail = (
            f"plan check: with the contact {_hhmm(a.window.start)}-{_hhmm(a.window.end)} the battery falls below "
            f"its minimum state of charge {p.min_soc:.0%} at {_hhmm(when)}"
        )
        reasons.setdefault(a.target_id, []).append(Reason(ReasonCode.SPACECRAFT_POWER, detail, a.station_id))
    order = [e.target_id for e in result.unscheduled] + sorted(set(reasons) - {e.target_id for e in result.unscheduled})
    unscheduled = tuple(Explanation(t, tuple(reasons[t])) for t in order)
    stats = result.stats
    if dropped:
        objective = stats.objective - sum(a.score for a, _ in dropped)
        gap = (stats.bound - objective) / stats.bound if stats.bound > 0 else 0.0
        stats = dataclasses.replace(stats, objective=objective, gap=gap, optimal=False)
    below = {v.satellite for v in report.violations}
    forecasts = []
    for i, target_id in enumerate(ids):
        notes = []
        zero, total = valued.get(target_id, (0, 0))
        if zero:
            notes.append(f"{zero} of {total} candidate contacts unaffordable")
        n = sum(1 for a, _ in dropped if a.target_id == target_id)
        if n:
            notes.append(f"{n} planned contact(s) dropped by the plan check")
        if i in unavoidable:
            notes.append(f"below its minimum state of charge even without contacts from {_hhmm(unavoidable[i])}")
        forecasts.append(
            SpacecraftForecast(
                target_id=target_id,
                state_of_charge=report.final_soc[i],
                state_of_charge_time=req.window.end,
                min_state_of_charge=report.min_soc[i],
                min_state_of_charge_time=report.min_soc_time[i],
                data_on_board_bytes=report.final_stored_bytes[i],
                below_min_soc=i in below,
                min_soc=prof[i].min_soc,
                detail="; ".join(notes),
            )
        )
    token = result.next_explanation_page_token
    if dropped and token:
        # Later pages (ExplainPlan) explain the plan the client gets, without the dropped contacts.
        token = resign_token(token, plan_fingerprint(result.assignments), plan_fingerprint(kept))
    return dataclasses.replace(
        result,
        assignments=tuple(kept),
        unscheduled=unscheduled,
        stats=stats,
        spacecraft_forecasts=tuple(forecasts),
        next_explanation_page_token=token,
    )


def explain_with_spacecraft(
    req: PlanRequest,
    assignments: Sequence[Assignment],
    *,
    page_size: int,
    page_token: str = "",
    valuer: ContactValuer | None = None,
    step_s: float = 60.0,
    visibility_cache: VisibilityCache | None = None,
) -> ExplanationPage:
    """`explain_plan` with the contacts valued as `plan_with_spacecraft` valued them when it made the plan."""
    sats = profiles_of(req)
    if sats:
        profiles = {k: t.spacecraft for k, t in sats.items() if t.spacecraft is not None}
        valuer = _combine(sim_contact_valuer(profiles, step_s=step_s), valuer)
    return explain_plan(
        req, assignments, page_size=page_size, page_token=page_token, valuer=valuer, visibility_cache=visibility_cache
    )
