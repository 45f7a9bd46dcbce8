"""Astrodynamics for SkyMesh: TLE/OMM parsing (Alpha-5), vectorised SGP4, frames, passes, Doppler, Sun/Moon, nights.

A pure library: numpy and sgp4 at runtime, nothing from grpc, protobuf, SQLAlchemy, Skyfield or astropy, so the
station agent on a Raspberry Pi can use it. One module per concept:

- `tle`: `TLE`, `parse_tle`, `parse_tle_file`, `format_tle`, `tle_from_omm`, Alpha-5 catalog numbers
- `tle_gen`: `generate_tles` / `generate_catalog`, fresh valid TLEs of real orbit families
- `frames`: Julian dates, GMST, TEME -> ECEF, WGS84, topocentric look angles
- `propagate`: `SatelliteBatch` (SatrecArray), `look_angles`
- `passes`: `find_passes` -> `PassTable` / `Pass`, `HorizonMask`
- `celestial`: RA/Dec -> alt/az, airmass, Sun, Moon, `night_windows`
- `inertial`: precession, nutation, TEME <-> GCRS, Earth-fixed -> inertial
- `sun`: the Sun's geocentric position to about an arcsecond (VSOP87), for eclipses
- `doppler`: `doppler_shift_hz` and friends
"""

from skymesh.astro.passes import HorizonMask, Pass, PassTable, find_passes
from skymesh.astro.propagate import LookAngles, SatelliteBatch, look_angles
from skymesh.astro.tle import TLE, format_tle, parse_tle, parse_tle_file, tle_from_omm
from skymesh.astro.tle_gen import FAMILIES, generate_catalog, generate_tles

__all__ = [
    "FAMILIES",
    "TLE",
    "HorizonMask",
    "LookAngles",
    "Pass",
    "PassTable",
    "SatelliteBatch",
    "find_passes",
    "format_tle",
    "generate_catalog",
    "generate_tles",
    "look_angles",
    "parse_tle",
    "parse_tle_file",
    "tle_from_omm",
]
