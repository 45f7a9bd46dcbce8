"""Communication windows: spacecraft to ground station (elevation mask) and spacecraft to spacecraft (line of sight).

PASEOS's definitions, vectorised:
* ground link: the spacecraft's altitude angle seen from the station (WGS84 geodetic horizon) is above the
  station's minimum (`paseos/central_body/is_in_line_of_sight.py`, Skyfield alt-az; default minimum 30 deg there,
  the paper uses 5 deg);
* inter-satellite link: the segment between the two spacecraft does not cross a sphere around the central body
  (`CentralBody.is_between_actors`; PASEOS's config `comm.central_body_LOS_radius`).

Both are written as continuous functions (positive = link available) so the engine can refine edges. A window's
volume is rate x duration, as in PASEOS `get_communication_window`. Imports numpy and skymesh.astro (WGS84).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.frames import enu_basis, geodetic_to_ecef
from skymesh.core.errors import InvalidArgument
from skymesh.sim.eclipse import segment_clearance_m2

__all__ = ["GroundStation", "elevation_function", "isl_function_m2", "sin_elevation"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class GroundStation:
    """A ground station: WGS84 location and the minimum elevation at which it can talk to a spacecraft."""

    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float = 0.0
    min_elevation_deg: float = 5.0

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude_deg <= 90.0:
            raise InvalidArgument("latitude must be in [-90, 90] deg", field=f"stations.{self.name}.latitude_deg")
        if not -180.0 <= self.longitude_deg <= 360.0:
            raise InvalidArgument("longitude must be in [-180, 360] deg", field=f"stations.{self.name}.longitude_deg")
        if not 0.0 <= self.min_elevation_deg < 90.0:
            raise InvalidArgument("must be in [0, 90) deg", field=f"stations.{self.name}.min_elevation_deg")

    def ecef_m(self) -> tuple[F64, F64]:
        """(ECEF position (3,), up unit vector (3,))."""
        pos_m = geodetic_to_ecef(self.latitude_deg, self.longitude_deg, self.altitude_m) * 1000.0
        _, _, up = enu_basis(self.latitude_deg, self.longitude_deg)
        return np.asarray(pos_m, dtype=np.float64), np.asarray(up, dtype=np.float64)


def sin_elevation(sat_m: F64, station_m: F64, up: F64) -> F64:
    """Sine of the elevation of satellites (..., 3) seen from stations (..., 3) with local up vectors (..., 3)."""
    d = sat_m - station_m
    out: F64 = np.einsum("...i,...i->...", d, up) / np.sqrt(np.einsum("...i,...i->...", d, d))
    return out


def elevation_function(sat_m: F64, station_m: F64, up: F64, min_elevation_rad: F64 | float) -> F64:
    """sin(elevation) - sin(minimum): positive while the station can see the spacecraft."""
    return sin_elevation(sat_m, station_m, up) - np.sin(min_elevation_rad)


def isl_function_m2(sat_a_m: F64, sat_b_m: F64, radius_m: float) -> F64:
    """Positive while the segment between two spacecraft clears the central body's sphere."""
    return segment_clearance_m2(sat_a_m, sat_b_m, radius_m)
