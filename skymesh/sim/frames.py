"""Time, Sun and Earth-rotation helpers for the simulator, vectorised over times.

The simulator works in seconds since a scenario epoch (tz-aware UTC `datetime`). Inertial positions are either in
the J2000 mean equator and equinox ("j2000", what Keplerian elements are given in) or in TEME ("teme", what SGP4
returns). This module gives the Sun's geocentric position in both frames and ground-station positions in both
frames, so eclipse and visibility are computed in the frame the orbits already live in (no per-satellite rotation).

Accuracy is what the PASEOS models need, not more: the Sun comes from the JPL "approximate positions of the
planets" elements (the same table pykep's `jpl_lp` uses, which PASEOS calls for eclipses), precession is IAU 1976,
Earth rotation is GMST 1982 without nutation or polar motion (a few hundred metres on the ground).

Imports numpy only; no skymesh service packages, no grpc.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AU_M",
    "OBLIQUITY_J2000_RAD",
    "WGS84_A_M",
    "WGS84_F",
    "ecef_to_inertial",
    "ecliptic_to_equatorial",
    "geodetic_to_ecef_m",
    "gmst_rad",
    "julian_date",
    "precession_matrix",
    "sun_position_m",
]

F64 = NDArray[np.float64]

AU_M = 149_597_870_700.0
OBLIQUITY_J2000_RAD = np.deg2rad(23.43928)
WGS84_A_M = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
_J2000_JD = 2451545.0
_ARCSEC = np.pi / (180.0 * 3600.0)


def julian_date(when: datetime) -> float:
    """Julian date of a tz-aware datetime (UTC scale; no leap-second bookkeeping)."""
    delta = when.astimezone(UTC) - datetime(2000, 1, 1, 12, tzinfo=UTC)
    return _J2000_JD + delta.total_seconds() / 86400.0


def _rot_x(angle: F64) -> F64:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*np.shape(angle), 3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1], out[..., 1, 2] = c, -s
    out[..., 2, 1], out[..., 2, 2] = s, c
    return out


def ecliptic_to_equatorial(vec: F64) -> F64:
    """Rotate (..., 3) vectors from the J2000 ecliptic frame to the J2000 equatorial frame."""
    c, s = np.cos(OBLIQUITY_J2000_RAD), np.sin(OBLIQUITY_J2000_RAD)
    v = np.asarray(vec, dtype=np.float64)
    out = np.empty_like(v)
    out[..., 0] = v[..., 0]
    out[..., 1] = c * v[..., 1] - s * v[..., 2]
    out[..., 2] = s * v[..., 1] + c * v[..., 2]
    return out


def _earth_heliocentric_ecliptic_m(jd: F64) -> F64:
    """Earth-Moon barycentre, JPL approximate elements (Standish, valid 1800-2050), J2000 ecliptic frame."""
    t = (np.asarray(jd, dtype=np.float64) - _J2000_JD) / 36525.0
    a = 1.00000261 + 0.00000562 * t
    e = 0.01671123 - 0.00004392 * t
    inc = np.deg2rad(-0.00001531 - 0.01294668 * t)
    mean_long = np.deg2rad(100.46457166 + 35999.37244981 * t)
    long_peri = np.deg2rad(102.93768193 + 0.32327364 * t)
    node = np.zeros_like(t)
    argp = long_peri - node
    mean_anom = np.mod(mean_long - long_peri, 2 * np.pi)
    ecc_anom = mean_anom + e * np.sin(mean_anom)
    for _ in range(6):
        ecc_anom = ecc_anom - (ecc_anom - e * np.sin(ecc_anom) - mean_anom) / (1 - e * np.cos(ecc_anom))
    xp = a * (np.cos(ecc_anom) - e)
    yp = a * np.sqrt(1 - e * e) * np.sin(ecc_anom)
    cw, sw = np.cos(argp), np.sin(argp)
    co, so = np.cos(node), np.sin(node)
    ci, si = np.cos(inc), np.sin(inc)
    x = (cw * co - sw * so * ci) * xp + (-sw * co - cw * so * ci) * yp
    y = (cw * so + sw * co * ci) * xp + (-sw * so + cw * co * ci) * yp
    z = (sw * si) * xp + (cw * si) * yp
    return np.stack([x, y, z], axis=-1) * AU_M


def precession_matrix(jd: F64) -> F64:
    """IAU 1976 precession, J2000 mean equator/equinox -> mean of date; shape (..., 3, 3)."""
    t = (np.asarray(jd, dtype=np.float64) - _J2000_JD) / 36525.0
    zeta = (2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) * _ARCSEC
    z = (2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) * _ARCSEC
    theta = (2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) * _ARCSEC
    cz, sz = np.cos(zeta), np.sin(zeta)
    cZ, sZ = np.cos(z), np.sin(z)
    ct, st = np.cos(theta), np.sin(theta)
    p = np.empty((*np.shape(t), 3, 3))
    p[..., 0, 0] = cZ * ct * cz - sZ * sz
    p[..., 0, 1] = -cZ * ct * sz - sZ * cz
    p[..., 0, 2] = -cZ * st
    p[..., 1, 0] = sZ * ct * cz + cZ * sz
    p[..., 1, 1] = -sZ * ct * sz + cZ * cz
    p[..., 1, 2] = -sZ * st
    p[..., 2, 0] = st * cz
    p[..., 2, 1] = -st * sz
    p[..., 2, 2] = ct
    return p


def sun_position_m(jd: F64, frame: str = "j2000") -> F64:
    """Geocentric Sun position (..., 3) in metres, in "j2000" (equatorial) or "teme" (~ mean equator of date)."""
    sun_ecl = -_earth_heliocentric_ecliptic_m(jd)
    sun = ecliptic_to_equatorial(sun_ecl)
    if frame == "teme":
        sun = np.einsum("...ij,...j->...i", precession_matrix(jd), sun)
    return sun


def gmst_rad(jd_ut1: F64) -> F64:
    """Greenwich mean sidereal time (IAU 1982), radians in [0, 2 pi)."""
    t = (np.asarray(jd_ut1, dtype=np.float64) - _J2000_JD) / 36525.0
    seconds = 67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * t + 0.093104 * t**2 - 6.2e-6 * t**3
    return np.mod(seconds * (2 * np.pi / 86400.0), 2 * np.pi)


def geodetic_to_ecef_m(lat_deg: F64, lon_deg: F64, height_m: F64) -> tuple[F64, F64]:
    """WGS84 geodetic -> (ECEF position (..., 3) in m, local up unit vector (..., 3))."""
    lat = np.deg2rad(np.asarray(lat_deg, dtype=np.float64))
    lon = np.deg2rad(np.asarray(lon_deg, dtype=np.float64))
    h = np.asarray(height_m, dtype=np.float64)
    e2 = WGS84_F * (2 - WGS84_F)
    n = WGS84_A_M / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    pos = np.stack(
        [
            (n + h) * np.cos(lat) * np.cos(lon),
            (n + h) * np.cos(lat) * np.sin(lon),
            (n * (1 - e2) + h) * np.sin(lat),
        ],
        axis=-1,
    )
    up = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
    return pos, up


def ecef_to_inertial(vec_ecef: F64, jd: F64, frame: str, earth_rotation_offset_s: float = 0.0) -> F64:
    """Rotate Earth-fixed vectors (..., 3) into the inertial `frame` at Julian dates broadcastable to (...).

    `earth_rotation_offset_s` shifts the time used for Earth's rotation (UT1 = input + offset); PASEOS hands its
    epochs to Skyfield as TT, which amounts to an offset of -(TT - UT1), about -69 s in 2022.
    """
    v = np.asarray(vec_ecef, dtype=np.float64)
    jd_arr = np.asarray(jd, dtype=np.float64)
    theta = gmst_rad(jd_arr + earth_rotation_offset_s / 86400.0)
    c, s = np.cos(theta), np.sin(theta)
    x = c * v[..., 0] - s * v[..., 1]
    y = s * v[..., 0] + c * v[..., 1]
    z = np.broadcast_to(v[..., 2], np.shape(x))
    out = np.stack([x, y, z], axis=-1)
    if frame == "j2000":
        # mean-of-date -> J2000 is the transpose of the precession matrix
        out = np.einsum("...ji,...j->...i", precession_matrix(jd_arr), out)
    return out
