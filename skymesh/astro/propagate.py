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

__all__ = ["LookAngles", "SatelliteBatch", "look_angles", "split_jd"]

F64 = NDArray[np.float64]


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

    def __len__(self) -> int:
        return len(self.tles)

    def subset(self, start: int, stop: int) -> SatrecArray:
        """A `SatrecArray` of satellites [start, stop), for chunked work."""
        return SatrecArray(self.satrecs[start:stop])

    def propagate(
        self, jd: ArrayLike, *, jd_fraction: ArrayLike | None = None, sat_slice: slice | None = None
    ) -> tuple[F64, F64, NDArray[np.uint8]]:
        """TEME states at Julian dates `jd` (T,): r_teme_km (N, T, 3), v_teme_km_s (N, T, 3), error (N, T).

        Pass `jd_fraction` to give each time as jd + jd_fraction at full precision (one float64 Julian date
        resolves about 40 microseconds). Errored points (decayed, bad elements) are NaN in r and v and non-zero
        in `error`.
        """
        times = np.atleast_1d(np.asarray(jd, dtype=np.float64))
        if times.ndim != 1:
            raise InvalidArgument("jd must be a 1-D array of Julian dates", field="jd")
        if jd_fraction is None:
            whole, frac = split_jd(times)
        else:
            whole = times
            frac = np.broadcast_to(np.asarray(jd_fraction, dtype=np.float64), times.shape).copy()
        array = self._array if sat_slice is None else SatrecArray(self.satrecs[sat_slice])
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
