"""What the network map draws besides stations: every satellite target's sub-satellite point now, its ground track
over one orbit either side, the radius of its visibility footprint, and the sub-solar point (for the night shade).
Computed in the gateway with `skymesh.astro` (vectorised SGP4 over satellites x times), from the targets the caller
may list."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from skymesh.api.common.v1 import common_pb2
from skymesh.astro.celestial import sun_radec
from skymesh.astro.frames import datetime_to_jd, ecef_to_geodetic, gmst_rad, teme_to_ecef
from skymesh.astro.propagate import SatelliteBatch
from skymesh.astro.tle import TLE, parse_tle
from skymesh.core.errors import SkyMeshError

__all__ = ["sky_json"]

_EARTH_RADIUS_KM = 6371.0
_TRACK_POINTS = 121  # per ±1 orbit


@dataclass(frozen=True)
class _Sat:
    target_id: str
    name: str
    tle: TLE


def subsolar_point(at: datetime) -> tuple[float, float]:
    jd = datetime_to_jd(at)
    ra, dec = sun_radec(np.array([jd]))
    lon = (float(ra[0]) - math.degrees(float(gmst_rad(jd)))) % 360.0
    return float(dec[0]), lon - 360.0 if lon > 180.0 else lon


def footprint_radius_km(alt_km: float, min_elevation_deg: float = 0.0) -> float:
    """Great-circle radius on the ground from which the satellite is above `min_elevation_deg`."""
    eps = math.radians(min_elevation_deg)
    ratio = _EARTH_RADIUS_KM / (_EARTH_RADIUS_KM + max(alt_km, 0.0)) * math.cos(eps)
    return _EARTH_RADIUS_KM * (math.acos(min(1.0, ratio)) - eps)


def sky_json(targets: list[common_pb2.Target], at: datetime, *, tracks: bool = True) -> dict[str, Any]:
    sats: list[_Sat] = []
    for t in targets:
        if t.WhichOneof("kind") != "satellite":
            continue
        try:
            sats.append(_Sat(t.target_id, t.name, parse_tle(t.satellite.tle_line1, t.satellite.tle_line2, t.name)))
        except SkyMeshError:
            continue  # stored elements the server accepted; skip any this parser cannot use rather than fail the map
    sun_lat, sun_lon = subsolar_point(at)
    out: dict[str, Any] = {"at": at.isoformat().replace("+00:00", "Z"), "sun": {"lat_deg": sun_lat, "lon_deg": sun_lon}}
    if not sats:
        out["satellites"] = []
        return out
    batch = SatelliteBatch([s.tle for s in sats])
    jd0 = datetime_to_jd(at)
    # One grid for all: ±1 orbit of the slowest satellite would over-draw the fast ones, so scale per satellite.
    periods_d = np.array([1.0 / s.tle.mean_motion_rev_per_day for s in sats])
    frac = np.linspace(-1.0, 1.0, _TRACK_POINTS if tracks else 1) if tracks else np.array([0.0])
    result = []
    for i, s in enumerate(sats):
        jd = jd0 + frac * periods_d[i]
        r, v, _err = batch.propagate(jd, sat_slice=slice(i, i + 1))
        r_ecef, _v = teme_to_ecef(r[0], v[0], jd)
        lat, lon, alt = ecef_to_geodetic(r_ecef)
        now_i = len(jd) // 2
        if not math.isfinite(float(lat[now_i])):
            continue
        item: dict[str, Any] = {
            "target_id": s.target_id,
            "name": s.name,
            "lat_deg": round(float(lat[now_i]), 4),
            "lon_deg": round(float(lon[now_i]), 4),
            "alt_km": round(float(alt[now_i]), 1),
            "footprint_radius_km": round(footprint_radius_km(float(alt[now_i])), 1),
            "period_min": round(float(periods_d[i]) * 1440.0, 2),
        }
        if tracks:
            ok = np.isfinite(lat)
            item["track"] = [[round(float(a), 3), round(float(b), 3)] for a, b in zip(lat[ok], lon[ok], strict=True)]
        result.append(item)
    out["satellites"] = result
    return out
