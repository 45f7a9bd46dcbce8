"""Lagrangian bound: relax the requests' demand caps, keep each resource's one-job-at-a-time rule exactly.

For multipliers lam >= 0 on the capacity rows (at most `max_per_period` per period bin, at most `max_total`),

    L(lam) = sum over resources of DP(value - lam[row of the opportunity]) + sum over rows of lam * cap

is an upper bound on the optimum for every lam (Marinelli et al., C&OR 2011, used for Galileo): each resource's part
is weighted interval scheduling, solved exactly by dynamic programming; interval graphs are perfect, so the best lam
reaches the LP bound of the clique model, which is never weaker than either cheap relaxation in `bounds`.
Subgradient steps (Polyak, target = the best known plan) improve lam within a time budget.

The best lam is the duals of that LP, and a few percent of the columns carry it: `Lagrangian.lp_warm_start` solves
the LP over the columns a subgradient lam prices positive (HiGHS), evaluates L at its duals over all columns (a
valid bound for any lam >= 0) and adds the columns L chose outside the LP until there are none. On 200 x 1,000 x
24 h (835 k candidates) that LP's optimum was >= 35,152,507 after five rounds (~95 k columns) where the subgradient
stood at 35,155,058: the subgradient was within 0.007 % of the best this relaxation can prove, so the gap left was
the plan's; the LP's values order a greedy pass 0.1 % better than plain greedy (`lagrangian_search`).

The DP runs for all resources at once: opportunities are laid out as a (resources x slots) array sorted by finish
time, and one numpy step per slot advances every resource together (no Python loop per opportunity).

Imports: numpy and the kernel (the LP: `cliques`, `exact` and `greedy`, lazily).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skymesh.scheduler.bounds import period_bins, usable_mask
from skymesh.scheduler.highs import solve_highs, solve_parameters
from skymesh.scheduler.kernel import Plan, Problem

__all__ = ["Lagrangian", "LagrangianBound", "LpWarmStart", "lagrangian_bound", "lagrangian_search"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class LagrangianBound:
    bound: float
    iterations: int
    wall_s: float
    selected: list[int] | None = None  # `lagrangian_search`'s plan (greedy in the LP's order)
    lp_rounds: int = 0


class _Layout:
    """Opportunities per resource, sorted by finish (end + turnaround), padded to a rectangle."""

    def __init__(self, problem: Problem, idx: I64) -> None:
        ops = problem.opportunities
        turn = np.asarray([r.turnaround_s for r in problem.resources], dtype=np.float64)
        res = ops.resource[idx]
        self._build(idx, res, ops.end_s[idx] + turn[res], ops.start_s[idx], len(problem.resources))

    @classmethod
    def of(cls, idx: I64, res: I64, fin: F64, start: F64, n_res: int) -> _Layout:
        lay = cls.__new__(cls)
        lay._build(idx, res, fin, start, n_res)
        return lay

    def _build(self, idx: I64, res: I64, fin: F64, start: F64, n_res: int) -> None:
        order = np.lexsort((fin, res))
        self.idx = idx[order]
        res = res[order]
        fin = fin[order]
        start = start[order]
        self.fin = fin
        self.start = start
        counts = np.bincount(res, minlength=n_res)
        self.n_res = n_res
        self.width = int(counts.max()) if len(counts) else 0
        first = np.r_[0, np.cumsum(counts)[:-1]]
        self.slot = np.arange(len(self.idx)) - first[res]
        self.row = res
        # p: how many earlier jobs of the same resource finish by this job's start (1-based DP index).
        p = np.empty(len(self.idx), dtype=np.int64)
        for r in np.flatnonzero(counts).tolist():
            a, b = int(first[r]), int(first[r] + counts[r])
            p[a:b] = np.searchsorted(fin[a:b], start[a:b], side="right")
        self.p = np.zeros((self.n_res, self.width), dtype=np.int64)
        self.p[self.row, self.slot] = p
        self.valid = np.zeros((self.n_res, self.width), dtype=bool)
        self.valid[self.row, self.slot] = True

    def solve(self, value: F64) -> tuple[float, NDArray[np.bool_]]:
        """Exact per-resource optimum for `value` (aligned with self.idx); returns (total, chosen mask)."""
        v = np.zeros((self.n_res, self.width))
        v[self.row, self.slot] = value
        v[~self.valid] = -1.0
        dp = np.zeros((self.n_res, self.width + 1))
        took = np.zeros((self.n_res, self.width), dtype=bool)
        rows = np.arange(self.n_res)
        for k in range(self.width):
            take = v[:, k] + dp[rows, self.p[:, k]]
            better = take > dp[:, k]
            took[:, k] = better
            dp[:, k + 1] = np.where(better, take, dp[:, k])
        chosen = np.zeros((self.n_res, self.width), dtype=bool)
        j = np.full(self.n_res, self.width, dtype=np.int64)  # DP position (1-based)
        for _ in range(self.width):
            live = j > 0
            if not live.any():
                break
            r = rows[live]
            jj = j[live] - 1
            t = took[r, jj]
            chosen[r[t], jj[t]] = True
            j[live] = np.where(t, self.p[r, jj], jj)
        return float(dp[:, -1].sum()), chosen[self.row, self.slot]

    def solve_positive(self, value: F64) -> tuple[float, NDArray[np.bool_]]:
        """`solve` on the opportunities worth more than nothing only: the others are never in an optimum, and once
        the multipliers price each demand row near its marginal option most are not (200 x 1,000 x 24 h: the DP then
        runs over a few percent of 835 k candidates, some twenty times faster per iteration)."""
        keep = np.flatnonzero(value > 0)
        if len(keep) == len(value):
            return self.solve(value)
        chosen = np.zeros(len(value), dtype=bool)
        if len(keep) == 0:
            return 0.0, chosen
        # Positions in this layout stand in for the opportunity ids: the sub-layout keeps their finish order.
        sub = _Layout.of(keep, self.row[keep], self.fin[keep], self.start[keep], self.n_res)
        total, sub_chosen = sub.solve(value[sub.idx])
        chosen[sub.idx[sub_chosen]] = True
        return total, chosen


# Each step goes along the subgradient plus this share of the previous direction (Camerini, Fratta and Maffioli),
# which damps the zigzag between rows: on 200 x 1,000 x 24 h, 0.1451 % over the greedy plan after 58 iterations
# where the plain subgradient was at 0.1500 % (0.5: 0.1476 %; one 25 s run each, load 9).
_DEFLECTION = 0.7


def _unique_pairs(a: I64, b: I64) -> tuple[I64, I64]:
    """`np.unique` of the columns (a, b), with the inverse: on one int64 key (np.unique(axis=1) took 6 s on 835 k)."""
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    b_min = int(b.min())
    span = int(b.max()) - b_min + 1
    keys, inv = np.unique(a * span + (b - b_min), return_inverse=True)
    pairs: I64 = np.stack([keys // span, keys % span + b_min])
    return pairs, inv.ravel().astype(np.int64)


# Columns per capacity row added to the first LP of `Lagrangian.lp_warm_start` beyond those priced positive (the best
# by reduced value). 200 x 1,000 x 24 h: with 2 per row the first LP had ~50 k columns and did not finish within its
# share of a 60 s budget at load 9 on 2 cores; the rounds stop adding columns after ~95 k of the 835 k.
_LP_COLUMNS_PER_ROW = 1


def _restricted_lp(
    lay: _Layout, value: F64, members: list[tuple[I64, I64]], cap: F64, cols: I64, time_limit_s: float
) -> tuple[F64, F64] | None:
    """The LP over the columns `cols` (positions in `lay`, sorted): its capacity rows' duals (0 for rows with no
    column in `cols`: their columns then join the next round) and its values of `cols`; None when HiGHS did not
    solve it in time. Its resource rows are the maximal cliques of the DP's own intervals (start to finish), so that
    each resource's part is exactly what the DP solves: at these duals, L restricted to `cols` is this LP's
    optimum."""
    from ortools.math_opt import result_pb2

    from skymesh.scheduler.cliques import ModelRows, clique_rows
    from skymesh.scheduler.exact import model_proto

    model_rows = ModelRows()
    by_res = cols[np.argsort(lay.row[cols], kind="stable")]
    for g in np.split(by_res, np.flatnonzero(np.diff(lay.row[by_res])) + 1):
        model_rows.add_at_most_one(*clique_rows(g, lay.start[g], lay.fin[g]))
    in_cols = np.zeros(len(value), dtype=bool)
    in_cols[cols] = True
    capped = model_rows.capped
    row_ids: list[int] = []
    for at, rows in members:
        sel = in_cols[at]
        order = np.argsort(rows[sel], kind="stable")
        a, r = at[sel][order], rows[sel][order]
        if len(a) == 0:
            continue
        cuts = np.flatnonzero(np.diff(r)) + 1
        for grp, k in zip(np.split(a, cuts), r[np.r_[0, cuts]].tolist(), strict=True):
            capped.append((grp.tolist(), int(cap[k])))
            row_ids.append(k)
    model = model_proto(value[cols], cols, model_rows, len(value), integers=False)
    answer = _solve_lp_ipm(model, time_limit_s)
    if answer.termination.reason != result_pb2.TERMINATION_REASON_OPTIMAL:
        return None
    solution = next((s for s in answer.solutions if s.HasField("dual_solution")), None)
    if solution is None:
        return None
    duals = solution.dual_solution.dual_values
    y = np.zeros(model_rows.rows)
    y[np.asarray(duals.ids, dtype=np.int64)] = np.asarray(duals.values)
    lam = np.zeros(len(cap))
    # A maximising LP's duals of <= rows are >= 0; HiGHS' can carry -0.0 or round-off below zero.
    lam[np.asarray(row_ids, dtype=np.int64)] = np.maximum(0.0, y[model_rows.n_at_most_one :])
    primal = solution.primal_solution.variable_values
    x = np.zeros(len(cols))
    x[np.asarray(primal.ids, dtype=np.int64)] = np.clip(np.asarray(primal.values), 0.0, 1.0)
    return lam, x


def _solve_lp_ipm(model: Any, time_limit_s: float) -> Any:
    """`skymesh.scheduler.exact.solve_lp` with HiGHS' interior point method and crossover (a vertex, with its duals)
    instead of the simplex. 200 x 1,000 x 24 h, the first restricted LP (49 k columns, in process, load 1-3): 9.7-10.7
    s of CPU where the dual simplex took 14.6-16.0 s, same optimum, and the same greedy plan in its values' order;
    without crossover 8.7-9.0 s but a plan 500-850 worse. In the planner's bound child (a fraction of a core beside
    the windows' child) the simplex's round took 34.9 of its 35.4 s share at load 1-3, and missed it at load 6."""
    return solve_highs(model, solve_parameters(time_limit_s, presolve=False, lp_solver="ipm"))


class Lagrangian:
    """The relaxation of one problem: its layout, capacity rows and the multipliers' starting point.

    For multipliers `lam` (one per row), `evaluate` gives L(lam), an upper bound whatever `lam` >= 0 is; the two
    ways to improve `lam` are `subgradient` (Polyak steps) and `lp_warm_start` (column generation on the LP)."""

    def __init__(self, problem: Problem, usable: NDArray[np.bool_] | None = None) -> None:
        ops = problem.opportunities
        if usable is None:
            usable = usable_mask(problem)
        idx = np.flatnonzero(usable).astype(np.int64)
        self.n_ops = len(ops)
        self.empty = len(idx) == 0
        if self.empty:
            return
        lay = _Layout(problem, idx)
        self.lay = lay
        value = ops.value[lay.idx]
        self.value = value
        req = ops.request[lay.idx]
        bins = period_bins(problem)[lay.idx]
        # Capacity rows: (request, bin) for period caps; one row per request for max_total.
        frozen_bin: dict[tuple[int, int], int] = {}
        frozen_req: dict[int, int] = {}
        for f in problem.frozen:
            if f.request >= 0:
                rq = problem.requests[f.request]
                b = math.floor(f.start_s / rq.period_s) if rq.max_per_period and rq.period_s > 0 else 0
                frozen_bin[(f.request, b)] = frozen_bin.get((f.request, b), 0) + 1
                frozen_req[f.request] = frozen_req.get(f.request, 0) + 1
        has_period = np.asarray([bool(r.max_per_period and r.period_s > 0) for r in problem.requests])
        has_total = np.asarray([r.max_total > 0 for r in problem.requests])
        row_p = np.full(len(idx), -1, dtype=np.int64)
        caps: list[float] = []  # one per row
        on = has_period[req]
        if on.any():
            keys, inv = _unique_pairs(req[on], bins[on])
            row_p[on] = inv
            for q, b in keys.T.tolist():
                caps.append(max(0, problem.requests[q].max_per_period - frozen_bin.get((q, b), 0)))
        # Cadence: starts at least cadence_s apart put at most one start into each cadence-long bin.
        cadence = np.asarray([r.cadence_s for r in problem.requests], dtype=np.float64)
        row_c = np.full(len(idx), -1, dtype=np.int64)
        on = cadence[req] > 0
        if on.any():
            cbin = np.floor(ops.start_s[lay.idx][on] / cadence[req[on]]).astype(np.int64)
            keys, inv = _unique_pairs(req[on], cbin)
            row_c[on] = len(caps) + inv
            caps.extend([1.0] * keys.shape[1])
        row_t = np.full(len(idx), -1, dtype=np.int64)
        on = has_total[req]
        if on.any():
            reqs_t, inv = np.unique(req[on], return_inverse=True)
            row_t[on] = len(caps) + inv.ravel()
            for q in reqs_t.tolist():
                caps.append(max(0, problem.requests[q].max_total - frozen_req.get(q, 0)))
        cap = np.asarray(caps, dtype=np.float64)
        self.cap = cap
        lam = np.zeros(len(cap))
        # Start where the request relaxation is exact: each row priced at its best option that does not fit, so the
        # row's `cap` best options keep a positive reduced value and the rest do not.
        for rows in (row_p, row_c, row_t):
            on_rows = np.flatnonzero(rows >= 0)
            if len(on_rows):
                order = on_rows[np.lexsort((-value[on_rows], rows[on_rows]))]
                r_sorted = rows[order]
                rank = _rank_in_runs(r_sorted)
                at_cap = rank == cap[r_sorted].astype(np.int64)
                lam[r_sorted[at_cap]] = np.maximum(lam[r_sorted[at_cap]], value[order[at_cap]])
        self.lam0 = lam
        # Each family of rows as (positions, row ids): an opportunity is in at most one row of each family.
        members = [(np.flatnonzero(rows >= 0), rows[rows >= 0]) for rows in (row_p, row_c, row_t)]
        self.members = [(at, rows) for at, rows in members if len(at)]

    def reduced(self, lam: F64) -> F64:
        reduced = self.value.copy()
        for at, rows in self.members:
            reduced[at] -= lam[rows]
        return reduced

    def evaluate(self, lam: F64) -> tuple[float, NDArray[np.bool_]]:
        """L(lam) and the opportunities (positions in the layout) its per-resource optima choose."""
        dp_total, chosen = self.lay.solve_positive(self.reduced(lam))
        return dp_total + float(lam @ self.cap), chosen

    def subgradient(
        self,
        lam: F64,
        *,
        best: float,
        target: float,
        deadline: float,
        max_iterations: int,
        theta: float = 1.0,
        step_s: float = 0.0,
    ) -> tuple[float, F64, int]:
        """Polyak steps from `lam` until `deadline` (perf_counter) or `max_iterations`: the best L seen (or `best`),
        its multipliers (`lam` when none beat `best`) and the number of steps. A step expected to end past `deadline`
        (taking as long as the last one, or `step_s` at first) is not started."""
        best_lam = lam
        stall = 0
        it = 0
        direction: F64 | None = None
        while it < max_iterations and time.perf_counter() + step_s < deadline:
            it += 1
            t = time.perf_counter()
            bound, chosen = self.evaluate(lam)
            if best - bound > 1e-9 * max(1.0, abs(bound)):  # (best may be inf)
                best, best_lam = bound, lam
                stall = 0
            else:
                stall += 1
                if stall >= 4:
                    theta /= 2.0
                    stall = 0
            use = np.zeros(len(self.cap))
            for at, rows in self.members:
                use += np.bincount(rows[chosen[at]], minlength=len(self.cap))
            grad = use - self.cap
            grad[(lam <= 0) & (grad < 0)] = 0.0
            if _DEFLECTION > 0 and direction is not None:
                grad = grad + _DEFLECTION * direction
                grad[(lam <= 0) & (grad < 0)] = 0.0
            direction = grad
            norm = float(grad @ grad)
            if norm == 0.0 or theta < 1e-4 or best - target <= 1e-7 * max(1.0, target):
                break
            step = theta * max(bound - target, 1e-6 * max(1.0, bound)) / norm
            lam = np.maximum(0.0, lam + step * grad)
            step_s = time.perf_counter() - t
        return best, best_lam, it

    def lp_warm_start(
        self,
        lam: F64,
        *,
        deadline: float,
        plan: list[int] | None = None,
        per_row: int = _LP_COLUMNS_PER_ROW,
    ) -> LpWarmStart:
        """Multipliers from the LP by column generation, until its columns suffice or `deadline` (perf_counter).

        The LP over the columns `lam` leaves a positive reduced value, the best `per_row` more of each capacity row and
        `plan`'s gives duals; L at those duals, computed over every column, is a valid bound whatever columns the LP
        saw, and the columns it chose outside the LP join the next round. When it chooses none, L(duals)
        equals the restricted LP's optimum, the best any multipliers can give. The LP's values rank the columns for
        `GreedyPlanner(key=...)`."""
        lay = self.lay
        reduced = self.reduced(lam)
        in_cols = reduced > 0
        for at, rows in self.members:
            order = np.lexsort((-reduced[at], rows))
            in_cols[at[order[_rank_in_runs(rows[order]) < per_row]]] = True
        if plan:
            pos = np.full(self.n_ops, -1, dtype=np.int64)
            pos[lay.idx] = np.arange(len(lay.idx))
            at_plan = pos[np.asarray(plan, dtype=np.int64)]
            in_cols[at_plan[at_plan >= 0]] = True
        best, best_lam, rounds = math.inf, lam, 0
        values = np.zeros(self.n_ops)
        round_s = 0.0
        while time.perf_counter() + round_s < deadline:
            t = time.perf_counter()
            cols = np.flatnonzero(in_cols)
            answer = _restricted_lp(lay, self.value, self.members, self.cap, cols, deadline - time.perf_counter())
            if answer is None:
                break
            candidate, x = answer
            bound, chosen = self.evaluate(candidate)
            rounds += 1
            values[:] = 0.0
            values[lay.idx[cols]] = x
            if bound < best:
                best, best_lam = bound, candidate
            new = chosen & ~in_cols
            if not new.any():
                break
            in_cols |= new
            round_s = time.perf_counter() - t
        return LpWarmStart(best_lam, best, values if rounds else None, rounds, int(in_cols.sum()))


@dataclass(frozen=True)
class LpWarmStart:
    lam: F64
    bound: float  # L(lam); inf when no LP round finished
    values: F64 | None  # the last LP's value per opportunity (0 outside its columns)
    rounds: int
    columns: int


def _rank_in_runs(keys: I64) -> I64:
    """Position of each element within its run of equal (sorted) keys."""
    starts = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
    out: I64 = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    return out


def lagrangian_bound(
    problem: Problem,
    *,
    target: float,
    time_limit_s: float = 2.0,
    max_iterations: int = 200,
    usable: NDArray[np.bool_] | None = None,
) -> LagrangianBound:
    """Best L(lam) found within the budget; `target` is the best known objective (Polyak step size)."""
    t0 = time.perf_counter()
    lag = Lagrangian(problem, usable)
    if lag.empty:
        return LagrangianBound(0.0, 0, time.perf_counter() - t0)
    if len(lag.cap) == 0:
        total, _ = lag.lay.solve(lag.value)
        return LagrangianBound(total, 1, time.perf_counter() - t0)
    best, _ = lag.lay.solve(lag.value)  # lam = 0: the resource relaxation
    best, _, it = lag.subgradient(
        lag.lam0, best=best, target=target, deadline=t0 + time_limit_s, max_iterations=max_iterations
    )
    return LagrangianBound(best, it, time.perf_counter() - t0)


# CPU seconds of the first restricted LP per usable candidate (200 x 1,000 x 24 h: ~10 s of HiGHS' IPM at 835 k).
_LP_CPU_PER_CANDIDATE = 1.2e-5

# `lagrangian_search`'s split of its time: subgradient steps until the first share (their multipliers choose the
# LP's first columns), LP rounds until the second, the greedy pass in the LP's order until the third, then subgradient
# steps from the better multipliers; from the LP's with this first step size (they are near the optimum already).
_SUBGRADIENT_SHARE = 0.15
_LP_SHARE = 0.75
_GREEDY_SHARE = 0.92
_THETA_AFTER_LP = 0.05


def _lagrangian_greedy(problem: Problem, lag: Lagrangian, lam: F64) -> Plan:
    """Greedy with the per-resource optima at `lam` first, value next (a Lagrangian heuristic), whole."""
    from skymesh.scheduler.greedy import GreedyPlanner

    _, chosen = lag.evaluate(lam)
    key = np.zeros(lag.n_ops)
    key[lag.lay.idx[chosen]] = 1.0
    return GreedyPlanner(key=key).solve(problem)


def lagrangian_search(
    problem: Problem, *, plan: list[int], target: float, time_limit_s: float, max_iterations: int = 1000
) -> LagrangianBound:
    """The bound and a plan for the largest problems (200 x 1,000 x 24 h: 835 k candidates, no LP of the whole
    model fits the budget): multipliers from the LP by column generation (`Lagrangian.lp_warm_start`, seeded with
    `plan`), greedy ordered by that LP's values (as `skymesh.scheduler.lpguided` does with the whole LP), then
    subgradient steps from the LP's multipliers. Before the LP, greedy with what the first subgradient multipliers
    choose first (the plan when the LP does not fit the time left at this process's CPU rate)."""
    from skymesh.scheduler.greedy import GreedyPlanner

    t0, c0 = time.perf_counter(), time.process_time()
    lag = Lagrangian(problem)
    if lag.empty or len(lag.cap) == 0:
        return lagrangian_bound(problem, target=target, time_limit_s=time_limit_s)
    t1 = time.perf_counter()
    best, lam, it = lag.subgradient(
        lag.lam0, best=math.inf, target=target, deadline=t0 + _SUBGRADIENT_SHARE * time_limit_s, max_iterations=50
    )
    step_s = (time.perf_counter() - t1) / max(1, it)
    # A plan first, in case the LP does not fit: greedy with the per-resource optima at the subgradient's best
    # multipliers first, value next (a Lagrangian heuristic). 200 x 1,000 x 24 h: +21.9 k over greedy, 0.085 % from
    # the subgradient's bound, for 1-2 s of CPU; the LP's order gives +32.4 k; ordered by reduced value, -1.6 k.
    ours = _lagrangian_greedy(problem, lag, lam)
    selected, target = ours.selected, max(target, ours.objective)
    # The LP only when it can end in its share at the CPU rate this process has had so far: a starved child
    # (0.13-0.2 of a core at load 6 on 2 cores) spent its share in an LP round HiGHS did not finish, and ran past it.
    now = time.perf_counter()
    rate = max(1e-3, (time.process_time() - c0) / max(1e-6, now - t0))
    lp_deadline = t0 + _LP_SHARE * time_limit_s
    fits = _LP_CPU_PER_CANDIDATE * len(lag.value) / rate < lp_deadline - now
    warm = lag.lp_warm_start(lam, deadline=lp_deadline if fits else now, plan=plan)
    theta = 1.0
    if warm.bound < best:
        best, lam, theta = warm.bound, warm.lam, _THETA_AFTER_LP
    if warm.values is not None:
        left = t0 + _GREEDY_SHARE * time_limit_s - time.perf_counter()
        lp_plan = GreedyPlanner(key=np.round(warm.values, 6)).solve(problem, time_limit_s=max(0.0, left))
        if lp_plan.objective > ours.objective:
            selected, target = lp_plan.selected, max(target, lp_plan.objective)
    best, _, steps = lag.subgradient(
        lam,
        best=best,
        target=target,
        deadline=t0 + time_limit_s,
        max_iterations=max_iterations,
        theta=theta,
        step_s=step_s,
    )
    return LagrangianBound(best, it + steps + warm.rounds, time.perf_counter() - t0, selected, warm.rounds)
