"""One HiGHS solve through OR-Tools MathOpt, for the planners that solve a `exact.model_proto`: the exact MIP
(`exact.solve_exact`), the simplex LP (`exact.solve_lp`), the interior-point LP of the Lagrangian's restricted
master (`lagrange`) and the fixed-column MIP (`lpguided.fix_and_solve`).

The MathOpt call takes nine positional arguments, most of them empty; it is written once here, and each caller
names only the HiGHS options it chose (and measured) for its model. Nothing else is set: HiGHS' own defaults apply.

Imports: numpy, and ortools lazily (the planners call this in their solver children).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["feasible_columns", "solve_highs", "solve_parameters"]


def solve_parameters(
    time_limit_s: float,
    *,
    min_time_limit_s: float = 0.1,
    seed: int | None = None,
    relative_gap: float | None = None,
    presolve: bool = True,
    lp_solver: str | None = None,
) -> Any:
    """MathOpt's `SolveParameters` for HiGHS: a time limit of at least `min_time_limit_s`; `seed` and `relative_gap`
    only when given; HiGHS' `presolve` "off" when not `presolve`; its `solver` option ("ipm", "simplex") when given."""
    from ortools.math_opt.python import mathopt

    params = mathopt.SolveParameters(
        time_limit=timedelta(seconds=max(min_time_limit_s, time_limit_s)),
        random_seed=seed,
        relative_gap_tolerance=relative_gap,
    )
    if not presolve:
        params.highs.string_options["presolve"] = "off"
    if lp_solver is not None:
        params.highs.string_options["solver"] = lp_solver
    return params


def solve_highs(model: Any, params: Any) -> Any:
    """Solve the MathOpt `ModelProto` `model` with HiGHS under `params` (`solve_parameters`), in this process, with
    no callback and no model parameters; MathOpt's `SolveResultProto` (termination, solutions, duals)."""
    from ortools.math_opt import model_parameters_pb2, parameters_pb2
    from ortools.math_opt.core.python import solver
    from ortools.math_opt.python import mathopt

    return solver.solve(
        model,
        mathopt.SolverType.HIGHS.value,
        parameters_pb2.SolverInitializerProto(),
        params.to_proto(),
        model_parameters_pb2.ModelSolveParametersProto(),
        None,
        mathopt.CallbackRegistration().to_proto(),
        None,
        None,
    )


def feasible_columns(answer: Any) -> NDArray[np.int64] | None:
    """The columns at 1 (value above 0.5) of the first feasible solution of `answer`, in MathOpt's order; None when
    HiGHS returned no feasible solution."""
    from ortools.math_opt import solution_pb2

    for sol in answer.solutions:
        if sol.primal_solution.feasibility_status == solution_pb2.SOLUTION_STATUS_FEASIBLE:
            vals = np.asarray(sol.primal_solution.variable_values.values)
            cols = np.asarray(sol.primal_solution.variable_values.ids, dtype=np.int64)
            return cols[vals > 0.5]
    return None
