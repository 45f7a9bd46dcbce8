"""Cheap upper bounds on the best objective, always reported next to a plan (milliseconds to a second).

Two relaxations, each exact when the other side's constraints do not bind:
- *request relaxation*: drop the resources' one-job-at-a-time rule; each request then takes its best options per
  demand period (and overall cap). Within 0.4-0.8 % of the optimum on the TALOS workloads (reference §3).
- *resource relaxation*: drop every coupling between resources; each resource then solves weighted interval
  scheduling by dynamic programming (turnaround included, slews left out), which is exact without coupling.
The bound is the smaller of the two. Opportunities that clash with frozen jobs are left out of both, and frozen jobs
use up their requests' demand, so the bound is on the same residual problem the planners solve.

Imports: numpy, the kernel and the greedy module (whose compiled module has the DP loop, where numba is importable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skymesh.scheduler.greedy import Occupancy, compiled_greedy
from skymesh.scheduler.kernel import Problem

__all__ = ["Bounds", "compute_bounds", "period_bins", "request_bound", "resource_dp_bound", "usable_mask"]


@dataclass(frozen=True)
class Bounds:
    request_s: float  # request relaxation
    resource_s: float  # resource relaxation (DP per resource)

    @property
    def best(self) -> float:
        return min(self.request_s, self.resource_s)


def usable_mask(problem: Problem) -> NDArray[np.bool_]:
    """Opportunities that fit next to the frozen jobs alone (the others can never be chosen)."""
    n = len(problem.opportunities)
    if not problem.frozen:
        return np.ones(n, dtype=bool)
    occ = Occupancy(problem)
    return np.fromiter((occ.can_place(i) for i in range(n)), dtype=bool, count=n)


def period_bins(problem: Problem) -> NDArray[np.int64]:
    """Index of each opportunity's demand period (bins anchored at time 0); 0 where the request has no period."""
    ops = problem.opportunities
    period = np.asarray([r.period_s if r.max_per_period else 0.0 for r in problem.requests], dtype=np.float64)
    p = period[ops.request] if len(ops) else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(p > 0, np.floor(ops.start_s / np.where(p > 0, p, 1.0)), 0.0)
    return b.astype(np.int64)


def _frozen_counts(problem: Problem) -> tuple[dict[tuple[int, int], int], dict[int, int]]:
    per_bin: dict[tuple[int, int], int] = {}
    per_req: dict[int, int] = {}
    for f in problem.frozen:
        if f.request < 0:
            continue
        rq = problem.requests[f.request]
        b = math.floor(f.start_s / rq.period_s) if rq.max_per_period and rq.period_s > 0 else 0
        per_bin[(f.request, b)] = per_bin.get((f.request, b), 0) + 1
        per_req[f.request] = per_req.get(f.request, 0) + 1
    return per_bin, per_req


def _rank_in_groups(keys: NDArray[np.int64], order: NDArray[np.int64]) -> NDArray[np.int64]:
    """Rank of each element of `order` within its run of equal `keys[order]` (0 = first)."""
    k = keys[order]
    n = len(k)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.asarray(np.arange(n) - run_start, dtype=np.int64)


def _request_partition(problem: Problem) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per request: the bin length and the cap per bin of its demand (period; else cadence with cap 1; else none)."""
    length = np.zeros(len(problem.requests))
    cap = np.full(len(problem.requests), 1 << 40, dtype=np.int64)
    for k, r in enumerate(problem.requests):
        if r.max_per_period and r.period_s > 0:
            length[k], cap[k] = r.period_s, r.max_per_period
        elif r.cadence_s > 0:
            # Starts at least cadence_s apart put at most one start into each cadence-long bin.
            length[k], cap[k] = r.cadence_s, 1
    return length, cap


def _by_group_best_first(group: NDArray[np.int64], value: NDArray[np.float64]) -> NDArray[np.int64]:
    """`np.lexsort((-value, group))`, as two stable sorts (the integer one is a radix sort): 1.9 s instead of 2.8 s
    at 6.3 M candidates."""
    by_value = np.argsort(-value, kind="stable")
    return np.asarray(by_value[np.argsort(group[by_value], kind="stable")], dtype=np.int64)


def _lookup(counts: dict[tuple[int, int], int], nb: int, bmin: int, keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """`counts[(request, bin)]` for each group key `request * nb + (bin - bmin)` (0 where absent), vectorised."""
    out = np.zeros(len(keys), dtype=np.int64)
    if not counts:
        return out
    known = {r * nb + (b - bmin): c for (r, b), c in counts.items() if 0 <= b - bmin < nb}
    if not known:
        return out
    ks = np.fromiter(known.keys(), dtype=np.int64, count=len(known))
    cs = np.fromiter(known.values(), dtype=np.int64, count=len(known))
    o = np.argsort(ks)
    ks, cs = ks[o], cs[o]
    pos = np.clip(np.searchsorted(ks, keys), 0, len(ks) - 1)
    hit = ks[pos] == keys
    out[hit] = cs[pos[hit]]
    return out


def request_bound(problem: Problem, usable: NDArray[np.bool_] | None = None) -> float:
    ops = problem.opportunities
    idx = np.flatnonzero(usable) if usable is not None else np.arange(len(ops))
    if len(idx) == 0:
        return 0.0
    length, cap_bin = _request_partition(problem)
    req = ops.request[idx]
    val = ops.value[idx]
    ln = length[req]
    bins = np.where(ln > 0, np.floor(ops.start_s[idx] / np.where(ln > 0, ln, 1.0)), 0).astype(np.int64)
    used_bin: dict[tuple[int, int], int] = {}
    used_req: dict[int, int] = {}
    for f in problem.frozen:
        if f.request >= 0:
            b = math.floor(f.start_s / length[f.request]) if length[f.request] > 0 else 0
            used_bin[(f.request, b)] = used_bin.get((f.request, b), 0) + 1
            used_req[f.request] = used_req.get(f.request, 0) + 1
    # Group key (request, bin), best value first; keep the best `cap` of each group.
    bmin = int(bins.min())
    nb = int(bins.max()) - bmin + 1
    key = req * nb + (bins - bmin)
    order = _by_group_best_first(key, val)
    rank = _rank_in_groups(key, order)
    used = _lookup(used_bin, nb, bmin, key[order])
    keep = order[rank < cap_bin[req[order]] - used]
    # Then the overall cap per request (bins nest inside it, so best-first stays exact).
    cap_total = np.asarray(
        [r.max_total - used_req.get(k, 0) if r.max_total else 1 << 40 for k, r in enumerate(problem.requests)]
    )
    cadence = np.asarray([r.cadence_s for r in problem.requests], dtype=np.float64)
    with_cadence = np.flatnonzero(cadence > 0)
    if len(with_cadence):
        # Starts cadence_s apart: at most (span // cadence) + 1 of them per request (min/max start per request).
        start = ops.start_s[idx]
        lo = np.full(len(problem.requests), np.inf)
        hi = np.full(len(problem.requests), -np.inf)
        np.minimum.at(lo, req, start)
        np.maximum.at(hi, req, start)
        k = with_cadence[np.isfinite(lo[with_cadence])]
        cap_total[k] = np.minimum(cap_total[k], ((hi[k] - lo[k]) // cadence[k]).astype(np.int64) + 1)
    order2 = keep[_by_group_best_first(req[keep], val[keep])]
    rank2 = _rank_in_groups(req, order2)
    final = order2[rank2 < cap_total[req[order2]]]
    return float(val[final].sum())


def resource_dp_bound(problem: Problem, usable: NDArray[np.bool_] | None = None) -> float:
    """Sum over resources of the exact weighted-interval-scheduling optimum (turnaround as padding)."""
    ops = problem.opportunities
    idx = np.flatnonzero(usable) if usable is not None else np.arange(len(ops))
    total = 0.0
    turn = np.asarray([r.turnaround_s for r in problem.resources], dtype=np.float64)
    res = ops.resource[idx]
    order = idx[np.argsort(res, kind="stable")]
    res_sorted = ops.resource[order]
    cuts = np.flatnonzero(np.diff(res_sorted)) + 1
    jit = compiled_greedy() if len(idx) > 10_000 else None  # the compiled loop where it pays for its import
    for group in np.split(order, cuts):
        if len(group) == 0:
            continue
        r = int(ops.resource[group[0]])
        fin = ops.end_s[group] + turn[r]
        o = np.argsort(fin, kind="stable")
        g = group[o]
        fin = fin[o]
        start = ops.start_s[g]
        # p[j]: how many jobs finish (with turnaround) by the start of job j.
        if jit is not None:
            total += jit.interval_dp(np.searchsorted(fin, start, side="right"), np.ascontiguousarray(ops.value[g]))
            continue
        p = np.searchsorted(fin, start, side="right").tolist()
        v = ops.value[g].tolist()
        dp = [0.0] * (len(g) + 1)
        for j in range(len(g)):
            take = v[j] + dp[p[j]]
            dp[j + 1] = take if take > dp[j] else dp[j]
        total += dp[-1]
    return total


def compute_bounds(problem: Problem, usable: NDArray[np.bool_] | None = None) -> Bounds:
    if usable is None:
        usable = usable_mask(problem)
    return Bounds(request_bound(problem, usable), resource_dp_bound(problem, usable))
