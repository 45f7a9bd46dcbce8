"""Celestial targets for telescopes: alt/az of RA/Dec over (targets x sites x times), airmass, Sun, Moon, nights.

Vectorised numpy, no astropy (this runs on a station's Raspberry Pi). Shapes: targets (N,), sites (S,), times
(T,) as Julian dates (UTC) give (N, S, T) results; the Sun and Moon give (S, T).

Precision (measured against astropy `AltAz` with pressure 0 in tests/astro/test_celestial.py):
- Stars: J2000 (ICRS) -> mean equator of date by IAU 1976 precession, then nutation (the 4 largest terms, ~0.5")
  and annual aberration (Meeus ch. 23), then hour angle from GMST-82 plus the equation of the equinoxes.
  UT1 = UTC, no polar motion, no refraction, no proper motion, no diurnal aberration. Measured: within
  0.0003 deg (1") of astropy above 5 deg altitude (tests allow 0.02 deg).
- Sun: Astronomical Almanac low-precision formula, about 0.01 deg 1950-2050 (measured 0.008 deg).
- Moon: Astronomical Almanac low-precision series, about 0.3 deg (measured 0.1 deg in altitude), with
  topocentric parallax for alt/az.
- Altitudes are geometric (no refraction); twilight thresholds are the usual geometric ones (-6, -12, -18 deg).

Runtime imports: numpy and skymesh only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skymesh.astro.frames import (
    SECONDS_PER_DAY,
    WGS84_A_KM,
    datetime_to_jd,
    geodetic_to_ecef,
    gmst_rad,
    jd_to_datetime,
    require_utc,
)
from skymesh.core.errors import InvalidArgument

__all__ = [
    "TWILIGHT_SUN_ALTITUDE_DEG",
    "NightWindow",
    "airmass",
    "hour_angle_h",
    "moon_altaz",
    "moon_illumination",
    "moon_radec",
    "moon_separation_deg",
    "night_windows",
    "precess_from_j2000",
    "radec_to_altaz",
    "sun_altaz",
    "sun_altitude_deg",
    "sun_radec",
]

F64 = NDArray[np.float64]
_D2R = math.pi / 180.0
_AS2R = _D2R / 3600.0
_J2000 = 2_451_545.0
_TT_MINUS_UTC_DAYS = 69.184 / SECONDS_PER_DAY  # 32.184 s + 37 leap seconds (valid since 2017)
_ABERRATION_RAD = 20.49552 * _AS2R

TWILIGHT_SUN_ALTITUDE_DEG = {"civil": -6.0, "nautical": -12.0, "astronomical": -18.0}


def _f64(x: ArrayLike) -> F64:
    return np.atleast_1d(np.asarray(x, dtype=np.float64))


def _centuries_tt(jd_utc: F64) -> F64:
    return np.asarray((jd_utc + _TT_MINUS_UTC_DAYS - _J2000) / 36_525.0, dtype=np.float64)


def _obliquity_rad(t: F64) -> F64:
    return np.asarray((23.439291 - 0.0130042 * t) * _D2R, dtype=np.float64)


def _nutation_rad(t: F64) -> tuple[F64, F64]:
    """Nutation in longitude and obliquity (Meeus ch. 22, the largest terms, ~0.5")."""
    omega = (125.04452 - 1934.136261 * t) * _D2R
    l_sun = (280.4665 + 36000.7698 * t) * _D2R
    l_moon = (218.3165 + 481267.8813 * t) * _D2R
    dpsi = (
        -17.20 * np.sin(omega) - 1.32 * np.sin(2 * l_sun) - 0.23 * np.sin(2 * l_moon) + 0.21 * np.sin(2 * omega)
    ) * _AS2R
    deps = (
        9.20 * np.cos(omega) + 0.57 * np.cos(2 * l_sun) + 0.10 * np.cos(2 * l_moon) - 0.09 * np.cos(2 * omega)
    ) * _AS2R
    return np.asarray(dpsi, dtype=np.float64), np.asarray(deps, dtype=np.float64)


def _gast_rad(jd_utc: F64) -> F64:
    t = _centuries_tt(jd_utc)
    dpsi, _ = _nutation_rad(t)
    return np.asarray(gmst_rad(jd_utc) + dpsi * np.cos(_obliquity_rad(t)), dtype=np.float64)


def precess_from_j2000(ra_deg: ArrayLike, dec_deg: ArrayLike, jd: ArrayLike) -> tuple[F64, F64]:
    """Mean RA/Dec of date (deg) of J2000 coordinates, IAU 1976 precession; shapes broadcast(ra, jd)."""
    t = _centuries_tt(np.asarray(jd, dtype=np.float64))
    zeta = (2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) * _AS2R
    z = (2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) * _AS2R
    theta = (2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) * _AS2R
    ra0 = np.asarray(ra_deg, dtype=np.float64) * _D2R
    dec0 = np.asarray(dec_deg, dtype=np.float64) * _D2R
    a = np.cos(dec0) * np.sin(ra0 + zeta)
    b = np.cos(theta) * np.cos(dec0) * np.cos(ra0 + zeta) - np.sin(theta) * np.sin(dec0)
    c = np.sin(theta) * np.cos(dec0) * np.cos(ra0 + zeta) + np.cos(theta) * np.sin(dec0)
    ra = (np.arctan2(a, b) + z) % (2 * math.pi)
    dec = np.arcsin(np.clip(c, -1.0, 1.0))
    return np.asarray(np.degrees(ra), dtype=np.float64), np.asarray(np.degrees(dec), dtype=np.float64)


def _apparent_of_date(ra_deg: F64, dec_deg: F64, jd: F64) -> tuple[F64, F64]:
    """J2000 -> apparent RA/Dec of date (rad): precession, nutation, annual aberration. Broadcasts ra with jd."""
    ra_m, dec_m = precess_from_j2000(ra_deg, dec_deg, jd)
    ra = ra_m * _D2R
    dec = dec_m * _D2R
    t = _centuries_tt(jd)
    eps = _obliquity_rad(t)
    dpsi, deps = _nutation_rad(t)
    cos_dec = np.maximum(np.cos(dec), 1e-12)
    tan_dec = np.sin(dec) / cos_dec
    d_ra = (np.cos(eps) + np.sin(eps) * np.sin(ra) * tan_dec) * dpsi - np.cos(ra) * tan_dec * deps
    d_dec = np.sin(eps) * np.cos(ra) * dpsi + np.sin(ra) * deps
    sun_lon = _sun_ecliptic(jd)[0]
    e = 0.016708634 - 0.000042037 * t
    perihelion = (102.93735 + 1.71946 * t) * _D2R
    k = _ABERRATION_RAD
    # Meeus 23.3 including the eccentricity (e-) terms.
    d_ra += -k * (np.cos(ra) * np.cos(sun_lon) * np.cos(eps) + np.sin(ra) * np.sin(sun_lon)) / cos_dec
    d_ra += e * k * (np.cos(ra) * np.cos(perihelion) * np.cos(eps) + np.sin(ra) * np.sin(perihelion)) / cos_dec
    d_dec += -k * (
        np.cos(sun_lon) * np.cos(eps) * (np.tan(eps) * np.cos(dec) - np.sin(ra) * np.sin(dec))
        + np.cos(ra) * np.sin(dec) * np.sin(sun_lon)
    )
    d_dec += (
        e
        * k
        * (
            np.cos(perihelion) * np.cos(eps) * (np.tan(eps) * np.cos(dec) - np.sin(ra) * np.sin(dec))
            + np.cos(ra) * np.sin(dec) * np.sin(perihelion)
        )
    )
    return np.asarray(ra + d_ra, dtype=np.float64), np.asarray(dec + d_dec, dtype=np.float64)


def _hadec_to_altaz(ha: F64, dec: F64, lat_rad: F64) -> tuple[F64, F64]:
    sin_alt = np.sin(lat_rad) * np.sin(dec) + np.cos(lat_rad) * np.cos(dec) * np.cos(ha)
    alt = np.arcsin(np.clip(sin_alt, -1.0, 1.0))
    az = np.arctan2(
        -np.cos(dec) * np.sin(ha), np.sin(dec) * np.cos(lat_rad) - np.cos(dec) * np.cos(ha) * np.sin(lat_rad)
    )
    return np.asarray(np.degrees(alt), dtype=np.float64), np.asarray(np.degrees(az) % 360.0, dtype=np.float64)


def _check_sites(lat_deg: ArrayLike, lon_deg: ArrayLike) -> tuple[F64, F64]:
    lat, lon = _f64(lat_deg), _f64(lon_deg)
    if lat.shape != lon.shape or lat.ndim != 1:
        raise InvalidArgument("site latitudes and longitudes must be equal-length 1-D arrays", field="sites")
    if np.any(~np.isfinite(lat)) or np.any(np.abs(lat) > 90.0):
        raise InvalidArgument("latitude must be within -90..90 deg", field="latitude_deg")
    return lat, lon


def radec_to_altaz(
    ra_deg: ArrayLike, dec_deg: ArrayLike, lat_deg: ArrayLike, lon_deg: ArrayLike, jd: ArrayLike
) -> tuple[F64, F64]:
    """(altitude_deg, azimuth_deg) shaped (N targets, S sites, T times) for J2000 RA/Dec. Azimuth from north, east."""
    ra, dec = _f64(ra_deg), _f64(dec_deg)
    if ra.shape != dec.shape or ra.ndim != 1:
        raise InvalidArgument("RA and Dec must be equal-length 1-D arrays", field="ra_deg")
    if np.any(np.abs(dec) > 90.0):
        raise InvalidArgument("declination must be within -90..90 deg", field="dec_deg")
    lat, lon = _check_sites(lat_deg, lon_deg)
    times = _f64(jd)
    ra_app, dec_app = _apparent_of_date(ra[:, None], dec[:, None], times[None, :])  # (N, T)
    gast = _gast_rad(times)  # (T,)
    ha = gast[None, None, :] + lon[None, :, None] * _D2R - ra_app[:, None, :]
    return _hadec_to_altaz(ha, np.broadcast_to(dec_app[:, None, :], ha.shape), lat[None, :, None] * _D2R)


def hour_angle_h(ra_deg: ArrayLike, dec_deg: ArrayLike, lon_deg: ArrayLike, jd: ArrayLike) -> F64:
    """Local hour angle in hours, wrapped to [-12, 12), shaped (N targets, S sites, T times) for J2000 RA/Dec."""
    ra, dec = _f64(ra_deg), _f64(dec_deg)
    if ra.shape != dec.shape or ra.ndim != 1:
        raise InvalidArgument("RA and Dec must be equal-length 1-D arrays", field="ra_deg")
    lon = _f64(lon_deg)
    times = _f64(jd)
    ra_app, _dec_app = _apparent_of_date(ra[:, None], dec[:, None], times[None, :])  # (N, T)
    ha = _gast_rad(times)[None, None, :] + lon[None, :, None] * _D2R - ra_app[:, None, :]
    hours = np.degrees(ha) / 15.0
    return np.asarray((hours + 12.0) % 24.0 - 12.0, dtype=np.float64)


def airmass(altitude_deg: ArrayLike) -> F64:
    """Kasten & Young (1989) relative airmass; inf at or below the horizon."""
    h = np.asarray(altitude_deg, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = 1.0 / (np.sin(h * _D2R) + 0.50572 * np.power(np.maximum(h, 0.0) + 6.07995, -1.6364))
    return np.asarray(np.where(h > 0.0, x, np.inf), dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- Sun


def _sun_ecliptic(jd: F64) -> tuple[F64, F64, F64]:
    """Apparent ecliptic longitude (rad), obliquity (rad), distance (AU): Astronomical Almanac low precision."""
    n = jd - _J2000
    mean_lon = (280.460 + 0.9856474 * n) % 360.0
    g = ((357.528 + 0.9856003 * n) % 360.0) * _D2R
    lam = (mean_lon + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g)) * _D2R
    eps = (23.439 - 0.0000004 * n) * _D2R
    dist = 1.00014 - 0.01671 * np.cos(g) - 0.00014 * np.cos(2 * g)
    return (
        np.asarray(lam, dtype=np.float64),
        np.asarray(eps, dtype=np.float64),
        np.asarray(dist, dtype=np.float64),
    )


def sun_radec(jd: ArrayLike) -> tuple[F64, F64]:
    """Apparent RA/Dec of date of the Sun (deg), about 0.01 deg."""
    lam, eps, _ = _sun_ecliptic(_f64(jd))
    ra = np.arctan2(np.cos(eps) * np.sin(lam), np.cos(lam)) % (2 * math.pi)
    dec = np.arcsin(np.sin(eps) * np.sin(lam))
    return np.asarray(np.degrees(ra), dtype=np.float64), np.asarray(np.degrees(dec), dtype=np.float64)


def sun_altaz(lat_deg: ArrayLike, lon_deg: ArrayLike, jd: ArrayLike) -> tuple[F64, F64]:
    """(altitude_deg, azimuth_deg) of the Sun shaped (S sites, T times); geometric, no refraction."""
    lat, lon = _check_sites(lat_deg, lon_deg)
    times = _f64(jd)
    ra, dec = sun_radec(times)
    ha = _gast_rad(times)[None, :] + lon[:, None] * _D2R - ra[None, :] * _D2R
    return _hadec_to_altaz(ha, np.broadcast_to(dec[None, :] * _D2R, ha.shape), lat[:, None] * _D2R)


def sun_altitude_deg(lat_deg: ArrayLike, lon_deg: ArrayLike, jd: ArrayLike) -> F64:
    """Geometric altitude of the Sun's centre (deg) shaped (S sites, T times)."""
    return sun_altaz(lat_deg, lon_deg, jd)[0]


# ---------------------------------------------------------------------------------------------------- Moon


def _moon_geocentric(jd: F64) -> tuple[F64, F64, F64]:
    """Ecliptic longitude, latitude (rad, of date) and distance (Earth radii): AA low-precision series."""
    t = (jd - _J2000) / 36_525.0

    def s(a: float, b: float) -> F64:
        return np.asarray(np.sin((a + b * t) * _D2R), dtype=np.float64)

    def c(a: float, b: float) -> F64:
        return np.asarray(np.cos((a + b * t) * _D2R), dtype=np.float64)

    lam = (
        218.32
        + 481267.881 * t
        + 6.29 * s(135.0, 477198.87)
        - 1.27 * s(259.3, -413335.36)
        + 0.66 * s(235.7, 890534.22)
        + 0.21 * s(269.9, 954397.74)
        - 0.19 * s(357.5, 35999.05)
        - 0.11 * s(186.5, 966404.03)
    )
    beta = (
        5.13 * s(93.3, 483202.02) + 0.28 * s(228.2, 960400.89) - 0.28 * s(318.3, 6003.15) - 0.17 * s(217.6, -407332.21)
    )
    parallax = (
        0.9508
        + 0.0518 * c(135.0, 477198.87)
        + 0.0095 * c(259.3, -413335.36)
        + 0.0078 * c(235.7, 890534.22)
        + 0.0028 * c(269.9, 954397.74)
    )
    dist = 1.0 / np.sin(parallax * _D2R)
    return (
        np.asarray((lam % 360.0) * _D2R, dtype=np.float64),
        np.asarray(beta * _D2R, dtype=np.float64),
        np.asarray(dist, dtype=np.float64),
    )


def _moon_vector(jd: F64) -> F64:
    """Geocentric equatorial-of-date unit-ish vector of the Moon in Earth radii, shaped (T, 3)."""
    lam, beta, dist = _moon_geocentric(jd)
    eps = _obliquity_rad(_centuries_tt(jd))
    x = np.cos(beta) * np.cos(lam)
    y = np.cos(eps) * np.cos(beta) * np.sin(lam) - np.sin(eps) * np.sin(beta)
    z = np.sin(eps) * np.cos(beta) * np.sin(lam) + np.cos(eps) * np.sin(beta)
    return np.stack([x * dist, y * dist, z * dist], axis=-1)


def moon_radec(jd: ArrayLike) -> tuple[F64, F64, F64]:
    """Geocentric RA/Dec of date (deg) and distance (km) of the Moon, about 0.3 deg."""
    times = _f64(jd)
    v = _moon_vector(times)
    ra = np.arctan2(v[:, 1], v[:, 0]) % (2 * math.pi)
    r = np.linalg.norm(v, axis=1)
    dec = np.arcsin(v[:, 2] / r)
    return (
        np.asarray(np.degrees(ra), dtype=np.float64),
        np.asarray(np.degrees(dec), dtype=np.float64),
        np.asarray(r * WGS84_A_KM, dtype=np.float64),
    )


def moon_altaz(lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike, jd: ArrayLike) -> tuple[F64, F64]:
    """Topocentric (altitude_deg, azimuth_deg) of the Moon shaped (S, T); parallax (up to ~1 deg) included."""
    lat, lon = _check_sites(lat_deg, lon_deg)
    times = _f64(jd)
    moon = _moon_vector(times) * WGS84_A_KM  # (T, 3) km, equator of date
    site = geodetic_to_ecef(lat, lon, _f64(alt_m) * np.ones_like(lat))  # (S, 3) km Earth-fixed
    gast = _gast_rad(times)
    c, s = np.cos(gast), np.sin(gast)
    # Earth-fixed -> equator of date: rotate by +GAST about z.
    sx = c[None, :] * site[:, 0, None] - s[None, :] * site[:, 1, None]
    sy = s[None, :] * site[:, 0, None] + c[None, :] * site[:, 1, None]
    sz = np.broadcast_to(site[:, 2, None], sx.shape)
    dx, dy, dz = moon[None, :, 0] - sx, moon[None, :, 1] - sy, moon[None, :, 2] - sz
    ra = np.arctan2(dy, dx)
    dec = np.arctan2(dz, np.hypot(dx, dy))
    ha = gast[None, :] + lon[:, None] * _D2R - ra
    return _hadec_to_altaz(ha, dec, lat[:, None] * _D2R)


def moon_separation_deg(ra_deg: ArrayLike, dec_deg: ArrayLike, jd: ArrayLike) -> F64:
    """Geocentric angle (deg) between J2000 targets (N,) and the Moon at times (T,), shaped (N, T).

    Topocentric parallax can shift the Moon by up to ~1 deg; keep constraints a degree generous.
    """
    ra, dec = _f64(ra_deg), _f64(dec_deg)
    times = _f64(jd)
    ra_d, dec_d = precess_from_j2000(ra[:, None], dec[:, None], times[None, :])
    m_ra, m_dec, _ = moon_radec(times)
    return _separation_deg(ra_d, dec_d, m_ra[None, :], m_dec[None, :])


def _separation_deg(ra1: F64, dec1: F64, ra2: F64, dec2: F64) -> F64:
    r1, d1, r2, d2 = ra1 * _D2R, dec1 * _D2R, ra2 * _D2R, dec2 * _D2R
    # Vincenty's formula: accurate at all separations.
    dra = r2 - r1
    num = np.hypot(np.cos(d2) * np.sin(dra), np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(dra))
    den = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(dra)
    return np.asarray(np.degrees(np.arctan2(num, den)), dtype=np.float64)


def moon_illumination(jd: ArrayLike) -> F64:
    """Illuminated fraction of the Moon's disc (0 new .. 1 full), geocentric (Meeus ch. 48)."""
    times = _f64(jd)
    s_ra, s_dec = sun_radec(times)
    m_ra, m_dec, m_km = moon_radec(times)
    _, _, sun_au = _sun_ecliptic(times)
    psi = _separation_deg(s_ra, s_dec, m_ra, m_dec) * _D2R  # elongation
    sun_km = sun_au * 149_597_870.7
    phase = np.arctan2(sun_km * np.sin(psi), m_km - sun_km * np.cos(psi))
    return np.asarray((1.0 + np.cos(phase)) / 2.0, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- nights


@dataclass(frozen=True)
class NightWindow:
    """An interval with the Sun below the twilight altitude; clipped edges are the search window's edges."""

    start: datetime
    end: datetime
    start_clipped: bool
    end_clipped: bool

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def night_windows(
    lat_deg: float,
    lon_deg: float,
    alt_m: float,
    start: datetime,
    end: datetime,
    twilight: Literal["civil", "nautical", "astronomical"] | float = "astronomical",
    *,
    step_s: float = 600.0,
) -> list[NightWindow]:
    """Intervals in [start, end] when the Sun is below the twilight altitude at one site, edges to ~0.01 s.

    `twilight` is a name or a Sun altitude in deg. `alt_m` is accepted for symmetry; the horizon dip of a high
    site (about 0.03 deg * sqrt(alt_m)) is not applied. A 10-minute grid, then vectorised bisection on every edge.
    """
    start_utc, end_utc = require_utc(start, "start"), require_utc(end, "end")
    if end_utc <= start_utc:
        raise InvalidArgument("end must be after start", field="end")
    if isinstance(twilight, str):
        if twilight not in TWILIGHT_SUN_ALTITUDE_DEG:
            raise InvalidArgument(
                f"twilight must be one of {', '.join(TWILIGHT_SUN_ALTITUDE_DEG)} or an altitude", field="twilight"
            )
        threshold = TWILIGHT_SUN_ALTITUDE_DEG[twilight]
    else:
        threshold = float(twilight)
        if not -90.0 <= threshold <= 90.0:
            raise InvalidArgument("twilight altitude must be within -90..90 deg", field="twilight")
    if not math.isfinite(alt_m):
        raise InvalidArgument("altitude must be finite", field="alt_m")
    lat, lon = _check_sites([lat_deg], [lon_deg])
    jd0, jd1 = datetime_to_jd(start_utc), datetime_to_jd(end_utc)
    n = max(2, math.ceil((jd1 - jd0) * SECONDS_PER_DAY / step_s) + 1)
    grid = np.linspace(jd0, jd1, n)

    def dark(jd: F64) -> F64:
        return np.asarray(threshold - sun_altitude_deg(lat, lon, jd)[0], dtype=np.float64)  # > 0 at night

    f = dark(grid)
    night = f > 0.0
    k = np.flatnonzero(night[:-1] != night[1:])
    lo, hi = grid[k].copy(), grid[k + 1].copy()
    f_lo = f[k]
    for _ in range(40):  # 600 s / 2**40: far below a microsecond
        mid = 0.5 * (lo + hi)
        fm = dark(mid)
        same = np.sign(fm) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, fm, f_lo)
        hi = np.where(same, hi, mid)
    edges = 0.5 * (lo + hi)
    starts = list(edges[~night[k]])  # day -> night
    ends = list(edges[night[k]])  # night -> day
    start_clipped = bool(night[0])
    end_clipped = bool(night[-1])
    if start_clipped:
        starts.insert(0, jd0)
    if end_clipped:
        ends.append(jd1)
    out = []
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        out.append(
            NightWindow(
                start=start_utc if (i == 0 and start_clipped) else jd_to_datetime(a),
                end=end_utc if (i == len(ends) - 1 and end_clipped) else jd_to_datetime(b),
                start_clipped=i == 0 and start_clipped,
                end_clipped=i == len(ends) - 1 and end_clipped,
            )
        )
    return out
