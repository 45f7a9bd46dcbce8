"""Reference passes from Skyfield's `find_events`, for tests and benchmarks (Skyfield is a test-only dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import ArrayLike
from skyfield.api import EarthSatellite, load, wgs84

from skymesh.astro.frames import datetime_to_jd
from skymesh.astro.passes import PassTable
from skymesh.astro.tle import TLE


@dataclass(frozen=True)
class RefPass:
    sat_index: int
    station_index: int
    aos_jd_utc: float
    los_jd_utc: float
    max_elevation_deg: float


def skyfield_passes(
    tles: Sequence[TLE],
    lat_deg: ArrayLike,
    lon_deg: ArrayLike,
    alt_m: ArrayLike,
    start: datetime,
    end: datetime,
    min_elevation_deg: ArrayLike,
) -> list[RefPass]:
    """Complete passes (rise and set inside the window) found by a serial Skyfield loop."""
    ts = load.timescale()
    t0, t1 = ts.from_datetime(start), ts.from_datetime(end)
    lats = np.atleast_1d(np.asarray(lat_deg, dtype=float))
    lons = np.atleast_1d(np.asarray(lon_deg, dtype=float))
    alts = np.atleast_1d(np.asarray(alt_m, dtype=float))
    masks = np.broadcast_to(np.asarray(min_elevation_deg, dtype=float), lats.shape)
    topos = [
        wgs84.latlon(float(la), float(lo), elevation_m=float(al)) for la, lo, al in zip(lats, lons, alts, strict=True)
    ]
    out: list[RefPass] = []
    for i, tle in enumerate(tles):
        sat = EarthSatellite(tle.line1, tle.line2, tle.name, ts)
        for s, topo in enumerate(topos):
            times, events = sat.find_events(topo, t0, t1, altitude_degrees=float(masks[s]))
            rise = None
            best = -90.0
            for t, e in zip(times, events, strict=True):
                if e == 0:
                    rise, best = t, -90.0
                elif e == 1 and rise is not None:
                    best = max(best, float((sat - topo).at(t).altaz()[0].degrees))
                elif e == 2 and rise is not None:
                    out.append(
                        RefPass(i, s, datetime_to_jd(rise.utc_datetime()), datetime_to_jd(t.utc_datetime()), best)
                    )
                    rise = None
    return out


@dataclass(frozen=True)
class Agreement:
    reference: int
    matched: int
    extra: int  # complete passes we found that the reference did not
    max_aos_s: float
    max_los_s: float
    max_elevation_deg: float


def compare(table: PassTable, ref: Sequence[RefPass], match_window_s: float = 120.0) -> Agreement:
    """Match complete (unclipped) passes by (satellite, station) and AOS within `match_window_s`."""
    inner = ~(table.aos_clipped | table.los_clipped)
    mine: dict[tuple[int, int], list[int]] = {}
    for jj in np.nonzero(inner)[0].tolist():
        mine.setdefault((int(table.sat_index[jj]), int(table.station_index[jj])), []).append(jj)
    used: set[int] = set()
    d_aos: list[float] = []
    d_los: list[float] = []
    d_el: list[float] = []
    for p in ref:
        best_j, best_d = -1, match_window_s
        for j in mine.get((p.sat_index, p.station_index), []):
            d = abs(float(table.aos_jd[j]) - p.aos_jd_utc) * 86400.0
            if d < best_d and j not in used:
                best_j, best_d = j, d
        if best_j < 0:
            continue
        used.add(best_j)
        d_aos.append(best_d)
        d_los.append(abs(float(table.los_jd[best_j]) - p.los_jd_utc) * 86400.0)
        if p.max_elevation_deg > -90.0:
            d_el.append(abs(float(table.max_elevation_deg[best_j]) - p.max_elevation_deg))
    # Passes of ours that start or end within a second of the window edges are complete for Skyfield too.
    return Agreement(
        reference=len(ref),
        matched=len(d_aos),
        extra=int(inner.sum()) - len(used),
        max_aos_s=max(d_aos, default=0.0),
        max_los_s=max(d_los, default=0.0),
        max_elevation_deg=max(d_el, default=0.0),
    )
