"""One planning call end to end: map, solve, bound, explain. What the gRPC service and `skymesh plan` run.

Each phase (visibility and mapping, solve, explain) is a tracing span, children of the service's "scheduler solve"
span when a trace is being recorded (no-ops otherwise, and in the CLI without an exporter).

Imports: the scheduler's own modules and `skymesh.observability.tracing` (OR-Tools lazily, through `cpsat`); never
grpc or protobuf.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from skymesh.core.errors import InvalidArgument
from skymesh.observability import tracing
from skymesh.scheduler.bounds import compute_bounds
from skymesh.scheduler.explain import explain_partial, explain_unscheduled
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.inputs import Assignment, Explanation, PlanRequest, PlanResult, PlanStats, SolverKind
from skymesh.scheduler.isolation import CancelScope
from skymesh.scheduler.kernel import Plan, Problem
from skymesh.scheduler.opportunities import Compiled, compile_request, restrict, to_assignments
from skymesh.scheduler.pages import ExplanationPage, page_explanations, plan_fingerprint
from skymesh.scheduler.reasons import ReasonCode
from skymesh.scheduler.viscache import VisibilityCache

__all__ = [
    "ContactValuer",
    "apply_valuer",
    "compute_plan",
    "explain_plan",
    "explain_reserve_s",
    "match_assignments",
    "solve_problem",
]

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


def solve_problem(
    problem: Problem,
    solver: SolverKind,
    time_limit_s: float,
    *,
    isolate: bool = False,
    seed: int = 0,
    work_limit_s: float | None = None,
) -> Plan:
    """Run the chosen planner on a kernel problem within `time_limit_s`; every plan comes back with a bound.

    `work_limit_s` (default `time_limit_s`) sizes CP-SAT's deterministic work (see `CpSatPlanner.solve`)."""
    t0 = time.perf_counter()
    if solver in (SolverKind.GREEDY, SolverKind.GREEDY_PRIORITY_START):
        plan = GreedyPlanner("value" if solver == SolverKind.GREEDY else "priority_start").solve(
            problem, time_limit_s=time_limit_s
        )
        b = compute_bounds(problem)
        plan.bound = max(plan.objective, b.best)
        plan.optimal = plan.bound - plan.objective <= 1e-9 * max(1.0, plan.bound)
        plan.timings_s["bound_s"] = time.perf_counter() - t0 - plan.runtime_s
        plan.greedy_objective = plan.objective
    elif solver == SolverKind.CPSAT:
        from skymesh.scheduler.cpsat import CpSatPlanner

        plan = CpSatPlanner(isolate=isolate, seed=seed).solve(
            problem, time_limit_s=time_limit_s, work_limit_s=work_limit_s
        )
    elif solver == SolverKind.EXACT:
        from skymesh.scheduler.exact import ExactPlanner

        plan = ExactPlanner(seed=seed).solve(problem, time_limit_s=time_limit_s)
    elif solver == SolverKind.ROLLING:
        from skymesh.scheduler.rolling import RollingHorizonPlanner

        plan = RollingHorizonPlanner(isolate=isolate).solve(problem, time_limit_s=time_limit_s)
    else:  # pragma: no cover - SolverKind is closed
        raise InvalidArgument(f"unknown solver {solver!r}", field="solver")
    plan.runtime_s = time.perf_counter() - t0
    return plan


def _explain(
    compiled: Compiled, selected: Sequence[int], horizon_s: float, *, optimal: bool, deadline: float = math.inf
) -> tuple[tuple[Explanation, ...], tuple[Explanation, ...]]:
    problem = compiled.problem
    frozen_ids = [j.target_id for j in compiled.frozen_jobs]
    reasons = explain_unscheduled(
        problem,
        selected,
        compiled.log,
        t0=compiled.t0,
        frozen_target_ids=frozen_ids,
        optimal=optimal,
        deadline=deadline,
    )
    partial = explain_partial(
        problem,
        selected,
        horizon_s,
        t0=compiled.t0,
        frozen_target_ids=frozen_ids,
        optimal=optimal,
        deadline=deadline,
    )
    ids = [t.target_id for t in compiled.targets]
    return (
        tuple(Explanation(ids[r], tuple(rs)) for r, rs in sorted(reasons.items())),
        tuple(Explanation(ids[r], tuple(rs)) for r, rs in sorted(partial.items())),
    )


def compute_plan(
    req: PlanRequest,
    *,
    isolate: bool = False,
    valuer: ContactValuer | None = None,
    visibility_cache: VisibilityCache | None = None,
) -> PlanResult:
    """Map, solve, explain. `req.time_limit_s` covers the whole call, visibility and explanations included.

    The planners stop at the limit (less what visibility took and the explanations' reserve, but never below
    `_MIN_SOLVER_S`; the greedy planners finish their one pass, so the call overruns the limit only when visibility
    alone left no time for that pass); explanations still running at the limit end with a count per target instead
    of one reason per window. Between phases, in the greedy pass and in the explanations, a cancel of the calling
    thread's `CancelScope` stops the call (SolveCancelled), as it kills the solver children. `visibility_cache`
    reuses the satellite passes of earlier calls (`skymesh.scheduler.viscache`)."""
    t0 = time.perf_counter()
    if not (math.isfinite(req.time_limit_s) and req.time_limit_s >= 0):
        raise InvalidArgument("must be a finite number of seconds >= 0", field="time_limit_s")
    if not (math.isfinite(req.turnaround_s) and req.turnaround_s >= 0):
        raise InvalidArgument("must be a finite number of seconds >= 0", field="turnaround_s")
    limit_s = req.time_limit_s or 10.0
    if isolate and req.solver in (SolverKind.CPSAT, SolverKind.EXACT, SolverKind.ROLLING):
        from skymesh.scheduler.isolation import warm_up

        warm_up()
    with tracing.span("scheduler visibility") as span:
        compiled = compile_request(req, visibility_cache=visibility_cache)
        if valuer is not None:
            compiled = apply_valuer(compiled, valuer)
        if span is not None:
            span.set_attributes(
                {
                    "skymesh.plan.stations": len(req.stations),
                    "skymesh.plan.targets": len(req.targets),
                    "skymesh.plan.candidates": len(compiled.problem.opportunities),
                    "skymesh.plan.visibility_s": compiled.visibility_s,
                }
            )
    CancelScope.checkpoint()
    problem = compiled.problem
    # One deadline for the call: what visibility took and what the explanations will take come off the solver's.
    budget = max(_MIN_SOLVER_S, limit_s - (time.perf_counter() - t0) - explain_reserve_s(len(problem.opportunities)))
    if req.solver in (SolverKind.GREEDY, SolverKind.GREEDY_PRIORITY_START):
        # A greedy pass is the floor of every plan: it always finishes (bounded by the caller's deadline, which
        # cancels it). Cut where visibility took the limit, it placed 303 of 12,000 contacts at 200 x 1,000 x 24 h
        # (gap 94 %), and the server replaced every station's schedule with that.
        budget = math.inf
    with tracing.span("scheduler model and search", attributes={"skymesh.plan.solver": req.solver.value}) as span:
        plan = solve_problem(problem, req.solver, budget, isolate=isolate, seed=req.seed, work_limit_s=limit_s)
        if span is not None:
            span.set_attributes(
                {
                    "skymesh.plan.objective": plan.objective,
                    "skymesh.plan.bound": plan.bound,
                    "skymesh.plan.gap": plan.gap,
                    "skymesh.plan.optimal": plan.optimal,
                    "skymesh.plan.selected": len(plan.selected),
                }
            )
    CancelScope.checkpoint()
    t_explain = time.perf_counter()
    with tracing.span("scheduler explain") as span:
        unscheduled, partially_met = _explain(
            compiled, plan.selected, req.window.duration_s, optimal=plan.optimal, deadline=t0 + limit_s
        )
        if span is not None:
            span.set_attributes(
                {"skymesh.plan.unscheduled": len(unscheduled), "skymesh.plan.partially_met": len(partially_met)}
            )
    assignments = tuple(to_assignments(compiled, plan.selected))
    page = page_explanations(
        unscheduled,
        partially_met,
        page_size=req.explanation_page_size,
        page_token="",
        fingerprint=plan_fingerprint(assignments),
    )
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
        assignments,
        page.unscheduled,
        stats,
        partially_met=page.partially_met,
        next_explanation_page_token=page.next_page_token,
        explanation_reasons_total=page.total_reasons,
    )


def explain_plan(
    req: PlanRequest,
    assignments: Sequence[Assignment],
    *,
    page_size: int,
    page_token: str = "",
    valuer: ContactValuer | None = None,
    visibility_cache: VisibilityCache | None = None,
) -> ExplanationPage:
    """The explanations of a plan computed earlier for `req` (its assignments), one page at a time.

    Stateless: the opportunities are recomputed from the request and the assignments are matched back to them
    (station, target and window to the millisecond); a frozen job's assignment is matched to the frozen job. A plan
    made with a `visibility_cache` is explained with one (its passes come from blocks; any cache, even empty).
    """
    compiled = compile_request(req, visibility_cache=visibility_cache)
    if valuer is not None:
        compiled = apply_valuer(compiled, valuer)
    selected = match_assignments(compiled, assignments)
    unscheduled, partially_met = _explain(compiled, selected, req.window.duration_s, optimal=False)
    return page_explanations(
        unscheduled,
        partially_met,
        page_size=page_size,
        page_token=page_token,
        fingerprint=plan_fingerprint(assignments),
    )


def match_assignments(compiled: Compiled, assignments: Sequence[Assignment]) -> list[int]:
    """Opportunity indices of a plan's assignments; InvalidArgument naming the first one that is no opportunity."""
    ops = compiled.problem.opportunities
    station_index = {s.station_id: i for i, s in enumerate(compiled.stations)}
    target_index = {t.target_id: i for i, t in enumerate(compiled.targets)}
    frozen = {(j.job_id, j.station_id, j.target_id, j.window) for j in compiled.frozen_jobs}
    by_pair: dict[tuple[int, int], list[int]] = {}
    for i, (r, s) in enumerate(zip(ops.request.tolist(), ops.resource.tolist(), strict=True)):
        by_pair.setdefault((s, r), []).append(i)
    selected: list[int] = []
    for k, a in enumerate(assignments):
        if (a.job_id, a.station_id, a.target_id, a.window) in frozen:
            continue
        start = (a.window.start - compiled.t0).total_seconds()
        end = (a.window.end - compiled.t0).total_seconds()
        pair = (station_index.get(a.station_id, -1), target_index.get(a.target_id, -1))
        hit = [
            i
            for i in by_pair.get(pair, [])
            if abs(float(ops.start_s[i]) - start) < 1e-3 and abs(float(ops.end_s[i]) - end) < 1e-3
        ]
        if not hit:
            raise InvalidArgument("is not an opportunity of this request", field=f"assignments[{k}]")
        selected.append(hit[0])
    return selected


# The explanations' share of the call's deadline: measured 1.5-7.5 us per candidate on the TALOS day (0.06-0.32 s
# for 42.6 k candidates, 2 busy cores), taken with a margin, plus a floor for the small fixed costs. Per candidate it
# falls with size (every satellite served, few reasons to find): 0.8 s for 835 k at 200 x 1,000 x 24 h, where
# 10 us each kept 8.4 s from the search; beyond the first 100 k, 3 us each.
_EXPLAIN_S_PER_CANDIDATE = 10e-6
_EXPLAIN_S_PER_CANDIDATE_BEYOND = 3e-6
_EXPLAIN_FULL_RATE_CANDIDATES = 100_000
# When visibility alone takes (nearly) the whole limit, the planners still get this much: a greedy pass cut after
# its first 1,000 candidates reached 73 % of the optimum on the TALOS day, the whole pass needs 0.3-0.6 s there.
# The call then overruns its limit by up to this much plus the explanations.
_MIN_SOLVER_S = 0.5


def explain_reserve_s(candidates: int) -> float:
    first = min(candidates, _EXPLAIN_FULL_RATE_CANDIDATES)
    return 0.05 + _EXPLAIN_S_PER_CANDIDATE * first + _EXPLAIN_S_PER_CANDIDATE_BEYOND * (candidates - first)
