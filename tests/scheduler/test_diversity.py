"""Geographic diversity (`Demand.max_per_station`) and explanations of demands only partly met."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import TimeWindow
from skymesh.scheduler.inputs import Demand, PlanRequest, PlanTarget, SolverKind
from skymesh.scheduler.kernel import Opportunity, OpportunitySet, Problem, Request, Resource, check_plan
from skymesh.scheduler.opportunities import compile_request
from skymesh.scheduler.planning import compute_plan
from skymesh.scheduler.reasons import ReasonCode
from skymesh.scheduler.wire import plan_request_from_proto, plan_request_to_proto, plan_response_to_proto

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


def test_a_demand_only_partly_met_is_explained_k_of_n() -> None:
    # Four contacts a day wanted, at most one per station: two stations give two.
    req = PlanRequest(
        WINDOW, STATIONS, [PlanTarget(iss_like("iss"), Demand(max_per_period=4, period_s=86400.0, max_per_station=1))]
    )
    res = compute_plan(req)
    assert len(res.assignments) == 2 and res.unscheduled == ()
    [e] = res.partially_met
    reason, *windows = e.reasons
    assert (e.target_id, reason.code) == ("iss", ReasonCode.PARTIALLY_MET)
    assert reason.detail.startswith("2 of 4 wanted")
    # Every other pass is ruled out by its own per-station cap, at both stations.
    assert windows and {r.code for r in windows} == {ReasonCode.LOST_TO_SAME_SATELLITE_LIMIT}
    assert {r.station_id for r in windows} == {s.station_id for s in STATIONS}
    assert all("per-station cap" in r.detail for r in windows)
    wire = plan_response_to_proto(res)
    assert [(x.target_id, x.reasons[0].code) for x in wire.partially_met] == [
        ("iss", scheduler_pb2.REASON_CODE_PARTIALLY_MET)
    ]
    assert all(x.HasField("window") for x in wire.partially_met[0].reasons[1:])
    # Met in full: no explanation.
    full = PlanRequest(WINDOW, STATIONS, [PlanTarget(iss_like("iss"), Demand(max_per_period=2, period_s=86400.0))])
    assert compute_plan(full).partially_met == ()
