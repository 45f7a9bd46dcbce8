"""Real LEO passes of chosen shapes for the agent's tracking tests, and Skyfield's az/el as the independent truth.

One synthetic ISS-like TLE (`generate_tles("iss", seed=7)`); the site is put due south of the satellite's
northernmost point, where the ground track runs east, at the latitude offset that gives the wanted culmination:
about 2 degrees for a high pass that crosses north, 0.05 degrees for an overhead (keyhole) pass, 16 degrees for
a low one. Which offset gives which pass is searched with SkyMesh's own SGP4; the tests then judge the agent's
pointing against Skyfield.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
from skyfield.api import EarthSatellite, load, wgs84

from skymesh.astro.frames import datetime_to_jd, ecef_to_geodetic, teme_to_ecef
from skymesh.astro.propagate import SatelliteBatch, look_angles
from skymesh.astro.tle import TLE
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.model import GeoLocation

EPOCH = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Pass:
    tle: TLE
    site: GeoLocation
    aos: datetime
    los: datetime
    tca: datetime
    max_elevation_deg: float

    def window(self, before_tca_s: float, after_tca_s: float) -> tuple[datetime, datetime]:
        """A slice of the pass around the culmination (short tests fly only the interesting part)."""
        start = max(self.aos, self.tca - timedelta(seconds=before_tca_s))
        return start, min(self.los, self.tca + timedelta(seconds=after_tca_s))


@cache
def _northernmost() -> tuple[TLE, datetime, float, float]:
    (tle,) = generate_tles("iss", 1, EPOCH, seed=7)
    times = [EPOCH + timedelta(seconds=s) for s in range(0, 6000, 10)]
    jd = np.array([datetime_to_jd(t) for t in times])
    r, v, _ = SatelliteBatch([tle]).propagate(jd)
    r_ecef, _ = teme_to_ecef(r, v, jd[None, :])
    lat, lon, _alt = ecef_to_geodetic(r_ecef[0])
    i = int(np.argmax(lat))
    return tle, times[i], float(lat[i]), float(lon[i])


@cache
def find_pass(max_elevation_deg: float) -> Pass:
    """The pass (seen from a site south of the northernmost point) whose culmination is nearest the wanted one."""
    tle, t_north, lat, lon = _northernmost()
    offsets = np.concatenate([np.linspace(0.01, 0.3, 30), np.linspace(0.3, 25.0, 250)])
    lats = lat - offsets
    lons = np.full_like(lats, lon)
    t0 = t_north - timedelta(seconds=900)
    jd = datetime_to_jd(t0) + np.arange(0, 1800, 1.0) / 86400.0
    angles = look_angles(SatelliteBatch([tle]), lats, lons, np.zeros_like(lats), jd)
    el = angles.elevation_deg[0]  # [site, time]
    best = int(np.argmin(np.abs(el.max(axis=1) - max_elevation_deg)))
    e = el[best]
    visible = np.flatnonzero(e > 0.0)
    aos = t0 + timedelta(seconds=float(visible[0]))
    los = t0 + timedelta(seconds=float(visible[-1]))
    tca = t0 + timedelta(seconds=float(np.argmax(e)))
    site = GeoLocation(float(lats[best]), ((float(lons[best]) + 180.0) % 360.0) - 180.0, 0.0)
    return Pass(tle, site, aos, los, tca, float(e.max()))


class SkyfieldTruth:
    """Skyfield's topocentric az/el of the pass's satellite, for judging where the rotator pointed."""

    def __init__(self, p: Pass) -> None:
        self.ts = load.timescale(builtin=True)
        self.sat = EarthSatellite(p.tle.line1, p.tle.line2, p.tle.name, self.ts)
        self.topo = wgs84.latlon(p.site.latitude_deg, p.site.longitude_deg, elevation_m=p.site.altitude_m)

    def altaz_deg(self, when: list[datetime]) -> tuple[np.ndarray, np.ndarray]:
        t = self.ts.from_datetimes(when)
        alt, az, _ = (self.sat - self.topo).at(t).altaz()
        return np.asarray(az.degrees), np.asarray(alt.degrees)


def separation_deg(az1: np.ndarray, el1: np.ndarray, az2: np.ndarray, el2: np.ndarray) -> np.ndarray:
    """Angle between mechanical (az, el) readings and sky (az, el); valid for flipped mechanical angles too."""
    a1, e1, a2, e2 = (np.radians(np.asarray(x, dtype=float)) for x in (az1, el1, az2, el2))
    c = np.sin(e1) * np.sin(e2) + np.cos(e1) * np.cos(e2) * np.cos(a1 - a2)
    out: np.ndarray = np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
    return out
