"""Ranked target lists for one station (the DATAS client loop): the `count` best targets observable now.

Scored exactly like the planner scores opportunities: the mapping compiles a short window starting at `at` for
this one station, and every opportunity that starts at `at` (a pass in progress, or an exposure block that can start
now) is a candidate worth priority x duration x boosts; each target keeps its best one.

Imports: numpy, `skymesh.astro`, the scheduler's mapping; never grpc.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from skymesh.core.errors import InvalidArgument
from skymesh.core.model import CelestialTarget, SatelliteTarget, Station, StationState, TimeWindow
from skymesh.scheduler.inputs import MappingOptions, PlanRequest, PlanTarget
from skymesh.scheduler.opportunities import compile_request

__all__ = ["RankedTarget", "rank_targets"]

_NOW_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class RankedTarget:
    target_id: str
    score: float
    altitude_deg: float
    airmass: float
    remaining_s: float


def rank_targets(
    station: Station,
    targets: Sequence[PlanTarget],
    at: datetime,
    count: int,
    *,
    horizon_s: float = 6 * 3600.0,
    options: MappingOptions | None = None,
) -> list[RankedTarget]:
    if count < 0:
        raise InvalidArgument("must not be negative", field="count")
    options = options or MappingOptions()
    # A station asking for work is online by definition, whatever the registry last saw.
    station = _online(station)
    req = PlanRequest(
        window=TimeWindow(at, at + timedelta(seconds=horizon_s)),
        stations=[station],
        targets=list(targets),
        options=MappingOptions(
            night_sun_altitude_deg=options.night_sun_altitude_deg,
            celestial_step_s=options.celestial_step_s,
            exposure_overhead_s=options.exposure_overhead_s,
            pass_step_s=options.pass_step_s,
            min_pass_s=0.0,
        ),
    )
    compiled = compile_request(req)
    ops = compiled.problem.opportunities
    now = np.flatnonzero(ops.start_s <= _NOW_TOLERANCE_S)
    best: dict[int, int] = {}
    for i in now.tolist():
        r = int(ops.request[i])
        if r not in best or ops.value[i] > ops.value[best[r]]:
            best[r] = i
    # Remaining observable time: the end of the run of back-to-back opportunities that starts now.
    # Rank on the score alone, then describe only the `count` kept: the altitude and the remaining run are per-target
    # work that the candidates left out never need.
    order = sorted(best.items(), key=lambda ri: (-float(ops.value[ri[1]]), targets[ri[0]].target.target_id))
    out: list[RankedTarget] = []
    for r, i in order[:count] if count else order:
        t = targets[r].target
        remaining = float(ops.end_s[i])
        on = np.flatnonzero(ops.request == r)
        if isinstance(t, CelestialTarget) and len(on):
            remaining = _run_end(ops.start_s[on], ops.end_s[on], options.celestial_step_s)
        alt, airmass = _altitude_now(station, t, at)
        out.append(RankedTarget(t.target_id, float(ops.value[i]), alt, airmass, remaining))
    return out


def _online(station: Station) -> Station:
    from dataclasses import replace

    return station if station.state.schedulable else replace(station, state=StationState.ONLINE)


def _run_end(starts: np.ndarray, ends: np.ndarray, step_s: float) -> float:
    """End of the observable run beginning at 0: start options every `step_s` while the target stays observable."""
    order = np.argsort(starts)
    s, e = starts[order], ends[order]
    t = 0.0
    last_end = 0.0
    for a, b in zip(s.tolist(), e.tolist(), strict=True):
        if a > t + step_s + _NOW_TOLERANCE_S:
            break
        t = a
        last_end = max(last_end, b)
    return last_end


def _altitude_now(station: Station, target: SatelliteTarget | CelestialTarget, at: datetime) -> tuple[float, float]:
    if isinstance(target, SatelliteTarget):
        from skymesh.astro.frames import datetime_to_jd
        from skymesh.astro.propagate import SatelliteBatch, look_angles
        from skymesh.astro.tle import parse_tle

        batch = SatelliteBatch([parse_tle(target.tle_line1, target.tle_line2, target.name)])
        la = look_angles(
            batch,
            [station.location.latitude_deg],
            [station.location.longitude_deg],
            [station.location.altitude_m],
            [datetime_to_jd(at)],
        )
        return float(la.elevation_deg[0, 0, 0]), 0.0
    from skymesh.scheduler.sky import altitude_airmass

    alt, airmass = altitude_airmass(station, target, at)
    return alt, airmass if math.isfinite(airmass) else 0.0
