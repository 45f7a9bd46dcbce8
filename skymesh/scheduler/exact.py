"""The exact planner: the clique model as a 0/1 MIP solved by HiGHS through OR-Tools MathOpt, proving the optimum.

The same rows as CP-SAT's model (`skymesh.scheduler.cliques`), with real (unrounded) values, so the objective and
the dual bound HiGHS reports are in the plan's own units. HiGHS has ignored its time limit before (reference §3),
so `ExactPlanner` always solves in a child process with a memory cap, and a watchdog kills it at the deadline; the
greedy plan it started from is returned then. The whole model is built in the child, inside the deadline.

Imports: numpy, ortools (lazily, in the child) and the scheduler's kernel modules.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skymesh.scheduler.bounds import compute_bounds, usable_mask
from skymesh.scheduler.cliques import ModelRows, build_rows
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.highs import feasible_columns, solve_highs, solve_parameters
from skymesh.scheduler.isolation import run_isolated
from skymesh.scheduler.kernel import Plan, Problem

__all__ = ["ExactPlanner", "ExactResult", "model_proto", "solve_exact", "solve_lp"]


@dataclass(frozen=True)
class ExactResult:
    selected: list[int]
    status: str  # OPTIMAL, FEASIBLE (time limit with a solution), or the termination reason
    objective: float
    bound: float  # HiGHS' dual bound (inf when it proved nothing)
    build_s: float
    solve_s: float


def solve_exact(problem: Problem, *, time_limit_s: float, seed: int = 0) -> ExactResult:
    """Build and solve the MIP; `time_limit_s` covers both.

    The model is written straight into MathOpt's `ModelProto` from numpy arrays: building it through the Python
    `Model` API took 8.7 s on the TALOS day (2 busy cores), a third of the exact solver's budget.
    """
    from ortools.math_opt import result_pb2

    t0 = time.perf_counter()
    ops = problem.opportunities
    usable = usable_mask(problem)
    rows = build_rows(problem, usable)
    idx = np.flatnonzero(usable).astype(np.int64)
    model = model_proto(ops.value[idx], idx, rows, len(ops))
    # MathOpt's HiGHS interface does not take a solution hint (measured: HiGHS starts with no incumbent), so the
    # greedy plan is only the fallback, kept by `ExactPlanner` when HiGHS has nothing better.
    build_s = time.perf_counter() - t0
    # Measured on the TALOS day (50 x 200 x 24 h, 42.6 k columns, 2 busy cores): with HiGHS' presolve the root LP
    # starts after 10-15 s (probing the set-packing rows) and the optimum is proven in 12-33 s; without it in 5-19 s.
    params = solve_parameters(time_limit_s - build_s, seed=seed, relative_gap=_RELATIVE_GAP, presolve=False)
    answer = solve_highs(model, params)
    solve_s = time.perf_counter() - t0 - build_s
    term = answer.termination
    bound = float(term.objective_bounds.dual_bound)
    cols = feasible_columns(answer)
    selected: list[int] = sorted(idx[cols].tolist()) if cols is not None else []
    objective = float(ops.value[selected].sum()) if selected else 0.0
    optimal = term.reason == result_pb2.TERMINATION_REASON_OPTIMAL
    status = "OPTIMAL" if optimal else "FEASIBLE" if selected else result_pb2.TerminationReasonProto.Name(term.reason)
    return ExactResult(selected, status, objective, bound if math.isfinite(bound) else math.inf, build_s, solve_s)


# HiGHS stops when (bound - objective) / objective is below this: 1e-6 of the TALOS day is ~7 value units (a few
# seconds of one pass), and proving the last 1e-9 costs far more than it is worth.
_RELATIVE_GAP = 1e-6


def model_proto(
    value: NDArray[np.float64],
    idx: NDArray[np.int64],
    rows: ModelRows,
    n_ops: int,
    *,
    integers: bool = True,
) -> Any:
    """max value . x subject to sum(x[row]) <= cap, x in {0, 1} (or [0, 1] without `integers`), as a MathOpt
    `ModelProto` whose columns are the opportunities `idx` in order."""
    from ortools.math_opt import model_pb2

    n = len(idx)
    column = np.full(n_ops, -1, dtype=np.int64)
    column[idx] = np.arange(n)
    amo, amo_sizes = rows.at_most_one_flat()
    capped = rows.capped
    caps = np.r_[np.ones(len(amo_sizes)), np.asarray([c for _, c in capped], dtype=np.float64)]
    capped_sizes = np.fromiter((len(m) for m, _ in capped), dtype=np.int64, count=len(capped))
    capped_flat = np.fromiter(
        itertools.chain.from_iterable(m for m, _ in capped), dtype=np.int64, count=int(capped_sizes.sum())
    )
    sizes = np.r_[amo_sizes, capped_sizes]
    flat = np.r_[amo, capped_flat]
    n_rows = len(sizes)
    row = np.repeat(np.arange(n_rows, dtype=np.int64), sizes)
    col = column[flat]
    keep = col >= 0
    row, col = row[keep], col[keep]
    order = np.lexsort((col, row))
    row, col = row[order], col[order]
    # A column listed twice in one row (it happens when cliques overlap) would be a duplicate matrix entry.
    first = np.r_[True, (row[1:] != row[:-1]) | (col[1:] != col[:-1])] if len(row) else np.zeros(0, dtype=bool)
    row, col = row[first], col[first]
    model = model_pb2.ModelProto(name="skymesh-plan")
    model.variables.ids.extend(range(n))
    model.variables.lower_bounds.extend(np.zeros(n).tolist())
    model.variables.upper_bounds.extend(np.ones(n).tolist())
    model.variables.integers.extend([integers] * n)
    model.objective.maximize = True
    model.objective.linear_coefficients.ids.extend(range(n))
    model.objective.linear_coefficients.values.extend(value.tolist())
    model.linear_constraints.ids.extend(range(n_rows))
    model.linear_constraints.lower_bounds.extend(np.full(n_rows, -math.inf).tolist())
    model.linear_constraints.upper_bounds.extend(caps.tolist())
    model.linear_constraint_matrix.row_ids.extend(row.tolist())
    model.linear_constraint_matrix.column_ids.extend(col.tolist())
    model.linear_constraint_matrix.coefficients.extend(np.ones(len(row)).tolist())
    return model


def solve_lp(model: Any, time_limit_s: float) -> Any:
    """HiGHS' simplex on a continuous `model_proto` (presolve off: on set-packing rows its probing costs more than
    the LP); returns MathOpt's `SolveResultProto` (primal values, duals and termination)."""
    return solve_highs(model, solve_parameters(time_limit_s, presolve=False))


def _child(problem: Problem, deadline: float, seed: int) -> ExactResult:
    return solve_exact(problem, time_limit_s=max(0.1, deadline - time.time()), seed=seed)


class ExactPlanner:
    """Greedy (the fallback), then HiGHS in a watched child process until the optimum or the limit."""

    name = "exact"

    def __init__(self, *, seed: int = 0, memory_limit_bytes: int = 8 << 30, watchdog_grace_s: float = 0.3) -> None:
        self.seed = seed
        self.memory_limit_bytes = memory_limit_bytes
        self.watchdog_grace_s = watchdog_grace_s

    def solve(self, problem: Problem, *, time_limit_s: float) -> Plan:
        t0 = time.perf_counter()
        greedy = GreedyPlanner().solve(problem)  # the fallback always completes (see `CpSatPlanner`)
        # HiGHS' dual bound is poor until its root LP is done: the cheap relaxation keeps a cut-short run's gap honest.
        cheap = compute_bounds(problem).best
        timings = {"greedy_s": time.perf_counter() - t0}
        budget = max(0.1, time_limit_s - (time.perf_counter() - t0))
        t1 = time.perf_counter()
        # The child measures against the wall clock: starting it takes part of the budget.
        res = run_isolated(
            _child,
            (problem, time.time() + budget - 0.05, self.seed),
            timeout_s=budget + self.watchdog_grace_s,
            memory_limit_bytes=self.memory_limit_bytes,
        )
        timings["exact_s"] = time.perf_counter() - t1
        selected, objective, bound, status = greedy.selected, greedy.objective, math.inf, "WATCHDOG_KILLED+GREEDY"
        if res is not None:
            timings["exact_build_s"] = res.build_s
            timings["exact_solve_s"] = res.solve_s
            bound, status = res.bound, res.status
            if res.selected and res.objective >= greedy.objective:
                selected, objective = res.selected, res.objective
            else:
                status += "+GREEDY"
        bound = max(objective, min(bound, cheap))
        return Plan(
            selected=sorted(selected),
            objective=objective,
            bound=bound,
            solver=self.name,
            optimal=status == "OPTIMAL" or bound - objective <= 1e-9 * max(1.0, bound),
            runtime_s=time.perf_counter() - t0,
            status=status,
            timings_s=timings,
            greedy_objective=greedy.objective,
        )
