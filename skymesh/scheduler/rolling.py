"""Rolling horizon: CP-SAT over consecutive chunks (2 h by default), each chunk's decisions frozen for the next.

Myopic, but each chunk is small enough for CP-SAT to finish: 99.98 % of the optimum in 11.7 s on the 50 x 200 TALOS
day (reference §3), against 99.56 % for one 10 s solve of the whole day. The same frozen-job machinery keeps jobs the
server has already dispatched. The result is never below the greedy plan of the whole horizon.

Imports: numpy and the scheduler's kernel modules.
"""

from __future__ import annotations

import time

import numpy as np

from skymesh.scheduler.bounds import compute_bounds
from skymesh.scheduler.cpsat import CpSatPlanner
from skymesh.scheduler.greedy import GreedyPlanner
from skymesh.scheduler.improve import frozen_of
from skymesh.scheduler.kernel import Plan, Problem
from skymesh.scheduler.lagrange import lagrangian_bound

__all__ = ["RollingHorizonPlanner"]


class RollingHorizonPlanner:
    name = "rolling"

    def __init__(self, *, chunk_s: float = 7200.0, num_workers: int = 2, isolate: bool = False) -> None:
        if not chunk_s > 0:
            raise ValueError("chunk_s must be positive")
        self.chunk_s = chunk_s
        self.cpsat = CpSatPlanner(num_workers=num_workers, isolate=isolate)

    def solve(self, problem: Problem, *, time_limit_s: float) -> Plan:
        t0 = time.perf_counter()
        ops = problem.opportunities
        greedy = GreedyPlanner().solve(problem)
        chunk = np.floor(ops.start_s / self.chunk_s).astype(np.int64) if len(ops) else np.zeros(0, dtype=np.int64)
        chunks = np.unique(chunk).tolist()
        frozen = list(problem.frozen)
        selected: list[int] = []
        statuses: list[str] = []
        for n, c in enumerate(chunks):
            idx = np.flatnonzero(chunk == c)
            sub = Problem(problem.requests, problem.resources, ops.take(idx), frozen)
            left = time_limit_s - (time.perf_counter() - t0)
            budget = max(0.5, left / (len(chunks) - n))
            plan = self.cpsat.solve(sub, time_limit_s=budget)
            statuses.append(plan.status)
            for j in plan.selected:
                i = int(idx[j])
                selected.append(i)
                frozen.append(frozen_of(problem, i))
        objective = float(ops.value[selected].sum()) if selected else 0.0
        status = f"ROLLING({len(chunks)} chunks: {statuses.count('OPTIMAL')} optimal)"
        if objective < greedy.objective:
            selected, objective, status = greedy.selected, greedy.objective, status + "+GREEDY"
        lagr = lagrangian_bound(problem, target=objective, time_limit_s=max(0.2, 0.1 * time_limit_s))
        bound = max(objective, min(compute_bounds(problem).best, lagr.bound))
        return Plan(
            selected=sorted(selected),
            objective=objective,
            bound=bound,
            solver=self.name,
            optimal=bound - objective <= 1e-9 * max(1.0, bound),
            runtime_s=time.perf_counter() - t0,
            status=status,
            timings_s={"greedy_s": greedy.runtime_s},
            greedy_objective=greedy.objective,
        )
