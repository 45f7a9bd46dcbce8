"""Why was a request not scheduled (or only partly): the mapping's filter log plus, per opportunity, the final plan.

Two layers (reference §4, LCO's filter logs and flux-sched's reason codes):
- *infeasible*: every reason the mapping recorded while it dropped windows (never visible, daylight, faint, ...);
- *feasible but not chosen*: one reason per opportunity left out, at every station where it had one, naming every
  job of the final plan that occupies that station then (its window padded by turnaround and slew, exactly the rule
  the planners honour), each with its priority and value. The code comes from the real comparison:

  1. the request's own contacts in the plan rule it out (period cap, one at a time, cadence, per-station cap,
     total): LOST_TO_SAME_SATELLITE_LIMIT, or DEMAND_MET when only frozen jobs of the request do;
  2. an occupant is a frozen (dispatched) job: LOST_TO_FROZEN_JOB;
  3. an occupant has a higher priority: LOST_TO_HIGHER_PRIORITY;
  4. the occupants together are worth at least the opportunity: LOST_TO_HIGHER_VALUE;
  5. otherwise swapping them out would have raised the objective, which the planner did not find before its limit
     (or a greedy planner never looks for): TIME_LIMIT.

Occupants are computed from the final plan, never from the order in which a planner placed jobs, so a job slotted
into a gap after the loss is named only if it really overlaps the opportunity.

Imports: the kernel, greedy's `Occupancy` and the reason codes.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from skymesh.scheduler.greedy import Blocker, Occupancy
from skymesh.scheduler.isolation import CancelScope
from skymesh.scheduler.kernel import FrozenPlacement, Problem
from skymesh.scheduler.reasons import FilterLog, Occupant, Reason, ReasonCode

__all__ = ["explain_partial", "explain_unscheduled", "wanted_contacts"]

_MAX_STATIONS_NAMED = 4


def _stations_text(stations: Sequence[str]) -> str:
    named = [s for s in stations if s]
    if not named:
        return ""
    head = ", ".join(named[:_MAX_STATIONS_NAMED])
    more = len(named) - _MAX_STATIONS_NAMED
    return f" at {head}" + (f" (+{more} more)" if more > 0 else "")


_WHAT = {
    ReasonCode.NEVER_VISIBLE: "never above the minimum elevation",
    ReasonCode.BELOW_HORIZON_MASK: "above the minimum elevation only where the horizon mask blocks it",
    ReasonCode.DAYLIGHT: "up only in daylight",
    ReasonCode.AIRMASS: "at night only above the maximum airmass",
    ReasonCode.HOUR_ANGLE: "at night and low airmass only beyond its hour-angle limit",
    ReasonCode.MOON: "at night and low airmass only too close to the Moon or while it is too bright",
    ReasonCode.NO_CAPABLE_STATION: "no station has the band, filter or aperture it needs",
    ReasonCode.STATION_OFFLINE: "capable stations are offline",
    ReasonCode.STATION_UNAVAILABLE: "windows fall in station unavailability",
    ReasonCode.TOO_FAINT: "fainter than the limiting magnitude",
    ReasonCode.TOO_SHORT: "windows too short for the requested duration",
    ReasonCode.DEMAND_MET: "its demand is already met by frozen jobs",
    ReasonCode.SPACECRAFT_POWER: "the spacecraft cannot afford the contact",
    ReasonCode.WEATHER: "the weather closes the stations",
}

# Codes the mapping counts per window (the others it counts per station).
_PER_WINDOW = frozenset({ReasonCode.TOO_SHORT, ReasonCode.STATION_UNAVAILABLE, ReasonCode.SPACECRAFT_POWER})

_RULE_TEXT = {
    "period": "its per-period cap is taken by its own contacts",
    "total": "its total is taken by its own contacts",
    "cadence": "one of its own contacts starts within its cadence",
    "station": "its per-station cap at this station is taken by its own contacts",
    "concurrency": "its own contact elsewhere overlaps (one at a time)",
}


def _filter_reasons(entries: dict[tuple[ReasonCode, str], int]) -> list[Reason]:
    by_code: dict[ReasonCode, list[tuple[str, int]]] = {}
    for (code, station), count in entries.items():
        by_code.setdefault(code, []).append((station, count))
    out: list[Reason] = []
    for code in sorted(by_code):
        items = sorted(by_code[code], key=lambda x: (-x[1], x[0]))
        stations = [s for s, _ in items]
        total = sum(c for _, c in items)
        named = [s for s in stations if s]
        suffix = f" ({total} windows)" if code in _PER_WINDOW else ""
        detail = f"{_WHAT.get(code, code.name.lower())}{_stations_text(named)}{suffix}"
        out.append(Reason(code, detail, station_id=named[0] if len(named) == 1 else ""))
    return out


class _Explainer:
    """The final plan as an `Occupancy`, and one reason per opportunity left out."""

    def __init__(
        self, problem: Problem, selected: Sequence[int], t0: datetime, frozen_target_ids: Sequence[str], optimal: bool
    ) -> None:
        self.problem = problem
        self.t0 = t0
        self.optimal = optimal
        self.frozen_target_ids = frozen_target_ids
        self.occ = Occupancy(problem)
        for i in selected:
            self.occ.place(i)
        self.frozen_index = {id(f): k for k, f in enumerate(problem.frozen)}
        ops = problem.opportunities
        self.has_contacts = np.zeros(len(problem.requests), dtype=bool)
        if len(selected):
            self.has_contacts[ops.request[np.asarray(selected, dtype=np.int64)]] = True

    def _time(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def _occupant(self, b: Blocker) -> Occupant:
        p = self.problem
        station = p.resources
        if b.frozen is not None:
            f = b.frozen
            k = self.frozen_index[id(f)]
            return Occupant(
                _frozen_target(p, f, self.frozen_target_ids, k),
                station[f.resource].resource_id,
                self._time(f.start_s),
                self._time(f.end_s),
                p.requests[f.request].priority if f.request >= 0 else 0.0,
                f.value,
                job_id=f.job_id,
                frozen=True,
            )
        ops = p.opportunities
        j = b.opportunity
        rq = p.requests[int(ops.request[j])]
        return Occupant(
            rq.request_id,
            station[int(ops.resource[j])].resource_id,
            self._time(float(ops.start_s[j])),
            self._time(float(ops.end_s[j])),
            rq.priority,
            float(ops.value[j]),
        )

    def window_reason(self, i: int) -> Reason:
        p = self.problem
        ops = p.opportunities
        r = int(ops.request[i])
        own = p.requests[r]
        station = p.resources[int(ops.resource[i])].resource_id
        start, end, value = float(ops.start_s[i]), float(ops.end_s[i]), float(ops.value[i])
        blockers = self.occ.blockers(i)
        occupants = tuple(
            sorted((self._occupant(b) for b in blockers if b.kind == "resource"), key=lambda o: (o.start, o.target_id))
        )
        rules = [b.kind for b in blockers if b.kind != "resource"]
        head = (
            f"window {self._time(start):%Y-%m-%d %H:%M:%S}-{self._time(end):%H:%M:%S} at {station} "
            f"(priority {own.priority:g}, value {value:,.0f})"
        )
        taken = " and ".join(
            f"{o.target_id}{' (frozen job ' + o.job_id + ')' if o.frozen else ''} (priority {o.priority:g}, "
            f"value {o.value:,.0f})"
            for o in occupants
        )
        occupied_value = sum(o.value for o in occupants)
        if rules:
            code = ReasonCode.LOST_TO_SAME_SATELLITE_LIMIT if self.has_contacts[r] else ReasonCode.DEMAND_MET
            detail = f"{head}: {_RULE_TEXT[rules[0]]}" + (f"; the station is also taken by {taken}" if taken else "")
        elif any(o.frozen for o in occupants):
            code = ReasonCode.LOST_TO_FROZEN_JOB
            detail = f"{head} is taken by {taken}, already dispatched"
        elif any(o.priority > own.priority for o in occupants):
            code = ReasonCode.LOST_TO_HIGHER_PRIORITY
            detail = f"{head} went to {taken}: higher priority"
        elif occupants and occupied_value >= value:
            code = ReasonCode.LOST_TO_HIGHER_VALUE
            detail = f"{head} went to {taken}: no higher priority, worth {occupied_value:,.0f} >= {value:,.0f}"
        else:
            code = ReasonCode.TIME_LIMIT
            gain = value - occupied_value
            detail = (
                f"{head} went to {taken}, worth only {occupied_value:,.0f}: swapping would gain {gain:,.0f}"
                if occupants
                else f"{head} was free"
            ) + ("; the plan is not proven optimal (time limit, or a greedy planner)" if not self.optimal else "")
        winner = max(occupants, key=lambda o: (o.value, o.target_id)).target_id if occupants else ""
        return Reason(
            code,
            detail,
            station_id=station,
            winner_target_id=winner,
            start=self._time(start),
            end=self._time(end),
            value=value,
            occupants=occupants,
        )

    def window_reasons(self, windows: Sequence[int]) -> list[Reason]:
        ops = self.problem.opportunities
        ordered = sorted(windows, key=lambda i: (int(ops.resource[i]), float(ops.start_s[i])))
        return [self.window_reason(i) for i in ordered]


def explain_unscheduled(
    problem: Problem,
    selected: Sequence[int],
    log: FilterLog,
    *,
    t0: datetime,
    frozen_target_ids: Sequence[str] = (),
    optimal: bool = True,
    deadline: float = math.inf,
) -> dict[int, list[Reason]]:
    """Reasons for every request with nothing selected and no frozen job, keyed by request index.

    A summary of its lost opportunities, the filter log's reasons, then one reason per opportunity (every station
    where it had one). Reasons without a window are target-level; the API pages only the per-opportunity ones.
    `frozen_target_ids[k]` is the target id of `problem.frozen[k]` (frozen jobs may be for unknown targets); `t0` is
    the plan start (opportunity times are seconds from it). Past `deadline` (`time.perf_counter()`), the requests
    left get only a count of their lost windows (`unexplained`), not one reason each: a plan that left many
    targets out can have hundreds of thousands of them.
    """
    ops = problem.opportunities
    chosen = np.zeros(len(problem.requests), dtype=bool)
    if len(selected):
        chosen[ops.request[np.asarray(selected, dtype=np.int64)]] = True
    for f in problem.frozen:
        if f.request >= 0:
            chosen[f.request] = True
    explainer = _Explainer(problem, selected, t0, frozen_target_ids, optimal)
    by_request: dict[int, list[int]] = {}
    for i in np.flatnonzero(~chosen[ops.request]).tolist():
        by_request.setdefault(int(ops.request[i]), []).append(i)
    out: dict[int, list[Reason]] = {}
    for r in np.flatnonzero(~chosen).tolist():
        CancelScope.checkpoint()
        lost = by_request.get(r, [])
        if time.perf_counter() > deadline:
            windows = []
            reasons = unexplained(problem, lost)
        else:
            windows = explainer.window_reasons(lost)
            reasons = _summary(windows)
        reasons.extend(_filter_reasons(log.for_target(r)))
        reasons.extend(windows)
        if not reasons:
            reasons.append(Reason(ReasonCode.NEVER_VISIBLE, "no window in the plan horizon"))
        out[r] = reasons
    return out


def unexplained(problem: Problem, windows: Sequence[int]) -> list[Reason]:
    """The one target-level reason for lost windows left unexplained when the plan's time budget ran out."""
    if not windows:
        return []
    stations = len(set(problem.opportunities.resource[np.asarray(windows, dtype=np.int64)].tolist()))
    detail = (
        f"{len(windows)} windows at {stations} stations not placed; not explained one by one: the plan's time "
        "budget ran out first"
    )
    return [Reason(ReasonCode.TIME_LIMIT, detail)]


def _summary(windows: Sequence[Reason]) -> list[Reason]:
    """One target-level reason over a target's per-opportunity reasons (which may be on later pages of the API):
    the most frequent code, the count of each, the stations, the most frequent occupant."""
    if not windows:
        return []
    codes = Counter(r.code for r in windows)
    stations = {r.station_id for r in windows}
    winners = Counter(o.target_id for r in windows for o in r.occupants)
    code = max(codes, key=lambda c: (codes[c], -int(c)))
    counts = ", ".join(f"{n} {c.name}" for c, n in sorted(codes.items(), key=lambda x: (-x[1], x[0])))
    top = winners.most_common(1)
    to = f"; most often to {top[0][0]} ({top[0][1]} windows)" if top else ""
    detail = f"{len(windows)} windows at {len(stations)} stations not placed: {counts}{to} (each listed)"
    return [Reason(code, detail, winner_target_id=top[0][0] if top else "")]


def wanted_contacts(problem: Problem, horizon_s: float) -> dict[int, int]:
    """Contacts each request with a per-period demand asks for over the horizon (capped by `max_total`)."""
    wanted: dict[int, int] = {}
    for r, rq in enumerate(problem.requests):
        if rq.max_per_period and rq.period_s > 0 and horizon_s > 0:
            n = rq.max_per_period * max(1, math.ceil(horizon_s / rq.period_s - 1e-9))
            wanted[r] = min(n, rq.max_total) if rq.max_total else n
    return wanted


def explain_partial(
    problem: Problem,
    selected: Sequence[int],
    horizon_s: float,
    *,
    t0: datetime,
    frozen_target_ids: Sequence[str] = (),
    optimal: bool = True,
    deadline: float = math.inf,
) -> dict[int, list[Reason]]:
    """For every request with a per-period demand that got some but not all it asks for: a PARTIALLY_MET summary
    ("k of n wanted") and one reason per opportunity in each period bin it did not fill (every station); past
    `deadline` (`time.perf_counter()`) only the summary, with the count of those windows."""
    ops = problem.opportunities
    got = np.zeros(len(problem.requests), dtype=np.int64)
    sel = np.asarray(selected, dtype=np.int64)
    if len(sel):
        np.add.at(got, ops.request[sel], 1)
    for f in problem.frozen:
        if f.request >= 0:
            got[f.request] += 1
    wanted = {r: n for r, n in wanted_contacts(problem, horizon_s).items() if 0 < got[r] < n}
    if not wanted:
        return {}
    # Starts per (request, bin), frozen jobs included: a bin below its cap is one the demand is short in.
    filled: dict[tuple[int, int], int] = {}
    starts = [(int(ops.request[i]), float(ops.start_s[i])) for i in sel.tolist()]
    starts += [(f.request, f.start_s) for f in problem.frozen if f.request >= 0]
    for r, s in starts:
        if r in wanted:
            key = (r, math.floor(s / problem.requests[r].period_s))
            filled[key] = filled.get(key, 0) + 1
    in_plan = np.zeros(len(ops), dtype=bool)
    in_plan[sel] = True
    short: dict[int, list[int]] = {}
    for i in np.flatnonzero(~in_plan).tolist():
        r = int(ops.request[i])
        if r in wanted:
            rq = problem.requests[r]
            if filled.get((r, math.floor(float(ops.start_s[i]) / rq.period_s)), 0) < rq.max_per_period:
                short.setdefault(r, []).append(i)
    explainer = _Explainer(problem, selected, t0, frozen_target_ids, optimal)
    out: dict[int, list[Reason]] = {}
    for r, n in wanted.items():
        CancelScope.checkpoint()
        rq = problem.requests[r]
        lost = short.get(r, [])
        late = time.perf_counter() > deadline
        per_window = [] if late else explainer.window_reasons(lost)
        why = (
            f"{len(lost)} windows in its short periods were not placed"
            + (" (not listed: the plan's time budget ran out first)" if late else " (listed)")
            if lost
            else "no usable window in its short periods"
        )
        detail = f"{int(got[r])} of {n} wanted ({rq.max_per_period} per {rq.period_s:g} s): {why}"
        out[r] = [Reason(ReasonCode.PARTIALLY_MET, detail), *per_window]
    return out


def _frozen_target(problem: Problem, f: FrozenPlacement, ids: Sequence[str], k: int) -> str:
    if f.request >= 0:
        return problem.requests[f.request].request_id
    return ids[k] if k < len(ids) else f.job_id
