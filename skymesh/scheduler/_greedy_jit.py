"""The greedy pass compiled (numba): `greedy.Occupancy.can_place` / `place` over arrays, same decisions.

Optional: `greedy.compiled_greedy()` imports this module only when numba is importable, and the pass runs here only
when no resource has a known rotator travel (those slews go through `Problem.slew_between_s`'s cable-wrap model,
which stays in Python). Every rule is evaluated with the same floating-point operations in the same order as
`Occupancy`, so the plans are identical (tests/scheduler/test_greedy_fast.py).

State, all flat arrays: per resource a sorted lane (starts, ends, job) in a slice of capacity "jobs that could go
there"; per request its placed spans sorted by start, its count and longest span; a count per (request, period bin)
and per (request, resource, station bin). Jobs are the opportunities, then the frozen placements (index n + k).

Runtime imports: numpy and numba only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(f: _F) -> _F:
    return cast(_F, numba.njit(cache=True, error_model="numpy")(f))


@_jit
def _move_s(d: float, rate: float, accel: float) -> float:
    """`rotator.axis_move_time_s` for one move."""
    d = abs(d)
    if accel <= 0:
        return d / rate
    ramp_deg = rate * rate / accel
    if d >= ramp_deg:
        return d / rate + rate / accel
    return 2.0 * math.sqrt(d / accel)


@_jit
def _slew_s(az1: float, el1: float, az0: float, el0: float, motion: F64) -> float:
    """`Resource.slew_s` without a rotator: (az1, el1) to (az0, el0), azimuth the short way round; 0 if unknown."""
    if math.isnan(az1) or math.isnan(az0):
        return 0.0
    daz = abs((az0 - az1 + 180.0) % 360.0 - 180.0)
    t_az = _move_s(daz, motion[0], motion[1])
    t_el = _move_s(el0 - el1, motion[2], motion[3])
    if math.isnan(t_az) or math.isnan(t_el):
        return math.nan
    return t_az if t_az >= t_el else t_el


@_jit
def _clash(
    r: int, before: int, end_s: float, after: int, start_s: float, turn: F64, max_slew: F64, motion: F64, pt: F64
) -> bool:
    """`Occupancy._clash`: does job `after` (starting at start_s) start too soon after `before` (ending at end_s)?"""
    free_s = start_s - end_s - turn[r]
    if free_s < 0:
        return True
    if free_s >= max_slew[r]:
        return False
    gap = turn[r] + _slew_s(pt[before, 2], pt[before, 3], pt[after, 0], pt[after, 1], motion[r])
    return bool(end_s + gap > start_s)


@_jit
def _bisect_right(a: F64, lo: int, hi: int, x: float) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@_jit
def _bisect_left(a: F64, lo: int, hi: int, x: float) -> int:
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _insert_sorted(starts: F64, ends: F64, jobs: I64 | None, lo: int, n: int, s: float, e: float, job: int) -> None:
    """Put the span (s, e) (and `job`, where the slice has `jobs`) into the slice [lo, lo + n) kept sorted by start,
    after the spans that start at s; the slice has room for one more. One loop moves all the arrays: for `jobs` None
    numba compiles a version without them (the `is None` branches are pruned at compile time)."""
    pos = _bisect_right(starts, lo, lo + n, s)
    for k in range(lo + n, pos, -1):
        starts[k] = starts[k - 1]
        ends[k] = ends[k - 1]
        if jobs is not None:
            jobs[k] = jobs[k - 1]
    starts[pos] = s
    ends[pos] = e
    if jobs is not None:
        jobs[pos] = job


@_jit
def _can_place(
    i: int,
    job_res: I64,
    job_req: I64,
    job_s: F64,
    job_e: F64,
    pt: F64,
    pbin: I64,
    sbin: I64,
    turn: F64,
    max_slew: F64,
    motion: F64,
    rq_rules: F64,
    lane_off: I64,
    lane_n: I64,
    lane_s: F64,
    lane_e: F64,
    lane_j: I64,
    rq_off: I64,
    rq_n: I64,
    rq_s: F64,
    rq_e: F64,
    rq_longest: F64,
    rq_total: I64,
    pbin_n: I64,
    sbin_n: I64,
) -> bool:
    r, q, s, e = job_res[i], job_req[i], job_s[i], job_e[i]
    lo, n = lane_off[r], lane_n[r]
    pos = _bisect_right(lane_s, lo, lo + n, s)
    if pos > lo and _clash(r, lane_j[pos - 1], lane_e[pos - 1], i, s, turn, max_slew, motion, pt):
        return False
    if pos < lo + n and _clash(r, i, e, lane_j[pos], lane_s[pos], turn, max_slew, motion, pt):
        return False
    # rq_rules columns: max_total, max_per_period, max_per_station, cadence_s, redundancy
    max_total = rq_rules[q, 0]
    if max_total > 0 and rq_total[q] >= max_total:
        return False
    if pbin[i] >= 0 and pbin_n[pbin[i]] >= rq_rules[q, 1]:
        return False
    if sbin[i] >= 0 and sbin_n[sbin[i]] >= rq_rules[q, 2]:
        return False
    qlo, qn = rq_off[q], rq_n[q]
    cadence_s = rq_rules[q, 3]
    if cadence_s > 0 and qn > 0:
        p = _bisect_left(rq_s, qlo, qlo + qn, s)
        if (p > qlo and s - rq_s[p - 1] < cadence_s) or (p < qlo + qn and rq_s[p] - s < cadence_s):
            return False
    if qn > 0:
        a = _bisect_left(rq_s, qlo, qlo + qn, s - rq_longest[q])
        b = _bisect_left(rq_s, qlo, qlo + qn, e)
        need = max(1, int(rq_rules[q, 4]))
        m = 0
        for k in range(a, b):
            if s < rq_e[k]:
                m += 1
        if m >= need:
            # Most overlapping spans active at one instant within [s, e) (`greedy._max_concurrency`).
            best = 0
            for k in range(a, b):
                if not s < rq_e[k]:
                    continue
                t = max(rq_s[k], s)
                c = 0
                for j in range(a, b):
                    if not s < rq_e[j]:
                        continue
                    if max(rq_s[j], s) <= t:
                        c += 1
                    if min(rq_e[j], e) <= t:
                        c -= 1
                best = max(best, c)
            if best >= need:
                return False
    return True


@_jit
def _insert(
    i: int,
    job_res: I64,
    job_req: I64,
    job_s: F64,
    job_e: F64,
    pbin: I64,
    sbin: I64,
    lane_off: I64,
    lane_n: I64,
    lane_s: F64,
    lane_e: F64,
    lane_j: I64,
    rq_off: I64,
    rq_n: I64,
    rq_s: F64,
    rq_e: F64,
    rq_longest: F64,
    rq_total: I64,
    pbin_n: I64,
    sbin_n: I64,
) -> None:
    r, q, s, e = job_res[i], job_req[i], job_s[i], job_e[i]
    _insert_sorted(lane_s, lane_e, lane_j, lane_off[r], lane_n[r], s, e, i)
    lane_n[r] += 1
    if q < 0:
        return
    _insert_sorted(rq_s, rq_e, None, rq_off[q], rq_n[q], s, e, i)
    rq_n[q] += 1
    rq_longest[q] = max(rq_longest[q], e - s)
    rq_total[q] += 1
    if pbin[i] >= 0:
        pbin_n[pbin[i]] += 1
    if sbin[i] >= 0:
        sbin_n[sbin[i]] += 1


@_jit
def run(
    order: I64,
    start: int,
    stop: int,
    force: bool,
    placed: I64,
    n_placed: I64,
    job_res: I64,
    job_req: I64,
    job_s: F64,
    job_e: F64,
    pt: F64,
    pbin: I64,
    sbin: I64,
    turn: F64,
    max_slew: F64,
    motion: F64,
    rq_rules: F64,
    lane_off: I64,
    lane_n: I64,
    lane_s: F64,
    lane_e: F64,
    lane_j: I64,
    rq_off: I64,
    rq_n: I64,
    rq_s: F64,
    rq_e: F64,
    rq_longest: F64,
    rq_total: I64,
    pbin_n: I64,
    sbin_n: I64,
) -> None:
    """Try jobs order[start:stop] in turn (place them without checking when `force`); placed ones are appended to
    `placed` (count in n_placed[0])."""
    for k in range(start, stop):
        i = order[k]
        if force or _can_place(
            i,
            job_res,
            job_req,
            job_s,
            job_e,
            pt,
            pbin,
            sbin,
            turn,
            max_slew,
            motion,
            rq_rules,
            lane_off,
            lane_n,
            lane_s,
            lane_e,
            lane_j,
            rq_off,
            rq_n,
            rq_s,
            rq_e,
            rq_longest,
            rq_total,
            pbin_n,
            sbin_n,
        ):
            _insert(
                i,
                job_res,
                job_req,
                job_s,
                job_e,
                pbin,
                sbin,
                lane_off,
                lane_n,
                lane_s,
                lane_e,
                lane_j,
                rq_off,
                rq_n,
                rq_s,
                rq_e,
                rq_longest,
                rq_total,
                pbin_n,
                sbin_n,
            )
            if i < len(placed):
                placed[n_placed[0]] = i
                n_placed[0] += 1


@_jit
def interval_dp(p: I64, v: F64) -> float:
    """Weighted interval scheduling over jobs sorted by finish: `bounds.resource_dp_bound`'s loop, same operations
    (`p[j]`: how many jobs finish by job j's start)."""
    n = len(v)
    dp = np.zeros(n + 1)
    for j in range(n):
        take = v[j] + dp[p[j]]
        dp[j + 1] = take if take > dp[j] else dp[j]
    return float(dp[n])
