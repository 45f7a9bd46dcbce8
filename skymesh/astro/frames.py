"""Time scales and reference frames for satellite look angles: UTC <-> Julian date, GMST, TEME -> ECEF, WGS84.

Everything here is vectorised numpy with broadcasting. Conventions:
- Times inside kernels are Julian dates (UTC, float64; UT1 is taken equal to UTC: |UT1-UTC| < 0.9 s moves a
  ground station by < 0.42 km along the Earth's rotation, which shifts pass times by well under 0.1 s).
- TEME -> ECEF is Vallado's TEME -> PEF rotation by GMST (IAU 1982), without polar motion (< 15 m).
- Positions are km, velocities km/s, angles deg at the API and rad inside.
- `topocentric` maps satellite states shaped (N, T, 3) and station arrays shaped (S,) onto (N, S, T) results.

Runtime imports: numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skymesh.core.errors import InvalidArgument

__all__ = [
    "EARTH_ROTATION_RAD_S",
    "JD_UNIX_EPOCH",
    "WGS84_A_KM",
    "WGS84_F",
    "datetime_to_jd",
    "datetimes_to_jd",
    "ecef_to_geodetic",
    "enu_basis",
    "geodetic_to_ecef",
    "gmst_rad",
    "jd_grid",
    "jd_to_datetime",
    "jd_to_datetimes",
    "require_utc",
    "teme_to_ecef",
    "topocentric",
]

F64 = NDArray[np.float64]

JD_UNIX_EPOCH = 2_440_587.5
JD_J2000 = 2_451_545.0
SECONDS_PER_DAY = 86_400.0
WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
_WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
EARTH_ROTATION_RAD_S = 7.292115146706979e-5  # Vallado's value for TEME/PEF
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------- time


def require_utc(value: datetime, field: str) -> datetime:
    """Return `value` in UTC; raise InvalidArgument for a naive datetime (whose zone is a guess)."""
    if not isinstance(value, datetime):
        raise InvalidArgument(f"must be a datetime, got {type(value).__name__}", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument("must be timezone-aware (UTC); got a naive datetime", field=field)
    return value.astimezone(UTC)


def datetime_to_jd(value: datetime) -> float:
    """Julian date (UTC) of a tz-aware datetime, to about 40 microseconds (float64 at JD ~2.46e6)."""
    dt = require_utc(value, "time")
    delta = dt - _UNIX_EPOCH
    return JD_UNIX_EPOCH + delta.days + (delta.seconds + delta.microseconds * 1e-6) / SECONDS_PER_DAY


def datetimes_to_jd(values: Iterable[datetime]) -> F64:
    return np.array([datetime_to_jd(v) for v in values], dtype=np.float64)


def jd_to_datetime(jd: float) -> datetime:
    """Tz-aware UTC datetime of a Julian date, rounded to the microsecond."""
    if not math.isfinite(jd):
        raise InvalidArgument(f"Julian date {jd} is not finite", field="jd")
    days = math.floor(jd - JD_UNIX_EPOCH)
    frac_us = round((jd - JD_UNIX_EPOCH - days) * SECONDS_PER_DAY * 1e6)
    return _UNIX_EPOCH + timedelta(days=days, microseconds=frac_us)


def jd_to_datetimes(jd: ArrayLike) -> list[datetime]:
    return [jd_to_datetime(float(x)) for x in np.ravel(np.asarray(jd, dtype=np.float64))]


def jd_grid(start: datetime, end: datetime, step_s: float) -> F64:
    """Julian dates from `start` to `end` inclusive every `step_s` seconds (the last step may be shorter)."""
    jd0, jd1 = datetime_to_jd(start), datetime_to_jd(end)
    if not step_s > 0:
        raise InvalidArgument(f"step must be > 0 s, got {step_s}", field="step_s")
    if jd1 < jd0:
        raise InvalidArgument("end is before start", field="end")
    n = math.floor((jd1 - jd0) * SECONDS_PER_DAY / step_s + 1e-9)
    grid = jd0 + np.arange(n + 1, dtype=np.float64) * (step_s / SECONDS_PER_DAY)
    if grid[-1] < jd1 - 1e-9:
        grid = np.append(grid, jd1)
    return grid


def gmst_rad(jd_ut1: ArrayLike) -> F64:
    """Greenwich mean sidereal time (IAU 1982, as SGP4's TEME uses), radians in [0, 2 pi)."""
    jd = np.asarray(jd_ut1, dtype=np.float64)
    t = (jd - JD_J2000) / 36_525.0
    # Split the big linear term so float64 keeps microsecond-level time resolution.
    day_frac = (jd - 0.5) % 1.0
    gmst_s = (
        67_310.54841
        + day_frac * SECONDS_PER_DAY  # (876600 h) * T  == whole days * 86400 + fraction
        + 8_640_184.812866 * t
        + 0.093104 * t * t
        - 6.2e-6 * t * t * t
        - 43_200.0  # 876600 h * T counted from 12:00, minus the whole days dropped above
    )
    return np.asarray((gmst_s % SECONDS_PER_DAY) * (2.0 * math.pi / SECONDS_PER_DAY), dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- frames


def teme_to_ecef(r_teme_km: ArrayLike, v_teme_km_s: ArrayLike, jd: ArrayLike) -> tuple[F64, F64]:
    """Rotate TEME states into Earth-fixed (PEF ~ ITRF without polar motion). `jd` broadcasts over r[..., 0]."""
    r = np.asarray(r_teme_km, dtype=np.float64)
    v = np.asarray(v_teme_km_s, dtype=np.float64)
    theta = gmst_rad(jd)
    c, s = np.cos(theta), np.sin(theta)
    x = c * r[..., 0] + s * r[..., 1]
    y = -s * r[..., 0] + c * r[..., 1]
    r_ecef = np.stack(np.broadcast_arrays(x, y, r[..., 2] + 0.0 * x), axis=-1)
    vx = c * v[..., 0] + s * v[..., 1] + EARTH_ROTATION_RAD_S * y
    vy = -s * v[..., 0] + c * v[..., 1] - EARTH_ROTATION_RAD_S * x
    v_ecef = np.stack(np.broadcast_arrays(vx, vy, v[..., 2] + 0.0 * vx), axis=-1)
    return r_ecef, v_ecef


def _station_arrays(lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike) -> tuple[F64, F64, F64]:
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    alt = np.asarray(alt_m, dtype=np.float64)
    if np.any(~np.isfinite(lat)) or np.any(np.abs(lat) > 90.0):
        raise InvalidArgument("latitude must be within -90..90 deg", field="latitude_deg")
    if np.any(~np.isfinite(lon)):
        raise InvalidArgument("longitude must be finite", field="longitude_deg")
    if np.any(~np.isfinite(alt)) or np.any(alt < -12_000.0) or np.any(alt > 100_000.0):
        raise InvalidArgument("altitude must be within -12000..100000 m", field="altitude_m")
    return lat, lon, alt


def geodetic_to_ecef(lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike) -> F64:
    """WGS84 geodetic coordinates to Earth-fixed position, km, shaped broadcast(lat, lon, alt) + (3,)."""
    lat, lon, alt = _station_arrays(lat_deg, lon_deg, alt_m)
    phi, lam = np.radians(lat), np.radians(lon)
    sin_phi = np.sin(phi)
    n_km = WGS84_A_KM / np.sqrt(1.0 - _WGS84_E2 * sin_phi * sin_phi)
    h_km = alt / 1000.0
    x = (n_km + h_km) * np.cos(phi) * np.cos(lam)
    y = (n_km + h_km) * np.cos(phi) * np.sin(lam)
    z = (n_km * (1.0 - _WGS84_E2) + h_km) * sin_phi
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def ecef_to_geodetic(r_ecef_km: ArrayLike) -> tuple[F64, F64, F64]:
    """Earth-fixed km to WGS84 (lat_deg, lon_deg, alt_km) by Bowring's iteration (sub-mm for Earth orbits)."""
    r = np.asarray(r_ecef_km, dtype=np.float64)
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    p = np.hypot(x, y)
    lon = np.arctan2(y, x)
    lat = np.arctan2(z, p * (1.0 - _WGS84_E2))
    for _ in range(5):
        sin_lat = np.sin(lat)
        n_km = WGS84_A_KM / np.sqrt(1.0 - _WGS84_E2 * sin_lat * sin_lat)
        alt = p / np.maximum(np.cos(lat), 1e-12) - n_km
        lat = np.arctan2(z, p * (1.0 - _WGS84_E2 * n_km / (n_km + alt)))
    sin_lat = np.sin(lat)
    n_km = WGS84_A_KM / np.sqrt(1.0 - _WGS84_E2 * sin_lat * sin_lat)
    alt = np.where(np.abs(np.cos(lat)) > 1e-9, p / np.cos(lat) - n_km, np.abs(z) - n_km * (1.0 - _WGS84_E2))
    return np.degrees(lat), np.degrees(lon), np.asarray(alt, dtype=np.float64)


def enu_basis(lat_deg: ArrayLike, lon_deg: ArrayLike) -> tuple[F64, F64, F64]:
    """Unit east, north and up (geodetic normal) vectors in ECEF, each shaped broadcast(lat, lon) + (3,)."""
    phi = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lam = np.radians(np.asarray(lon_deg, dtype=np.float64))
    sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
    east = np.stack(np.broadcast_arrays(-sl, cl, 0.0 * sl), axis=-1)
    north = np.stack(np.broadcast_arrays(-sp * cl, -sp * sl, cp), axis=-1)
    up = np.stack(np.broadcast_arrays(cp * cl, cp * sl, sp), axis=-1)
    return east, north, up


def topocentric(
    r_ecef_km: ArrayLike,
    v_ecef_km_s: ArrayLike,
    station_lat_deg: ArrayLike,
    station_lon_deg: ArrayLike,
    station_alt_m: ArrayLike,
) -> tuple[F64, F64, F64, F64]:
    """Look angles of satellites from stations: (azimuth_deg, elevation_deg, range_km, range_rate_km_s).

    `r_ecef_km`, `v_ecef_km_s` are (N, T, 3); station arrays are (S,); results are (N, S, T). Azimuth is
    clockwise from true north in [0, 360); range rate is positive when the satellite moves away.
    """
    r = np.asarray(r_ecef_km, dtype=np.float64)
    v = np.asarray(v_ecef_km_s, dtype=np.float64)
    if r.ndim != 3 or r.shape[-1] != 3 or v.shape != r.shape:
        raise InvalidArgument("satellite states must be shaped (N, T, 3)", field="r_ecef_km")
    lat = np.atleast_1d(np.asarray(station_lat_deg, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(station_lon_deg, dtype=np.float64))
    alt = np.atleast_1d(np.asarray(station_alt_m, dtype=np.float64))
    site = geodetic_to_ecef(lat, lon, alt)  # (S, 3)
    east, north, up = enu_basis(lat, lon)
    d = r[:, None, :, :] - site[None, :, None, :]  # (N, S, T, 3)
    e = np.einsum("nstk,sk->nst", d, east)
    n = np.einsum("nstk,sk->nst", d, north)
    u = np.einsum("nstk,sk->nst", d, up)
    range_km = np.sqrt(e * e + n * n + u * u)
    elevation_deg = np.degrees(np.arcsin(np.clip(u / range_km, -1.0, 1.0)))
    azimuth_deg = np.degrees(np.arctan2(e, n)) % 360.0
    range_rate = np.einsum("nstk,ntk->nst", d, v) / range_km
    return azimuth_deg, elevation_deg, range_km, range_rate
