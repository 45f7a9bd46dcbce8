"""The compiled greedy pass (`_greedy_jit`) places exactly what `Occupancy` places, one candidate at a time."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from skymesh.core.rotator import AxisLimits, RotatorModel
from skymesh.scheduler.greedy import (
    GreedyPlanner,
    Occupancy,
    _FastOccupancy,
    compiled_greedy,
    greedy_fill,
    greedy_order,
    lexsort,
)
from skymesh.scheduler.inputs import PlanRequest
from skymesh.scheduler.kernel import FrozenPlacement, OpportunitySet, Problem, Request, Resource
from skymesh.scheduler.opportunities import compile_request

pytestmark = pytest.mark.skipif(compiled_greedy() is None, reason="numba not importable")


def _python_greedy(problem: Problem, order: Sequence[int], selected: Sequence[int] = ()) -> list[int]:
    """The reference: `Occupancy` tries every candidate in `order` (after placing `selected`)."""
    occ = Occupancy(problem)
    for i in selected:
        occ.place(i)
    chosen = set(selected)
    for i in order:
        if i not in chosen:
            occ.try_place(int(i))
    return sorted(occ.selected)


def _random_problem(seed: int, *, n: int = 600) -> Problem:
    """Every rule at once: period and station bins, totals, cadence, redundancy, slews, frozen jobs (with and
    without pointings, known and unknown requests), ties in start and value."""
    rng = np.random.default_rng(seed)
    n_req, n_res = 25, 6
    requests = [
        Request(
            f"r{k}",
            priority=float(rng.integers(1, 10)),
            max_per_period=int(rng.choice([0, 1, 2])),
            period_s=float(rng.choice([0.0, 1800.0, 3600.0])),
            max_total=int(rng.choice([0, 0, 3, 6])),
            cadence_s=float(rng.choice([0.0, 0.0, 600.0])),
            redundancy=int(rng.choice([1, 1, 2, 3])),
            max_per_station=int(rng.choice([0, 0, 1, 2])),
        )
        for k in range(n_req)
    ]
    resources = [
        Resource(
            f"s{k}", turnaround_s=float(rng.choice([0.0, 30.0, 60.0])), slew_rate_deg_s=float(rng.choice([0, 2, 5]))
        )
        for k in range(n_res)
    ]
    # Starts on a coarse grid, so that ties in start (and value) are common.
    start = rng.integers(0, 86400 // 60, n).astype(np.float64) * 60.0
    end = start + rng.integers(1, 15, n) * 60.0
    value = np.round(rng.uniform(0, 5, n)) * (end - start)
    az0, az1 = rng.uniform(0, 360, n), rng.uniform(0, 360, n)
    el0, el1 = rng.uniform(0, 90, n), rng.uniform(0, 90, n)
    az0[rng.random(n) < 0.05] = math.nan
    ops = OpportunitySet(rng.integers(0, n_req, n), rng.integers(0, n_res, n), start, end, value, az0, el0, az1, el1)
    frozen = []
    for k in range(8):
        s = float(rng.integers(0, 1440)) * 60.0
        pointed = k % 2 == 0
        frozen.append(
            FrozenPlacement(
                int(rng.integers(0, n_res)),
                int(rng.integers(-1, n_req)),
                s,
                s + 600.0,
                job_id=f"j{k}",
                start_pointing_deg=(float(rng.uniform(0, 360)), 30.0) if pointed else None,
                end_pointing_deg=(float(rng.uniform(0, 360)), 20.0) if pointed else None,
            )
        )
    return Problem(requests, resources, ops, frozen)


@pytest.mark.parametrize("seed", range(12))
def test_random_instances_same_plan(seed: int) -> None:
    problem = _random_problem(seed)
    for order in ("value", "priority_start"):
        plan = GreedyPlanner(order).solve(problem)  # type: ignore[arg-type]
        assert plan.selected == _python_greedy(problem, greedy_order(problem, order).tolist())  # type: ignore[arg-type]
    assert len(plan.selected) > 20  # the rules leave room to place, so the comparison means something


def test_greedy_fill_same_plan() -> None:
    problem = _random_problem(99)
    seed_plan = GreedyPlanner("priority_start").solve(problem).selected[::3]
    assert greedy_fill(problem, seed_plan) == _python_greedy(problem, greedy_order(problem).tolist(), seed_plan)


def test_talos_same_plan(small_talos: PlanRequest) -> None:
    problem = compile_request(small_talos).problem
    assert _FastOccupancy.of(problem) is not None
    plan = GreedyPlanner().solve(problem)
    assert plan.selected == _python_greedy(problem, greedy_order(problem).tolist())
    assert plan.objective == pytest.approx(float(problem.opportunities.value[plan.selected].sum()))


def test_rotator_stays_in_python() -> None:
    """A known rotator travel times slews with the cable-wrap model: that resource keeps the Python pass."""
    problem = _random_problem(3)
    rot = RotatorModel(AxisLimits(0.0, 450.0, 5.0), AxisLimits(0.0, 90.0, 5.0))
    resources = [Resource(r.resource_id, r.turnaround_s, 5.0, rot) for r in problem.resources]
    with_rotator = Problem(problem.requests, resources, problem.opportunities, problem.frozen)
    assert _FastOccupancy.of(with_rotator) is None


@pytest.mark.parametrize("seed", range(6))
def test_lexsort_is_numpys(seed: int) -> None:
    """Ties in the first key (many, few, NaN, -0.0 and 0.0) are ordered by the others, then by index."""
    rng = np.random.default_rng(seed)
    n = 3000
    first = rng.integers(0, [5, 50, 3000, 3000, 40, 7][seed], n).astype(np.float64)
    first[rng.random(n) < 0.02] = math.nan
    first[rng.random(n) < 0.02] = -0.0
    second = rng.integers(0, 20, n).astype(np.float64)
    second[rng.random(n) < 0.05] = math.nan
    third = rng.integers(0, 4, n)
    for keys in ((third, second, first), (second, first), (first,), (third, first)):
        assert lexsort(keys).tolist() == np.lexsort(keys).tolist()
    assert lexsort((third[:1], first[:1])).tolist() == [0]
    assert lexsort((third[:0], first[:0])).tolist() == []
