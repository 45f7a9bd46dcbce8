"""One planning call end to end: map, solve, bound, explain. What the gRPC service and `skymesh plan` run.

Imports: the scheduler's own modules only (OR-Tools lazily, through `cpsat`); never grpc or protobuf.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from skymesh.core.errors import InvalidArgument
from skymesh.scheduler.bounds import compute_bounds
from skymesh.scheduler.explain import explain_partial, explain_unscheduled
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.inputs import Explanation, PlanRequest, PlanResult, PlanStats, SolverKind
from skymesh.scheduler.kernel import Plan, Problem
from skymesh.scheduler.opportunities import Compiled, compile_request, restrict, to_assignments
from skymesh.scheduler.reasons import ReasonCode

__all__ = ["ContactValuer", "apply_valuer", "compute_plan", "solve_problem"]

# Hook for the spacecraft simulator (skymesh.sim): given the compiled problem, return a per-opportunity value
# multiplier (0 drops a contact the spacecraft cannot afford, e.g. battery too low; >1 favours one with a full
# data store). Applied before solving; see `compute_plan(valuer=...)`.
ContactValuer = Callable[[Compiled], "list[float]"]


def apply_valuer(compiled: Compiled, valuer: ContactValuer) -> Compiled:
    """Scale each opportunity's value by the valuer's factor; drop factor <= 0 with a SPACECRAFT_POWER reason."""
    import numpy as np

    ops = compiled.problem.opportunities
    factor = np.asarray(valuer(compiled), dtype=np.float64)
    if factor.shape != (len(ops),) or not np.all(np.isfinite(factor)):
        raise ValueError(f"a contact valuer must return {len(ops)} finite factors")
    keep = factor > 0
    for i in np.flatnonzero(~keep).tolist():
        station = compiled.stations[int(ops.resource[i])].station_id
        compiled.log.add(int(ops.request[i]), ReasonCode.SPACECRAFT_POWER, station)
    ops.value[:] = ops.value * np.where(keep, factor, 1.0)
    return restrict(compiled, keep) if not keep.all() else compiled


def solve_problem(problem: Problem, solver: SolverKind, time_limit_s: float, *, isolate: bool = False) -> Plan:
    """Run the chosen planner on a kernel problem; every plan comes back with a bound."""
    t0 = time.perf_counter()
    if solver in (SolverKind.GREEDY, SolverKind.GREEDY_PRIORITY_START):
        plan = GreedyPlanner("value" if solver == SolverKind.GREEDY else "priority_start").solve(problem)
        b = compute_bounds(problem)
        plan.bound = max(plan.objective, b.best)
        plan.optimal = plan.bound - plan.objective <= 1e-9 * max(1.0, plan.bound)
        plan.timings_s["bound_s"] = time.perf_counter() - t0 - plan.runtime_s
        plan.greedy_objective = plan.objective
    elif solver == SolverKind.CPSAT:
        from skymesh.scheduler.cpsat import CpSatPlanner

        plan = CpSatPlanner(isolate=isolate).solve(problem, time_limit_s=time_limit_s)
    elif solver == SolverKind.ROLLING:
        from skymesh.scheduler.rolling import RollingHorizonPlanner

        plan = RollingHorizonPlanner(isolate=isolate).solve(problem, time_limit_s=time_limit_s)
    else:  # pragma: no cover - SolverKind is closed
        raise InvalidArgument(f"unknown solver {solver!r}", field="solver")
    plan.runtime_s = time.perf_counter() - t0
    return plan


def compute_plan(req: PlanRequest, *, isolate: bool = False, valuer: ContactValuer | None = None) -> PlanResult:
    t0 = time.perf_counter()
    if not (math.isfinite(req.time_limit_s) and req.time_limit_s >= 0):
        raise InvalidArgument("must be a finite number of seconds >= 0", field="time_limit_s")
    if not (math.isfinite(req.turnaround_s) and req.turnaround_s >= 0):
        raise InvalidArgument("must be a finite number of seconds >= 0", field="turnaround_s")
    compiled = compile_request(req)
    if valuer is not None:
        compiled = apply_valuer(compiled, valuer)
    problem = compiled.problem
    plan = solve_problem(problem, req.solver, req.time_limit_s or 10.0, isolate=isolate)
    t_explain = time.perf_counter()
    reasons = explain_unscheduled(
        problem,
        plan.selected,
        compiled.log,
        frozen_target_ids=[j.target_id for j in compiled.frozen_jobs],
        optimal=plan.optimal or req.solver != SolverKind.CPSAT,
    )
    explanations = tuple(Explanation(compiled.targets[r].target_id, tuple(rs)) for r, rs in sorted(reasons.items()))
    partial = explain_partial(problem, plan.selected, req.window.duration_s)
    partially_met = tuple(Explanation(compiled.targets[r].target_id, tuple(rs)) for r, rs in sorted(partial.items()))
    timings = {**compiled.timings_s, **plan.timings_s, "explain_s": time.perf_counter() - t_explain}
    stats = PlanStats(
        solver=req.solver,
        objective=plan.objective,
        bound=plan.bound,
        gap=plan.gap,
        runtime_s=time.perf_counter() - t0,
        visibility_s=compiled.visibility_s,
        candidates=len(problem.opportunities),
        optimal=plan.optimal,
        status=plan.status,
        timings_s=timings,
        greedy_objective=plan.greedy_objective,
    )
    return PlanResult(
        req.request_id,
        tuple(to_assignments(compiled, plan.selected)),
        explanations,
        stats,
        partially_met=partially_met,
    )
