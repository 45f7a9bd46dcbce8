"""Same input and seed, same plan: the LP-guided search and the exact solver, checked against each other."""

from __future__ import annotations

import pytest

from skymesh.scheduler.bounds import compute_bounds
from skymesh.scheduler.cpsat import CpSatPlanner
from skymesh.scheduler.exact import ExactPlanner
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.kernel import Problem, check_plan
from skymesh.scheduler.opportunities import compile_request
from skymesh.scheduler.scenario import generate_talos

from .conftest import T0


@pytest.fixture(scope="module")
def problem() -> Problem:
    return compile_request(generate_talos(stations=12, satellites=80, hours=12, seed=4, start=T0)).problem


def test_lp_guided_search_is_deterministic_and_between_greedy_and_the_optimum(problem: Problem) -> None:
    # global_max_candidates=0 sends this 2 k-candidate day down the LP-guided path (LP, fix and solve, 3 windows at
    # 8 s).
    # Once in process, once in a child that hands the LP's values over to the parent as soon as its LP ends: the
    # same plan.
    runs = [
        CpSatPlanner(global_max_candidates=0, seed=3, isolate=isolate).solve(problem, time_limit_s=8.0)
        for isolate in (False, True)
    ]
    assert runs[0].selected == runs[1].selected
    assert all("WALL_DEADLINE" not in r.status and r.status.startswith("LP+FIX(") for r in runs)
    plan = runs[0]
    assert check_plan(problem, plan.selected) == []
    exact = ExactPlanner().solve(problem, time_limit_s=30.0)
    assert exact.optimal and check_plan(problem, exact.selected) == []
    greedy = GreedyPlanner().solve(problem)
    assert greedy.objective <= plan.objective <= exact.objective + 1e-6
    # The LP bound is a true bound and at least as tight as the cheap relaxation.
    assert exact.objective - 1e-6 <= plan.bound <= compute_bounds(problem).best + 1e-6
    assert plan.objective >= 0.999 * exact.objective
    # Every phase that ran reports its CPU seconds, and the search's total covers them (the benchmark reads these).
    t = plan.timings_s
    phases = [t[k] for k in ("lp_cpu_s", "fix_cpu_s", "lns_cpu_s")]
    assert all(c > 0 for c in phases) and sum(phases) <= t["search_cpu_s"] + 1e-6


def test_the_exact_solver_is_deterministic(problem: Problem) -> None:
    a, b = (ExactPlanner(seed=1).solve(problem, time_limit_s=30.0) for _ in range(2))
    assert a.selected == b.selected and a.optimal


def test_fix_and_solve_keeps_the_lp_columns_at_one_and_is_feasible(problem: Problem) -> None:
    # Step 2 alone: every column at 1 in the LP stays in the plan, the MIP over the rest proves its optimum, and the
    # plan obeys every rule (the residual rows are the model's with the fixed columns' rows and caps taken out).
    import numpy as np

    from skymesh.scheduler.bounds import usable_mask
    from skymesh.scheduler.cliques import build_rows
    from skymesh.scheduler.lpguided import fix_and_solve, lp_relaxation

    x, bound = lp_relaxation(problem, 30.0)
    usable = usable_mask(problem)
    rows, idx = build_rows(problem, usable), np.flatnonzero(usable).astype(np.int64)
    fixed = fix_and_solve(problem, rows, idx, x, time_limit_s=30.0)
    assert fixed is not None
    selected, status, n_free = fixed
    assert status == "OPTIMAL" and n_free > 0
    assert set(idx[x[idx] > 1 - 1e-6].tolist()) <= set(selected)
    assert check_plan(problem, selected) == []
    assert GreedyPlanner().solve(problem).objective <= float(problem.opportunities.value[selected].sum()) <= bound
