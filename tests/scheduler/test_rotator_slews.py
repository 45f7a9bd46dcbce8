"""Per-axis slews: planners and the feasibility checker agree on tight consecutive passes, with each station's own
rotator (skymesh.core.rotator), and the rotator travels from the station to the scheduler's kernel and the wire."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skymesh.api.convert import station_from_proto, station_to_proto
from skymesh.core.rotator import AxisLimits, RotatorModel, slew_time_s
from skymesh.scheduler.cpsat import CpSatPlanner
from skymesh.scheduler.exact import ExactPlanner
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.inputs import PlanRequest
from skymesh.scheduler.kernel import Opportunity, OpportunitySet, Problem, Request, Resource, check_plan
from skymesh.scheduler.opportunities import compile_request
from skymesh.scheduler.scenario import request_from_dict, request_to_dict

# Azimuth 10 deg/s with 5 deg/s^2 (a 180-degree move: 180/10 + 10/5 = 20 s), elevation 5 deg/s.
SLOW = RotatorModel(AxisLimits(0.0, 450.0, 10.0, 5.0), AxisLimits(0.0, 90.0, 5.0))
FAST = RotatorModel(AxisLimits(0.0, 450.0, 30.0), AxisLimits(0.0, 90.0, 30.0))


def _tight(rotator: RotatorModel) -> Problem:
    # Two overhead passes 15 s apart: the first sets at (0, 85), the next rises at (180, 85). On the sky that is
    # 10 degrees (one second at 10 deg/s), but the azimuth axis must turn half a circle.
    ops = OpportunitySet.from_opportunities(
        [
            Opportunity(0, 0, 0.0, 600.0, 600.0, (200.0, 20.0), (0.0, 85.0)),
            Opportunity(1, 0, 615.0, 1200.0, 585.0, (180.0, 85.0), (30.0, 20.0)),
        ]
    )
    return Problem([Request("a"), Request("b")], [Resource("gs", 0.0, 10.0, rotator)], ops)


def test_the_azimuth_axis_decides_not_the_angle_on_the_sky() -> None:
    assert slew_time_s(SLOW, 0.0, 85.0, 180.0, 85.0) == pytest.approx(20.0)
    assert Resource("gs", 0.0, 10.0, SLOW).slew_s(0.0, 85.0, 180.0, 85.0) == pytest.approx(20.0)
    # Without a rotator both axes move at slew_rate_deg_s, still each on its own.
    assert Resource("gs", 0.0, 10.0).slew_s(0.0, 85.0, 180.0, 85.0) == pytest.approx(18.0)


@pytest.mark.parametrize(("rotator", "both"), [(SLOW, False), (FAST, True)])
def test_planners_and_checker_agree_on_tight_consecutive_passes(rotator: RotatorModel, both: bool) -> None:
    p = _tight(rotator)
    assert (check_plan(p, [0, 1]) == []) is both
    assert check_plan(p, [0]) == [] and check_plan(p, [1]) == []
    expected = [0, 1] if both else [0]
    assert GreedyPlanner().solve(p).selected == expected
    assert CpSatPlanner(num_workers=1).solve(p, time_limit_s=5.0).selected == expected
    assert ExactPlanner().solve(p, time_limit_s=20.0).selected == expected
    # The clique model's slew rows use the same model: its LP-guided path agrees too.
    lp = CpSatPlanner(global_max_candidates=0).solve(p, time_limit_s=5.0)
    assert lp.selected == expected and check_plan(p, lp.selected) == []


def test_a_station_rotator_reaches_the_kernel_the_wire_and_scenario_files(small_talos: PlanRequest) -> None:
    stations = [replace(small_talos.stations[0], rotator=SLOW), *small_talos.stations[1:]]
    req = replace(small_talos, stations=stations)
    compiled = compile_request(req)
    assert compiled.problem.resources[0].rotator == SLOW
    assert compiled.problem.resources[1].rotator is None
    assert compiled.problem.resources[1].motion == RotatorModel(
        AxisLimits(0.0, 360.0, stations[1].slew_rate_deg_s), AxisLimits(0.0, 90.0, stations[1].slew_rate_deg_s)
    )
    assert station_from_proto(station_to_proto(stations[0])) == stations[0]
    assert not station_to_proto(stations[1]).HasField("rotator")
    assert request_from_dict(request_to_dict(req)).stations[0].rotator == SLOW
