"""Why was a request not scheduled: the mapping's filter log plus what the plan chose instead.

Two layers (reference §4, LCO's filter logs and flux-sched's reason codes):
- *infeasible*: every reason the mapping recorded while it dropped windows (never visible, daylight, faint, ...);
- *feasible but not chosen*: for each remaining opportunity, the placed jobs that block it. A blocking job on the
  same resource names its request as the winner (LOST_TO_HIGHER_PRIORITY); the request's own demand (period cap,
  total, cadence) filled by frozen jobs reads DEMAND_MET; an opportunity nothing blocks was left out by a solver that
  ran out of time (TIME_LIMIT).

Imports: the kernel, greedy's `Occupancy` and the reason codes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from skymesh.scheduler.greedy import Occupancy
from skymesh.scheduler.kernel import FrozenPlacement, Problem
from skymesh.scheduler.reasons import FilterLog, Reason, ReasonCode

__all__ = ["explain_partial", "explain_unscheduled"]

_MAX_WINNERS = 3
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


def explain_unscheduled(
    problem: Problem,
    selected: Sequence[int],
    log: FilterLog,
    *,
    frozen_target_ids: Sequence[str] = (),
    optimal: bool = True,
) -> dict[int, list[Reason]]:
    """Reasons for every request with nothing selected and no frozen job, keyed by request index.

    `frozen_target_ids[k]` is the target id of `problem.frozen[k]` (frozen jobs may be for unknown targets).
    """
    ops = problem.opportunities
    chosen = np.zeros(len(problem.requests), dtype=bool)
    if selected:
        chosen[ops.request[np.asarray(selected, dtype=np.int64)]] = True
    for f in problem.frozen:
        if f.request >= 0:
            chosen[f.request] = True
    occ = Occupancy(problem)
    for i in selected:
        occ.place(i)
    frozen_index = {id(f): k for k, f in enumerate(problem.frozen)}
    by_request: dict[int, list[int]] = {}
    for i, r in enumerate(ops.request.tolist()):
        if not chosen[r]:
            by_request.setdefault(r, []).append(i)

    out: dict[int, list[Reason]] = {}
    for r in np.flatnonzero(~chosen).tolist():
        reasons: list[Reason] = []
        winners: Counter[tuple[str, str, float]] = Counter()
        demand = 0
        unblocked = 0
        for i in by_request.get(r, []):
            blockers = occ.blockers(i)
            if not blockers:
                unblocked += 1
            for b in blockers:
                if b.kind == "resource":
                    station = problem.resources[int(ops.resource[i])].resource_id
                    if b.frozen is not None:
                        k = frozen_index[id(b.frozen)]
                        winner = _frozen_target(problem, b.frozen, frozen_target_ids, k)
                        prio = problem.requests[b.frozen.request].priority if b.frozen.request >= 0 else 0.0
                    else:
                        wr = int(ops.request[b.opportunity])
                        winner, prio = problem.requests[wr].request_id, problem.requests[wr].priority
                    winners[(winner, station, prio)] += 1
                elif b.kind in ("period", "total", "cadence", "station"):
                    demand += 1
        if winners:
            by_winner: Counter[str] = Counter()
            stations_of: dict[str, list[str]] = {}
            prio_of: dict[str, float] = {}
            for (w, st, prio), n in winners.items():
                by_winner[w] += n
                stations_of.setdefault(w, []).append(st)
                prio_of[w] = prio
            own = problem.requests[r].priority
            for w, n in by_winner.most_common(_MAX_WINNERS):
                sts = sorted(set(stations_of[w]))
                rel = "higher" if prio_of[w] > own else "equal" if prio_of[w] == own else "lower"
                detail = (
                    f"{n} of its windows{_stations_text(sts)} went to {w} (priority {prio_of[w]:g}, {rel} than "
                    f"{own:g}{'' if rel == 'higher' else '; more value in total'})"
                )
                reasons.append(
                    Reason(
                        ReasonCode.LOST_TO_HIGHER_PRIORITY,
                        detail,
                        station_id=sts[0] if len(sts) == 1 else "",
                        winner_target_id=w,
                    )
                )
        if demand:
            reasons.append(Reason(ReasonCode.DEMAND_MET, f"{demand} windows exceed its demand (frozen jobs)"))
        if unblocked and not optimal:
            reasons.append(
                Reason(ReasonCode.TIME_LIMIT, f"{unblocked} windows were free but the solver stopped at its time limit")
            )
        reasons.extend(_filter_reasons(log.for_target(r)))
        if not reasons:
            reasons.append(Reason(ReasonCode.NEVER_VISIBLE, "no window in the plan horizon"))
        out[r] = reasons
    return out


def explain_partial(problem: Problem, selected: Sequence[int], horizon_s: float) -> dict[int, list[Reason]]:
    """A PARTIALLY_MET reason for every request with a per-period demand that got some but not all it asks for.

    It asks for `max_per_period` in each `period_s` bin the horizon touches (capped by `max_total`). The detail
    says "k of n wanted" and whether the windows left were taken by other targets or there were none.
    """
    ops = problem.opportunities
    got = np.zeros(len(problem.requests), dtype=np.int64)
    if selected:
        np.add.at(got, ops.request[np.asarray(selected, dtype=np.int64)], 1)
    for f in problem.frozen:
        if f.request >= 0:
            got[f.request] += 1
    wanted: dict[int, int] = {}
    for r, rq in enumerate(problem.requests):
        if rq.max_per_period and rq.period_s > 0 and horizon_s > 0:
            n = rq.max_per_period * max(1, math.ceil(horizon_s / rq.period_s - 1e-9))
            if rq.max_total:
                n = min(n, rq.max_total)
            if 0 < got[r] < n:
                wanted[r] = n
    if not wanted:
        return {}
    occ = Occupancy(problem)
    for i in selected:
        occ.place(i)
    taken: Counter[int] = Counter()  # request -> windows left that other jobs block
    for i, r in enumerate(ops.request.tolist()):
        if r in wanted and any(b.kind == "resource" for b in occ.blockers(i)):
            taken[r] += 1
    out: dict[int, list[Reason]] = {}
    for r, n in wanted.items():
        rq = problem.requests[r]
        why = f"{taken[r]} of its other windows went to other jobs" if taken[r] else "no other usable window"
        detail = f"{int(got[r])} of {n} wanted ({rq.max_per_period} per {rq.period_s:g} s): {why}"
        out[r] = [Reason(ReasonCode.PARTIALLY_MET, detail)]
    return out


def _frozen_target(problem: Problem, f: FrozenPlacement, ids: Sequence[str], k: int) -> str:
    if f.request >= 0:
        return problem.requests[f.request].request_id
    return ids[k] if k < len(ids) else f.job_id
