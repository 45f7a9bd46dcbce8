"""Geographic diversity: `Demand.max_per_station` caps one target's contacts at one station per `period_s`."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from skymesh.core.errors import InvalidArgument
from skymesh.core.model import TimeWindow
from skymesh.scheduler.inputs import Demand, PlanRequest, PlanTarget, SolverKind
from skymesh.scheduler.kernel import Opportunity, OpportunitySet, Problem, Request, Resource, check_plan
from skymesh.scheduler.opportunities import compile_request
from skymesh.scheduler.planning import compute_plan
from skymesh.scheduler.wire import plan_request_from_proto, plan_request_to_proto

from .conftest import T0, ground_station, iss_like

WINDOW = TimeWindow(T0, T0 + timedelta(hours=24))
STATIONS = [ground_station("munich", 48.0, 11.0), ground_station("madrid", 40.4, -3.7)]


def _per_station(demand: Demand, solver: SolverKind) -> Counter[str]:
    req = PlanRequest(WINDOW, STATIONS, [PlanTarget(iss_like("iss"), demand)], solver=solver, time_limit_s=5.0)
    req = plan_request_from_proto(plan_request_to_proto(req))  # and the field survives the wire
    res = compute_plan(req)
    return Counter(a.station_id for a in res.assignments)


@pytest.mark.parametrize("solver", [SolverKind.GREEDY, SolverKind.CPSAT])
def test_contacts_spread_across_stations(solver: SolverKind) -> None:
    unlimited = _per_station(Demand(max_per_period=4, period_s=86400.0), solver)
    assert sum(unlimited.values()) == 4 and max(unlimited.values()) > 2  # one station could take 3 or 4 alone
    spread = _per_station(Demand(max_per_period=4, period_s=86400.0, max_per_station=2), solver)
    assert spread == Counter({"munich": 2, "madrid": 2})
    # period_s 0: the cap holds over the whole plan.
    assert _per_station(Demand(max_per_station=1), solver) == Counter({"munich": 1, "madrid": 1})


def test_check_plan_and_validation_know_max_per_station() -> None:
    ops = OpportunitySet.from_opportunities(
        [
            Opportunity(0, 0, 0.0, 10.0, 1.0),
            Opportunity(0, 0, 100.0, 110.0, 1.0),
            Opportunity(0, 0, 4000.0, 4010.0, 1.0),
        ]
    )
    problem = Problem([Request("r", max_per_station=1, period_s=3600.0)], [Resource("gs", turnaround_s=0.0)], ops)
    assert check_plan(problem, [0, 2]) == []
    assert any("max_per_station" in p for p in check_plan(problem, [0, 1]))
    with pytest.raises(InvalidArgument, match="max_per_station"):
        Demand(max_per_station=-1)
    assert compile_request(PlanRequest(WINDOW, STATIONS, [PlanTarget(iss_like("iss"), Demand(max_per_station=3))]))
