"""Where to point, computed on the agent from the job's own target so it works with no link.

- `SatelliteTrack`: a pass's look angles (az, el, range, range rate) on a 1 s grid from one vectorised SGP4 call
  (`skymesh.astro.propagate`), interpolated at any instant; Doppler-shifted downlink frequency; rotator azimuth
  unwrapped into the rotator's range next to where it is now.
- `altaz_of_radec`: the alt/az of a J2000 sidereal target (`skymesh.astro.celestial.radec_to_altaz`, one point).

Imports: numpy, `skymesh.astro`, `skymesh.core`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.celestial import radec_to_altaz
from skymesh.astro.frames import datetime_to_jd
from skymesh.astro.propagate import SatelliteBatch, look_angles
from skymesh.astro.tle import parse_tle
from skymesh.core.model import GeoLocation

__all__ = ["LookSample", "SatelliteTrack", "altaz_of_radec", "doppler_frequency_hz", "unwrap_azimuth"]

SPEED_OF_LIGHT_KM_S = 299_792.458


@dataclass(frozen=True)
class LookSample:
    azimuth_deg: float
    elevation_deg: float
    range_km: float
    range_rate_km_s: float


def doppler_frequency_hz(frequency_hz: float, range_rate_km_s: float) -> float:
    """Received frequency of a downlink at `frequency_hz` from a source receding at `range_rate_km_s`."""
    return frequency_hz * (1.0 - range_rate_km_s / SPEED_OF_LIGHT_KM_S)


class SatelliteTrack:
    """Look angles of one satellite from one site over [start, end]."""

    def __init__(
        self, tle_line1: str, tle_line2: str, location: GeoLocation, start: datetime, end: datetime, step_s: float = 1.0
    ) -> None:
        tle = parse_tle(tle_line1, tle_line2)
        self.start = start
        self.step_s = step_s
        n = max(math.ceil((end - start).total_seconds() / step_s) + 2, 2)
        jd0 = datetime_to_jd(start)
        jd = jd0 + np.arange(n) * (step_s / 86_400.0)
        angles = look_angles(
            SatelliteBatch([tle]), [location.latitude_deg], [location.longitude_deg], [location.altitude_m], jd
        )
        self._az: NDArray[np.float64] = np.unwrap(np.radians(angles.azimuth_deg[0, 0]))
        self._el = angles.elevation_deg[0, 0]
        self._range = angles.range_km[0, 0]
        self._rr = angles.range_rate_km_s[0, 0]
        self._t = np.arange(n) * step_s

    def at(self, when: datetime) -> LookSample:
        t = (when - self.start).total_seconds()
        az = math.degrees(float(np.interp(t, self._t, self._az))) % 360.0
        return LookSample(
            azimuth_deg=az,
            elevation_deg=float(np.interp(t, self._t, self._el)),
            range_km=float(np.interp(t, self._t, self._range)),
            range_rate_km_s=float(np.interp(t, self._t, self._rr)),
        )

    def samples(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """The grid itself: (seconds from `start`, azimuth_deg in [0, 360), elevation_deg)."""
        az_deg: NDArray[np.float64] = np.asarray(np.degrees(self._az) % 360.0, dtype=np.float64)
        return self._t.astype(np.float64), az_deg, np.asarray(self._el, dtype=np.float64)

    @property
    def max_elevation_deg(self) -> float:
        return float(np.nanmax(self._el))

    def times(self, step_s: float) -> list[datetime]:
        span = float(self._t[-1])
        return [self.start + timedelta(seconds=s) for s in np.arange(0.0, span, step_s)]


def unwrap_azimuth(azimuth_deg: float, current_deg: float, azimuth_min_deg: float, azimuth_max_deg: float) -> float:
    """The equivalent of `azimuth_deg` (mod 360) inside [min, max] nearest to `current_deg` (overlap rotators)."""
    base = azimuth_deg % 360.0
    candidates = [base + 360.0 * k for k in range(-2, 3)]
    inside = [c for c in candidates if azimuth_min_deg <= c <= azimuth_max_deg]
    if not inside:
        return min(max(base, azimuth_min_deg), azimuth_max_deg)
    return min(inside, key=lambda c: abs(c - current_deg))


def altaz_of_radec(ra_deg: float, dec_deg: float, location: GeoLocation, when: datetime) -> tuple[float, float]:
    """(altitude_deg, azimuth_deg) of a J2000 sidereal target from `location` at `when` (azimuth from north, east)."""
    alt, az = radec_to_altaz(
        [ra_deg], [dec_deg], [location.latitude_deg], [location.longitude_deg], [datetime_to_jd(when)]
    )
    return float(alt[0, 0, 0]), float(az[0, 0, 0])
