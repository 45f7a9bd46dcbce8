"""Large-neighbourhood search: re-solve one time window exactly with CP-SAT while the rest of the plan stays fixed.

A whole-day CP-SAT model of the TALOS workload needs ~4 s of presolve on 2 cores before it searches and then mostly
returns its hint within 10 s (reference §3); a 2 h window of the same day is ~1/12 of the model, solves to
optimality in a fraction of a second, and - unlike the rolling horizon - sees the plan on both sides of it.
Windows tile the horizon (shifted by half a window every other sweep), the incumbent is the complete hint of each
window, and a window's answer is taken only when it is better, so the plan improves monotonically from greedy.

Imports: numpy and the scheduler's kernel modules (OR-Tools through `cpmodel`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from skymesh.scheduler.cpmodel import solve_clique_model
from skymesh.scheduler.kernel import FrozenPlacement, Problem

__all__ = ["ImproveResult", "frozen_of", "improve_by_windows"]


@dataclass(frozen=True)
class ImproveResult:
    selected: list[int]
    objective: float
    windows: int
    improved: int
    proven: int  # windows solved to optimality
    deterministic_s: float = 0.0  # CP-SAT deterministic time spent over all windows
    wall_limited: bool = False  # the wall-clock limit stopped the sweep before its deterministic budget


def frozen_of(problem: Problem, i: int) -> FrozenPlacement:
    ops = problem.opportunities
    return FrozenPlacement(
        int(ops.resource[i]),
        int(ops.request[i]),
        float(ops.start_s[i]),
        float(ops.end_s[i]),
        float(ops.value[i]),
        start_pointing_deg=None if math.isnan(ops.az0[i]) else (float(ops.az0[i]), float(ops.el0[i])),
        end_pointing_deg=None if math.isnan(ops.az1[i]) else (float(ops.az1[i]), float(ops.el1[i])),
    )


def improve_by_windows(
    problem: Problem,
    selected: list[int],
    *,
    time_limit_s: float,
    window_s: float = 7200.0,
    window_limit_s: float = 2.0,
    max_window_candidates: int = 5000,
    num_workers: int = 2,
    seed: int = 0,
    deterministic_time_s: float = 0.0,
    window_deterministic_s: float = 0.0,
    max_windows: int = 0,
) -> ImproveResult:
    """Sweep windows of `window_s` over the horizon until `time_limit_s`; returns the best plan found.

    Deterministic mode (`deterministic_time_s` > 0, one worker): windows are visited in a fixed order, each stops
    after at most `window_deterministic_s` of CP-SAT's deterministic time (default: a quarter of the budget), and the
    sweep stops when their sum reaches `deterministic_time_s`, so the plan depends on the input and seed only.
    `max_windows` > 0 stops after that many windows (deterministic too, with one worker: each window then stops
    after `window_deterministic_s`, default 1, of deterministic time). `time_limit_s` (wall clock) still stops it
    on an overloaded machine; `wall_limited` then says so.

    A window holding more than `max_window_candidates` opportunities is cut further by resource: the resources are
    dealt at random into groups and each (window, group) neighbourhood is re-solved in turn (200 stations x 1000
    satellites put ~77 k candidates into one 2 h window, which CP-SAT does not solve in 10 s; reference §3).
    """
    t0 = time.perf_counter()
    ops = problem.opportunities
    current = set(selected)
    if len(ops) == 0:
        return ImproveResult(sorted(current), 0.0, 0, 0, 0)
    rng = np.random.default_rng(seed)
    start, resource = ops.start_s, ops.resource
    lo, hi = float(start.min()), float(start.max())
    # Each sweep tiles the horizon with disjoint windows (the whole day is revisited once per sweep); odd sweeps
    # shift the tiling by half a window so that what straddled a boundary gets its turn.
    stride = window_s
    windows = improved = proven = 0
    offset = 0.0
    idle_sweeps = sweep = 0
    grouped = False
    improved_this_sweep = False
    group_of = np.zeros(len(problem.resources), dtype=np.int64)
    spent = 0.0
    deterministic = deterministic_time_s > 0 or max_windows > 0
    if deterministic_time_s <= 0 and max_windows:
        deterministic_time_s = math.inf  # counted windows, each capped by its own deterministic time
    per_window = window_deterministic_s or (deterministic_time_s / 4.0 if math.isfinite(deterministic_time_s) else 1.0)
    wall_limited = False
    while True:
        if time.perf_counter() - t0 >= time_limit_s:
            wall_limited = True
            break
        if deterministic_time_s > 0 and spent >= deterministic_time_s:
            break
        if max_windows and windows >= max_windows:
            break
        a = lo + offset
        if a > hi:
            idle_sweeps = 0 if improved_this_sweep else idle_sweeps + 1
            if idle_sweeps >= 2 and not grouped:
                break  # every window is at its optimum around the rest of the plan
            improved_this_sweep = False
            sweep += 1
            offset = window_s / 2.0 if sweep % 2 else 0.0
            continue
        b = a + window_s
        offset += stride
        in_window = (start >= a) & (start < b)
        count = int(in_window.sum())
        if count == 0:
            continue
        groups = max(1, math.ceil(count / max_window_candidates))
        if groups > 1:
            grouped = True
            perm = rng.permutation(len(problem.resources))
            group_of[perm] = np.arange(len(perm)) % groups
        for g in range(groups):
            left = time_limit_s - (time.perf_counter() - t0)
            if left < 0.2:
                wall_limited = True
                break
            if (deterministic_time_s > 0 and spent >= deterministic_time_s) or (max_windows and windows >= max_windows):
                break
            free_mask = in_window if groups == 1 else in_window & (group_of[resource] == g)
            inside = np.flatnonzero(free_mask)
            freed = {i for i in current if free_mask[i]}
            sub = Problem(
                problem.requests,
                problem.resources,
                ops.take(inside),
                [*problem.frozen, *(frozen_of(problem, i) for i in current - freed)],
            )
            local = {int(i): k for k, i in enumerate(inside.tolist())}
            hint = [local[i] for i in freed]
            before = float(ops.value[sorted(freed)].sum()) if freed else 0.0
            res = solve_clique_model(
                sub,
                hint,
                time_limit_s=left if deterministic else min(window_limit_s, left),
                num_workers=num_workers,
                seed=seed,
                small=True,
                deterministic_time_s=min(per_window, deterministic_time_s - spent) if deterministic_time_s > 0 else 0,
            )
            spent += res.deterministic_s
            windows += 1
            proven += res.status == "OPTIMAL"
            after = float(sub.opportunities.value[res.selected].sum()) if res.selected else 0.0
            if res.selected and after > before + 1e-9 * max(1.0, before):
                current = (current - freed) | {int(inside[k]) for k in res.selected}
                improved += 1
                improved_this_sweep = True
    chosen = sorted(current)
    objective = float(ops.value[chosen].sum()) if chosen else 0.0
    return ImproveResult(chosen, objective, windows, improved, proven, spent, wall_limited)
