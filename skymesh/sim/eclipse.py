"""Eclipse by the central body, PASEOS's definition, vectorised.

PASEOS (`paseos/central_body/sphere_between_points.py`, called from `CentralBody.blocks_sun`) says a spacecraft is
in eclipse when the line segment from the Sun's centre to the spacecraft intersects a sphere around the central
body (radius 6371 km by default). That is a point-Sun, umbra-only test: no penumbra, no atmosphere. Here the test is
written as a continuous function so edges can be found by root finding:

    g = |closest point of the segment to the body centre|^2 - R^2      (negative = eclipsed)

Imports numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["PASEOS_BODY_RADIUS_M", "eclipse_function_m2", "in_eclipse", "segment_clearance_m2"]

F64 = NDArray[np.float64]

# PASEOS BaseActor._central_body_sphere and its tests' _PASEOS_TESTS_EARTH_RADIUS.
PASEOS_BODY_RADIUS_M = 6_371_000.0


def segment_clearance_m2(p1: F64, p2: F64, radius_m: float) -> F64:
    """min over the segment p1-p2 of |x|^2, minus radius^2: negative when a sphere at the origin blocks it.

    p1, p2 broadcast over (..., 3). Used for eclipse (Sun to spacecraft) and spacecraft-to-spacecraft LOS.
    """
    d = p2 - p1
    dd = np.einsum("...i,...i->...", d, d)
    u = np.clip(-np.einsum("...i,...i->...", p1, d) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
    closest = p1 + u[..., None] * d
    out: F64 = np.einsum("...i,...i->...", closest, closest) - radius_m * radius_m
    return out


def eclipse_function_m2(sat_m: F64, sun_m: F64, radius_m: float = PASEOS_BODY_RADIUS_M) -> F64:
    """Eclipse function for geocentric spacecraft positions (..., 3) and Sun positions broadcastable to them."""
    return segment_clearance_m2(np.broadcast_to(sun_m, np.shape(sat_m)), sat_m, radius_m)


def in_eclipse(sat_m: F64, sun_m: F64, radius_m: float = PASEOS_BODY_RADIUS_M) -> NDArray[np.bool_]:
    return eclipse_function_m2(sat_m, sun_m, radius_m) < 0.0
