"""The scheduling kernel's vocabulary: requests, resources, opportunities, plans. It knows nothing about telescopes.

Following LCO's adaptive_scheduler, everything the planners see is compiled into *opportunities*: a request may be
served by a resource from `start_s` to `end_s` (seconds from the plan start) for `value`. Satellites, stars, bands
and filters are the mapping module's business (`skymesh.scheduler.opportunities`); here there are only indices,
times, values and, for slew times, an azimuth and an elevation at each end, moved by the resource's rotator
(`skymesh.core.rotator`: each axis on its own with its rate and acceleration, the slower one decides; with a known
rotator travel, from the cable wrap or flip the agent flies one job in to the one it picks for the next, so an unwind
across a stop is timed; the agent flies the same model).

Feasibility rules every planner honours (and `check_plan` verifies):
- a resource does one thing at a time, with `turnaround_s` plus the slew from the previous pointing in between;
- a request is in at most `redundancy` opportunities at any instant (one contact per satellite at a time);
- at most `max_per_period` opportunities of a request start in each `period_s` bin (bins anchored at time 0);
- at most `max_per_station` opportunities of a request start on one resource in each `period_s` bin (the whole plan
  when `period_s` is 0): geographic diversity;
- at most `max_total` opportunities per request (0 = no limit);
- starts of one request are at least `cadence_s` apart;
- frozen placements are kept as they are and count against all of the above.

Imports: numpy, the standard library and `skymesh.core.rotator`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from skymesh.core import sphere
from skymesh.core.rotator import (
    AxisLimits,
    PassWraps,
    RotatorModel,
    axis_move_time_s,
    pass_wraps_both_ways,
    slew_time_s,
    wraps_slew_time_one_s,
    wraps_slew_time_s,
)

__all__ = [
    "FrozenPlacement",
    "Opportunity",
    "OpportunitySet",
    "Plan",
    "Planner",
    "Problem",
    "Request",
    "Resource",
    "check_plan",
    "separation_deg",
    "slew_s",
]

_NO_POINTING = float("nan")


@dataclass(frozen=True)
class Request:
    """Something that wants resource time: a satellite's contacts or a celestial target's visits."""

    request_id: str
    priority: float = 1.0
    max_per_period: int = 0  # 0 = no limit
    period_s: float = 0.0
    max_total: int = 0  # 0 = no limit
    cadence_s: float = 0.0  # minimum seconds between the starts of two of its opportunities
    redundancy: int = 1  # resources allowed (and wanted) at the same time
    max_per_station: int = 0  # per resource and `period_s` bin (whole plan when period_s is 0); 0 = no limit

    def station_bin(self, start_s: float) -> int:
        """The bin of `max_per_station` a start falls in."""
        return math.floor(start_s / self.period_s) if self.period_s > 0 else 0


@dataclass(frozen=True)
class Resource:
    """Something that serves one request at a time: an antenna with its rotator, a telescope with its mount.

    Slews follow `rotator` (per axis: rate, acceleration; its travel decides the cable wrap and flip each job is flown
    in, as the agent's pass planner chooses them, so an unwind across a stop is timed); without one, the travel is
    unknown: both axes move at `slew_rate_deg_s` with no acceleration limit, azimuth the short way round; with
    neither, slews are free (or already inside the turnaround).
    """

    resource_id: str
    turnaround_s: float = 60.0
    slew_rate_deg_s: float = 0.0
    rotator: RotatorModel | None = None

    @cached_property
    def motion(self) -> RotatorModel | None:
        if self.rotator is not None:
            return self.rotator
        if self.slew_rate_deg_s <= 0:
            return None
        rate = self.slew_rate_deg_s
        return RotatorModel(AxisLimits(0.0, 360.0, rate), AxisLimits(0.0, 90.0, rate))

    @cached_property
    def max_slew_s(self) -> float:
        """The longest slew between any two pointings: the whole elevation travel, and in azimuth the whole travel
        with a known rotator (an unwind from stop to stop), else half a turn."""
        m = self.motion
        if m is None:
            return 0.0
        az_deg = m.azimuth.span_deg if self.rotator is not None else 180.0
        return max(
            float(axis_move_time_s(az_deg, m.azimuth)), float(axis_move_time_s(m.elevation.span_deg, m.elevation))
        )

    def slew_s(self, az1: float, el1: float, az0: float, el0: float) -> float:
        """Seconds to slew from the end pointing (az1, el1) of one job to the start pointing (az0, el0) of the next
        (0 when either is unknown), azimuth the short way round: what a resource without a known rotator travel does
        (with one, see `Problem.slew_between_s`)."""
        m = self.motion
        if m is None or math.isnan(az1) or math.isnan(az0):
            return 0.0
        return float(slew_time_s(m, az1, el1, az0, el0))

    def slew_s_many(
        self, az1: NDArray[np.float64], el1: NDArray[np.float64], az0: NDArray[np.float64], el0: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """`slew_s` for arrays of pairs, vectorised."""
        m = self.motion
        if m is None or len(az1) == 0:
            return np.zeros(len(az1))
        known = ~(np.isnan(az1) | np.isnan(az0))
        out = np.zeros(len(az1))
        if known.any():
            out[known] = np.asarray(slew_time_s(m, az1[known], el1[known], az0[known], el0[known]))
        return out


@dataclass(frozen=True)
class Opportunity:
    """A candidate: `request` could use `resource` over [start_s, end_s) for `value`.

    `start_pointing_deg` and `end_pointing_deg` are (longitude-like, latitude-like) angles, e.g. (azimuth,
    elevation), where the resource must point at the start and end; they give the slew time to the next job.
    """

    request: int
    resource: int
    start_s: float
    end_s: float
    value: float
    start_pointing_deg: tuple[float, float] | None = None
    end_pointing_deg: tuple[float, float] | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class FrozenPlacement:
    """A job already dispatched: it stays where it is. `request` may be -1 for a target the plan does not know."""

    resource: int
    request: int
    start_s: float
    end_s: float
    value: float = 0.0
    job_id: str = ""
    start_pointing_deg: tuple[float, float] | None = None
    end_pointing_deg: tuple[float, float] | None = None


class OpportunitySet:
    """Opportunities as columns (numpy arrays): what planners iterate over, cheap to pickle to a solver process."""

    __slots__ = ("az0", "az1", "az_mid", "el0", "el1", "end_s", "request", "resource", "start_s", "value")

    def __init__(
        self,
        request: NDArray[np.int64],
        resource: NDArray[np.int64],
        start_s: NDArray[np.float64],
        end_s: NDArray[np.float64],
        value: NDArray[np.float64],
        az0: NDArray[np.float64] | None = None,
        el0: NDArray[np.float64] | None = None,
        az1: NDArray[np.float64] | None = None,
        el1: NDArray[np.float64] | None = None,
        *,
        az_mid: NDArray[np.float64] | None = None,
    ) -> None:
        """`az_mid`: the azimuth at the culmination (NaN where unknown), which tells the rotator's cable-wrap model
        which way round a pass sweeps; without it a pass sweeping 180 degrees or more is timed both ways."""
        n = len(request)
        self.request = np.asarray(request, dtype=np.int64)
        self.resource = np.asarray(resource, dtype=np.int64)
        self.start_s = np.asarray(start_s, dtype=np.float64)
        self.end_s = np.asarray(end_s, dtype=np.float64)
        self.value = np.asarray(value, dtype=np.float64)
        nan = np.full(n, _NO_POINTING)
        self.az0 = nan if az0 is None else np.asarray(az0, dtype=np.float64)
        self.el0 = nan if el0 is None else np.asarray(el0, dtype=np.float64)
        self.az1 = nan if az1 is None else np.asarray(az1, dtype=np.float64)
        self.el1 = nan if el1 is None else np.asarray(el1, dtype=np.float64)
        self.az_mid = nan if az_mid is None else np.asarray(az_mid, dtype=np.float64)
        for name in self.__slots__:
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, expected {n}")
        if n and bool(np.any(self.end_s <= self.start_s)):
            raise ValueError("every opportunity must end after it starts")

    def __len__(self) -> int:
        return len(self.request)

    @classmethod
    def empty(cls) -> OpportunitySet:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), z, z, z)

    @classmethod
    def from_opportunities(cls, items: Iterable[Opportunity]) -> OpportunitySet:
        rows = list(items)
        if not rows:
            return cls.empty()

        def col(values: list[float]) -> NDArray[np.float64]:
            return np.asarray(values, dtype=np.float64)

        def point(p: tuple[float, float] | None, k: int) -> float:
            return _NO_POINTING if p is None else p[k]

        return cls(
            np.asarray([o.request for o in rows], dtype=np.int64),
            np.asarray([o.resource for o in rows], dtype=np.int64),
            col([o.start_s for o in rows]),
            col([o.end_s for o in rows]),
            col([o.value for o in rows]),
            col([point(o.start_pointing_deg, 0) for o in rows]),
            col([point(o.start_pointing_deg, 1) for o in rows]),
            col([point(o.end_pointing_deg, 0) for o in rows]),
            col([point(o.end_pointing_deg, 1) for o in rows]),
        )

    def __getitem__(self, i: int) -> Opportunity:
        def pointing(az: float, el: float) -> tuple[float, float] | None:
            return None if math.isnan(az) else (az, el)

        return Opportunity(
            int(self.request[i]),
            int(self.resource[i]),
            float(self.start_s[i]),
            float(self.end_s[i]),
            float(self.value[i]),
            pointing(float(self.az0[i]), float(self.el0[i])),
            pointing(float(self.az1[i]), float(self.el1[i])),
        )

    def __iter__(self) -> Iterator[Opportunity]:
        return (self[i] for i in range(len(self)))

    def take(self, index: NDArray[np.int64]) -> OpportunitySet:
        return OpportunitySet(
            self.request[index],
            self.resource[index],
            self.start_s[index],
            self.end_s[index],
            self.value[index],
            self.az0[index],
            self.el0[index],
            self.az1[index],
            self.el1[index],
            az_mid=self.az_mid[index],
        )


@dataclass(frozen=True)
class Problem:
    requests: Sequence[Request]
    resources: Sequence[Resource]
    opportunities: OpportunitySet
    frozen: Sequence[FrozenPlacement] = ()

    def __post_init__(self) -> None:
        ops = self.opportunities
        if len(ops):
            if int(ops.request.min()) < 0 or int(ops.request.max()) >= len(self.requests):
                raise ValueError("opportunity request index out of range")
            if int(ops.resource.min()) < 0 or int(ops.resource.max()) >= len(self.resources):
                raise ValueError("opportunity resource index out of range")
        for f in self.frozen:
            if not 0 <= f.resource < len(self.resources) or f.request >= len(self.requests):
                raise ValueError("frozen placement index out of range")

    @cached_property
    def wraps(self) -> tuple[PassWraps, PassWraps]:
        """Per opportunity, how its resource's rotator flies it (`skymesh.core.rotator.pass_wraps_both_ways`: the
        two ways round where the sweep is ambiguous); NaN rows for resources without a rotator. Computed once,
        vectorised per resource."""
        ops = self.opportunities
        n = len(ops)

        def unknown() -> PassWraps:
            nan = [np.full(n, np.nan) for _ in range(5)]
            return PassWraps(nan[0], nan[1], nan[2], nan[3], nan[4], np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))

        out = [unknown(), unknown()]
        # One vectorised pass per distinct rotator model (a fleet has a few), not per station.
        models: dict[RotatorModel, list[int]] = {}
        for r, res in enumerate(self.resources):
            if res.rotator is not None:
                models.setdefault(res.rotator, []).append(r)
        known = ~np.isnan(ops.az0) & ~np.isnan(ops.az1)
        for model, members in models.items():
            on = np.zeros(len(self.resources), dtype=bool)
            on[members] = True
            idx = np.flatnonzero(on[ops.resource] & known)
            if len(idx) == 0:
                continue
            both = pass_wraps_both_ways(
                model, ops.az0[idx], ops.el0[idx], ops.az1[idx], ops.el1[idx], mid_azimuth_deg=ops.az_mid[idx]
            )
            for into, w in zip(out, both, strict=True):
                for name in PassWraps.__slots__:
                    getattr(into, name)[idx] = getattr(w, name)
        return out[0], out[1]

    @cached_property
    def _ambiguous(self) -> NDArray[np.bool_]:
        """Opportunities whose two ways round (`wraps`) differ."""
        one, two = self.wraps
        differ = (one.start_azimuth_deg != two.start_azimuth_deg) | (one.end_azimuth_deg != two.end_azimuth_deg)
        out: NDArray[np.bool_] = differ & ~np.isnan(one.start_azimuth_deg)
        return out

    @cached_property
    def _wrap_lists(self) -> tuple[list[list[float]], list[list[float]], list[bool]]:
        one, two = self.wraps

        def cols(w: PassWraps) -> list[list[float]]:
            return [
                x.tolist()
                for x in (w.start_azimuth_deg, w.start_elevation_deg, w.end_azimuth_deg, w.end_elevation_deg, w.turns)
            ]

        return cols(one), cols(two), self._ambiguous.tolist()

    def _rows_of(self, x: int | FrozenPlacement) -> tuple[tuple[float, float, float, float, float], ...] | None:
        if not isinstance(x, FrozenPlacement):
            one, two, ambiguous = self._wrap_lists
            a = (one[0][x], one[1][x], one[2][x], one[3][x], one[4][x])
            if math.isnan(a[0]):
                return None
            return (a, (two[0][x], two[1][x], two[2][x], two[3][x], two[4][x])) if ambiguous[x] else (a,)
        rotator = self.resources[x.resource].rotator
        if rotator is None or x.start_pointing_deg is None or x.end_pointing_deg is None:
            return None
        (a0, e0), (a1, e1) = x.start_pointing_deg, x.end_pointing_deg
        w1, w2 = pass_wraps_both_ways(rotator, np.array([a0]), np.array([e0]), np.array([a1]), np.array([e1]))
        return (w1.row(0),) if w1.row(0) == w2.row(0) else (w1.row(0), w2.row(0))

    def slew_between_s(self, a: int | FrozenPlacement, b: int | FrozenPlacement) -> float:
        """Seconds the resource of `a` needs to slew from the end of job `a` to the start of job `b` (opportunity
        indices or frozen placements; 0 where a pointing is unknown): with a rotator, from the wrap `a` is flown in
        to the one the agent then picks for `b` (`skymesh.core.rotator.wraps_slew_time_s`, cable wrap and flip);
        without one, `Resource.slew_s`, the short way round."""
        res = self.resources[a.resource if isinstance(a, FrozenPlacement) else int(self.opportunities.resource[a])]
        if res.motion is None:
            return 0.0
        if res.rotator is not None:
            ra, rb = self._rows_of(a), self._rows_of(b)
            return 0.0 if ra is None or rb is None else wraps_slew_time_one_s(res.rotator, ra, rb)
        e, s = self._pointing(a, end=True), self._pointing(b, end=False)
        return res.slew_s(e[0], e[1], s[0], s[1])

    def _pointing(self, x: int | FrozenPlacement, *, end: bool) -> tuple[float, float]:
        if isinstance(x, FrozenPlacement):
            p = x.end_pointing_deg if end else x.start_pointing_deg
            return (math.nan, math.nan) if p is None else p
        ops = self.opportunities
        return (float(ops.az1[x]), float(ops.el1[x])) if end else (float(ops.az0[x]), float(ops.el0[x]))

    def slew_pairs_s(self, resource: int, before: NDArray[np.int64], after: NDArray[np.int64]) -> NDArray[np.float64]:
        """`slew_between_s` from opportunities `before[k]` to `after[k]`, all on `resource`, vectorised."""
        ops = self.opportunities
        res = self.resources[resource]
        out = np.zeros(len(before))
        m = res.motion
        if m is None or len(before) == 0:
            return out
        known = ~(np.isnan(ops.az1[before]) | np.isnan(ops.az0[after]))
        if not known.any():
            return out
        i, j = before[known], after[known]
        if res.rotator is None:
            out[known] = np.asarray(slew_time_s(m, ops.az1[i], ops.el1[i], ops.az0[j], ops.el0[j]))
        else:
            one, two = self.wraps
            both = self._ambiguous[i] | self._ambiguous[j]
            need = np.empty(len(i))
            plain = np.flatnonzero(~both)
            need[plain] = wraps_slew_time_s(res.rotator, (one.take(i[plain]),), (one.take(j[plain]),))
            if both.any():
                k = np.flatnonzero(both)
                ii, jj = i[k], j[k]
                need[k] = wraps_slew_time_s(res.rotator, (one.take(ii), two.take(ii)), (one.take(jj), two.take(jj)))
            out[known] = need
        return out


@dataclass
class Plan:
    """What a planner returns: the chosen opportunity indices (frozen placements are always kept on top)."""

    selected: list[int]
    objective: float
    bound: float
    solver: str
    optimal: bool = False
    runtime_s: float = 0.0
    status: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    greedy_objective: float = math.nan  # what the greedy warm start reached, for reports

    @property
    def gap(self) -> float:
        if self.bound <= 0:
            return 0.0
        return max(0.0, (self.bound - self.objective) / self.bound)


class Planner(Protocol):
    """A planning algorithm: greedy, CP-SAT, rolling horizon. `time_limit_s` is a budget, not a promise."""

    name: str

    def solve(self, problem: Problem, *, time_limit_s: float) -> Plan: ...


def separation_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle angle between two (lon, lat)-style directions in degrees."""
    return sphere.separation_deg(a[0], a[1], b[0], b[1])


def slew_s(rate_deg_s: float, az1: float, el1: float, az0: float, el0: float) -> float:
    """Seconds to slew between two pointings with both axes at `rate_deg_s` (see `Resource.slew_s`)."""
    return Resource("", 0.0, rate_deg_s).slew_s(az1, el1, az0, el0)


def _gap_needed(problem: Problem, a: int | FrozenPlacement, b: int | FrozenPlacement) -> float:
    res = problem.resources[a.resource if isinstance(a, FrozenPlacement) else int(problem.opportunities.resource[a])]
    return res.turnaround_s + problem.slew_between_s(a, b)


def check_plan(problem: Problem, selected: Sequence[int], *, tol_s: float = 1e-6) -> list[str]:
    """Every rule the selection (plus the frozen placements) breaks, as sentences; empty when feasible.

    Quadratic per resource and request: meant for tests and assertions, not for hot paths.
    """
    ops = problem.opportunities
    problems: list[str] = []
    if len(set(selected)) != len(selected):
        problems.append("an opportunity is selected twice")
    items: list[tuple[int, int, float, float, int | FrozenPlacement]] = [
        (int(ops.resource[i]), int(ops.request[i]), float(ops.start_s[i]), float(ops.end_s[i]), i) for i in selected
    ]
    items += [(f.resource, f.request, f.start_s, f.end_s, f) for f in problem.frozen]
    by_res: dict[int, list[tuple[float, float, int | FrozenPlacement]]] = {}
    by_req: dict[int, list[tuple[float, float]]] = {}
    per_station: dict[tuple[int, int, int], int] = {}
    for res, req, s, e, ref in items:
        by_res.setdefault(res, []).append((s, e, ref))
        if req >= 0:
            by_req.setdefault(req, []).append((s, e))
            rq = problem.requests[req]
            if rq.max_per_station:
                key = (req, res, rq.station_bin(s))
                per_station[key] = per_station.get(key, 0) + 1
    for res, jobs in by_res.items():
        jobs.sort(key=lambda j: (j[0], j[1]))
        r = problem.resources[res]
        for (_s1, e1, a), (s2, _e2, b) in itertools.pairwise(jobs):
            if s2 + tol_s < e1 + _gap_needed(problem, a, b):
                problems.append(
                    f"resource {r.resource_id}: job at {s2:.0f} s starts too soon after one ending {e1:.0f} s"
                )
    for req, spans in by_req.items():
        rq = problem.requests[req]
        spans.sort()
        if rq.max_total and len(spans) > rq.max_total:
            problems.append(f"request {rq.request_id}: {len(spans)} > max_total {rq.max_total}")
        for s, _e in spans:
            concurrent = sum(1 for s2, e2 in spans if s2 <= s < e2)
            if concurrent > max(1, rq.redundancy):
                problems.append(f"request {rq.request_id}: {concurrent} at once at {s:.0f} s")
        for (s1, _), (s2, _) in itertools.pairwise(spans):
            if rq.cadence_s and s2 - s1 + tol_s < rq.cadence_s:
                problems.append(f"request {rq.request_id}: starts {s1:.0f} and {s2:.0f} closer than cadence")
        if rq.max_per_period and rq.period_s > 0:
            bins: dict[int, int] = {}
            for s, _e in spans:
                k = math.floor(s / rq.period_s)
                bins[k] = bins.get(k, 0) + 1
            for k, count in bins.items():
                if count > rq.max_per_period:
                    problems.append(f"request {rq.request_id}: {count} starts in period {k} > {rq.max_per_period}")
    for (req, res, k), count in per_station.items():
        rq = problem.requests[req]
        if count > rq.max_per_station:
            problems.append(
                f"request {rq.request_id}: {count} starts at {problem.resources[res].resource_id} in period {k} "
                f"> max_per_station {rq.max_per_station}"
            )
    return problems
