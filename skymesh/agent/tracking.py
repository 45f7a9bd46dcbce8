"""Where to point, computed on the agent from the job's own target so it works with no link.

- `SatelliteTrack`: a pass's look angles (az, el, range, range rate) on a 1 s grid, one satellite at one time per
  `sgp4.api.Satrec.sgp4` call (Vallado's C++ SGP4; a pass is a few hundred samples), TEME -> Earth-fixed by the
  GMST (IAU 1982) rotation and WGS84 topocentric angles in plain `math`: the frames of `skymesh.astro.frames`, one
  sample at a time (UT1 = UTC, no polar motion; against Skyfield within 0.01 degree over a pass, tested).
  Interpolated at any instant; Doppler-shifted downlink frequency from the range rate; rotator azimuth unwrapped
  into the rotator's range next to where it is now.

A ground station's agent must not import numpy (15 MB of its 40 MB budget): nothing here does, and a telescope's
pointing is in `skymesh.agent.sidereal` (`skymesh.astro`, numpy). Imports: the standard library, `sgp4.api`,
`skymesh.core`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sgp4.api import Satrec

from skymesh.core.errors import InvalidTLE
from skymesh.core.model import GeoLocation

__all__ = [
    "LookSample",
    "SatelliteTrack",
    "doppler_frequency_hz",
    "interpolate",
    "look_angles_at",
    "satrec_from_tle",
    "unwrap_azimuth",
]

SPEED_OF_LIGHT_KM_S = 299_792.458
_WGS84_A_KM = 6378.137
_WGS84_F = 1.0 / 298.257223563
_WGS84_E2 = _WGS84_F * (2.0 - _WGS84_F)
_EARTH_ROTATION_RAD_S = 7.292115146706979e-5  # Vallado's value for TEME/PEF, as skymesh.astro.frames
_JD_UNIX_EPOCH = 2_440_587.5
_JD_J2000 = 2_451_545.0
_DAY_S = 86_400.0
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LookSample:
    azimuth_deg: float
    elevation_deg: float
    range_km: float
    range_rate_km_s: float


def doppler_frequency_hz(frequency_hz: float, range_rate_km_s: float) -> float:
    """Received frequency of a downlink at `frequency_hz` from a source receding at `range_rate_km_s`."""
    return frequency_hz * (1.0 - range_rate_km_s / SPEED_OF_LIGHT_KM_S)


def satrec_from_tle(line1: str, line2: str) -> Satrec:
    """The SGP4 model of a TLE (the server validated it; this catches what sgp4 itself cannot use)."""
    try:
        sat = Satrec.twoline2rv(line1.rstrip(), line2.rstrip())
    except (ValueError, IndexError) as exc:
        raise InvalidTLE(f"sgp4 cannot read these lines: {exc}", field="tle_line1") from None
    if sat.error != 0:
        raise InvalidTLE(f"sgp4 rejects these elements (error code {sat.error})", field="tle_line2")
    return sat


def _jd_parts(when: datetime) -> tuple[float, float]:
    """(whole, fraction) Julian date (UTC) of `when`: the whole part at midnight, the fraction to the microsecond."""
    delta = when.astimezone(UTC) - _UNIX_EPOCH
    return _JD_UNIX_EPOCH + delta.days, (delta.seconds + delta.microseconds * 1e-6) / _DAY_S


def _gmst_rad(jd_whole: float, fraction: float) -> float:
    """Greenwich mean sidereal time (IAU 1982, as SGP4's TEME uses), radians, from a split Julian date (UT1)."""
    t = (jd_whole - _JD_J2000 + fraction) / 36_525.0
    g = 67_310.54841 + (8_640_184.812866 + (0.093104 - 6.2e-6 * t) * t) * t
    turns = (jd_whole % 1.0 + fraction + (g / _DAY_S) % 1.0) % 1.0
    return turns * 2.0 * math.pi


class _Site:
    """A station's Earth-fixed position (km) and its east / north / up unit vectors (WGS84)."""

    def __init__(self, location: GeoLocation) -> None:
        phi, lam = math.radians(location.latitude_deg), math.radians(location.longitude_deg)
        sp, cp, sl, cl = math.sin(phi), math.cos(phi), math.sin(lam), math.cos(lam)
        n_km = _WGS84_A_KM / math.sqrt(1.0 - _WGS84_E2 * sp * sp)
        h_km = location.altitude_m / 1000.0
        self.position = ((n_km + h_km) * cp * cl, (n_km + h_km) * cp * sl, (n_km * (1.0 - _WGS84_E2) + h_km) * sp)
        self.east = (-sl, cl, 0.0)
        self.north = (-sp * cl, -sp * sl, cp)
        self.up = (cp * cl, cp * sl, sp)


def look_angles_at(sat: Satrec, site: _Site, jd_whole: float, fraction: float) -> LookSample | None:
    """Azimuth (from north, east), elevation, range and range rate (positive receding) at one time; None when
    SGP4 cannot propagate there (decayed, bad elements)."""
    error, r, v = sat.sgp4(jd_whole, fraction)
    if error != 0:
        return None
    theta = _gmst_rad(jd_whole, fraction)
    c, s = math.cos(theta), math.sin(theta)
    x, y = c * r[0] + s * r[1], -s * r[0] + c * r[1]
    vx = c * v[0] + s * v[1] + _EARTH_ROTATION_RAD_S * y
    vy = -s * v[0] + c * v[1] - _EARTH_ROTATION_RAD_S * x
    d = (x - site.position[0], y - site.position[1], r[2] - site.position[2])
    e = d[0] * site.east[0] + d[1] * site.east[1]
    n = d[0] * site.north[0] + d[1] * site.north[1] + d[2] * site.north[2]
    u = d[0] * site.up[0] + d[1] * site.up[1] + d[2] * site.up[2]
    range_km = math.sqrt(e * e + n * n + u * u)
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, u / range_km))))
    azimuth = math.degrees(math.atan2(e, n)) % 360.0
    range_rate = (d[0] * vx + d[1] * vy + d[2] * v[2]) / range_km
    return LookSample(azimuth, elevation, range_km, range_rate)


def interpolate(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Linear interpolation of (xs, ys) at x, held at the ends (numpy.interp's rule); xs ascending."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1 = xs[i - 1], xs[i]
    w = (x - x0) / (x1 - x0)
    return ys[i - 1] + (ys[i] - ys[i - 1]) * w


class SatelliteTrack:
    """Look angles of one satellite from one site over [start, end] on a `step_s` grid (one more sample past end).

    Raises `InvalidTLE` when sgp4 cannot use the TLE; samples where it cannot propagate are NaN.
    """

    def __init__(
        self, tle_line1: str, tle_line2: str, location: GeoLocation, start: datetime, end: datetime, step_s: float = 1.0
    ) -> None:
        sat = satrec_from_tle(tle_line1, tle_line2)
        site = _Site(location)
        self.start = start
        self.step_s = step_s
        n = max(math.ceil((end - start).total_seconds() / step_s) + 2, 2)
        whole, fraction0 = _jd_parts(start)
        self._t = [i * step_s for i in range(n)]
        self._az: list[float] = []  # unwrapped, degrees
        self._el: list[float] = []
        self._range: list[float] = []
        self._rr: list[float] = []
        previous: float | None = None
        for t in self._t:
            look = look_angles_at(sat, site, whole, fraction0 + t / _DAY_S)
            if look is None:
                self._az.append(math.nan)
                self._el.append(math.nan)
                self._range.append(math.nan)
                self._rr.append(math.nan)
                continue
            az = look.azimuth_deg
            if previous is not None and not math.isnan(previous):
                az = previous + (az - previous + 180.0) % 360.0 - 180.0
            previous = az
            self._az.append(az)
            self._el.append(look.elevation_deg)
            self._range.append(look.range_km)
            self._rr.append(look.range_rate_km_s)

    def at(self, when: datetime) -> LookSample:
        t = (when - self.start).total_seconds()
        return LookSample(
            azimuth_deg=interpolate(t, self._t, self._az) % 360.0,
            elevation_deg=interpolate(t, self._t, self._el),
            range_km=interpolate(t, self._t, self._range),
            range_rate_km_s=interpolate(t, self._t, self._rr),
        )

    def samples(self) -> tuple[list[float], list[float], list[float]]:
        """The grid itself: (seconds from `start`, azimuth_deg in [0, 360), elevation_deg)."""
        return list(self._t), [a % 360.0 for a in self._az], list(self._el)

    @property
    def max_elevation_deg(self) -> float:
        return max((e for e in self._el if not math.isnan(e)), default=math.nan)

    def times(self, step_s: float) -> list[datetime]:
        span = self._t[-1]
        return [self.start + timedelta(seconds=i * step_s) for i in range(math.ceil(span / step_s))]


def unwrap_azimuth(azimuth_deg: float, current_deg: float, azimuth_min_deg: float, azimuth_max_deg: float) -> float:
    """The equivalent of `azimuth_deg` (mod 360) inside [min, max] nearest to `current_deg` (overlap rotators)."""
    base = azimuth_deg % 360.0
    candidates = [base + 360.0 * k for k in range(-2, 3)]
    inside = [c for c in candidates if azimuth_min_deg <= c <= azimuth_max_deg]
    if not inside:
        return min(max(base, azimuth_min_deg), azimuth_max_deg)
    return min(inside, key=lambda c: abs(c - current_deg))
