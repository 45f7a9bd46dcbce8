"""`skymesh.scheduler.highs`: the one HiGHS call the exact, Lagrangian and LP-guided planners share."""

from __future__ import annotations

import numpy as np
from ortools.math_opt import result_pb2

from skymesh.scheduler.cliques import ModelRows
from skymesh.scheduler.exact import model_proto
from skymesh.scheduler.highs import feasible_columns, solve_highs, solve_parameters


def _model(*, integers: bool) -> object:
    # Opportunities 3, 5, 8 (values 2, 3, 2): 3 and 5 clash, 5 and 8 clash; the optimum takes 3 and 8 (4 > 3).
    rows = ModelRows()
    rows.capped.extend([([3, 5], 1), ([5, 8], 1)])
    return model_proto(np.array([2.0, 3.0, 2.0]), np.array([3, 5, 8], dtype=np.int64), rows, 10, integers=integers)


def test_the_mip_and_the_lp_solve_to_their_optimum() -> None:
    mip = solve_highs(_model(integers=True), solve_parameters(10.0, seed=1, relative_gap=1e-6, presolve=False))
    assert mip.termination.reason == result_pb2.TERMINATION_REASON_OPTIMAL
    cols = feasible_columns(mip)
    assert cols is not None and sorted(cols.tolist()) == [0, 2]  # model columns of opportunities 3 and 8
    lp = solve_highs(_model(integers=False), solve_parameters(10.0, presolve=False, lp_solver="ipm"))
    assert lp.termination.reason == result_pb2.TERMINATION_REASON_OPTIMAL
    assert abs(lp.termination.objective_bounds.primal_bound - 4.0) < 1e-6
    assert any(s.HasField("dual_solution") for s in lp.solutions)


def test_parameters_set_only_what_the_caller_chose() -> None:
    p = solve_parameters(0.01).to_proto()
    assert p.time_limit.seconds == 0 and p.time_limit.nanos == 100_000_000  # the 0.1 s floor
    assert not p.HasField("random_seed") and not p.HasField("relative_gap_tolerance")
    assert dict(p.highs.string_options) == {}  # presolve and the LP method: HiGHS' defaults
    q = solve_parameters(0.01, min_time_limit_s=0.05, seed=7, presolve=False, lp_solver="ipm").to_proto()
    assert q.time_limit.nanos == 50_000_000 and q.random_seed == 7
    assert dict(q.highs.string_options) == {"presolve": "off", "solver": "ipm"}


def test_no_feasible_solution_is_none() -> None:
    assert feasible_columns(result_pb2.SolveResultProto()) is None
