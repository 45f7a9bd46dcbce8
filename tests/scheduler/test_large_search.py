"""The largest problems' search (windows + Lagrangian bound): the speed-ups change nothing but the time.

- A window's sub-problem carries only the placements that can constrain its candidates (`improve._interacting`):
  which candidates fit and every row of its model are the same as with the whole plan frozen around it.
- The Lagrangian DP over the opportunities with a positive reduced value only gives the same optimum as over all.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from skymesh.scheduler.bounds import usable_mask
from skymesh.scheduler.cliques import build_rows
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.improve import _interacting, _Reach, frozen_of
from skymesh.scheduler.inputs import PlanRequest
from skymesh.scheduler.kernel import Opportunity, OpportunitySet, Problem, Request, Resource
from skymesh.scheduler.lagrange import _Layout
from skymesh.scheduler.opportunities import compile_request


def _sub(problem: Problem, inside: np.ndarray, placed: list[int]) -> Problem:
    return Problem(
        problem.requests,
        problem.resources,
        problem.opportunities.take(inside),
        [*problem.frozen, *(frozen_of(problem, i) for i in placed)],
    )


def _model(p: Problem) -> tuple[list[bool], list[list[int]], list[tuple[list[int], int]]]:
    usable = usable_mask(p)
    rows = build_rows(p, usable)
    return usable.tolist(), sorted(sorted(r) for r in rows.at_most_one), sorted((sorted(r), c) for r, c in rows.capped)


@pytest.mark.parametrize("demand", ["period", "cadence and total"])
def test_a_window_keeps_the_placements_that_matter(small_talos: PlanRequest, demand: str) -> None:
    problem = compile_request(small_talos).problem
    if demand != "period":
        problem = replace(
            problem, requests=[Request(q.request_id, cadence_s=5400.0, max_total=3) for q in problem.requests]
        )
    ops = problem.opportunities
    plan = GreedyPlanner().solve(problem).selected
    reach = _Reach(problem)
    kept_some_out = False
    # Windows on the hour, and windows opening within the turnaround after a placed job ends (which still binds).
    opening = np.r_[np.arange(0.0, float(ops.start_s.max()), 3600.0), ops.end_s[plan[::3]] + 30.0]
    for a in opening:
        for group in (ops.resource % 2 == 0, ops.resource % 2 == 1):
            free = (ops.start_s >= a) & (ops.start_s < a + 3600.0) & group
            inside = np.flatnonzero(free)
            if len(inside) == 0:
                continue
            placed = np.asarray([i for i in plan if not free[i]], dtype=np.int64)
            kept = _interacting(problem, placed, inside, reach)
            kept_some_out |= len(kept) < len(placed)
            assert _model(_sub(problem, inside, kept.tolist())) == _model(_sub(problem, inside, placed.tolist()))
    assert kept_some_out


def test_the_dp_over_positive_values_finds_the_same_optimum(small_talos: PlanRequest) -> None:
    problem = compile_request(small_talos).problem
    idx = np.arange(len(problem.opportunities), dtype=np.int64)
    lay = _Layout(problem, idx)
    rng = np.random.default_rng(5)
    value = problem.opportunities.value[lay.idx]
    for _ in range(5):
        reduced = value - rng.uniform(0.0, 1.2, len(value)) * value  # about a sixth stays positive
        total, chosen = lay.solve(reduced)
        total_pos, chosen_pos = lay.solve_positive(reduced)
        assert total_pos == pytest.approx(total, rel=1e-12)
        assert float(reduced[chosen_pos].sum()) == pytest.approx(total, rel=1e-12)
        assert (reduced[chosen_pos] > 0).all() and chosen.sum() >= 1


def test_a_job_ending_within_the_turnaround_before_the_window_is_kept() -> None:
    # Resource 0: job A (request 0) ends at 100; the window opens at 120 with candidate B (request 1) at 130: the
    # 60 s turnaround after A still forbids B, so A must go into the window's sub-problem; C, far away on another
    # resource and request, must not.
    ops = OpportunitySet.from_opportunities(
        [
            Opportunity(0, 0, 0.0, 100.0, 100.0),
            Opportunity(1, 0, 130.0, 300.0, 170.0),
            Opportunity(2, 1, 5000.0, 5100.0, 100.0),
        ]
    )
    problem = Problem([Request("a"), Request("b"), Request("c")], [Resource("r0", 60.0), Resource("r1", 60.0)], ops)
    inside = np.asarray([1], dtype=np.int64)
    kept = _interacting(problem, np.asarray([0, 2], dtype=np.int64), inside, _Reach(problem))
    assert kept.tolist() == [0]
    assert not usable_mask(_sub(problem, inside, kept.tolist()))[0]
