"""Where a telescope points: the alt/az of a J2000 sidereal target from the agent's site, from its own clock.

Telescopes only: imports `skymesh.astro` (numpy), which a ground station's agent never loads (`skymesh.agent.tracking`
is its numpy-free counterpart for satellites).
"""

from __future__ import annotations

from datetime import datetime

from skymesh.astro.celestial import radec_to_altaz
from skymesh.astro.frames import datetime_to_jd
from skymesh.core.model import GeoLocation

__all__ = ["altaz_of_radec"]


def altaz_of_radec(ra_deg: float, dec_deg: float, location: GeoLocation, when: datetime) -> tuple[float, float]:
    """(altitude_deg, azimuth_deg) of a J2000 sidereal target from `location` at `when` (azimuth from north, east)."""
    alt, az = radec_to_altaz(
        [ra_deg], [dec_deg], [location.latitude_deg], [location.longitude_deg], [datetime_to_jd(when)]
    )
    return float(alt[0, 0, 0]), float(az[0, 0, 0])
