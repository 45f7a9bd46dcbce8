"""Cable wrap and flip in the scheduler's slews: the slew between two contacts runs from the wrap the agent flies
the first in to the wrap it then picks for the second (`skymesh.core.rotator.pass_wraps`, the choice `plan_track`
makes), so an unwind across a stop is timed; planners and `check_plan` agree, and so do the scheduler and the agent's
pass planner about the wrap of real passes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from skymesh.agent.passplan import plan_pass
from skymesh.agent.tracking import SatelliteTrack
from skymesh.core.model import SatelliteTarget
from skymesh.core.rotator import (
    AMBIGUOUS_SWEEP_DEG,
    AxisLimits,
    RotatorModel,
    pass_slew_time_s,
    pass_sweep_deg,
    pass_wraps,
)
from skymesh.scheduler.cpsat import CpSatPlanner
from skymesh.scheduler.exact import ExactPlanner
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.inputs import PlanRequest
from skymesh.scheduler.kernel import Opportunity, OpportunitySet, Problem, Request, Resource, check_plan
from skymesh.scheduler.opportunities import compile_request

RATE = 5.0  # deg/s on both axes
NO_OVERWIND = RotatorModel(AxisLimits(0.0, 360.0, RATE), AxisLimits(0.0, 90.0, RATE))
OVERWIND_450 = RotatorModel(AxisLimits(0.0, 450.0, RATE), AxisLimits(0.0, 90.0, RATE))
WIDE = RotatorModel(AxisLimits(-180.0, 540.0, RATE), AxisLimits(0.0, 90.0, RATE))
FLIP = RotatorModel(AxisLimits(0.0, 360.0, RATE), AxisLimits(0.0, 180.0, RATE))
UNWIND_S = 340.0 / RATE  # 350 -> 10 the long way round
QUICK_S = 20.0 / RATE  # 350 -> 370

# Pass A crosses north: AOS at 30, LOS at 350 (it sweeps 30 -> 0 -> 350); pass B rises at 10 and sets at 80.
A = ((30.0, 10.0), (350.0, 10.0))
B = ((10.0, 10.0), (80.0, 10.0))


def test_unwind_timed_without_overwind_quick_with_it() -> None:
    (a0, _), (a1, a1_el) = A
    (b0, b0_el), (b1, _) = B
    # 0..360: A is flown with its unwind inside it and ends at 350; B fits only at 10..80: back across the stop.
    assert pass_slew_time_s(NO_OVERWIND, a0, a1, a1_el, b0, b0_el, b1) == pytest.approx(UNWIND_S)
    # 450: A fits at 390 -> 350 (the north crossing on the overwind); B then starts at 370, 20 degrees on.
    assert pass_wraps(OVERWIND_450, a0, 10.0, a1, 10.0).end_azimuth_deg[0] == pytest.approx(350.0)
    assert pass_slew_time_s(OVERWIND_450, a0, a1, a1_el, b0, b0_el, b1) == pytest.approx(QUICK_S)
    # Flip (0..360, elevation to 180): A flies flipped at 210 -> 170 and ends at (170, 170); B fits normally at
    # 10..80; the azimuth (160 degrees) and the elevation (160 degrees) move together.
    assert pass_slew_time_s(FLIP, a0, a1, a1_el, b0, b0_el, b1) == pytest.approx(160.0 / RATE)
    # The short way on the sky, what the scheduler assumed before: 20 degrees.
    assert Resource("gs", 0.0, RATE, NO_OVERWIND).slew_s(a1, a1_el, b0, b0_el) == pytest.approx(QUICK_S)


def test_the_worst_of_the_wraps_a_history_could_leave() -> None:
    # On 450 a pass at 20..80 can end at 80 or at 440 (depending on the pass before it); the next one, at 100..150,
    # fits only at 100: from 440 that is an unwind. A pairwise rule cannot know the history: it takes the worst.
    assert pass_wraps(OVERWIND_450, 20.0, 10.0, 80.0, 10.0).turns[0] == 1.0
    assert pass_slew_time_s(OVERWIND_450, 20.0, 80.0, 10.0, 100.0, 10.0, 150.0) == pytest.approx(340.0 / RATE)
    assert pass_slew_time_s(NO_OVERWIND, 20.0, 80.0, 10.0, 100.0, 10.0, 150.0) == pytest.approx(20.0 / RATE)


def _pair(rotator: RotatorModel, gap_s: float) -> Problem:
    ops = OpportunitySet.from_opportunities(
        [
            Opportunity(0, 0, 0.0, 600.0, 600.0, A[0], A[1]),
            Opportunity(1, 0, 600.0 + gap_s, 1200.0, 590.0, B[0], B[1]),
        ]
    )
    return Problem([Request("a"), Request("b")], [Resource("gs", 0.0, RATE, rotator)], ops)


@pytest.mark.parametrize(("rotator", "both"), [(NO_OVERWIND, False), (OVERWIND_450, True)])
def test_planners_and_checker_agree_on_the_unwind(rotator: RotatorModel, both: bool) -> None:
    p = _pair(rotator, gap_s=10.0)  # room for the quick slew (4 s), not for the unwind (68 s)
    assert (check_plan(p, [0, 1]) == []) is both
    expected = [0, 1] if both else [0]
    assert GreedyPlanner().solve(p).selected == expected
    assert CpSatPlanner(num_workers=1).solve(p, time_limit_s=5.0).selected == expected
    assert ExactPlanner().solve(p, time_limit_s=20.0).selected == expected
    assert check_plan(_pair(rotator, gap_s=UNWIND_S + 1.0), [0, 1]) == []


def _with_rotators(req: PlanRequest, rotators: list[RotatorModel]) -> PlanRequest:
    stations = [replace(s, rotator=rotators[k % len(rotators)]) for k, s in enumerate(req.stations)]
    return replace(req, stations=stations, turnaround_s=0.0)


def test_plan_and_check_plan_agree_on_a_random_instance(small_talos: PlanRequest) -> None:
    slow = [replace(m, azimuth=replace(m.azimuth, rate_deg_s=1.0)) for m in (NO_OVERWIND, OVERWIND_450, WIDE, FLIP)]
    req = _with_rotators(small_talos, slow)
    problem = compile_request(req).problem
    ops = problem.opportunities
    rng = np.random.default_rng(3)
    # The real passes' geometry, laid end to end per station with gaps of -200..150 s (overlaps are choices): many
    # contacts then follow closely and the slews decide. Every request wants as many contacts as it can get.
    duration = ops.end_s - ops.start_s
    start = np.zeros(len(ops))
    for r in range(len(problem.resources)):
        idx = np.flatnonzero(ops.resource == r)
        start[idx] = np.cumsum(np.r_[0.0, duration[idx][:-1] + rng.uniform(-200.0, 150.0, len(idx) - 1)])
    squeezed = OpportunitySet(
        ops.request, ops.resource, start, start + duration, ops.value, ops.az0, ops.el0, ops.az1, ops.el1
    )
    p = replace(problem, requests=[Request(q.request_id) for q in problem.requests], opportunities=squeezed)
    plans = {
        "greedy": GreedyPlanner().solve(p).selected,
        "cpsat": CpSatPlanner(num_workers=1, seed=1).solve(p, time_limit_s=5.0).selected,
        "exact": ExactPlanner().solve(p, time_limit_s=20.0).selected,
    }
    for name, selected in plans.items():
        assert check_plan(p, selected) == [], name
    # The rule bites: the same instance planned with the short way round breaks it.
    short = replace(p, resources=[Resource(r.resource_id, 0.0, 1.0) for r in p.resources])
    assert check_plan(p, ExactPlanner().solve(short, time_limit_s=20.0).selected) != []


# The flip rotator fast enough for most keyholes (a slow one makes the agent weigh flips at the culmination, slowly).
FAST_FLIP = RotatorModel(AxisLimits(0.0, 360.0, 30.0), AxisLimits(0.0, 180.0, 30.0))


@pytest.mark.parametrize("rotator", [NO_OVERWIND, OVERWIND_450, WIDE, FAST_FLIP], ids=["360", "450", "wide", "flip"])
def test_the_agent_and_the_scheduler_choose_the_same_wrap(small_talos: PlanRequest, rotator: RotatorModel) -> None:
    """For real passes whose wrap holds them whole, the agent's `plan_pass` (from any rotator position) and the
    scheduler's `PassWraps` agree on the mode and the mechanical azimuth at AOS and LOS."""
    compiled = compile_request(small_talos)
    ops = compiled.problem.opportunities
    rng = np.random.default_rng(11)
    compared = 0
    for i in rng.choice(len(ops), 20 if rotator.can_flip else 40, replace=False).tolist():
        o = ops[i]
        assert o.start_pointing_deg is not None and o.end_pointing_deg is not None
        target = compiled.targets[o.request].target
        assert isinstance(target, SatelliteTarget)
        start = compiled.t0 + timedelta(seconds=o.start_s)
        track = SatelliteTrack(
            target.tle_line1,
            target.tle_line2,
            compiled.stations[o.resource].location,
            start,
            start + timedelta(seconds=o.duration_s),
        )
        current = float(rng.uniform(rotator.azimuth.min_deg, rotator.azimuth.max_deg))
        agent = plan_pass(track, rotator, current)
        _, sky_az, sky_el = track.samples()
        # The culmination's azimuth says which way a pass through the zenith sweeps (AOS and LOS alone cannot).
        sweep = pass_sweep_deg(o.start_pointing_deg[0], o.end_pointing_deg[0], sky_az[int(np.argmax(sky_el))])
        ours = pass_wraps(rotator, o.start_pointing_deg[0], 0.0, o.end_pointing_deg[0], 0.0, sweep_deg=sweep).at(
            current
        )
        if not ours.fits[0] or agent.mode not in ("normal", "flip"):
            continue  # an unwind inside the pass, or a flip at the culmination: the scheduler does not predict those
        visible = np.flatnonzero(agent.visible)
        assert (agent.mode == "flip") == bool(ours.flipped[0])
        assert agent.command_azimuth_deg[visible[0]] == pytest.approx(ours.start_azimuth_deg[0], abs=1.0)
        assert agent.command_azimuth_deg[visible[-1]] == pytest.approx(ours.end_azimuth_deg[0], abs=1.0)
        compared += 1
    assert compared >= (8 if rotator.can_flip else 15)


def test_satellite_opportunities_carry_the_culmination_azimuth(small_talos: PlanRequest) -> None:
    """The pass table's azimuth at the culmination reaches the opportunities, so the scheduler times each pass the
    way round it really sweeps (the track's culmination says which) instead of both ways."""
    compiled = compile_request(small_talos)
    ops = compiled.problem.opportunities
    known = np.flatnonzero(np.isfinite(ops.az_mid))
    assert known.size > 0.9 * len(ops)
    rng = np.random.default_rng(5)
    for i in rng.choice(known, 30, replace=False).tolist():
        o = ops[i]
        assert o.start_pointing_deg is not None and o.end_pointing_deg is not None
        target = compiled.targets[o.request].target
        assert isinstance(target, SatelliteTarget)
        start = compiled.t0 + timedelta(seconds=o.start_s)
        track = SatelliteTrack(
            target.tle_line1,
            target.tle_line2,
            compiled.stations[o.resource].location,
            start,
            start + timedelta(seconds=o.duration_s),
        )
        _, sky_az, sky_el = track.samples()
        truth = pass_sweep_deg(o.start_pointing_deg[0], o.end_pointing_deg[0], sky_az[int(np.argmax(sky_el))])
        ours = pass_sweep_deg(o.start_pointing_deg[0], o.end_pointing_deg[0], ops.az_mid[i])
        assert float(ours) == pytest.approx(float(truth), abs=2.0)
    # With the culmination known no pass is ambiguous: both ways round are the same wrap.
    problem = replace(compiled.problem, resources=[replace(r, rotator=NO_OVERWIND) for r in compiled.problem.resources])
    one, two = problem.wraps
    assert np.array_equal(one.start_azimuth_deg[known], two.start_azimuth_deg[known])
    assert np.array_equal(one.end_azimuth_deg[known], two.end_azimuth_deg[known])
    # The same problem without az_mid times the long sweeps both ways (the rule the column removes).
    blind = OpportunitySet(
        ops.request, ops.resource, ops.start_s, ops.end_s, ops.value, ops.az0, ops.el0, ops.az1, ops.el1
    )
    b1, b2 = replace(problem, opportunities=blind).wraps
    long = np.abs(pass_sweep_deg(ops.az0, ops.az1)) >= AMBIGUOUS_SWEEP_DEG
    assert long.any()
    assert not np.array_equal(b1.start_azimuth_deg[long], b2.start_azimuth_deg[long])
