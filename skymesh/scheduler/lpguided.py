"""LP-guided search: the clique model's LP relaxation gives the bound and the order, an exact MIP repairs the rest.

Measured on the TALOS day (50 x 200 x 24 h, 42.6 k candidates, 2 busy cores): the LP relaxation of the clique model
is within 0.006 % of the integer optimum with ~2.2 k columns at 1 and only ~300-450 fractional ones, and HiGHS'
simplex (presolve off) solves it in 0.4-0.65 s of CPU. So, in order, each step deterministic:

1. the LP (HiGHS): its dual bound is the plan's proven upper bound (tighter than the Lagrangian one, 0.017 %);
2. fix and solve: every column at 1 in the LP is fixed, every column a fixed one excludes is dropped, and HiGHS'
   MIP solves what is left exactly (1.5-2.1 k columns, ~0.1 s of CPU; 99.993 % / 99.999 % of the optimum on seeds
   7 / 1, where steps 2b-3 reach 99.958 % / 99.988 % in more CPU);
2b. only when step 2 did not prove its optimum: greedy with the LP values as the sort key (ties: value), 99.89 % /
   99.94 %;
3. then RINS: every column where the LP and that plan agree is fixed, CP-SAT (one worker) solves the rest exactly;
4. a number of LNS windows (`improve_by_windows`) fixed by the budget, in a fixed order.

The best-value step runs first after the LP because on a starved machine (2 cores at load 8-10) the deadline cuts the
search wherever it stands. CP-SAT stops on its deterministic time and the LNS after its window count, HiGHS' MIP at
its optimum, never on the wall clock unless the machine is so loaded that the wall-clock deadline (the safety net)
comes first, which the status then says; the same problem and seed give the same plan.

Imports: numpy, ortools (lazily) and the scheduler's kernel modules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from skymesh.scheduler.bounds import usable_mask
from skymesh.scheduler.cliques import ModelRows, build_rows
from skymesh.scheduler.cpmodel import solve_clique_model
from skymesh.scheduler.exact import model_proto, solve_lp
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.highs import feasible_columns, solve_highs, solve_parameters
from skymesh.scheduler.improve import frozen_of, improve_by_windows
from skymesh.scheduler.kernel import Plan, Problem

__all__ = [
    "LpGuidedResult",
    "LpValues",
    "fix_and_solve",
    "lp_greedy",
    "lp_relaxation",
    "repair_from_lp",
    "solve_lp_guided",
]


@dataclass(frozen=True)
class LpGuidedResult:
    selected: list[int]
    objective: float
    bound: float  # the LP's dual bound (inf when the LP did not finish)
    status: str
    timings_s: dict[str, float] = field(default_factory=dict)
    # Step 2 proved its optimum (the LP-ordered pass would not beat it on the days measured) or the LP-ordered pass
    # went through every candidate: the same pass in the planner's parent could not add to this plan.
    complete: bool = False


@dataclass(frozen=True)
class LpValues:
    """The LP's values on their support (zero elsewhere) and its dual bound, as the search hands them to a caller
    as soon as the LP ends (`solve_lp_guided`'s `on_lp`): ~2.6 k nonzeros of 42.6 k on the TALOS day, so they pass
    through a pipe at once."""

    support: NDArray[np.int64]
    values: NDArray[np.float64]
    size: int
    bound: float

    @classmethod
    def of(cls, x: NDArray[np.float64], bound: float) -> LpValues:
        support = np.flatnonzero(x).astype(np.int64)
        return cls(support, x[support], len(x), bound)

    def dense(self) -> NDArray[np.float64]:
        x = np.zeros(self.size)
        x[self.support] = self.values
        return x


def lp_greedy(problem: Problem, x: NDArray[np.float64], time_limit_s: float) -> Plan:
    """Step 2: greedy with the LP values as the sort key (ties: value); a pass cut by `time_limit_s` is partial."""
    return GreedyPlanner(key=np.round(x, 6)).solve(problem, time_limit_s=time_limit_s)


def lp_relaxation(problem: Problem, time_limit_s: float) -> tuple[NDArray[np.float64], float]:
    """The clique model's LP optimum (one value per opportunity, 0 where unusable) and its dual bound."""
    x, bound, _rows, _idx = _lp(problem, time_limit_s)
    return x, bound


def _lp(problem: Problem, time_limit_s: float) -> tuple[NDArray[np.float64], float, ModelRows, NDArray[np.int64]]:
    """`lp_relaxation`, with the model's rows and columns (the usable opportunities), which step 2 reuses."""
    from ortools.math_opt import result_pb2

    ops = problem.opportunities
    usable = usable_mask(problem)
    rows = build_rows(problem, usable)
    idx = np.flatnonzero(usable).astype(np.int64)
    model = model_proto(ops.value[idx], idx, rows, len(ops), integers=False)
    answer = solve_lp(model, time_limit_s)
    x = np.zeros(len(ops))
    if not answer.solutions:
        return x, math.inf, rows, idx
    sol = answer.solutions[0].primal_solution.variable_values
    x[idx[np.asarray(sol.ids, dtype=np.int64)]] = np.clip(np.asarray(sol.values), 0.0, 1.0)
    # Only a solved LP's dual bound is a bound; an LP cut short by the deadline still orders the greedy pass.
    if answer.termination.reason != result_pb2.TERMINATION_REASON_OPTIMAL:
        return x, math.inf, rows, idx
    bound = float(answer.termination.objective_bounds.dual_bound)
    return x, bound if math.isfinite(bound) else math.inf, rows, idx


# A column the LP sets above this is fixed in step 2 (HiGHS' primal feasibility tolerance is 1e-7).
_AT_ONE = 1.0 - 1e-6
# HiGHS' MIP stops when (bound - objective) / objective is below this (as `exact`): on the residual of the TALOS
# day, worth ~8 % of the plan, 1e-6 is well under a unit of value.
_MIP_RELATIVE_GAP = 1e-6


def _residual(
    rows: ModelRows, idx: NDArray[np.int64], x: NDArray[np.float64], n_ops: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], ModelRows] | None:
    """The model with the LP's columns at 1 fixed: (fixed, free columns, rows over the free ones), caps reduced by
    the fixed columns; columns in a row that a fixed column fills are not free. None when the fixed columns break a
    row (round-off), so that step 2 is skipped rather than wrong."""
    fixed = np.zeros(n_ops, dtype=bool)
    fixed[idx[x[idx] > _AT_ONE]] = True
    amo, sizes = rows.at_most_one_flat()
    row_of = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    hit = fixed[amo]
    # A column can be listed twice in one row (overlapping cliques): count each fixed column once per row.
    fixed_pairs = np.unique(row_of[hit] * n_ops + amo[hit])
    per_row = np.bincount(fixed_pairs // n_ops, minlength=len(sizes))
    if (per_row > 1).any():
        return None
    excluded = np.zeros(n_ops, dtype=bool)
    excluded[amo[per_row[row_of] > 0]] = True
    capped: list[tuple[NDArray[np.int64], int]] = []
    for members, cap in rows.capped:
        m = np.asarray(members, dtype=np.int64)
        taken = int(np.unique(m[fixed[m]]).size)
        if taken > cap:
            return None
        if taken == cap:
            excluded[m] = True
        else:
            capped.append((m, cap - taken))
    free = np.zeros(n_ops, dtype=bool)
    free[idx] = True
    free &= ~fixed & ~excluded
    out = ModelRows()
    member_free = free[amo]
    n_free = np.bincount(row_of[member_free], minlength=len(sizes))
    keep = n_free >= 2
    out.add_at_most_one(amo[member_free & keep[row_of]], n_free[keep].astype(np.int64))
    for m, cap in capped:
        mf = m[free[m]]
        if len(mf) > cap:
            out.capped.append((mf.tolist(), cap))
    return np.flatnonzero(fixed).astype(np.int64), np.flatnonzero(free).astype(np.int64), out


def fix_and_solve(
    problem: Problem,
    rows: ModelRows,
    idx: NDArray[np.int64],
    x: NDArray[np.float64],
    *,
    time_limit_s: float,
    seed: int = 0,
) -> tuple[list[int], str, int] | None:
    """Step 2: (plan, HiGHS' status, free columns) for the model over the usable columns `idx` and its `rows` with
    the LP's columns at 1 fixed; None when no plan came (or the fixed columns break a row).

    Deterministic: HiGHS' MIP is single-threaded and stops at its optimum, unless `time_limit_s` comes first."""
    from ortools.math_opt import result_pb2

    ops = problem.opportunities
    residual = _residual(rows, idx, x, len(ops))
    if residual is None:
        return None
    fixed, free, free_rows = residual
    if len(free) == 0:
        return sorted(fixed.tolist()), "OPTIMAL", 0
    model = model_proto(ops.value[free], free, free_rows, len(ops), integers=True)
    # HiGHS' presolve stays on here (its default), unlike the whole-day models in `exact`.
    params = solve_parameters(time_limit_s, min_time_limit_s=0.05, seed=seed, relative_gap=_MIP_RELATIVE_GAP)
    answer = solve_highs(model, params)
    cols = feasible_columns(answer)
    if cols is None:
        return None
    chosen = free[cols]
    optimal = answer.termination.reason == result_pb2.TERMINATION_REASON_OPTIMAL
    return sorted([*fixed.tolist(), *chosen.tolist()]), "OPTIMAL" if optimal else "FEASIBLE", len(free)


def repair_from_lp(problem: Problem, lp: LpValues, *, time_limit_s: float, seed: int = 0) -> tuple[list[int], str]:
    """Step 2 (and 2b when step 2 did not prove its optimum) from the LP's values alone: what the planner's parent
    runs when its child has the LP but is late. The rows are rebuilt here (~0.05 s of CPU on the TALOS day), the
    same as the child's, so the plan is the child's own step 2 plan. ([], "LATE") when the rows took the time."""
    t0 = time.perf_counter()

    def left() -> float:
        return time_limit_s - (time.perf_counter() - t0)

    x = lp.dense()
    usable = usable_mask(problem)
    rows = build_rows(problem, usable)
    idx = np.flatnonzero(usable).astype(np.int64)
    if left() <= 0.02:
        return [], "LATE"
    fixed = None
    if math.isfinite(lp.bound):  # an LP cut short has no optimum to fix from
        fixed = fix_and_solve(problem, rows, idx, x, time_limit_s=left(), seed=seed)
    if fixed is not None and (fixed[1] == "OPTIMAL" or left() <= 0.02):
        return fixed[0], f"FIX({fixed[2]} free, {fixed[1]})"
    if left() <= 0.02:
        return [], "LATE"
    plan = lp_greedy(problem, x, left())
    if fixed is not None and float(problem.opportunities.value[fixed[0]].sum()) > plan.objective:
        return fixed[0], f"FIX({fixed[2]} free, {fixed[1]})"
    return plan.selected, "LP-GREEDY"


def solve_lp_guided(
    problem: Problem,
    *,
    deadline: float,
    rins_deterministic_s: float,
    lns_windows: int,
    seed: int = 0,
    on_lp: Callable[[LpValues], None] | None = None,
    fix_deadline: float | None = None,
) -> LpGuidedResult:
    """Steps 1-4 of the module docstring: RINS (only when step 2 did not prove its optimum) for at most
    `rins_deterministic_s` of CP-SAT deterministic time, then `lns_windows` windows; the wall `deadline`
    (`time.time()`) stops it early on an overloaded machine, except step 2, which may run until `fix_deadline`
    (default `deadline`): the caller waits for the answer a little longer than `deadline` anyway, and on a starved
    machine an LP that ends at `deadline` still makes its plan in ~0.08 s of CPU. `on_lp` gets the LP's values as
    soon as the LP ends (the planner's parent process repairs them itself, `repair_from_lp`, when this answers late
    or incomplete, so that a child starved of CPU does not lose them).

    The LNS is bounded by a window count, not deterministic time: a window's wall time is mostly building its model
    in Python (measured: 25 windows spent 0.36 deterministic seconds in 25 wall seconds on 2 busy cores)."""
    t0, c0 = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}
    ops = problem.opportunities

    def left() -> float:
        return deadline - time.time()

    x, bound, rows, idx = _lp(problem, left())
    # CPU seconds beside the wall ones: on a loaded machine the wall time says how long a phase waited, the CPU time
    # how much work it was (the LP of the TALOS day: ~0.4 s of CPU in 2.4 s of wall at load 11 on 2 cores).
    timings["lp_s"], timings["lp_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    if on_lp is not None:
        on_lp(LpValues.of(x, bound))
    selected: list[int] = []
    status = "LP" if math.isfinite(bound) else "LP_TIME_LIMIT"
    complete = False
    fix_left = (deadline if fix_deadline is None else max(deadline, fix_deadline)) - time.time()
    if math.isfinite(bound) and fix_left > 0.1:
        t1, c1 = time.perf_counter(), time.process_time()
        fixed = fix_and_solve(problem, rows, idx, x, time_limit_s=fix_left, seed=seed)
        if fixed is not None:
            selected, mip_status, n_free = fixed
            complete = mip_status == "OPTIMAL"
            status += f"+FIX({n_free} free, {mip_status})"
        else:
            status += "+FIX(skipped)"
        timings["fix_s"], timings["fix_cpu_s"] = time.perf_counter() - t1, time.process_time() - c1
    if not complete:
        selected, status, complete = _greedy_and_rins(
            problem, x, bound, selected, status, timings, left, rins_deterministic_s, seed
        )
        spent = timings.get("rins_deterministic_s", 0.0)
    else:
        spent = 0.0
    if lns_windows > 0 and left() > 0.3:
        t3, c3 = time.perf_counter(), time.process_time()
        lns = improve_by_windows(
            problem,
            selected,
            time_limit_s=left() - 0.1,
            num_workers=1,
            seed=seed,
            max_windows=lns_windows,
        )
        selected = lns.selected
        spent += lns.deterministic_s
        status += f"+LNS({lns.windows} windows, {lns.improved} improved)"
        if lns.windows < lns_windows and lns.wall_limited:
            status += "+WALL_DEADLINE"
        timings["lns_s"], timings["lns_cpu_s"] = time.perf_counter() - t3, time.process_time() - c3
    timings["deterministic_s"] = spent
    timings["search_cpu_s"] = time.process_time() - c0
    objective = float(ops.value[selected].sum()) if selected else 0.0
    return LpGuidedResult(sorted(selected), objective, bound, status, timings, complete)


def _greedy_and_rins(
    problem: Problem,
    x: NDArray[np.float64],
    bound: float,
    selected: list[int],
    status: str,
    timings: dict[str, float],
    left: Callable[[], float],
    rins_deterministic_s: float,
    seed: int,
) -> tuple[list[int], str, bool]:
    """Steps 2b and 3, when step 2 did not prove its optimum: the LP-ordered pass, RINS from it; the best of these
    and `selected` (step 2's plan, if any), and whether the pass went through every candidate."""
    ops = problem.opportunities
    t1, c1 = time.perf_counter(), time.process_time()
    # Bounded too: a child that answers late is killed by its watchdog and everything it found is lost; a truncated
    # pass here is simply worse than the caller's own greedy plan, which the caller then keeps.
    plan = lp_greedy(problem, x, left())
    timings["lp_greedy_s"], timings["lp_greedy_cpu_s"] = time.perf_counter() - t1, time.process_time() - c1
    if plan.objective > (float(ops.value[selected].sum()) if selected else 0.0):
        selected = plan.selected
    if left() > 0.2 and math.isfinite(bound):
        # RINS: free only the columns where the LP and the plan disagree.
        t2, c2 = time.perf_counter(), time.process_time()
        incumbent = np.zeros(len(ops), dtype=bool)
        incumbent[selected] = True
        disagree = np.abs(x - incumbent) > 1e-6
        free = np.flatnonzero(disagree).astype(np.int64)
        keep = [i for i in selected if not disagree[i]]
        sub = Problem(
            problem.requests,
            problem.resources,
            ops.take(free),
            [*problem.frozen, *(frozen_of(problem, i) for i in keep)],
        )
        local = {int(i): k for k, i in enumerate(free.tolist())}
        hint = [local[i] for i in selected if disagree[i]]
        res = solve_clique_model(
            sub,
            hint,
            time_limit_s=left(),
            num_workers=1,
            seed=seed,
            small=True,
            deterministic_time_s=rins_deterministic_s,
        )
        timings["rins_deterministic_s"] = res.deterministic_s
        if res.selected:
            candidate = sorted(keep + [int(free[k]) for k in res.selected])
            if float(ops.value[candidate].sum()) > float(ops.value[selected].sum()):
                selected = candidate
        status += f"+RINS({len(free)} free, {res.status})"
        timings["rins_s"], timings["rins_cpu_s"] = time.perf_counter() - t2, time.process_time() - c2
    elif math.isfinite(bound):
        status += "+WALL_DEADLINE"
    return selected, status, plan.status == "FEASIBLE"
