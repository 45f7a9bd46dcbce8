"""Ranked target lists for one station (the DATAS client loop): the `count` best targets observable now.

Scored exactly like the planner scores opportunities: the mapping compiles a short window starting at `at` for
this one station, and every opportunity that starts at `at` (a pass in progress, or an exposure block that can start
now) is a candidate worth priority x duration x boosts; each target keeps its best one.

Most targets cannot start now (below the horizon, daylight at a telescope), and compiling six hours of passes or
exposure blocks for them was most of a ranked list's time (0.8 s for 500 satellites at a ground station). So a
vectorised look at the sky at `at` (one SGP4 call for every satellite, one alt/az for every star, with margins)
first keeps only the targets that might start now, and the mapping then compiles those alone. Targets are
independent in the mapping, so the list is the one the full compilation gives (`prefilter=False` runs that; the
tests compare both). Parsed element sets come from `elements`' cache, keyed by their lines.

Imports: numpy, `skymesh.astro`, the scheduler's mapping; never grpc.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from skymesh.core.errors import InvalidArgument, SkyMeshError
from skymesh.core.model import CelestialTarget, SatelliteTarget, Station, StationKind, StationState, TimeWindow
from skymesh.scheduler.inputs import MappingOptions, PlanRequest, PlanTarget
from skymesh.scheduler.opportunities import _check_unique, compile_request

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
    prefilter: bool = True,
) -> list[RankedTarget]:
    """The `count` best targets for `station` at `at` (all that can start now when `count` is 0), best first.

    `prefilter=False` compiles every target over the whole horizon: the straightforward computation, slower, and
    kept to check the fast path against."""
    if count < 0:
        raise InvalidArgument("must not be negative", field="count")
    options = options or MappingOptions()
    # A station asking for work is online by definition, whatever the registry last saw.
    station = _online(station)
    if prefilter:
        # What the mapping rejects among all targets, rejected here too: the pre-filter must not hide it.
        _check_unique([t.target_id for t in targets], "targets", "target.target_id")
        targets = [targets[i] for i in _maybe_now(station, targets, at, options)]
        if not targets:
            return []
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
    kept = order[:count] if count else order
    now_at = _altitudes_now(station, [targets[r].target for r, _ in kept], at)
    out: list[RankedTarget] = []
    for (r, i), (alt, airmass) in zip(kept, now_at, strict=True):
        t = targets[r].target
        remaining = float(ops.end_s[i])
        on = np.flatnonzero(ops.request == r)
        if isinstance(t, CelestialTarget) and len(on):
            remaining = _run_end(ops.start_s[on], ops.end_s[on], options.celestial_step_s)
        out.append(RankedTarget(t.target_id, float(ops.value[i]), alt, airmass, remaining))
    return out


# Margins of the look at `at`: a target inside them may still fail the mapping's exact test, one outside cannot pass
# it. A satellite's elevation is checked at `at` and 2 s later (an AOS up to `_NOW_TOLERANCE_S` away counts as now;
# a pass the search finds starts within 1 s of the true one), 1 degree below its threshold (grazing passes peak
# between the samples; LEO moves well under a degree a second near the horizon). Stars: 0.5 degree and 0.05 in
# airmass on what the grid's first sample, at `at` itself, must meet; the Sun 0.5 degree.
_SAT_LOOK_S = (0.0, 2.0)
_SAT_MARGIN_DEG = 1.0
_STAR_MARGIN_DEG = 0.5
_AIRMASS_MARGIN = 0.05
_SUN_MARGIN_DEG = 0.5


def _maybe_now(station: Station, targets: Sequence[PlanTarget], at: datetime, options: MappingOptions) -> list[int]:
    """Indices of the targets that might have an opportunity starting at `at` (a superset of those that do)."""
    from skymesh.astro.celestial import airmass, radec_to_altaz, sun_altitude_deg
    from skymesh.astro.frames import SECONDS_PER_DAY, datetime_to_jd
    from skymesh.astro.propagate import SatelliteBatch, look_angles
    from skymesh.scheduler.elements import cached_satrec, cached_tle
    from skymesh.scheduler.visibility import satellite_can_use

    jd0 = datetime_to_jd(at)
    keep: list[int] = []
    sats = [(i, t.target) for i, t in enumerate(targets) if isinstance(t.target, SatelliteTarget)]
    tles = []
    for i, t in sats:  # every element set, as the mapping parses every one: bad lines fail the same way
        try:
            tles.append(cached_tle(t.tle_line1, t.tle_line2, t.name))
        except SkyMeshError as exc:
            exc.field = f"targets[{i}].target.satellite.{exc.field or 'tle_line1'}"
            raise
    usable = [k for k, (_, t) in enumerate(sats) if satellite_can_use(station, t)]
    tles = [tles[k] for k in usable]
    sats = [sats[k] for k in usable]
    if sats:
        batch = SatelliteBatch(tles, satrecs=[cached_satrec(t.tle_line1, t.tle_line2, t.name) for _, t in sats])
        loc = station.location
        jd = [jd0 + s / SECONDS_PER_DAY for s in _SAT_LOOK_S]
        el = look_angles(batch, [loc.latitude_deg], [loc.longitude_deg], [loc.altitude_m], jd).elevation_deg[:, 0, :]
        threshold = np.maximum(station.min_elevation_deg, [t.min_elevation_deg for _, t in sats]) - _SAT_MARGIN_DEG
        with np.errstate(invalid="ignore"):
            below = np.all(el < threshold[:, None], axis=1)  # NaN (decayed) stays in: the mapping decides
        keep += [i for (i, _), b in zip(sats, below.tolist(), strict=True) if not b]
    stars = [(i, t.target) for i, t in enumerate(targets) if isinstance(t.target, CelestialTarget)]
    if stars and station.kind == StationKind.TELESCOPE:
        lat, lon = [station.location.latitude_deg], [station.location.longitude_deg]
        sun = float(sun_altitude_deg(lat, lon, [jd0])[0, 0])
        if not sun >= options.night_sun_altitude_deg + _SUN_MARGIN_DEG:
            alt = radec_to_altaz([t.ra_deg for _, t in stars], [t.dec_deg for _, t in stars], lat, lon, [jd0])
            a = alt[0][:, 0, 0]
            with np.errstate(invalid="ignore"):
                low = a < station.min_elevation_deg - _STAR_MARGIN_DEG
                thick = airmass(a) > np.asarray([t.max_airmass for _, t in stars]) + _AIRMASS_MARGIN
            keep += [i for (i, _), out in zip(stars, (low | thick).tolist(), strict=True) if not out]
    return sorted(keep)


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


def _altitudes_now(
    station: Station, targets: Sequence[SatelliteTarget | CelestialTarget], at: datetime
) -> list[tuple[float, float]]:
    """(altitude, airmass) of each target at `at` (airmass 0 for satellites and where undefined): one SGP4 call for
    the satellites and one alt/az for the stars, not one per target (20 look-angle calls were a quarter of a ground
    station's list)."""
    from skymesh.astro.celestial import airmass, radec_to_altaz
    from skymesh.astro.frames import datetime_to_jd
    from skymesh.astro.propagate import SatelliteBatch, look_angles
    from skymesh.scheduler.elements import cached_satrec, cached_tle

    out = [(0.0, 0.0)] * len(targets)
    jd = [datetime_to_jd(at)]
    loc = station.location
    sats = [(k, t) for k, t in enumerate(targets) if isinstance(t, SatelliteTarget)]
    if sats:
        keys = [(t.tle_line1, t.tle_line2, t.name) for _, t in sats]
        batch = SatelliteBatch([cached_tle(*key) for key in keys], satrecs=[cached_satrec(*key) for key in keys])
        el = look_angles(batch, [loc.latitude_deg], [loc.longitude_deg], [loc.altitude_m], jd).elevation_deg
        for (k, _), e in zip(sats, el[:, 0, 0].tolist(), strict=True):
            out[k] = (float(e), 0.0)
    stars = [(k, t) for k, t in enumerate(targets) if isinstance(t, CelestialTarget)]
    if stars:
        ra = np.asarray([t.ra_deg for _, t in stars])
        dec = np.asarray([t.dec_deg for _, t in stars])
        alt = radec_to_altaz(ra, dec, np.asarray([loc.latitude_deg]), np.asarray([loc.longitude_deg]), np.asarray(jd))
        a = alt[0][:, 0, 0]
        with np.errstate(invalid="ignore"):
            x = airmass(a)
        for (k, _), ak, xk in zip(stars, a.tolist(), x.tolist(), strict=True):
            out[k] = (float(ak), xk if math.isfinite(xk) else 0.0)
    return out
