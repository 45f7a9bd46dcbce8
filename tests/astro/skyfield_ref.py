"""Reference passes from Skyfield's `find_events`, for tests and benchmarks (Skyfield is a test-only dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True)
class RawEvents:
    """What a plain Skyfield loop produces: `find_events` output per (satellite, station)."""

    ts: Any
    sats: list[EarthSatellite]
    topos: list[Any]
    events: list[tuple[int, int, Any, Any]]  # (sat, station, times, event codes)


def skyfield_events(
    tles: Sequence[TLE],
    lat_deg: ArrayLike,
    lon_deg: ArrayLike,
    alt_m: ArrayLike,
    start: datetime,
    end: datetime,
    min_elevation_deg: ArrayLike,
) -> RawEvents:
    """The serial Skyfield loop (the part a benchmark times): one `find_events` per (satellite, station)."""
    ts = load.timescale()
    t0, t1 = ts.from_datetime(start), ts.from_datetime(end)
    lats = np.atleast_1d(np.asarray(lat_deg, dtype=float))
    lons = np.atleast_1d(np.asarray(lon_deg, dtype=float))
    alts = np.atleast_1d(np.asarray(alt_m, dtype=float))
    masks = np.broadcast_to(np.asarray(min_elevation_deg, dtype=float), lats.shape)
    topos = [
        wgs84.latlon(float(la), float(lo), elevation_m=float(al)) for la, lo, al in zip(lats, lons, alts, strict=True)
    ]
    sats = [EarthSatellite(tle.line1, tle.line2, tle.name, ts) for tle in tles]
    events = []
    for i, sat in enumerate(sats):
        for s, topo in enumerate(topos):
            times, codes = sat.find_events(topo, t0, t1, altitude_degrees=float(masks[s]))
            events.append((i, s, times, codes))
    return RawEvents(ts, sats, topos, events)


def passes_from_events(raw: RawEvents) -> list[RefPass]:
    """Complete passes (rise and set inside the window) with Skyfield's maximum altitude.

    find_events places culminations to about 0.1 s; near the zenith the elevation changes ~1 deg/s there, so its
    altitude at that instant can be 0.05 deg short of the real maximum: above 60 deg the altitude is re-sampled
    every 10 ms over +-0.5 s around the culmination (still Skyfield's own geometry).
    """
    out: list[RefPass] = []
    offsets = np.linspace(-0.5, 0.5, 101) / 86400.0
    for i, s, times, codes in raw.events:
        if len(times) == 0:
            continue
        sat, topo = raw.sats[i], raw.topos[s]
        alt_at = (sat - topo).at(times).altaz()[0].degrees
        culm = [k for k, c in enumerate(codes) if c == 1 and alt_at[k] >= 60.0]
        best_at = dict(enumerate(alt_at))
        if culm:
            dense = raw.ts.tt_jd((np.asarray(times.tt)[culm][:, None] + offsets[None, :]).ravel())
            dense_alt = (sat - topo).at(dense).altaz()[0].degrees.reshape(len(culm), -1).max(axis=1)
            for k, v in zip(culm, dense_alt, strict=True):
                best_at[k] = max(best_at[k], float(v))
        rise = None
        best = -90.0
        for k, (t, e) in enumerate(zip(times, codes, strict=True)):
            if e == 0:
                rise, best = t, -90.0
            elif e == 1 and rise is not None:
                best = max(best, float(best_at[k]))
            elif e == 2 and rise is not None:
                out.append(RefPass(i, s, datetime_to_jd(rise.utc_datetime()), datetime_to_jd(t.utc_datetime()), best))
                rise = None
    return out


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
    return passes_from_events(skyfield_events(tles, lat_deg, lon_deg, alt_m, start, end, min_elevation_deg))


@dataclass(frozen=True)
class Agreement:
    reference: int
    matched: int
    extra: int  # complete passes we found that the reference did not
    max_aos_s: float
    max_los_s: float
    max_elevation_deg: float
    unmatched: tuple[RefPass, ...] = ()


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
    unmatched: list[RefPass] = []
    for p in ref:
        best_j, best_d = -1, match_window_s
        for j in mine.get((p.sat_index, p.station_index), []):
            d = abs(float(table.aos_jd[j]) - p.aos_jd_utc) * 86400.0
            if d < best_d and j not in used:
                best_j, best_d = j, d
        if best_j < 0:
            unmatched.append(p)
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
        unmatched=tuple(unmatched),
    )
