"""The optimising planner: OR-Tools CP-SAT on the clique model, warm-started with the complete greedy plan.

Measured on 2 cores (reference §3): presolve and model load take ~4 s at 46 k candidates, a *complete* feasible hint
is what lets CP-SAT return anything within 10 s, and its bound arrives late, so the cheap relaxation bound
(`skymesh.scheduler.bounds`) is always computed too and the smaller one is reported. The result is never worse than
the greedy plan: when CP-SAT has nothing better (or nothing at all), the greedy plan is returned.

`CpSatPlanner(isolate=True)` solves in a child process with an address-space cap and a watchdog
(`skymesh.scheduler.isolation`), because solvers do not always honour their limits.

Imports: numpy, ortools (lazily) and the scheduler's kernel modules.
"""

from __future__ import annotations

import logging
import time
import time as wall_time

from skymesh.scheduler.bounds import compute_bounds, usable_mask
from skymesh.scheduler.cpmodel import CpSatResult, solve_clique_model
from skymesh.scheduler.greedy import GreedyPlanner, greedy_fill
from skymesh.scheduler.improve import ImproveResult
from skymesh.scheduler.isolation import Isolated, run_isolated
from skymesh.scheduler.kernel import Plan, Problem, check_plan
from skymesh.scheduler.lagrange import LagrangianBound, lagrangian_bound

__all__ = ["CpSatPlanner"]

log = logging.getLogger(__name__)


def _global_child(problem: Problem, hint: list[int], time_limit_s: float, num_workers: int, seed: int) -> CpSatResult:
    return solve_clique_model(problem, hint, time_limit_s=time_limit_s, num_workers=num_workers, seed=seed)


# Children get wall-clock deadlines (time.time()), not durations: spawning and importing take a second or two.
def _lns_child(problem: Problem, selected: list[int], deadline: float, num_workers: int, seed: int) -> ImproveResult:
    from skymesh.scheduler.improve import improve_by_windows

    left = max(0.2, deadline - wall_time.time())
    return improve_by_windows(problem, selected, time_limit_s=left, num_workers=num_workers, seed=seed)


def _lagrangian_child(problem: Problem, target: float, deadline: float) -> LagrangianBound:
    return lagrangian_bound(problem, target=target, time_limit_s=max(0.2, deadline - wall_time.time()))


_MIN_SEARCH_S = 2.5
_FILL_MAX_CANDIDATES = 200_000


class CpSatPlanner:
    """Greedy, then CP-SAT: one whole model when it is small, else windows (LNS) plus a Lagrangian bound.

    Up to `global_max_candidates` usable opportunities the clique model of the whole horizon is solved (it proves
    optimality within seconds there). Above, a whole-day model spends most of a 10 s budget in presolve and returns
    its hint (reference §3), so CP-SAT re-solves 2 h windows around the incumbent instead, while a second process
    (with `isolate`) tightens the Lagrangian bound; without `isolate` the two share the budget 65/35.
    """

    name = "cpsat"

    def __init__(
        self,
        *,
        num_workers: int = 2,
        seed: int = 0,
        isolate: bool = False,
        memory_limit_bytes: int = 8 << 30,
        watchdog_grace_s: float = 5.0,
        global_max_candidates: int = 6000,
    ) -> None:
        self.num_workers = num_workers
        self.seed = seed
        self.isolate = isolate
        self.memory_limit_bytes = memory_limit_bytes
        self.watchdog_grace_s = watchdog_grace_s
        self.global_max_candidates = global_max_candidates

    def solve(self, problem: Problem, *, time_limit_s: float, hint: Plan | None = None) -> Plan:
        t0 = time.perf_counter()
        greedy = hint if hint is not None else GreedyPlanner().solve(problem)
        t1 = time.perf_counter()
        usable = usable_mask(problem)
        cheap = compute_bounds(problem, usable)
        timings = {"greedy_s": t1 - t0, "bound_s": time.perf_counter() - t1}
        budget = max(0.5, time_limit_s - (time.perf_counter() - t0))
        selected, bounds, status = greedy.selected, [cheap.best], "GREEDY"
        if int(usable.sum()) <= self.global_max_candidates:
            t2 = time.perf_counter()
            args = (problem, greedy.selected, budget, self.num_workers, self.seed)
            res = (
                run_isolated(
                    _global_child,
                    args,
                    timeout_s=budget + self.watchdog_grace_s,
                    memory_limit_bytes=self.memory_limit_bytes,
                )
                if self.isolate
                else solve_clique_model(
                    problem,
                    greedy.selected,
                    time_limit_s=budget,
                    num_workers=self.num_workers,
                    seed=self.seed,
                    usable=usable,
                )
            )
            timings["cpsat_s"] = time.perf_counter() - t2
            if res is None:
                status = "WATCHDOG_KILLED"
            else:
                timings["cpsat_build_s"] = res.build_s
                status = res.status
                bounds.append(res.bound)
                if res.selected:
                    selected = res.selected
        else:
            selected, status, lagr = self._windows_and_bound(problem, greedy, budget, timings)
            if lagr is not None:
                bounds.append(lagr)
        objective = float(problem.opportunities.value[selected].sum()) if selected else 0.0
        if objective < greedy.objective or check_plan_fast(problem, selected):
            selected, objective, status = greedy.selected, greedy.objective, status + "+GREEDY"
        bound = max(min(bounds), objective)
        return Plan(
            selected=sorted(selected),
            objective=objective,
            bound=bound,
            solver=self.name,
            optimal=status == "OPTIMAL" or bound - objective <= 1e-9 * max(1.0, bound),
            runtime_s=time.perf_counter() - t0,
            status=status,
            timings_s=timings,
            greedy_objective=greedy.objective,
        )

    def _windows_and_bound(
        self, problem: Problem, greedy: Plan, budget: float, timings: dict[str, float]
    ) -> tuple[list[int], str, float | None]:
        t2 = time.perf_counter()
        lns: ImproveResult | None
        lagr: LagrangianBound | None
        if budget < _MIN_SEARCH_S:
            # Too short for any window to pay off: spend it all on the bound, in-process.
            lagr = lagrangian_bound(problem, target=greedy.objective, time_limit_s=max(0.1, budget - 0.05))
            timings["search_s"] = time.perf_counter() - t2
            timings["lagrangian_iterations"] = float(lagr.iterations)
            return greedy.selected, "GREEDY+LAGRANGIAN", lagr.bound
        if self.isolate:
            deadline = wall_time.time() + budget - 0.3  # leave time to collect both answers
            # Two cores: the bound and the search run side by side, one CP-SAT worker for the search.
            lagr_job = Isolated.start(
                _lagrangian_child, (problem, greedy.objective, deadline), memory_limit_bytes=self.memory_limit_bytes
            )
            lns_job = Isolated.start(
                _lns_child,
                (problem, greedy.selected, deadline, max(1, self.num_workers - 1), self.seed),
                memory_limit_bytes=self.memory_limit_bytes,
            )
            lns = lns_job.result(budget + self.watchdog_grace_s - (time.perf_counter() - t2))
            lagr = lagr_job.result(max(0.0, budget + self.watchdog_grace_s - (time.perf_counter() - t2)))
            timings["child_peak_rss_gb"] = max(lns_job.peak_rss_bytes, lagr_job.peak_rss_bytes) / 1e9
        else:
            from skymesh.scheduler.improve import improve_by_windows

            lns = improve_by_windows(
                problem, greedy.selected, time_limit_s=0.65 * budget, num_workers=self.num_workers, seed=self.seed
            )
            lagr = lagrangian_bound(
                problem, target=lns.objective, time_limit_s=max(0.2, budget - (time.perf_counter() - t2))
            )
        timings["search_s"] = time.perf_counter() - t2
        selected, status = greedy.selected, "WATCHDOG_KILLED"
        if lns is not None:
            selected = lns.selected
            # A window's new answer can free time next to it that the frozen side could use: fill it greedily. It
            # added nothing on the TALOS day and costs ~8 us per candidate, so only where that is cheap.
            if len(problem.opportunities) <= _FILL_MAX_CANDIDATES:
                left = max(0.0, budget - (time.perf_counter() - t2))
                selected = greedy_fill(problem, lns.selected, time_limit_s=left)
            status = f"LNS({lns.windows} windows, {lns.improved} improved, {lns.proven} proven)"
            timings["lns_windows"] = float(lns.windows)
        if lagr is not None:
            timings["lagrangian_s"] = lagr.wall_s
            timings["lagrangian_iterations"] = float(lagr.iterations)
        return selected, status, None if lagr is None else lagr.bound


def check_plan_fast(problem: Problem, selected: list[int]) -> bool:
    """True when the selection breaks a rule (a defect guard: CP-SAT's answer should always be feasible)."""
    if len(selected) > 20_000:
        return False
    broken = check_plan(problem, selected)
    if broken:
        log.error("CP-SAT returned an infeasible plan: %s", broken[:3])
    return bool(broken)
