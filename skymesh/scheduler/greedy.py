"""The greedy planner: best value first (priority x duration), placed when it breaks no rule. Fast, always available.

`Occupancy` is the incremental feasibility state shared with the explanations (which placed job blocks an
opportunity?), the rolling horizon and the CP-SAT hint. The sort key matters more than anything else here: the
measured baseline (shared/reference/scheduling.md §3) found priority x duration within 0.4-1 % of the optimum where
SatNOGS' "priority, then earliest start" lost 11-35 %; both orders are offered (`order=`), and on the TALOS day here
the SatNOGS order reaches 81 % of the greedy plan (benchmarks/results/planning.md).

The greedy pass itself runs compiled (`_greedy_jit`, numba) where numba is importable and no resource has a known
rotator travel: the same decisions as `Occupancy`, 5-6 times less CPU (832 k candidates at 200 stations x 1,000
satellites: 0.8 s instead of 3.9-4.1 s; 6.3 M at 500 x 3,000: 7.3 s instead of 42.5 s, and 1.3 GB less memory).
SKYMESH_NO_NUMBA (non-empty, not 0) keeps it in Python, as the astronomy kernels do.

Imports: numpy and `skymesh.scheduler.kernel` only (numba through `_greedy_jit`, on first use).
"""

from __future__ import annotations

import functools
import math
import os
import time
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from skymesh.scheduler.isolation import CancelScope
from skymesh.scheduler.kernel import FrozenPlacement, Plan, Problem

__all__ = ["Blocker", "GreedyPlanner", "Occupancy", "greedy_fill", "greedy_order", "lexsort"]

Order = Literal["value", "priority_start"]


@dataclass(frozen=True)
class Blocker:
    """Why an opportunity cannot be placed: a job on the same resource, or its own request's rules."""

    kind: Literal["resource", "concurrency", "period", "total", "cadence", "station"]
    opportunity: int = -1  # the placed opportunity that blocks, -1 for a frozen job or a request rule
    frozen: FrozenPlacement | None = None


@dataclass
class _ResourceLane:
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)  # >= 0 opportunity, < 0: -(frozen index) - 1


@dataclass
class _RequestLane:
    starts: list[float] = field(default_factory=list)
    spans: list[tuple[float, float, int]] = field(default_factory=list)
    longest_s: float = 0.0
    bins: dict[int, int] = field(default_factory=dict)
    station_bins: dict[tuple[int, int], int] = field(default_factory=dict)  # (resource, bin) -> starts
    total: int = 0


class Occupancy:
    """What is placed so far, per resource and per request, with O(log n) feasibility checks."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        ops = problem.opportunities
        # Plain Python arrays: an item reads as fast as from a list (numpy's scalars are slower in this loop), in a
        # quarter of the memory (a list of floats: 6 x 32 bytes per opportunity, 1.2 GB at 6.3 M).
        self._req = _pyarray("q", ops.request)
        self._res = _pyarray("q", ops.resource)
        self._s, self._e = _pyarray("d", ops.start_s), _pyarray("d", ops.end_s)
        self._az0, self._el0 = _pyarray("d", ops.az0), _pyarray("d", ops.el0)
        self._az1, self._el1 = _pyarray("d", ops.az1), _pyarray("d", ops.el1)
        self._turn = [r.turnaround_s for r in problem.resources]
        self._max_slew = [r.max_slew_s for r in problem.resources]
        self._lanes = [_ResourceLane() for _ in problem.resources]
        self._reqs = [_RequestLane() for _ in problem.requests]
        self.selected: list[int] = []
        for k, f in enumerate(problem.frozen):
            self._insert(f.resource, f.request, f.start_s, f.end_s, -k - 1)

    def _lane_job(self, ref: int) -> int | FrozenPlacement:
        return ref if ref >= 0 else self.problem.frozen[-ref - 1]

    def _gap(self, res: int, before: int, after: int) -> float:
        if self._max_slew[res] <= 0:
            return self._turn[res]
        resource = self.problem.resources[res]
        if resource.rotator is None and before >= 0 and after >= 0:
            # The short way round between two opportunities: plain floats (this runs millions of times at 835 k).
            return self._turn[res] + resource.slew_s(
                self._az1[before], self._el1[before], self._az0[after], self._el0[after]
            )
        return self._turn[res] + self.problem.slew_between_s(self._lane_job(before), self._lane_job(after))

    def _clash(self, res: int, before: int, end_s: float, after: int, start_s: float) -> bool:
        """Does `after` (starting at start_s) start too soon after `before` (ending at end_s)? The slew is only
        computed where the turnaround alone does not decide (it costs ~10 us)."""
        free_s = start_s - end_s - self._turn[res]
        if free_s < 0:
            return True
        if free_s >= self._max_slew[res]:
            return False
        return end_s + self._gap(res, before, after) > start_s

    def _insert(self, res: int, req: int, s: float, e: float, ref: int) -> None:
        lane = self._lanes[res]
        pos = bisect_right(lane.starts, s)
        lane.starts.insert(pos, s)
        lane.ends.insert(pos, e)
        lane.refs.insert(pos, ref)
        if req >= 0:
            rl = self._reqs[req]
            rq = self.problem.requests[req]
            insort(rl.starts, s)
            insort(rl.spans, (s, e, ref))
            rl.longest_s = max(rl.longest_s, e - s)
            rl.total += 1
            if rq.max_per_period and rq.period_s > 0:
                k = math.floor(s / rq.period_s)
                rl.bins[k] = rl.bins.get(k, 0) + 1
            if rq.max_per_station:
                key = (res, rq.station_bin(s))
                rl.station_bins[key] = rl.station_bins.get(key, 0) + 1

    def _ref_blocker(self, ref: int) -> Blocker:
        if ref >= 0:
            return Blocker("resource", opportunity=ref)
        return Blocker("resource", frozen=self.problem.frozen[-ref - 1])

    def blockers(self, i: int, *, first_only: bool = False) -> list[Blocker]:
        """The reasons opportunity `i` cannot be placed now; empty when it can."""
        out: list[Blocker] = []
        res, req, s, e = self._res[i], self._req[i], self._s[i], self._e[i]
        lane = self._lanes[res]
        pos = bisect_right(lane.starts, s)
        # Jobs on a resource are disjoint and sorted, so the neighbours decide; walking outwards while they clash
        # only collects every blocker for the explanations.
        k = pos - 1
        while k >= 0:
            ref = lane.refs[k]
            if self._clash(res, ref, lane.ends[k], i, s):
                out.append(self._ref_blocker(ref))
                if first_only:
                    return out
                k -= 1
            else:
                break
        k = pos
        while k < len(lane.starts):
            ref = lane.refs[k]
            if self._clash(res, i, e, ref, lane.starts[k]):
                out.append(self._ref_blocker(ref))
                if first_only:
                    return out
                k += 1
            else:
                break
        rq = self.problem.requests[req]
        rl = self._reqs[req]
        if rq.max_total and rl.total >= rq.max_total:
            out.append(Blocker("total"))
            if first_only:
                return out
        if rq.max_per_period and rq.period_s > 0 and rl.bins.get(math.floor(s / rq.period_s), 0) >= rq.max_per_period:
            out.append(Blocker("period"))
            if first_only:
                return out
        if rq.max_per_station and rl.station_bins.get((res, rq.station_bin(s)), 0) >= rq.max_per_station:
            out.append(Blocker("station"))
            if first_only:
                return out
        if rq.cadence_s > 0 and rl.starts:
            p = bisect_left(rl.starts, s)
            near = (p > 0 and s - rl.starts[p - 1] < rq.cadence_s) or (
                p < len(rl.starts) and rl.starts[p] - s < rq.cadence_s
            )
            if near:
                out.append(Blocker("cadence"))
                if first_only:
                    return out
        if rl.spans:
            lo = bisect_left(rl.starts, s - rl.longest_s)
            hi = bisect_left(rl.starts, e)
            overlapping = [span for span in rl.spans[lo:hi] if s < span[1]]
            # One request in `redundancy` places at once: the set of overlapping spans bounds the concurrency.
            if len(overlapping) >= max(1, rq.redundancy) and _max_concurrency(overlapping, s, e) >= max(
                1, rq.redundancy
            ):
                out.append(Blocker("concurrency", opportunity=overlapping[0][2]))
        return out

    def can_place(self, i: int) -> bool:
        return not self.blockers(i, first_only=True)

    def place(self, i: int) -> None:
        self._insert(self._res[i], self._req[i], self._s[i], self._e[i], i)
        self.selected.append(i)

    def try_place(self, i: int) -> bool:
        if self.can_place(i):
            self.place(i)
            return True
        return False


def _pyarray(code: Literal["q", "d"], values: NDArray[np.generic]) -> array[Any]:
    out: array[Any] = array(code)
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64 if code == "q" else np.float64).tobytes())
    return out


def _max_concurrency(spans: Sequence[tuple[float, float, int]], s: float, e: float) -> int:
    """Most spans active at one instant within [s, e)."""
    events: list[tuple[float, int]] = []
    for a, b, _ in spans:
        events.append((max(a, s), 1))
        events.append((min(b, e), -1))
    events.sort(key=lambda x: (x[0], x[1]))
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def greedy_order(problem: Problem, order: Order = "value") -> NDArray[np.int64]:
    """Indices in placement order: highest value first (ties: earlier start), or SatNOGS' priority then start."""
    ops = problem.opportunities
    if order == "value":
        return lexsort((ops.resource, ops.start_s, -ops.value))
    priority = np.asarray([r.priority for r in problem.requests], dtype=np.float64)
    pr = priority[ops.request] if len(ops) else np.zeros(0)
    return lexsort((ops.resource, ops.start_s, -pr))


def lexsort(keys: Sequence[NDArray[Any]]) -> NDArray[np.int64]:
    """`np.lexsort(keys)` (the last key first), in one sort of the last key where its ties are few: the candidates'
    values rarely tie, and three stable passes over 6.3 M of them took 3 s. Ties (NaN with NaN included) are put in
    the order of the other keys, then of the index, as `np.lexsort` does."""
    primary = keys[-1]
    order = np.argsort(primary, kind="stable").astype(np.int64)
    if len(order) < 2 or len(keys) == 1:
        return order
    p = primary[order]
    same = p[1:] == p[:-1]
    if p.dtype.kind == "f":
        nan = np.isnan(p)
        same |= nan[1:] & nan[:-1]
    if not same.any():
        return order
    tied = np.zeros(len(p), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    at = np.flatnonzero(tied)
    group = np.cumsum(np.r_[True, ~same])[at]
    sub = order[at]
    order[at] = sub[np.lexsort((sub, *(k[sub] for k in keys[:-1]), group))]
    return order


class GreedyPlanner:
    name = "greedy"

    def __init__(self, order: Order = "value", *, key: NDArray[np.float64] | None = None) -> None:
        """`key` (one per opportunity, larger first) replaces the value as the sort key, e.g. reduced values."""
        self.order: Order = order
        self.key = key

    def solve(self, problem: Problem, *, time_limit_s: float = math.inf) -> Plan:
        """Place candidates in order until done or `time_limit_s` runs out (checked every 1,000 candidates, so at
        least the 1,000 best are always tried, even when the limit is already spent)."""
        t0 = time.perf_counter()
        limit = time_limit_s
        occ = Occupancy(problem)
        if self.key is not None:
            ops = problem.opportunities
            order = lexsort((ops.resource, ops.start_s, -ops.value, -self.key))
        else:
            order = greedy_order(problem, self.order)
        status = "FEASIBLE"
        fast = _FastOccupancy.of(problem)
        if fast is not None:
            for n in range(0, len(order), 1000):
                if n:
                    CancelScope.checkpoint()  # a cancelled plan stops here
                    if time.perf_counter() - t0 > limit:
                        status = f"TIME_LIMIT({n} of {len(order)} candidates tried)"
                        break
                fast.try_place(order[n : n + 1000])
            selected = sorted(fast.selected())
        else:
            for n, i in enumerate(order.tolist()):
                if n and n % 1000 == 0:
                    CancelScope.checkpoint()  # a cancelled plan stops here
                    if time.perf_counter() - t0 > limit:
                        status = f"TIME_LIMIT({n} of {len(order)} candidates tried)"
                        break
                occ.try_place(i)
            selected = sorted(occ.selected)
        objective = float(problem.opportunities.value[selected].sum()) if selected else 0.0
        return Plan(
            selected=selected,
            objective=objective,
            bound=math.inf,
            solver=self.name if self.order == "value" else f"{self.name}-{self.order}",
            runtime_s=time.perf_counter() - t0,
            status=status,
        )


def greedy_fill(problem: Problem, selected: Sequence[int], *, time_limit_s: float = math.inf) -> list[int]:
    """`selected` plus every opportunity that still fits, best value first (makes a feasible plan maximal).

    Anytime: stops when `time_limit_s` runs out (checked every 1,000 candidates), keeping what it added so far.
    """
    t0 = time.perf_counter()
    fast = _FastOccupancy.of(problem)
    if fast is not None:
        fast.place(np.asarray(selected, dtype=np.int64))
        order = greedy_order(problem)
        chosen = np.zeros(len(problem.opportunities), dtype=bool)
        chosen[np.asarray(selected, dtype=np.int64)] = True
        for n in range(0, len(order), 1000):
            CancelScope.checkpoint()
            if time.perf_counter() - t0 > time_limit_s:
                break
            part = order[n : n + 1000]
            fast.try_place(part[~chosen[part]])
        return sorted(fast.selected())
    occ = Occupancy(problem)
    for i in selected:
        occ.place(i)
    chosen_set = set(selected)
    for n, i in enumerate(greedy_order(problem).tolist()):
        if n % 1000 == 0:
            CancelScope.checkpoint()
            if time.perf_counter() - t0 > time_limit_s:
                break
        if i not in chosen_set:
            occ.try_place(i)
    return sorted(occ.selected)


@functools.cache
def compiled_greedy() -> ModuleType | None:
    """`skymesh.scheduler._greedy_jit`, or None where numba is not importable or SKYMESH_NO_NUMBA is set (non-empty,
    not 0): then `Occupancy` places every candidate in Python. Imported on first use (numba takes ~0.5 s)."""
    if os.environ.get("SKYMESH_NO_NUMBA", "") not in ("", "0"):
        return None
    try:
        from skymesh.scheduler import _greedy_jit
    except ImportError:
        return None
    return _greedy_jit


class _FastOccupancy:
    """`Occupancy`'s placement state as flat arrays for the compiled pass (see `_greedy_jit`); places only."""

    @classmethod
    def of(cls, problem: Problem) -> _FastOccupancy | None:
        """The compiled state of `problem`, or None where the pass must stay in Python (no numba, or a resource
        with a known rotator travel: its slews follow the cable-wrap model of `Problem.slew_between_s`)."""
        jit = compiled_greedy()
        if jit is None or any(r.rotator is not None and r.max_slew_s > 0 for r in problem.resources):
            return None
        return cls(problem, jit)

    def __init__(self, problem: Problem, jit: ModuleType) -> None:
        self._jit = jit
        ops = problem.opportunities
        frozen = problem.frozen
        n = len(ops)
        nan2 = (math.nan, math.nan)
        job_res = _joined(ops.resource, [f.resource for f in frozen], np.int64)
        job_req = _joined(ops.request, [f.request for f in frozen], np.int64)
        job_s = _joined(ops.start_s, [f.start_s for f in frozen], np.float64)
        job_e = _joined(ops.end_s, [f.end_s for f in frozen], np.float64)
        # Pointings (az0, el0, az1, el1): NaN where unknown, as `Problem._pointing` reads a frozen job's.
        pt = np.empty((len(job_s), 4))
        pt[:n] = np.column_stack([ops.az0, ops.el0, ops.az1, ops.el1])
        for k, f in enumerate(frozen):
            pt[n + k, :2] = f.start_pointing_deg or nan2
            pt[n + k, 2:] = f.end_pointing_deg or nan2
        resources = problem.resources
        turn = np.asarray([r.turnaround_s for r in resources], dtype=np.float64)
        max_slew = np.asarray([r.max_slew_s for r in resources], dtype=np.float64)
        motion = np.zeros((len(resources), 4))
        for k, r in enumerate(resources):
            m = r.motion
            if m is not None:
                motion[k] = (
                    m.azimuth.rate_deg_s,
                    m.azimuth.accel_deg_s2,
                    m.elevation.rate_deg_s,
                    m.elevation.accel_deg_s2,
                )
        requests = problem.requests
        rules = np.asarray(
            [(q.max_total, q.max_per_period, q.max_per_station, q.cadence_s, q.redundancy) for q in requests],
            dtype=np.float64,
        ).reshape(len(requests), 5)
        period = np.asarray([q.period_s for q in requests], dtype=np.float64)
        known = job_req >= 0
        q_of = np.where(known, job_req, 0)
        # (request, period bin) and (request, resource, station bin) counters, numbered densely; -1: no such rule.
        per_period = known & (rules[q_of, 1] > 0) & (period[q_of] > 0)
        per_station = known & (rules[q_of, 2] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            bins = np.where(period[q_of] > 0, np.floor(job_s / np.where(period[q_of] > 0, period[q_of], 1.0)), 0.0)
        bins_i = bins.astype(np.int64)
        self._pbin, n_pbin = _dense(per_period, job_req, bins_i)
        self._sbin, n_sbin = _dense(per_station, job_req * len(resources) + job_res, bins_i)
        lane_cap = np.bincount(job_res, minlength=len(resources))
        rq_cap = np.bincount(job_req[known], minlength=len(requests))
        self._jobs = (job_res, job_req, job_s, job_e, pt, self._pbin, self._sbin, turn, max_slew, motion, rules)
        self._state = (
            np.r_[0, np.cumsum(lane_cap)[:-1]].astype(np.int64) if len(resources) else np.zeros(0, np.int64),
            np.zeros(len(resources), dtype=np.int64),
            np.zeros(len(job_s)),
            np.zeros(len(job_s)),
            np.zeros(len(job_s), dtype=np.int64),
            np.r_[0, np.cumsum(rq_cap)[:-1]].astype(np.int64) if len(requests) else np.zeros(0, np.int64),
            np.zeros(len(requests), dtype=np.int64),
            np.zeros(int(known.sum())),
            np.zeros(int(known.sum())),
            np.zeros(len(requests)),
            np.zeros(len(requests), dtype=np.int64),
            np.zeros(n_pbin, dtype=np.int64),
            np.zeros(n_sbin, dtype=np.int64),
        )
        self._placed = np.zeros(n, dtype=np.int64)
        self._n_placed = np.zeros(1, dtype=np.int64)
        if frozen:
            self._run(np.arange(n, n + len(frozen), dtype=np.int64), force=True)

    def _run(self, order: NDArray[np.int64], *, force: bool) -> None:
        order = np.ascontiguousarray(order, dtype=np.int64)
        self._jit.run(order, 0, len(order), force, self._placed, self._n_placed, *self._jobs, *self._state)

    def place(self, indices: NDArray[np.int64]) -> None:
        """Place these opportunities without checking them (a plan being extended)."""
        self._run(indices, force=True)

    def try_place(self, indices: NDArray[np.int64]) -> None:
        """Place each of these opportunities in turn where it breaks no rule."""
        self._run(indices, force=False)

    def selected(self) -> list[int]:
        return list(self._placed[: int(self._n_placed[0])].tolist())


def _joined(column: NDArray[Any], extra: list[Any], dtype: type) -> NDArray[Any]:
    """The opportunities' column, then the frozen placements' values (the column itself when there are none)."""
    return np.concatenate([column, np.asarray(extra, dtype=dtype)]) if extra else np.asarray(column, dtype=dtype)


def _dense(mask: NDArray[np.bool_], group: NDArray[np.int64], bins: NDArray[np.int64]) -> tuple[NDArray[np.int64], int]:
    """A counter index per (group, bin) where `mask`, -1 elsewhere; and how many counters."""
    out = np.full(len(mask), -1, dtype=np.int64)
    if not mask.any():
        return out, 0
    g, b = group[mask], bins[mask]
    b = b - b.min()
    width = int(b.max()) + 1
    keys = g * width + b
    if (int(g.max()) + 1) * width <= 4 * len(keys):
        # Few enough (group, bin) pairs to number them directly: no sort (1 s at 6.3 M candidates).
        out[mask] = keys
        return out, int(keys.max()) + 1
    uniq, inverse = np.unique(keys, return_inverse=True)
    out[mask] = inverse
    return out, len(uniq)
