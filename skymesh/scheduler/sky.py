"""Observable windows of celestial targets from telescopes, vectorised over (targets x sites x times).

A target can be observed from a telescope at a grid time when it is above the station's minimum elevation and horizon
mask, the Sun is below `night_sun_altitude_deg` (-12 deg, nautical, by default; the request's twilight), the airmass is
at most the target's `max_airmass`, its hour angle is within `max_hour_angle_h` (0: no limit), and the Moon is at least
`min_moon_separation_deg` away and at most `max_moon_illumination` lit (0: no limit). An exposure block lasts
`exposure_count x (exposure_s + overhead)`; it may start at a grid time when every grid sample it covers is observable
(LCO-style discrete start options, `celestial_step_s` apart). Capability comes first: the station must have one of the
target's filters (or the target asks for none) and reach its magnitude (`limiting_magnitude`, or an estimate from the
aperture), be online and have CLEAR (or unspecified) weather. Each (target, station) pair left with no start option gets
the first condition that failed, in the order above, as its reason.

Imports: numpy, `skymesh.astro.celestial`, `skymesh.core` and the scheduler's reason codes; never grpc.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.celestial import (
    airmass,
    hour_angle_h,
    moon_illumination,
    moon_separation_deg,
    radec_to_altaz,
    sun_altitude_deg,
)
from skymesh.astro.frames import SECONDS_PER_DAY, datetime_to_jd
from skymesh.core.model import CelestialTarget, Station, StationKind, TimeWindow
from skymesh.scheduler.inputs import MappingOptions, PlanTarget
from skymesh.scheduler.reasons import FilterLog, ReasonCode
from skymesh.scheduler.visibility import Windows

__all__ = ["altitude_airmass", "block_duration_s", "celestial_windows", "chosen_filter", "limiting_magnitude"]

F64 = NDArray[np.float64]
_TARGET_CHUNK = 128


def limiting_magnitude(station: Station) -> float:
    """The station's limiting magnitude, else a rough one from its aperture (2.7 + 5 log10 D[mm]), else none (inf)."""
    if station.limiting_magnitude > 0:
        return station.limiting_magnitude
    if station.aperture_m > 0:
        return 2.7 + 5.0 * math.log10(station.aperture_m * 1000.0)
    return math.inf


def chosen_filter(station: Station, target: CelestialTarget) -> str | None:
    """The filter to use: the first of the target's filters the station has; None when none matches."""
    if not target.filters:
        return station.filters[0] if station.filters else ""
    have = {f.lower(): f for f in station.filters}
    for f in target.filters:
        if f.lower() in have:
            return have[f.lower()]
    return None


def block_duration_s(target: CelestialTarget, options: MappingOptions) -> float:
    return target.exposure_count * (target.exposure_s + options.exposure_overhead_s)


def _mask_at(station: Station, az_deg: F64) -> F64:
    m = station.horizon_mask
    if not m.azimuth_deg:
        return np.full(az_deg.shape, -90.0)
    return np.asarray(np.interp(az_deg % 360.0, m.azimuth_deg, m.min_elevation_deg, period=360.0), dtype=np.float64)


def celestial_windows(
    stations: Sequence[Station],
    targets: Sequence[tuple[int, PlanTarget]],
    window: TimeWindow,
    log: FilterLog,
    options: MappingOptions,
    *,
    unavailable_s: Sequence[Sequence[tuple[float, float]]] = (),
) -> Windows:
    out = Windows()
    scopes = [i for i, s in enumerate(stations) if s.kind == StationKind.TELESCOPE]
    usable: list[int] = []  # telescopes that are online
    cap: dict[tuple[int, int], str] = {}  # (k, station) -> filter
    for k, (req, pt) in enumerate(targets):
        t = pt.target
        assert isinstance(t, CelestialTarget)
        with_filter = [s for s in scopes if chosen_filter(stations[s], t) is not None]
        if not with_filter:
            log.add(req, ReasonCode.NO_CAPABLE_STATION, "", max(1, len(scopes)))
            continue
        bright = [s for s in with_filter if t.magnitude <= limiting_magnitude(stations[s])]
        for s in with_filter:
            if s not in bright:
                log.add(req, ReasonCode.TOO_FAINT, stations[s].station_id)
        for s in bright:
            if not stations[s].state.schedulable:
                log.add(req, ReasonCode.STATION_OFFLINE, stations[s].station_id)
                continue
            if not stations[s].weather.allows(StationKind.TELESCOPE):
                log.add(req, ReasonCode.WEATHER, stations[s].station_id)
                continue
            cap[(k, s)] = chosen_filter(stations[s], t) or ""
            if s not in usable:
                usable.append(s)
    if not cap:
        return out
    usable.sort()
    step = options.celestial_step_s
    total_s = window.duration_s
    t_s = np.arange(0.0, total_s + 1e-9, step)
    jd = datetime_to_jd(window.start) + t_s / SECONDS_PER_DAY
    lat = np.asarray([stations[s].location.latitude_deg for s in usable])
    lon = np.asarray([stations[s].location.longitude_deg for s in usable])
    night = sun_altitude_deg(lat, lon, jd) < options.night_sun_altitude_deg  # (S, T)
    free = np.ones((len(usable), len(t_s)), dtype=bool)
    for j, s in enumerate(usable):
        for a, b in unavailable_s[s] if unavailable_s else ():
            free[j] &= ~((t_s >= a - step) & (t_s <= b))
    min_el = np.asarray([stations[s].min_elevation_deg for s in usable])
    illumination = moon_illumination(jd)  # (T,)
    capable_k = sorted({k for k, _ in cap})
    for c0 in range(0, len(capable_k), _TARGET_CHUNK):
        ks = capable_k[c0 : c0 + _TARGET_CHUNK]
        tg = [_celestial(targets[k][1]) for k in ks]
        ra = np.asarray([t.ra_deg for t in tg])
        dec = np.asarray([t.dec_deg for t in tg])
        alt, az = radec_to_altaz(ra, dec, lat, lon, jd)  # (N, S, T)
        mask = np.stack([_mask_at(stations[s], az[:, j, :]) for j, s in enumerate(usable)], axis=1)
        above_min = alt >= min_el[None, :, None]
        up = above_min & (alt >= mask)
        am = airmass(alt)
        max_am = np.asarray([t.max_airmass for t in tg])
        max_ha = np.asarray([t.max_hour_angle_h or np.inf for t in tg])
        if np.isfinite(max_ha).any():
            ha_ok = np.abs(hour_angle_h(ra, dec, lon, jd)) <= max_ha[:, None, None]  # (N, S, T)
        else:
            ha_ok = np.ones(alt.shape, dtype=bool)
        sep = moon_separation_deg(ra, dec, jd)  # (N, T)
        moon_ok = sep >= np.asarray([t.min_moon_separation_deg for t in tg])[:, None]
        max_illum = np.asarray([t.max_moon_illumination or np.inf for t in tg])
        moon_ok &= illumination[None, :] <= max_illum[:, None]
        dark = up & night[None, :, :]
        low = dark & (am <= max_am[:, None, None])
        meridian = low & ha_ok
        clear = meridian & moon_ok[:, None, :]
        good = clear & free[None, :, :]
        for n, k in enumerate(ks):
            req, pt = targets[k]
            t = tg[n]
            dur = block_duration_s(t, options)
            need = max(1, math.ceil(dur / step - 1e-9))
            for j, s in enumerate(usable):
                if (k, s) not in cap:
                    continue
                g = good[n, j]
                starts = _block_starts(g, need, t_s, dur, total_s)
                sid = stations[s].station_id
                if len(starts) == 0:
                    code = _first_failure(
                        above_min[n, j], up[n, j], dark[n, j], low[n, j], meridian[n, j], clear[n, j], g
                    )
                    log.add(req, code, sid)
                    continue
                end_idx = np.minimum(starts + need, len(t_s) - 1)
                out.extend(
                    target=np.full(len(starts), req, dtype=np.int64),
                    station=np.full(len(starts), s, dtype=np.int64),
                    start_s=t_s[starts],
                    end_s=t_s[starts] + dur,
                    tca_s=np.full(len(starts), np.nan),
                    max_elevation_deg=np.maximum(alt[n, j, starts], alt[n, j, end_idx]),
                    az0=az[n, j, starts],
                    el0=alt[n, j, starts],
                    az1=az[n, j, end_idx],
                    el1=alt[n, j, end_idx],
                )
                out.filter_name.extend([cap[(k, s)]] * len(starts))
    return out


def _celestial(pt: PlanTarget) -> CelestialTarget:
    assert isinstance(pt.target, CelestialTarget)
    return pt.target


def _block_starts(good: NDArray[np.bool_], need: int, t_s: F64, dur: float, total_s: float) -> NDArray[np.int64]:
    """Grid indices k where good[k..k+need] all hold and the block ends inside the window."""
    n = len(good)
    if n <= need:
        return np.zeros(0, dtype=np.int64)
    c = np.r_[0, np.cumsum(good.astype(np.int64))]
    k = np.arange(n - need)
    ok = (c[k + need + 1] - c[k]) == need + 1
    ok &= t_s[k] + dur <= total_s + 1e-6
    return np.flatnonzero(ok).astype(np.int64)


def _first_failure(
    above_min: NDArray[np.bool_],
    up: NDArray[np.bool_],
    dark: NDArray[np.bool_],
    low: NDArray[np.bool_],
    meridian: NDArray[np.bool_],
    clear: NDArray[np.bool_],
    good: NDArray[np.bool_],
) -> ReasonCode:
    if not above_min.any():
        return ReasonCode.NEVER_VISIBLE
    if not up.any():
        return ReasonCode.BELOW_HORIZON_MASK
    if not dark.any():
        return ReasonCode.DAYLIGHT
    if not low.any():
        return ReasonCode.AIRMASS
    if not meridian.any():
        return ReasonCode.HOUR_ANGLE
    if not clear.any():
        return ReasonCode.MOON
    if not good.any():
        return ReasonCode.STATION_UNAVAILABLE
    return ReasonCode.TOO_SHORT


def altitude_airmass(station: Station, target: CelestialTarget, at: datetime) -> tuple[float, float]:
    jd = np.asarray([datetime_to_jd(at)])
    alt, _az = radec_to_altaz(
        np.asarray([target.ra_deg]),
        np.asarray([target.dec_deg]),
        np.asarray([station.location.latitude_deg]),
        np.asarray([station.location.longitude_deg]),
        jd,
    )
    a = float(alt[0, 0, 0])
    return a, float(airmass(np.asarray([a]))[0])
