"""Kernel planners on random opportunity sets: feasibility, frozen jobs, bounds, CP-SAT vs greedy vs brute force."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skymesh.scheduler.bounds import compute_bounds
from skymesh.scheduler.cliques import build_rows, clique_rows, maximal_cliques
from skymesh.scheduler.cpsat import CpSatPlanner
from skymesh.scheduler.exact import solve_exact
from skymesh.scheduler.greedy import GreedyPlanner, Occupancy
from skymesh.scheduler.improve import improve_by_windows
from skymesh.scheduler.inputs import PlanRequest
from skymesh.scheduler.kernel import (
    FrozenPlacement,
    Opportunity,
    OpportunitySet,
    Problem,
    Request,
    Resource,
    check_plan,
    separation_deg,
)
from skymesh.scheduler.lagrange import lagrangian_bound, lagrangian_search
from skymesh.scheduler.opportunities import compile_request


@st.composite
def problems(draw: st.DrawFn, max_ops: int = 40, frozen: bool = True) -> Problem:
    n_req = draw(st.integers(1, 6))
    n_res = draw(st.integers(1, 4))
    requests = [
        Request(
            f"r{i}",
            priority=draw(st.integers(1, 10)),
            max_per_period=draw(st.sampled_from([0, 1, 2])),
            period_s=draw(st.sampled_from([600.0, 3600.0])),
            max_total=draw(st.sampled_from([0, 0, 1, 3])),
            cadence_s=draw(st.sampled_from([0.0, 0.0, 900.0])),
            redundancy=draw(st.sampled_from([1, 1, 2])),
        )
        for i in range(n_req)
    ]
    resources = [
        Resource(
            f"s{i}", turnaround_s=draw(st.sampled_from([0.0, 60.0])), slew_rate_deg_s=draw(st.sampled_from([0.0, 2.0]))
        )
        for i in range(n_res)
    ]
    n = draw(st.integers(0, max_ops))
    ops = []
    for _ in range(n):
        start = draw(st.floats(0, 7200, allow_nan=False))
        dur = draw(st.floats(30, 900, allow_nan=False))
        r = draw(st.integers(0, n_req - 1))
        ops.append(
            Opportunity(
                r,
                draw(st.integers(0, n_res - 1)),
                start,
                start + dur,
                requests[r].priority * dur,
                (draw(st.floats(0, 359)), draw(st.floats(0, 90))),
                (draw(st.floats(0, 359)), draw(st.floats(0, 90))),
            )
        )
    fz: list[FrozenPlacement] = []
    if frozen and draw(st.booleans()):
        start = draw(st.floats(0, 7200))
        fz.append(
            FrozenPlacement(draw(st.integers(0, n_res - 1)), draw(st.integers(-1, n_req - 1)), start, start + 300.0)
        )
    return Problem(requests, resources, OpportunitySet.from_opportunities(ops), fz)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_greedy_never_breaks_a_rule_and_keeps_frozen_jobs(problem: Problem) -> None:
    plan = GreedyPlanner().solve(problem)
    assert check_plan(problem, plan.selected) == []
    # Nothing is left that could still be added (greedy is maximal), and the plan's value adds up.
    occ = Occupancy(problem)
    for i in plan.selected:
        occ.place(i)
    assert not any(occ.can_place(i) for i in range(len(problem.opportunities)) if i not in set(plan.selected))
    assert plan.objective == pytest.approx(sum(problem.opportunities.value[i] for i in plan.selected))
    assert compute_bounds(problem).best >= plan.objective - 1e-6


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_ops=11))
def test_cpsat_matches_brute_force_and_bounds_hold(problem: Problem) -> None:
    n = len(problem.opportunities)
    best = 0.0
    for k in range(n + 1):
        for subset in itertools.combinations(range(n), k):
            if not check_plan(problem, list(subset)):
                best = max(best, float(problem.opportunities.value[list(subset)].sum()) if subset else 0.0)
    greedy = GreedyPlanner().solve(problem)
    cp = CpSatPlanner(num_workers=1).solve(problem, time_limit_s=5.0)
    bounds = compute_bounds(problem)
    assert check_plan(problem, cp.selected) == []
    assert greedy.objective <= cp.objective + 1e-6
    assert cp.objective == pytest.approx(best, rel=1e-4, abs=1e-6)
    assert bounds.request_s >= best - 1e-6
    assert bounds.resource_s >= best - 1e-6
    assert cp.bound >= best - 1e-6
    assert cp.optimal
    assert lagrangian_bound(problem, target=greedy.objective, time_limit_s=0.5).bound >= best - 1e-6


def test_greedy_order_value_beats_priority_then_start() -> None:
    # One station; a long priority-5 pass overlaps a short priority-6 pass that starts first.
    reqs = [Request("long", 5), Request("short", 6)]
    ops = OpportunitySet.from_opportunities(
        [Opportunity(0, 0, 100, 1000, 5 * 900), Opportunity(1, 0, 50, 150, 6 * 100)]
    )
    p = Problem(reqs, [Resource("gs")], ops)
    assert GreedyPlanner().solve(p).selected == [0]
    assert GreedyPlanner("priority_start").solve(p).selected == [1]


def test_turnaround_and_slew_separate_jobs() -> None:
    reqs = [Request("a"), Request("b")]
    # b starts 70 s after a ends: enough for the 60 s turnaround, not for a 180 deg slew at 2 deg/s (90 s).
    ops = OpportunitySet.from_opportunities(
        [
            Opportunity(0, 0, 0, 100, 100, (0, 10), (0, 10)),
            Opportunity(1, 0, 170, 300, 90, (180, 10), (180, 10)),
        ]
    )
    slow = Problem(reqs, [Resource("gs", 60.0, 2.0)], ops)
    fast = Problem(reqs, [Resource("gs", 60.0, 20.0)], ops)
    assert GreedyPlanner().solve(slow).selected == [0]
    assert GreedyPlanner().solve(fast).selected == [0, 1]
    assert CpSatPlanner(num_workers=1).solve(slow, time_limit_s=5).selected == [0]
    assert separation_deg((0, 10), (180, 10)) == pytest.approx(160.0)


def test_frozen_job_blocks_and_counts_against_demand() -> None:
    reqs = [Request("sat", 5, max_per_period=1, period_s=7200)]
    ops = OpportunitySet.from_opportunities([Opportunity(0, 1, 3000, 3500, 2500)])
    p = Problem(reqs, [Resource("gs0"), Resource("gs1")], ops, [FrozenPlacement(0, 0, 100, 600, job_id="j1")])
    assert GreedyPlanner().solve(p).selected == []
    assert compute_bounds(p).best == 0.0
    assert CpSatPlanner(num_workers=1).solve(p, time_limit_s=2).selected == []


def test_maximal_cliques_of_intervals() -> None:
    ids = np.arange(4, dtype=np.int64)
    start = np.asarray([0.0, 5.0, 10.0, 30.0])
    end = np.asarray([12.0, 8.0, 20.0, 40.0])
    cliques = sorted(sorted(c) for c in maximal_cliques(ids, start, end))
    assert cliques == [[0, 1], [0, 2]]
    # Touching half-open intervals do not overlap.
    assert maximal_cliques(ids[:2], np.asarray([0.0, 10.0]), np.asarray([10.0, 20.0])) == []


def _sweep_cliques(ids: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[list[int]]:
    """The plain event sweep the vectorised `clique_rows` replaced (its output must stay the same, row order too)."""
    n = len(ids)
    order = np.lexsort((np.r_[np.zeros(n), np.ones(n)], np.r_[end, start]))
    who, kinds = np.r_[ids, ids][order].tolist(), np.r_[np.zeros(n), np.ones(n)][order].tolist()
    active: dict[int, None] = {}
    out: list[list[int]] = []
    grew = False
    for k, w in zip(kinds, who, strict=True):
        if k == 1:
            active[w] = None
            grew = True
        else:
            if grew and len(active) >= 2:
                out.append(list(active))
            grew = False
            active.pop(w, None)
    return out


def test_vectorised_cliques_match_the_event_sweep(small_talos: PlanRequest) -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(0, 30))
        # Integer times: many ties between starts and ends; lengths 0 included (an empty interval never leaves).
        start = rng.integers(0, 25, n).astype(float)
        end = start + rng.integers(0, 8, n)
        ids = rng.permutation(500)[:n].astype(np.int64)
        members, sizes = clique_rows(ids, start, end)
        assert maximal_cliques(ids, start, end) == _sweep_cliques(ids, start, end)
        assert len(members) == int(sizes.sum()) and (sizes >= 2).all()
    # The rows of a real TALOS day: each resource's passes padded by turnaround, in the model's row order (each
    # resource's cliques are followed by its slew pairs).
    p = compile_request(small_talos).problem
    ops = p.opportunities
    got = build_rows(p, np.ones(len(ops), dtype=bool)).at_most_one
    at = 0
    for r, res in enumerate(p.resources):
        g = np.flatnonzero(ops.resource == r).astype(np.int64)
        expected = _sweep_cliques(g, ops.start_s[g], ops.end_s[g] + res.turnaround_s)
        assert got[at : at + len(expected)] == expected
        at += len(expected)
        while at < len(got) and len(got[at]) == 2 and (ops.resource[got[at]] == r).all():
            at += 1
    assert at > 20


def test_cpsat_in_a_child_process_with_watchdog() -> None:
    reqs = [Request(f"r{i}", i + 1) for i in range(3)]
    ops = OpportunitySet.from_opportunities(
        [Opportunity(i % 3, 0, 200.0 * i, 200.0 * i + 300, float(i + 1)) for i in range(12)]
    )
    p = Problem(reqs, [Resource("gs", 0.0)], ops)
    plan = CpSatPlanner(num_workers=1, isolate=True).solve(p, time_limit_s=5.0)
    assert plan.optimal and check_plan(p, plan.selected) == []
    assert math.isfinite(plan.bound)


def _random_problem(seed: int, n: int = 1500) -> Problem:
    rng = np.random.default_rng(seed)
    reqs = [Request(f"r{i}", int(rng.integers(1, 11)), max_per_period=1, period_s=7200) for i in range(60)]
    req = rng.integers(0, len(reqs), n)
    start = rng.uniform(0, 86_400, n)
    dur = rng.uniform(120, 900, n)
    prio = np.asarray([r.priority for r in reqs])[req]
    ops = OpportunitySet(req, rng.integers(0, 12, n), start, start + dur, prio * dur)
    return Problem(reqs, [Resource(f"s{i}") for i in range(12)], ops)


def test_windowed_search_and_lagrangian_bracket_the_optimum() -> None:
    p = _random_problem(3)
    greedy = GreedyPlanner().solve(p)
    exact = CpSatPlanner().solve(p, time_limit_s=20.0)  # small enough for the whole model
    assert exact.optimal
    lns = improve_by_windows(p, greedy.selected, time_limit_s=4.0, num_workers=1)
    assert check_plan(p, lns.selected) == []
    assert greedy.objective <= lns.objective <= exact.objective + 1e-6
    assert lns.objective == pytest.approx(float(p.opportunities.value[lns.selected].sum()))
    lagr = lagrangian_bound(p, target=greedy.objective, time_limit_s=2.0)
    assert exact.objective - 1e-6 <= lagr.bound <= compute_bounds(p).best + 1e-6
    # The planner's large-problem path (windows + bound) on the same instance.
    plan = CpSatPlanner(global_max_candidates=0).solve(p, time_limit_s=4.0)
    assert check_plan(p, plan.selected) == []
    assert greedy.objective <= plan.objective <= exact.objective + 1e-6 <= plan.bound + 1e-3


@pytest.mark.parametrize("rows", ["period", "period, cadence, total"])
def test_lagrangian_search_bound_holds_and_its_lp_plan_is_feasible(rows: str) -> None:
    p = _random_problem(5, n=1200)
    if rows != "period":
        # Every family of capacity rows the LP prices: cadence bins and overall caps on half of the requests.
        reqs = [dataclasses.replace(r, cadence_s=3000.0, max_total=5) if i % 2 else r for i, r in enumerate(p.requests)]
        p = Problem(reqs, p.resources, p.opportunities)
    greedy = GreedyPlanner().solve(p)
    exact = solve_exact(p, time_limit_s=30.0)
    assert exact.status == "OPTIMAL"
    res = lagrangian_search(p, plan=greedy.selected, target=greedy.objective, time_limit_s=3.0)
    plain = lagrangian_bound(p, target=greedy.objective, time_limit_s=3.0)
    assert res.lp_rounds >= 1 and res.selected is not None
    # Valid, and no weaker than the subgradient alone: the column generation ends at the best multipliers.
    assert exact.objective - 1e-6 <= res.bound <= plain.bound * (1 + 1e-7)
    assert check_plan(p, res.selected) == []
    assert float(p.opportunities.value[res.selected].sum()) <= exact.objective + 1e-6


def test_lagrangian_search_without_the_lp_keeps_a_valid_bound_and_a_feasible_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A starved process skips the LP (it would not end in its share): the plan is then the Lagrangian heuristic's."""
    import skymesh.scheduler.lagrange as lagrange

    monkeypatch.setattr(lagrange, "_LP_CPU_PER_CANDIDATE", 1e9)
    p = _random_problem(5, n=1200)
    greedy = GreedyPlanner().solve(p)
    exact = solve_exact(p, time_limit_s=30.0)
    res = lagrangian_search(p, plan=greedy.selected, target=greedy.objective, time_limit_s=1.0)
    assert res.lp_rounds == 0 and res.selected is not None
    assert exact.objective - 1e-6 <= res.bound
    assert check_plan(p, res.selected) == []
    assert float(p.opportunities.value[res.selected].sum()) <= exact.objective + 1e-6
