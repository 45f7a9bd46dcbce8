"""Angles between directions on the sphere, in plain Python: one great-circle formula for the agent (pointing
error, mount slews, exposure offsets), the server's health detectors and the scheduler's slews.

Imports the standard library only (a ground station's agent loads no numpy).
"""

from __future__ import annotations

import math

__all__ = ["separation_deg"]


def separation_deg(lon1_deg: float, lat1_deg: float, lon2_deg: float, lat2_deg: float) -> float:
    """Great-circle angle between two directions given as (longitude-like, latitude-like) pairs in degrees: (az, el)
    or (RA, Dec). Valid for mechanical rotator angles too: (az + 180, 180 - el) is the same direction as (az, el)
    in this formula, and an azimuth outside 0..360 wraps through the cosine."""
    a1, e1, a2, e2 = map(math.radians, (lon1_deg, lat1_deg, lon2_deg, lat2_deg))
    c = math.sin(e1) * math.sin(e2) + math.cos(e1) * math.cos(e2) * math.cos(a1 - a2)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))
