"""The 0/1 model of a `Problem` as clique and capacity constraints, shared by the exact solvers.

Why cliques: on fixed intervals, `AtMostOne` over the maximal cliques of each resource's interval graph (intervals
padded by turnaround) is the same feasible set as optional intervals + NoOverlap, but CP-SAT's LP sees it directly;
the textbook model found no solution in 10 s on the TALOS workload (reference §3, Table A). Slews longer than the
turnaround add pairwise constraints for the few pairs they separate. Requests add cliques for concurrency (at most
`redundancy` at once) and cadence (starts at least `cadence_s` apart), and capacity rows for demand periods and the
overall cap. Frozen jobs are already accounted for: only `usable` opportunities enter and capacities are reduced.

Imports: numpy and the kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from skymesh.scheduler.bounds import period_bins
from skymesh.scheduler.kernel import Problem

__all__ = ["ModelRows", "build_rows", "clique_rows", "maximal_cliques", "split_rows"]


@dataclass
class ModelRows:
    """Constraints over opportunity indices: sum(x[row]) <= cap.

    The at-most-one rows are kept as numpy chunks (members end to end, and each row's size), in row order: the TALOS
    day has ~47 k of them and Python lists per row cost more to build and to turn into a model than the solve."""

    capped: list[tuple[list[int], int]] = field(default_factory=list)
    forced_zero: list[int] = field(default_factory=list)
    _members: list[NDArray[np.int64]] = field(default_factory=list)
    _sizes: list[NDArray[np.int64]] = field(default_factory=list)

    def add_at_most_one(self, members: NDArray[np.int64], sizes: NDArray[np.int64]) -> None:
        """Append rows given as their members end to end and each row's size."""
        if len(sizes):
            self._members.append(np.asarray(members, dtype=np.int64))
            self._sizes.append(np.asarray(sizes, dtype=np.int64))

    def at_most_one_flat(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """All at-most-one rows: their members end to end and each row's size."""
        if not self._sizes:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(self._members), np.concatenate(self._sizes)

    @property
    def at_most_one(self) -> list[list[int]]:
        members, sizes = self.at_most_one_flat()
        return split_rows(members, sizes)

    @property
    def n_at_most_one(self) -> int:
        return sum(len(s) for s in self._sizes)

    @property
    def rows(self) -> int:
        return self.n_at_most_one + len(self.capped)


def split_rows(members: NDArray[np.int64], sizes: NDArray[np.int64]) -> list[list[int]]:
    """Rows given end to end as one list per row."""
    flat = members.tolist()
    ends = np.cumsum(sizes).tolist()
    return [flat[a:b] for a, b in zip([0, *ends], ends, strict=False)]


def clique_rows(
    ids: NDArray[np.int64], start: NDArray[np.float64], end: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Maximal cliques (size >= 2) of the interval graph of half-open intervals [start, end): their members (ids)
    end to end and each clique's size; cliques in sweep order, members in order of their start.

    A sweep over the sorted events (ends before starts at the same instant: half-open intervals do not meet) has a
    maximal clique at every end that directly follows a start: the intervals started before it and not yet ended.
    Vectorised: interval i belongs to the cliques at the reporting events strictly after its start event and up to
    its end event, a contiguous range of them. An interval that ends before it starts (empty) never leaves."""
    n = len(ids)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty
    times = np.concatenate([end, start])
    kinds = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)])
    order = np.lexsort((kinds, times))
    pos = np.empty(2 * n, dtype=np.int64)
    pos[order] = np.arange(2 * n)
    end_pos, start_pos = pos[:n], pos[n:]
    end_pos = np.where(end_pos < start_pos, 2 * n, end_pos)
    sorted_kinds = kinds[order]
    report = np.flatnonzero((sorted_kinds[1:] == 0) & (sorted_kinds[:-1] == 1)) + 1
    if len(report) == 0:
        return empty, empty
    by_start = np.argsort(start_pos)
    first = np.searchsorted(report, start_pos[by_start], side="right")
    last = np.searchsorted(report, end_pos[by_start], side="right")
    count = np.maximum(0, last - first)
    total = int(count.sum())
    member = np.repeat(by_start, count)
    # clique[k] runs from first to last - 1 for each interval, intervals in order of their start.
    clique = np.repeat(first, count) + (np.arange(total) - np.repeat(np.cumsum(count) - count, count))
    grouped = np.argsort(clique, kind="stable")
    clique, member = clique[grouped], member[grouped]
    sizes = np.bincount(clique, minlength=len(report))
    keep = sizes[clique] >= 2
    return np.asarray(ids, dtype=np.int64)[member[keep]], sizes[sizes >= 2]


def maximal_cliques(ids: NDArray[np.int64], start: NDArray[np.float64], end: NDArray[np.float64]) -> list[list[int]]:
    """`clique_rows` as one list of ids per clique."""
    return split_rows(*clique_rows(ids, start, end))


def _groups(keys: NDArray[np.int64], idx: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    order = idx[np.argsort(keys[idx], kind="stable")]
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    return [g for g in np.split(order, cuts) if len(g)]


def build_rows(problem: Problem, usable: NDArray[np.bool_]) -> ModelRows:
    ops = problem.opportunities
    rows = ModelRows(forced_zero=np.flatnonzero(~usable).tolist())
    idx = np.flatnonzero(usable).astype(np.int64)
    if len(idx) == 0:
        return rows
    turn = np.asarray([r.turnaround_s for r in problem.resources], dtype=np.float64)

    for g in _groups(ops.resource, idx):
        r = int(ops.resource[g[0]])
        rows.add_at_most_one(*clique_rows(g, ops.start_s[g], ops.end_s[g] + turn[r]))
        if problem.resources[r].max_slew_s > 0:
            _slew_pairs(problem, g, r, rows)

    frozen_bins: dict[tuple[int, int], int] = {}
    frozen_total: dict[int, int] = {}
    frozen_station: dict[tuple[int, int, int], int] = {}
    for f in problem.frozen:
        if f.request >= 0:
            rq = problem.requests[f.request]
            b = math.floor(f.start_s / rq.period_s) if rq.max_per_period and rq.period_s > 0 else 0
            frozen_bins[(f.request, b)] = frozen_bins.get((f.request, b), 0) + 1
            frozen_total[f.request] = frozen_total.get(f.request, 0) + 1
            if rq.max_per_station:
                key = (f.request, f.resource, rq.station_bin(f.start_s))
                frozen_station[key] = frozen_station.get(key, 0) + 1
    bins = period_bins(problem)
    station_bins = np.zeros(len(ops), dtype=np.int64)  # filled per request with max_per_station
    for g in _groups(ops.request, idx):
        q = int(ops.request[g[0]])
        rq = problem.requests[q]
        red = max(1, rq.redundancy)
        members, sizes = clique_rows(g, ops.start_s[g], ops.end_s[g])
        if red == 1:
            rows.add_at_most_one(members, sizes)  # every clique has >= 2 members
        else:
            rows.capped.extend((c, red) for c in split_rows(members, sizes) if len(c) > red)
        if rq.cadence_s > 0:
            rows.add_at_most_one(*clique_rows(g, ops.start_s[g], ops.start_s[g] + rq.cadence_s))
        if rq.max_per_period and rq.period_s > 0:
            for bg in _groups(bins, g):
                cap = rq.max_per_period - frozen_bins.get((q, int(bins[bg[0]])), 0)
                if len(bg) > cap:
                    rows.capped.append((bg.tolist(), max(0, cap)))
        if rq.max_per_station:
            if rq.period_s > 0:
                station_bins[g] = np.floor(ops.start_s[g] / rq.period_s).astype(np.int64)
            else:
                station_bins[g] = 0
            for rg in _groups(ops.resource, g):
                res = int(ops.resource[rg[0]])
                for bg in _groups(station_bins, rg):
                    cap = rq.max_per_station - frozen_station.get((q, res, int(station_bins[bg[0]])), 0)
                    if len(bg) > cap:
                        rows.capped.append((bg.tolist(), max(0, cap)))
        if rq.max_total:
            cap = rq.max_total - frozen_total.get(q, 0)
            if len(g) > cap:
                rows.capped.append((g.tolist(), max(0, cap)))
    return rows


def _slew_pairs(problem: Problem, g: NDArray[np.int64], r: int, rows: ModelRows) -> None:
    """Pairs far enough apart for the turnaround but not for the slew between them (vectorised over pairs)."""
    ops = problem.opportunities
    res = problem.resources[r]
    turn = res.turnaround_s
    order = g[np.argsort(ops.start_s[g], kind="stable")]
    starts = ops.start_s[order]
    lo = np.searchsorted(starts, ops.end_s[order] + turn, side="left")
    hi = np.searchsorted(starts, ops.end_s[order] + turn + res.max_slew_s, side="left")
    count = hi - lo
    if not count.any():
        return
    first = np.repeat(np.arange(len(order)), count)
    # second[k] runs from lo to hi - 1 for each first index
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    second = np.repeat(lo, count) + offsets
    i, j = order[first], order[second]
    need = turn + problem.slew_pairs_s(r, i, j)
    clash = ops.start_s[j] - ops.end_s[i] < need
    pairs = np.stack([i[clash], j[clash]], axis=1).astype(np.int64)
    rows.add_at_most_one(pairs.ravel(), np.full(len(pairs), 2, dtype=np.int64))
