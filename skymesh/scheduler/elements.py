"""Parsed element sets and their SGP4 records, cached by the element lines themselves.

The scheduler is stateless, so every request carries its targets' TLEs again; parsing and checking 500 element sets
cost about 0.2 s of a ranked list for a ground station, and `Satrec.twoline2rv` another 20 ms. The lines are the
revision: new elements for a target are new lines, so a cached entry can never be stale, only unused (and evicted,
least recently used first). Bad lines raise exactly as `parse_tle` does and are never cached.

Imports: `skymesh.astro.tle`, sgp4; never grpc.
"""

from __future__ import annotations

from functools import lru_cache

from sgp4.api import Satrec

from skymesh.astro.tle import TLE, parse_tle

__all__ = ["cached_satrec", "cached_tle"]

# A few times the largest catalogue we plan for (10,000 stations track far fewer distinct satellites): about 1 KiB
# an entry with its Satrec.
_MAX_ENTRIES = 50_000


@lru_cache(maxsize=_MAX_ENTRIES)
def cached_tle(line1: str, line2: str, name: str = "") -> TLE:
    """`parse_tle(line1, line2, name)`, parsed once per distinct (lines, name)."""
    return parse_tle(line1, line2, name)


@lru_cache(maxsize=_MAX_ENTRIES)
def cached_satrec(line1: str, line2: str, name: str = "") -> Satrec:
    """The SGP4 record of `cached_tle(line1, line2, name)`; shared, so callers must only propagate it."""
    return cached_tle(line1, line2, name).satrec()
