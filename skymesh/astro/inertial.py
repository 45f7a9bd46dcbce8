"""Inertial frames for Earth orbits: IAU 1976 precession, IAU 1980 nutation (largest terms), TEME <-> GCRS, and
Earth-fixed vectors rotated into an inertial frame, vectorised over times.

Frames by name (what the simulator's orbit sources produce):
- "gcrs" (alias "j2000"): the J2000 mean equator and equinox. The frame bias to the GCRS (< 0.03") is ignored.
- "teme": true equator, mean equinox of date, the frame SGP4 returns.

The chain is GCRS --P--> mean of date --N--> true of date --(equation of the equinoxes)--> TEME, and TEME --GMST-->
Earth-fixed (PEF; polar motion ignored, < 15 m). Nutation uses the four largest terms (`celestial._nutation_rad`,
about 0.5"), so TEME <-> GCRS is good to about an arcsecond; measured against astropy in tests/astro/test_sun.py.

Times are Julian dates (UTC); TT = UTC + 69.184 s (the value since 2017; the drift before that moves these
slowly varying rotations by far less than an arcsecond). Runtime imports: numpy and skymesh.astro only.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skymesh.astro.celestial import _nutation_rad
from skymesh.astro.frames import gmst_rad
from skymesh.core.errors import InvalidArgument

__all__ = [
    "INERTIAL_FRAMES",
    "TT_MINUS_UTC_S",
    "centuries_tt",
    "check_frame",
    "ecef_to_inertial",
    "equation_of_equinoxes_rad",
    "mean_obliquity_rad",
    "nutation_matrix",
    "precession_matrix",
    "teme_to_gcrs_matrix",
]

F64 = NDArray[np.float64]

INERTIAL_FRAMES = ("gcrs", "j2000", "teme")
TT_MINUS_UTC_S = 69.184  # 32.184 s + 37 leap seconds (since 2017)
_J2000 = 2_451_545.0
_AS2R = math.pi / (180.0 * 3600.0)


def check_frame(frame: str) -> str:
    """The canonical name of an inertial frame ("gcrs" or "teme"); "j2000" is read as "gcrs"."""
    if frame not in INERTIAL_FRAMES:
        raise InvalidArgument(f"unknown inertial frame {frame!r}; one of {', '.join(INERTIAL_FRAMES)}", field="frame")
    return "gcrs" if frame == "j2000" else frame


def centuries_tt(jd_utc: ArrayLike) -> F64:
    """Julian centuries of TT since J2000.0."""
    return np.asarray((np.asarray(jd_utc, dtype=np.float64) + TT_MINUS_UTC_S / 86_400.0 - _J2000) / 36_525.0)


def mean_obliquity_rad(t: ArrayLike) -> F64:
    """Mean obliquity of the ecliptic (IAU 1980), t in Julian centuries of TT."""
    tt = np.asarray(t, dtype=np.float64)
    return np.asarray((84_381.448 - 46.8150 * tt - 0.00059 * tt * tt + 0.001813 * tt**3) * _AS2R, dtype=np.float64)


def _r1(a: F64) -> F64:
    """Frame rotation about x by angle a (..., 3, 3)."""
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((*np.shape(a), 3, 3))
    m[..., 0, 0] = 1.0
    m[..., 1, 1], m[..., 1, 2] = c, s
    m[..., 2, 1], m[..., 2, 2] = -s, c
    return m


def _r3(a: F64) -> F64:
    """Frame rotation about z by angle a (..., 3, 3)."""
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((*np.shape(a), 3, 3))
    m[..., 0, 0], m[..., 0, 1] = c, s
    m[..., 1, 0], m[..., 1, 1] = -s, c
    m[..., 2, 2] = 1.0
    return m


def precession_matrix(jd_utc: ArrayLike) -> F64:
    """IAU 1976 precession, J2000 mean equator/equinox -> mean of date: r_mod = P @ r_j2000; shape (..., 3, 3)."""
    t = centuries_tt(jd_utc)
    zeta = (2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) * _AS2R
    z = (2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) * _AS2R
    theta = (2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) * _AS2R
    out: F64 = _r3(-z) @ _r_y(theta) @ _r3(-zeta)
    return out


def _r_y(a: F64) -> F64:
    """Frame rotation about y by angle a (..., 3, 3)."""
    c, s = np.cos(a), np.sin(a)
    m = np.zeros((*np.shape(a), 3, 3))
    m[..., 0, 0], m[..., 0, 2] = c, -s
    m[..., 1, 1] = 1.0
    m[..., 2, 0], m[..., 2, 2] = s, c
    return m


def nutation_matrix(jd_utc: ArrayLike) -> F64:
    """Mean of date -> true of date: r_tod = N @ r_mod; shape (..., 3, 3)."""
    t = centuries_tt(jd_utc)
    eps = mean_obliquity_rad(t)
    dpsi, deps = _nutation_rad(np.atleast_1d(t))
    dpsi, deps = dpsi.reshape(np.shape(t)), deps.reshape(np.shape(t))
    out: F64 = _r1(-(eps + deps)) @ _r3(-dpsi) @ _r1(eps)
    return out


def equation_of_equinoxes_rad(jd_utc: ArrayLike) -> F64:
    """GAST - GMST (the 1982 form, dpsi cos eps), radians."""
    t = centuries_tt(jd_utc)
    dpsi, _ = _nutation_rad(np.atleast_1d(t))
    return np.asarray(dpsi.reshape(np.shape(t)) * np.cos(mean_obliquity_rad(t)), dtype=np.float64)


def teme_to_gcrs_matrix(jd_utc: ArrayLike) -> F64:
    """r_gcrs = M @ r_teme, shape (..., 3, 3): TEME -> true of date -> mean of date -> J2000."""
    tod_from_teme = _r3(-equation_of_equinoxes_rad(jd_utc))
    mod_from_tod = np.swapaxes(nutation_matrix(jd_utc), -1, -2)
    j2000_from_mod = np.swapaxes(precession_matrix(jd_utc), -1, -2)
    out: F64 = j2000_from_mod @ mod_from_tod @ tod_from_teme
    return out


def ecef_to_inertial(vec_ecef: ArrayLike, jd_utc: ArrayLike, frame: str, ut1_minus_utc_s: float = 0.0) -> F64:
    """Rotate Earth-fixed vectors (..., 3) into `frame` at Julian dates (UTC) broadcastable to (...).

    Earth's rotation angle is GMST of UT1 = UTC + `ut1_minus_utc_s` (|UT1 - UTC| < 0.9 s; it may also carry a
    deliberate time-scale offset, which the PASEOS agreement tests use).
    """
    name = check_frame(frame)
    v = np.asarray(vec_ecef, dtype=np.float64)
    jd = np.asarray(jd_utc, dtype=np.float64)
    theta = gmst_rad(jd + ut1_minus_utc_s / 86_400.0)
    c, s = np.cos(theta), np.sin(theta)
    x = c * v[..., 0] - s * v[..., 1]
    y = s * v[..., 0] + c * v[..., 1]
    z = np.broadcast_to(v[..., 2], np.shape(x))
    out = np.stack([x, y, z], axis=-1)
    if name == "gcrs":
        out = np.einsum("...ij,...j->...i", teme_to_gcrs_matrix(jd), out)
    return out
