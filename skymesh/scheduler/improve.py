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
from numpy.typing import NDArray

from skymesh.scheduler.cpmodel import solve_clique_model
from skymesh.scheduler.kernel import FrozenPlacement, Problem

__all__ = ["ImproveResult", "frozen_of", "improve_by_windows"]

I64 = NDArray[np.int64]


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


class _Reach:
    """Per resource and per request, how far in time a placement can constrain another (see `_interacting`)."""

    def __init__(self, problem: Problem) -> None:
        res = problem.resources
        self.pad_s = np.asarray([r.turnaround_s + r.max_slew_s for r in res], dtype=np.float64)
        reqs = problem.requests
        self.period_s = np.asarray([r.period_s if r.max_per_period else 0.0 for r in reqs], dtype=np.float64)
        self.cadence_s = np.asarray([r.cadence_s for r in reqs], dtype=np.float64)
        # Caps over the whole plan (max_total; max_per_station counts per station and bin, taken whole here).
        self.whole = np.asarray([bool(r.max_total or r.max_per_station) for r in reqs], dtype=bool)


def _interacting(problem: Problem, placed: NDArray[np.int64], inside: NDArray[np.int64], reach: _Reach) -> I64:
    """The placed opportunities that can constrain a neighbourhood's candidates `inside`; only these go into its
    sub-problem as frozen jobs, since the others change neither which candidates fit (`usable_mask`) nor any row.

    On a candidate's resource: placements within turnaround plus the longest slew of the neighbourhood's span. Of a
    candidate's request: placements overlapping the span (one contact at a time), in one of its demand periods,
    within its cadence of the span, or all of them when the request has a cap over the whole plan. On the 200 x
    1,000 day this keeps about 1,000 of ~12,000 placements, which took most of each window's time (the sweep, in
    process, 25 s at load 6-7: 52 windows before, 135 after).
    """
    if len(placed) == 0 or len(inside) == 0:
        return placed[:0]
    ops = problem.opportunities
    t_lo, t_hi = float(ops.start_s[inside].min()), float(ops.end_s[inside].max())
    p_res, p_req = ops.resource[placed], ops.request[placed]
    p_start, p_end = ops.start_s[placed], ops.end_s[placed]
    on_res = np.zeros(len(problem.resources), dtype=bool)
    on_res[ops.resource[inside]] = True
    pad = reach.pad_s[p_res]
    keep = on_res[p_res] & (p_end + pad > t_lo) & (p_start < t_hi + pad)
    on_req = np.zeros(len(problem.requests), dtype=bool)
    on_req[ops.request[inside]] = True
    mine = on_req[p_req] & ~keep
    if mine.any():
        cad = reach.cadence_s[p_req]
        near = (p_start < t_hi + cad) & (p_end > t_lo - cad)
        period = reach.period_s[p_req]
        has_period = period > 0
        bins = np.where(has_period, np.floor(p_start / np.where(has_period, period, 1.0)), -1.0)
        inside_period = reach.period_s[ops.request[inside]]
        inside_has = inside_period > 0
        inside_bins = np.where(
            inside_has, np.floor(ops.start_s[inside] / np.where(inside_has, inside_period, 1.0)), -1.0
        )
        same_bin = has_period & np.isin(
            p_req * 1_000_003 + bins, ops.request[inside][inside_has] * 1_000_003 + inside_bins[inside_has]
        )
        keep |= mine & (near | same_bin | reach.whole[p_req])
    out: I64 = placed[keep]
    return out


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
    reach = _Reach(problem)
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
            kept = _interacting(problem, np.fromiter(current - freed, dtype=np.int64), inside, reach)
            sub = Problem(
                problem.requests,
                problem.resources,
                ops.take(inside),
                [*problem.frozen, *(frozen_of(problem, i) for i in kept.tolist())],
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
