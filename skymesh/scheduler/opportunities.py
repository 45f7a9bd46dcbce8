"""The mapping: (stations, targets, window, frozen jobs) -> a kernel `Problem`, and back to assignments.

This is the only module that knows what a satellite pass or an exposure block is. It turns each visibility window
into an `Opportunity` worth priority x duration (x campaign and time-critical boosts), each target into a `Request`
with its demand (a celestial target without cadence is observed once per plan), each station into a `Resource`
(turnaround, rotator), and frozen jobs into fixed placements (or, when preemptible, into candidates with a small
bonus so they stay unless something clearly better comes). Everything it drops is written to a `FilterLog`.

Imports: numpy, `skymesh.core`, `skymesh.astro` (through `visibility` and `sky`), the kernel; never grpc.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skymesh.core.errors import InvalidArgument
from skymesh.core.model import CelestialTarget, SatelliteTarget, Station, TimeWindow
from skymesh.scheduler.inputs import Assignment, FrozenJob, PlanRequest, PlanTarget
from skymesh.scheduler.kernel import FrozenPlacement, OpportunitySet, Problem, Request, Resource
from skymesh.scheduler.reasons import FilterLog
from skymesh.scheduler.viscache import VisibilityCache
from skymesh.scheduler.visibility import Windows, satellite_windows

__all__ = ["Compiled", "compile_request", "request_for", "restrict", "to_assignments"]


@dataclass
class Compiled:
    """A problem plus what is needed to explain it and to turn its solution back into assignments."""

    problem: Problem
    stations: Sequence[Station]
    targets: Sequence[PlanTarget]
    t0: datetime
    log: FilterLog
    tca_s: NDArray[np.float64]
    max_elevation_deg: NDArray[np.float64]
    filter_name: list[str]
    job_id: list[str]  # per opportunity: the preemptible frozen job it continues, or ""
    frozen_jobs: list[FrozenJob]  # aligned with problem.frozen
    visibility_s: float
    timings_s: dict[str, float] = field(default_factory=dict)
    exposure: dict[int, tuple[float, int]] = field(default_factory=dict)  # celestial request -> (exposure_s, count)


def request_for(pt: PlanTarget) -> Request:
    t, d = pt.target, pt.demand
    if isinstance(t, CelestialTarget):
        cadence = d.cadence_s or t.cadence_s
        once = not cadence and not d.max_per_period
        return Request(
            t.target_id,
            t.priority,
            d.max_per_period,
            d.period_s,
            1 if once else 0,
            cadence,
            max(1, d.redundancy),
            d.max_per_station,
        )
    return Request(
        t.target_id, t.priority, d.max_per_period, d.period_s, 0, d.cadence_s, max(1, d.redundancy), d.max_per_station
    )


def _priority_factor(
    targets: Sequence[PlanTarget],
    t0: datetime,
    target: NDArray[np.int64],
    start_s: NDArray[np.float64],
    end_s: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Priority x campaign boost, x time-critical boost where the window overlaps a time-critical window."""
    base = np.asarray(
        [t.target.priority * (t.demand.campaign_boost if t.demand.campaign_boost > 0 else 1.0) for t in targets],
        dtype=np.float64,
    )
    f = base[target] if len(target) else np.zeros(0)
    for i, pt in enumerate(targets):
        d = pt.demand
        if d.time_critical_boost > 1 and d.time_critical:
            on = np.flatnonzero(target == i)
            hit = np.zeros(len(on), dtype=bool)
            for w in d.time_critical:
                a, b = (w.start - t0).total_seconds(), (w.end - t0).total_seconds()
                hit |= (start_s[on] < b) & (a < end_s[on])
            f[on[hit]] *= d.time_critical_boost
    return f


def compile_request(req: PlanRequest, *, visibility_cache: VisibilityCache | None = None) -> Compiled:
    """The kernel problem of `req`; satellite passes from `visibility_cache` where it has them (see `viscache`)."""
    t_begin = time.perf_counter()
    stations = list(req.stations)
    targets = list(req.targets)
    _check_unique([s.station_id for s in stations], "stations", "station_id")
    _check_unique([t.target_id for t in targets], "targets", "target.target_id")
    t0 = req.window.start
    log = FilterLog()
    unavailable = [
        [((w.start - t0).total_seconds(), (w.end - t0).total_seconds()) for w in s.unavailable] for s in stations
    ]
    sats = [(i, t.target) for i, t in enumerate(targets) if isinstance(t.target, SatelliteTarget)]
    cels = [(i, t) for i, t in enumerate(targets) if isinstance(t.target, CelestialTarget)]
    windows = (visibility_cache.satellite_windows if visibility_cache is not None else satellite_windows)(
        stations,
        sats,
        req.window,
        log,
        step_s=req.options.pass_step_s,
        min_pass_s=req.options.min_pass_s,
        unavailable_s=unavailable,
    )
    exposure: dict[int, tuple[float, int]] = {}
    if cels:
        from skymesh.scheduler.sky import celestial_windows

        windows_c = celestial_windows(stations, cels, req.window, log, req.options, unavailable_s=unavailable)
        _merge(windows, windows_c)
        for i, pt in cels:
            assert isinstance(pt.target, CelestialTarget)
            exposure[i] = (pt.target.exposure_s, pt.target.exposure_count)
    visibility_s = time.perf_counter() - t_begin

    # Each column taken out of `windows` as it is read: at 6.3 M windows a column is 50 MB, and two copies of all
    # eleven at once were most of the visibility phase's peak.
    target = _pop_column(windows, "target", np.int64)
    station = _pop_column(windows, "station", np.int64)
    start = _pop_column(windows, "start_s")
    end = _pop_column(windows, "end_s")
    value = (end - start) * _priority_factor(targets, t0, target, start, end)
    filters = list(windows.filter_name) or [""] * len(target)
    job_ids = [""] * len(target)

    resources = [Resource(s.station_id, req.turnaround_s, s.slew_rate_deg_s, s.rotator) for s in stations]
    requests = [request_for(t) for t in targets]
    station_index = {s.station_id: i for i, s in enumerate(stations)}
    target_index = {t.target_id: i for i, t in enumerate(targets)}
    frozen: list[FrozenPlacement] = []
    frozen_jobs: list[FrozenJob] = []
    extra: list[tuple[int, int, float, float, float, str]] = []
    for k, job in enumerate(req.frozen):
        if job.station_id not in station_index:
            raise InvalidArgument(f"unknown station {job.station_id!r}", field=f"frozen[{k}].station_id")
        s = station_index[job.station_id]
        r = target_index.get(job.target_id, -1)
        a, b = (job.window.start - t0).total_seconds(), (job.window.end - t0).total_seconds()
        prio = float(targets[r].target.priority) if r >= 0 else 0.0
        if job.preemptible and r >= 0:
            extra.append((r, s, a, b, prio * (b - a) * req.options.preemptible_bonus, job.job_id))
        else:
            frozen.append(FrozenPlacement(s, r, a, b, prio * (b - a), job.job_id))
            frozen_jobs.append(job)
    nan = np.full(len(target), np.nan)
    cols = {
        name: _pop_column(windows, name) if len(target) else nan
        for name in ("tca_s", "max_elevation_deg", "az0", "el0", "az1", "el1", "az_mid")
    }
    if extra:
        target = np.r_[target, [e[0] for e in extra]].astype(np.int64)
        station = np.r_[station, [e[1] for e in extra]].astype(np.int64)
        start = np.r_[start, [e[2] for e in extra]]
        end = np.r_[end, [e[3] for e in extra]]
        value = np.r_[value, [e[4] for e in extra]]
        for name in cols:
            cols[name] = np.r_[cols[name], np.full(len(extra), np.nan)]
        filters += [""] * len(extra)
        job_ids += [e[5] for e in extra]
    ops = OpportunitySet(
        target, station, start, end, value, cols["az0"], cols["el0"], cols["az1"], cols["el1"], az_mid=cols["az_mid"]
    )
    problem = Problem(requests, resources, ops, frozen)
    compiled = Compiled(
        problem=problem,
        stations=stations,
        targets=targets,
        t0=t0,
        log=log,
        tca_s=cols["tca_s"],
        max_elevation_deg=cols["max_elevation_deg"],
        filter_name=filters,
        job_id=job_ids,
        frozen_jobs=frozen_jobs,
        visibility_s=visibility_s,
        timings_s={"visibility_s": visibility_s, "compile_s": time.perf_counter() - t_begin},
        exposure=exposure,
    )
    return compiled


def restrict(compiled: Compiled, keep: NDArray[np.bool_]) -> Compiled:
    """The same compiled problem with only the opportunities where `keep` holds (logs and frozen jobs unchanged)."""
    from dataclasses import replace

    idx = np.flatnonzero(keep).astype(np.int64)
    p = compiled.problem
    return replace(
        compiled,
        problem=Problem(p.requests, p.resources, p.opportunities.take(idx), p.frozen),
        tca_s=compiled.tca_s[idx],
        max_elevation_deg=compiled.max_elevation_deg[idx],
        filter_name=[compiled.filter_name[i] for i in idx.tolist()],
        job_id=[compiled.job_id[i] for i in idx.tolist()],
    )


def _merge(into: Windows, other: Windows) -> None:
    n_into = len(into)
    names = (
        "target",
        "station",
        "start_s",
        "end_s",
        "tca_s",
        "max_elevation_deg",
        "az0",
        "el0",
        "az1",
        "el1",
        "az_mid",
    )
    for name in names:
        getattr(into, name).extend(getattr(other, name))
    if other.filter_name or into.filter_name:
        into.filter_name[:] = (into.filter_name or [""] * n_into) + (other.filter_name or [""] * len(other))


def _pop_column(windows: Windows, name: str, dtype: type = np.float64) -> NDArray[Any]:
    """`windows.column(name)` as `dtype` (no second copy), its parts dropped from `windows`."""
    parts = getattr(windows, name)
    out = (np.concatenate(parts) if len(parts) > 1 else parts[0]) if parts else np.zeros(0)
    parts.clear()
    return np.asarray(out, dtype=dtype)


def _check_unique(ids: Sequence[str], field: str, sub: str) -> None:
    seen: dict[str, int] = {}
    for i, x in enumerate(ids):
        if x in seen:
            raise InvalidArgument(f"duplicate id {x!r} (also at index {seen[x]})", field=f"{field}[{i}].{sub}")
        seen[x] = i


def to_assignments(compiled: Compiled, selected: Sequence[int]) -> list[Assignment]:
    ops = compiled.problem.opportunities
    t0 = compiled.t0
    exposure = compiled.exposure
    out: list[Assignment] = []
    for i in selected:
        r, s = int(ops.request[i]), int(ops.resource[i])
        tca = float(compiled.tca_s[i])
        exp_s, exp_n = exposure.get(r, (0.0, 0))
        out.append(
            Assignment(
                station_id=compiled.stations[s].station_id,
                target_id=compiled.targets[r].target_id,
                window=TimeWindow(
                    t0 + timedelta(seconds=float(ops.start_s[i])), t0 + timedelta(seconds=float(ops.end_s[i]))
                ),
                tca=None if np.isnan(tca) else t0 + timedelta(seconds=tca),
                max_elevation_deg=0.0
                if np.isnan(compiled.max_elevation_deg[i])
                else float(compiled.max_elevation_deg[i]),
                filter=compiled.filter_name[i],
                exposure_s=exp_s,
                exposure_count=exp_n,
                score=float(ops.value[i]),
                job_id=compiled.job_id[i],
            )
        )
    for f, job in zip(compiled.problem.frozen, compiled.frozen_jobs, strict=True):
        out.append(
            Assignment(
                station_id=job.station_id, target_id=job.target_id, window=job.window, score=f.value, job_id=job.job_id
            )
        )
    out.sort(key=lambda a: (a.window.start, a.station_id))
    return out
