"""The optimising planner ("cpsat"): the clique model solved by OR-Tools (HiGHS through MathOpt, and CP-SAT).

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

import numpy as np
from numpy.typing import NDArray

from skymesh.scheduler.bounds import compute_bounds, usable_mask
from skymesh.scheduler.exact import ExactResult, solve_exact
from skymesh.scheduler.greedy import GreedyPlanner, greedy_fill
from skymesh.scheduler.improve import ImproveResult
from skymesh.scheduler.isolation import Isolated, run_isolated
from skymesh.scheduler.kernel import Plan, Problem, check_plan
from skymesh.scheduler.lagrange import LagrangianBound, lagrangian_bound, lagrangian_search
from skymesh.scheduler.lpguided import LpGuidedResult, LpValues, repair_from_lp

__all__ = ["CpSatPlanner"]

log = logging.getLogger(__name__)


def _global_child(problem: Problem, deadline: float, seed: int) -> ExactResult:
    return solve_exact(problem, time_limit_s=max(0.1, deadline - wall_time.time()), seed=seed)


# Children get wall-clock deadlines (time.time()), not durations: spawning and importing take a second or two.
def _lns_child(problem: Problem, selected: list[int], deadline: float, num_workers: int, seed: int) -> ImproveResult:
    from skymesh.scheduler.improve import improve_by_windows

    left = max(0.2, deadline - wall_time.time())
    return improve_by_windows(problem, selected, time_limit_s=left, num_workers=num_workers, seed=seed)


def _lagrangian_child(problem: Problem, plan: list[int], target: float, deadline: float) -> LagrangianBound:
    return lagrangian_search(problem, plan=plan, target=target, time_limit_s=max(0.2, deadline - wall_time.time()))


def _lp_child(
    problem: Problem, deadline: float, rins_s: float, windows: int, seed: int, fix_deadline: float | None = None
) -> LpGuidedResult:
    """The LP-guided search; in a child, it hands the LP's values to the parent as soon as the LP ends."""
    from skymesh.scheduler.isolation import report_progress
    from skymesh.scheduler.lpguided import solve_lp_guided

    return solve_lp_guided(
        problem,
        deadline=deadline,
        rins_deterministic_s=rins_s,
        lns_windows=windows,
        seed=seed,
        on_lp=report_progress,
        fix_deadline=fix_deadline,
    )


_MIN_SEARCH_S = 2.5
_FILL_MAX_CANDIDATES = 200_000
# Setting up the Lagrangian (its per-resource layout) costs about 1 us of CPU per candidate before its first
# evaluation (6.4 s at 500 x 3,000 x 24 h, 6.3 M candidates; measured at load 7-8), whatever its time limit: with less
# budget left than that, the greedy plan and the cheap bound are the answer (a 10 s call had taken 25 s).
_LAGRANGIAN_SETUP_S_PER_CANDIDATE = 1.5e-6
# Above this many usable candidates the LP relaxation is not worth its time (200 x 1,000 x 24 h: 835 k); the
# windows + Lagrangian search takes over.
_LP_MAX_CANDIDATES = 150_000
# Deterministic work per second of the time limit. Calibrated on the TALOS day on 2 busy cores, where one
# deterministic second of CP-SAT took 0.5-3 wall seconds: RINS gets a fifth of the limit; the LNS after RINS one 2 h
# window per second of the limit beyond the first 5.
_RINS_DETERMINISTIC_PER_S = 0.2
_LNS_FREE_S = 5.0
# Wall seconds a starved child's answer (a plan's ids) may take to reach the parent.
_ANSWER_S = 0.15


class CpSatPlanner:
    """Greedy, then: the whole model when it is small, the LP-guided search (LP, RINS, windows) when it is mid-sized,
    windows plus a Lagrangian bound beyond.

    Up to `global_max_candidates` usable opportunities the clique model of the whole horizon is solved exactly by
    HiGHS (`skymesh.scheduler.exact`; on 1,500 candidates it proved the optimum in 0.7 s where CP-SAT took 10 s with
    two workers and did not finish in 20 s with the one worker that makes it deterministic). Up to 150 k,
    `skymesh.scheduler.lpguided` (the LP bound is also the plan's bound). Above, a whole-day model spends most of a
    10 s budget in presolve and returns its hint (reference §3), so CP-SAT re-solves 2 h windows around the
    incumbent instead, while a second process (with `isolate`) runs `lagrangian_search`: the Lagrangian bound with
    multipliers from a restricted LP, and a greedy pass in that LP's order, kept when it beats the windows' plan
    (200 x 1,000 x 24 h: the windows add ~0.002 % to greedy, the LP's order ~0.1 %). Without `isolate` the two share
    the budget 65/35.

    The greedy plan every search starts from, and falls back to, always completes, even past the limit on a starved
    machine: at load 8.5 on 2 cores, a pass cut by the deadline gave 68.7 % of the optimum where the whole pass (1.7 s
    there, 0.3 s unloaded) gives 99.6 %.

    Deterministic: HiGHS runs single-threaded; CP-SAT runs with one worker and the seed given, and stops on
    deterministic time (or a window count) scaled to the limit, not on the wall clock; the wall-clock deadline only
    cuts a run short on an overloaded machine (the status then says WALL_DEADLINE or WATCHDOG_KILLED). The windows +
    Lagrangian path for the largest problems is not deterministic.
    """

    name = "cpsat"

    def __init__(
        self,
        *,
        num_workers: int = 2,
        seed: int = 0,
        isolate: bool = False,
        memory_limit_bytes: int = 8 << 30,
        watchdog_grace_s: float = 0.3,
        global_max_candidates: int = 6000,
        lp_max_candidates: int = _LP_MAX_CANDIDATES,
    ) -> None:
        self.num_workers = num_workers
        self.seed = seed
        self.isolate = isolate
        self.memory_limit_bytes = memory_limit_bytes
        self.watchdog_grace_s = watchdog_grace_s
        self.global_max_candidates = global_max_candidates
        self.lp_max_candidates = lp_max_candidates

    def solve(
        self, problem: Problem, *, time_limit_s: float, hint: Plan | None = None, work_limit_s: float | None = None
    ) -> Plan:
        """Plan within `time_limit_s` of wall time. `work_limit_s` (default: `time_limit_s`) sizes the deterministic
        work; a caller that spent part of its limit elsewhere (visibility) passes its nominal limit here, so that the
        plan does not depend on how long that took."""
        t0 = time.perf_counter()
        deadline = wall_time.time() + time_limit_s
        work_s = time_limit_s if work_limit_s is None else work_limit_s
        usable = usable_mask(problem)
        n_usable = int(usable.sum())
        timings: dict[str, float] = {}
        if self.global_max_candidates < n_usable <= self.lp_max_candidates:
            return self._lp_guided(problem, hint, work_s, deadline, usable, t0)
        greedy = hint if hint is not None else GreedyPlanner().solve(problem)
        t1 = time.perf_counter()
        cheap = compute_bounds(problem, usable)
        timings.update(greedy_s=t1 - t0, bound_s=time.perf_counter() - t1)
        budget = max(0.2, deadline - wall_time.time())
        selected, bounds, status = greedy.selected, [cheap.best], "GREEDY"
        if n_usable <= self.global_max_candidates:
            t2 = time.perf_counter()
            args = (problem, deadline, self.seed)
            res = (
                run_isolated(
                    _global_child,
                    args,
                    timeout_s=budget + self.watchdog_grace_s,
                    memory_limit_bytes=self.memory_limit_bytes,
                )
                if self.isolate
                else _global_child(*args)
            )
            timings["global_s"] = time.perf_counter() - t2
            if res is None:
                status = "WATCHDOG_KILLED"
            else:
                timings["global_build_s"] = res.build_s
                status = res.status
                bounds.append(res.bound)
                if res.selected:
                    selected = res.selected
        else:
            selected, status, lagr = self._windows_and_bound(problem, greedy, budget, timings)
            if lagr is not None:
                bounds.append(lagr)
        return self._finish(problem, greedy, selected, bounds, status, timings, t0)

    def _finish(
        self,
        problem: Problem,
        greedy: Plan,
        selected: list[int],
        bounds: list[float],
        status: str,
        timings: dict[str, float],
        t0: float,
    ) -> Plan:
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

    def _lp_guided(
        self,
        problem: Problem,
        hint: Plan | None,
        work_s: float,
        deadline: float,
        usable: NDArray[np.bool_],
        t0: float,
    ) -> Plan:
        """LP-guided search in a child (with `isolate`) while this process computes the greedy fallback.

        The child hands over the LP's values as soon as its LP ends; when the child has not answered by the time
        this process needs for a greedy pass before the deadline (or answered without a complete step), this
        process repairs the LP itself (`repair_from_lp`: the same fix and solve as the child's step 2, else the
        LP-ordered pass): on a starved machine (the child got 0.2-0.45 of a core at load 7-13 on 2 cores) the
        child's own steps are often cut by the deadline, and this one then still completes. The plan is the best of
        the plain greedy one, this repair and the child's answer (which, when it comes complete, includes the same
        step: every step is deterministic), so it depends only on which steps were reached."""
        timings: dict[str, float] = {}
        windows = max(0, int(work_s - _LNS_FREE_S))
        # The child's fix and solve step may use the watchdog's grace, less the time its small answer takes to come
        # back: measured at load 9-10, a child whose LP ended just before its deadline skipped the step and the
        # parent's own repair then ended 0.7 s past the limit.
        fix_deadline = deadline + max(0.0, self.watchdog_grace_s - _ANSWER_S)
        args = (problem, deadline - 0.1, _RINS_DETERMINISTIC_PER_S * work_s, windows, self.seed, fix_deadline)
        job = Isolated.start(_lp_child, args, memory_limit_bytes=self.memory_limit_bytes) if self.isolate else None
        t1, c1 = time.perf_counter(), time.process_time()
        greedy = hint if hint is not None else GreedyPlanner().solve(problem)
        cheap = compute_bounds(problem, usable)
        timings["greedy_s"], timings["greedy_cpu_s"] = time.perf_counter() - t1, time.process_time() - c1
        res: LpGuidedResult | None
        parent_selected: list[int] = []
        parent_step = ""
        bounds = [cheap.best]
        if job is not None:
            end = deadline + self.watchdog_grace_s
            # This process's own pass just took `greedy_s` of wall: the repair from the LP (rows, fix and solve, ~0.13
            # s of CPU on the TALOS day) is about the same work, so it starts that long before the end unless the child
            # has answered by then (a second copy running beside the child's would slow the child down: measured, the
            # child then missed RINS at load 5-7 on 2 cores).
            start_by = end - timings["greedy_s"]
            got, lp = job.progress(end - wall_time.time())
            res = None
            if got and isinstance(lp, LpValues):
                bounds.append(lp.bound)
                # LP values that come after `start_by` leave no time for a repair here: the child, whose fix and
                # solve step may run into the watchdog's grace, is then the better bet (measured at load 9-10: a repair
                # started that late ended 0.7 s past the limit).
                late = wall_time.time() > start_by
                answered = job.answered(start_by - wall_time.time())
                if answered:
                    res = job.result(0.0)
                # A child cut before its fix-and-solve step proved an optimum and before its own LP-ordered pass went
                # through (`complete`) may have less than that pass: this process, idle by now, runs it itself.
                if not late and (res is None or not res.complete):
                    t2, c2 = time.perf_counter(), time.process_time()
                    parent_selected, parent_step = repair_from_lp(
                        problem, lp, time_limit_s=end - wall_time.time(), seed=self.seed
                    )
                    timings["parent_repair_s"] = time.perf_counter() - t2
                    timings["parent_repair_cpu_s"] = time.process_time() - c2
            if res is None:
                res = job.result(end - wall_time.time())
            timings["child_peak_rss_gb"] = job.peak_rss_bytes / 1e9
        else:
            res = _lp_child(*args)
        timings["search_s"] = time.perf_counter() - t1
        selected, status = greedy.selected, "WATCHDOG_KILLED"
        if res is not None:
            timings.update(res.timings_s)
            bounds.append(res.bound)
            selected, status = res.selected, res.status
        value = problem.opportunities.value
        if parent_selected and float(value[parent_selected].sum()) > float(value[selected].sum()):
            # The child's answer, when it came complete, includes this step; so this one wins only over a cut child.
            selected, status = parent_selected, f"{parent_step}_IN_PARENT+" + status
        return self._finish(problem, greedy, selected, bounds, status, timings, t0)

    def _windows_and_bound(
        self, problem: Problem, greedy: Plan, budget: float, timings: dict[str, float]
    ) -> tuple[list[int], str, float | None]:
        t2 = time.perf_counter()
        lns: ImproveResult | None
        lagr: LagrangianBound | None
        if budget < _MIN_SEARCH_S and budget < _LAGRANGIAN_SETUP_S_PER_CANDIDATE * len(problem.opportunities):
            # No time left even to set up the bound's relaxation: the greedy plan and the cheap bound stand.
            timings["search_s"] = 0.0
            return greedy.selected, "GREEDY(no time left for a search)", None
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
                _lagrangian_child,
                (problem, greedy.selected, greedy.objective, deadline),
                memory_limit_bytes=self.memory_limit_bytes,
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
            lagr = lagrangian_search(
                problem,
                plan=lns.selected,
                target=lns.objective,
                time_limit_s=max(0.2, budget - (time.perf_counter() - t2)),
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
            timings["lp_rounds"] = float(lagr.lp_rounds)
            value = problem.opportunities.value
            if lagr.selected and float(value[lagr.selected].sum()) > float(value[selected].sum()):
                selected = lagr.selected
                status = "LP-GREEDY+" + status
            status += f"+LAGRANGIAN({lagr.lp_rounds} LP rounds, {lagr.iterations} evaluations)"
        return selected, status, None if lagr is None else lagr.bound


def check_plan_fast(problem: Problem, selected: list[int]) -> bool:
    """True when the selection breaks a rule (a defect guard: CP-SAT's answer should always be feasible)."""
    if len(selected) > 20_000:
        return False
    broken = check_plan(problem, selected)
    if broken:
        log.error("CP-SAT returned an infeasible plan: %s", broken[:3])
    return bool(broken)
