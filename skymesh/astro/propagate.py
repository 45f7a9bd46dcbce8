"""Batch SGP4 for many satellites at many times, and look angles from many stations, as numpy arrays.

`SatelliteBatch` wraps `sgp4.api.SatrecArray` (Vallado's C++ SGP4/SDP4, one call for satellites x times).
A satellite that decays or whose elements go bad during the span yields NaN states and a non-zero error code at
those times (codes as in `sgp4.api.SGP4_ERRORS`); it never fails the batch.

Runtime imports: numpy, sgp4 and skymesh only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sgp4.api import Satrec, SatrecArray

from skymesh.astro.frames import teme_to_ecef, topocentric
from skymesh.astro.tle import TLE
from skymesh.core.errors import InvalidArgument

__all__ = ["LookAngles", "SatelliteBatch", "look_angles", "node_step_s", "split_jd", "teme_gravity_km_s2"]

F64 = NDArray[np.float64]

# WGS-72, the constants SGP4 itself uses (sgp4.api.WGS72).
_MU_KM3_S2 = 398_600.8
_EARTH_RADIUS_KM = 6378.135
_J2 = 0.001082616
# Quintic Hermite interpolation of SGP4 states (position, velocity, `teme_gravity_km_s2` as acceleration) between
# nodes this far apart for a satellite whose angular rate at perigee is 16 rev/day: measured 0.9-1.6 m worst over
# 24 h for the LEO families of `tle_gen` at 240 s (1.3-1.9 m at 300 s), as good as the cubic from SGP4 every 60 s
# (0.3-0.5 m). The step is scaled by 1 / (angular rate at perigee), which keeps (rate x step) and so the error about
# constant for any orbit.
_NODE_STEP_AT_16_REV_DAY_S = 240.0
_NODE_STEP_MAX_S = 600.0  # MEO at 600 s: 3.6 m; GEO: 5-12 m at any step (SDP4's own ripple)


def teme_gravity_km_s2(r_km: F64) -> F64:
    """Two-body plus J2 acceleration (km/s^2) at TEME positions (..., 3).

    Close enough to the second derivative of SGP4's own motion that the quintic Hermite interpolation between SGP4
    states that uses it stays within about a metre of SGP4 (see `node_step_s`)."""
    x, y, z = r_km[..., 0], r_km[..., 1], r_km[..., 2]
    r2 = x * x + y * y + z * z
    k = -_MU_KM3_S2 / (r2 * np.sqrt(r2))
    f = 1.5 * _J2 * _EARTH_RADIUS_KM**2 / r2
    zz = 5.0 * z * z / r2
    out = np.empty_like(r_km)
    out[..., 0] = k * x * (1.0 + f * (1.0 - zz))
    out[..., 1] = k * y * (1.0 + f * (1.0 - zz))
    out[..., 2] = k * z * (1.0 + f * (3.0 - zz))
    return out


def node_step_s(mean_motion_rad_min: ArrayLike, eccentricity: ArrayLike) -> F64:
    """Longest spacing of SGP4 nodes (s) for quintic Hermite interpolation at about a metre, per satellite."""
    n = np.asarray(mean_motion_rad_min, dtype=np.float64)
    e = np.clip(np.asarray(eccentricity, dtype=np.float64), 0.0, 0.99)
    perigee_rev_day = n * 1440.0 / (2.0 * np.pi) * (1.0 + e) ** 2 / (1.0 - e * e) ** 1.5
    step = _NODE_STEP_AT_16_REV_DAY_S * 16.0 / np.maximum(perigee_rev_day, 1e-3)
    return np.asarray(np.minimum(step, _NODE_STEP_MAX_S), dtype=np.float64)


def split_jd(jd: ArrayLike) -> tuple[F64, F64]:
    """Split Julian dates into a whole part ending in .5 (midnight) and a day fraction, as SGP4 wants them."""
    x = np.asarray(jd, dtype=np.float64)
    whole = np.floor(x - 0.5) + 0.5
    return whole, x - whole


class SatelliteBatch:
    """Many satellites propagated together. Index i in every result is `tles[i]`."""

    def __init__(self, tles: Sequence[TLE], *, satrecs: Sequence[Satrec] | None = None) -> None:
        """`satrecs`, when given, are the already-built SGP4 records of `tles` (a caller's cache); only read."""
        if len(tles) == 0:
            raise InvalidArgument("a satellite batch needs at least one TLE", field="tles")
        if satrecs is not None and len(satrecs) != len(tles):
            raise InvalidArgument("one Satrec per TLE", field="satrecs")
        self.tles: tuple[TLE, ...] = tuple(tles)
        self.satrecs = list(satrecs) if satrecs is not None else [t.satrec() for t in self.tles]
        self._array = SatrecArray(self.satrecs)
        self.norad_ids: NDArray[np.int64] = np.array([t.norad_id for t in self.tles], dtype=np.int64)
        self.names: tuple[str, ...] = tuple(t.name for t in self.tles)
        self.node_step_s: F64 = node_step_s([s.no_kozai for s in self.satrecs], [s.ecco for s in self.satrecs])

    def __len__(self) -> int:
        return len(self.tles)

    def subset(self, start: int, stop: int) -> SatrecArray:
        """A `SatrecArray` of satellites [start, stop), for chunked work."""
        return SatrecArray(self.satrecs[start:stop])

    def propagate(
        self,
        jd: ArrayLike,
        *,
        jd_fraction: ArrayLike | None = None,
        sat_slice: slice | NDArray[np.int64] | None = None,
    ) -> tuple[F64, F64, NDArray[np.uint8]]:
        """TEME states at Julian dates `jd` (T,): r_teme_km (N, T, 3), v_teme_km_s (N, T, 3), error (N, T).

        Pass `jd_fraction` to give each time as jd + jd_fraction at full precision (one float64 Julian date
        resolves about 40 microseconds). `sat_slice` picks satellites by a slice or an index array. Errored points
        (decayed, bad elements) are NaN in r and v and non-zero in `error`.
        """
        times = np.atleast_1d(np.asarray(jd, dtype=np.float64))
        if times.ndim != 1:
            raise InvalidArgument("jd must be a 1-D array of Julian dates", field="jd")
        if jd_fraction is None:
            whole, frac = split_jd(times)
        else:
            whole = times
            frac = np.broadcast_to(np.asarray(jd_fraction, dtype=np.float64), times.shape).copy()
        if sat_slice is None:
            array = self._array
        elif isinstance(sat_slice, slice):
            array = SatrecArray(self.satrecs[sat_slice])
        else:
            array = SatrecArray([self.satrecs[i] for i in sat_slice.tolist()])
        error, r, v = array.sgp4(whole, frac)
        r = np.asarray(r, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        err = np.asarray(error, dtype=np.uint8)
        bad = err != 0
        if bad.any():
            r[bad] = np.nan
            v[bad] = np.nan
        return r, v, err


@dataclass(frozen=True)
class LookAngles:
    """Look angles shaped (N_sat, N_station, T); NaN where the satellite could not be propagated."""

    jd: F64
    azimuth_deg: F64
    elevation_deg: F64
    range_km: F64
    range_rate_km_s: F64


def look_angles(
    batch: SatelliteBatch,
    stations_lat_deg: ArrayLike,
    stations_lon_deg: ArrayLike,
    stations_alt_m: ArrayLike,
    jd: ArrayLike,
) -> LookAngles:
    """Azimuth, elevation, range and range rate of every satellite from every station at every time."""
    times = np.atleast_1d(np.asarray(jd, dtype=np.float64))
    r, v, _ = batch.propagate(times)
    r_ecef, v_ecef = teme_to_ecef(r, v, times[None, :])
    with np.errstate(invalid="ignore"):
        az, el, rng, rr = topocentric(r_ecef, v_ecef, stations_lat_deg, stations_lon_deg, stations_alt_m)
    return LookAngles(jd=times, azimuth_deg=az, elevation_deg=el, range_km=rng, range_rate_km_s=rr)
