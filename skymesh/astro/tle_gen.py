"""Fresh, valid TLEs of real orbit families, for tests, demos, simulated fleets and benchmarks.

Real element sets go stale and carry licence questions; these are synthetic but physically sensible: each family
copies the geometry of a real constellation (ISS, sun-synchronous Earth observation, Starlink shell 1, Iridium,
CubeSats, GPS, GEO), seeded so the same arguments always give the same TLEs. Every TLE goes through `format_tle`
and therefore `parse_tle`, so it has correct checksums and `sgp4` accepts it.

Catalog numbers: each family has its own default block in the Alpha-5 range (100000 and up, 'A0000'...), so mixed
fleets built with the defaults never collide with each other or with real catalog numbers below 100000.

Runtime imports: numpy, `skymesh.astro.tle` and `skymesh.core` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from skymesh.astro.tle import ALPHA5_MAX, TLE, format_tle
from skymesh.core.errors import InvalidArgument

__all__ = ["DEFAULT_MIX", "FAMILIES", "FAMILY_NORAD_BASE", "generate_catalog", "generate_tles", "sso_inclination_deg"]

_MU_KM3_S2 = 398_600.4418
_EARTH_RADIUS_KM = 6378.137
_J2 = 1.082_63e-3
_SIDEREAL_DAY_S = 86_164.0905
# Node precession that keeps the orbit plane fixed relative to the Sun: 360 deg per tropical year.
_SSO_NODE_RATE_RAD_S = 2.0 * math.pi / (365.2422 * 86_400.0)

FAMILIES: tuple[str, ...] = ("iss", "sso", "starlink", "polar", "cubesat", "meo", "geo")

# Default first catalog number per family: 30,000-wide blocks in the Alpha-5 range.
FAMILY_NORAD_BASE: Mapping[str, int] = {name: 100_000 + 30_000 * i for i, name in enumerate(FAMILIES)}

# Share of each family in `generate_catalog` when no mix is given (roughly today's LEO-heavy population).
DEFAULT_MIX: Mapping[str, float] = {
    "starlink": 0.40,
    "sso": 0.20,
    "cubesat": 0.15,
    "polar": 0.10,
    "iss": 0.05,
    "meo": 0.05,
    "geo": 0.05,
}

_F = NDArray[np.float64]


@dataclass(frozen=True)
class _Elements:
    altitude_km: _F
    inclination_deg: _F
    raan_deg: _F
    eccentricity: _F
    arg_perigee_deg: _F
    mean_anomaly_deg: _F
    bstar_per_earth_radius: _F


def sso_inclination_deg(altitude_km: float | _F) -> _F:
    """Inclination (deg) of a circular sun-synchronous orbit at this altitude (J2 node precession)."""
    a_km = _EARTH_RADIUS_KM + np.asarray(altitude_km, dtype=np.float64)
    n_rad_s = np.sqrt(_MU_KM3_S2 / a_km**3)
    cos_i = -_SSO_NODE_RATE_RAD_S / (1.5 * _J2 * n_rad_s * (_EARTH_RADIUS_KM / a_km) ** 2)
    return np.asarray(np.degrees(np.arccos(cos_i)), dtype=np.float64)


def _mean_motion_rev_per_day(altitude_km: _F) -> _F:
    a_km = _EARTH_RADIUS_KM + altitude_km
    return np.asarray(np.sqrt(_MU_KM3_S2 / a_km**3) * 86_400.0 / (2.0 * math.pi), dtype=np.float64)


def _walker(rng: np.random.Generator, count: int, planes: int, raan_spread_deg: float) -> tuple[_F, _F]:
    """RAAN and mean anomaly for `count` satellites in `planes` evenly spaced planes with phased slots."""
    per_plane = max(1, math.ceil(count / planes))
    k = np.arange(count)
    plane, slot = k % planes, k // planes
    raan0, phase = rng.uniform(0.0, 360.0), rng.uniform(0.0, 360.0)
    raan = (raan0 + plane * raan_spread_deg / planes) % 360.0
    anomaly = (phase + slot * 360.0 / per_plane + plane * 360.0 / (per_plane * planes)) % 360.0
    return raan.astype(np.float64), anomaly.astype(np.float64)


def _uniform(rng: np.random.Generator, low: float, high: float, count: int) -> _F:
    return rng.uniform(low, high, count).astype(np.float64)


def _iss(rng: np.random.Generator, n: int) -> _Elements:
    return _Elements(
        altitude_km=_uniform(rng, 410.0, 420.0, n),
        inclination_deg=np.full(n, 51.64),
        raan_deg=_uniform(rng, 0.0, 360.0, n),
        eccentricity=_uniform(rng, 0.0002, 0.0008, n),
        arg_perigee_deg=_uniform(rng, 0.0, 360.0, n),
        mean_anomaly_deg=_uniform(rng, 0.0, 360.0, n),
        bstar_per_earth_radius=_uniform(rng, 1e-4, 4e-4, n),
    )


def _sso(rng: np.random.Generator, n: int) -> _Elements:
    alt = _uniform(rng, 500.0, 800.0, n)
    return _Elements(
        altitude_km=alt,
        inclination_deg=sso_inclination_deg(alt),
        raan_deg=_uniform(rng, 0.0, 360.0, n),
        eccentricity=_uniform(rng, 0.0001, 0.002, n),
        arg_perigee_deg=_uniform(rng, 0.0, 360.0, n),
        mean_anomaly_deg=_uniform(rng, 0.0, 360.0, n),
        bstar_per_earth_radius=_uniform(rng, 1e-5, 1e-4, n),
    )


def _starlink(rng: np.random.Generator, n: int) -> _Elements:
    # Shell 1: 72 planes of 22 at 550 km, 53 deg; a small fleet still gets several planes.
    planes = min(72, max(3, math.ceil(n / 22)))
    raan, anomaly = _walker(rng, n, planes, 360.0)
    return _Elements(
        altitude_km=550.0 + _uniform(rng, -1.0, 1.0, n),
        inclination_deg=np.full(n, 53.0),
        raan_deg=raan,
        eccentricity=_uniform(rng, 0.0001, 0.0003, n),
        arg_perigee_deg=_uniform(rng, 0.0, 360.0, n),
        mean_anomaly_deg=anomaly,
        bstar_per_earth_radius=_uniform(rng, 5e-5, 3e-4, n),
    )


def _polar(rng: np.random.Generator, n: int) -> _Elements:
    # Iridium: 6 planes of 11 at 780 km, 86.4 deg, planes spread over about 180 deg of node.
    raan, anomaly = _walker(rng, n, min(6, max(1, n)), 189.6)
    return _Elements(
        altitude_km=780.0 + _uniform(rng, -2.0, 2.0, n),
        inclination_deg=np.full(n, 86.4),
        raan_deg=raan,
        eccentricity=_uniform(rng, 0.0001, 0.0004, n),
        arg_perigee_deg=_uniform(rng, 0.0, 360.0, n),
        mean_anomaly_deg=anomaly,
        bstar_per_earth_radius=_uniform(rng, 1e-5, 6e-5, n),
    )


def _cubesat(rng: np.random.Generator, n: int) -> _Elements:
    return _Elements(
        altitude_km=_uniform(rng, 450.0, 550.0, n),
        inclination_deg=_uniform(rng, 97.3, 97.7, n),
        raan_deg=_uniform(rng, 0.0, 360.0, n),
        eccentricity=_uniform(rng, 0.0005, 0.003, n),
        arg_perigee_deg=_uniform(rng, 0.0, 360.0, n),
        mean_anomaly_deg=_uniform(rng, 0.0, 360.0, n),
        bstar_per_earth_radius=_uniform(rng, 2e-4, 8e-4, n),
    )


def _meo(rng: np.random.Generator, n: int) -> _Elements:
    # GPS: 6 planes at 55 deg, semi-synchronous (two revolutions per sidereal day).
    a_km = (_MU_KM3_S2 * (_SIDEREAL_DAY_S / 2.0 / (2.0 * math.pi)) ** 2) ** (1.0 / 3.0)
    raan, anomaly = _walker(rng, n, min(6, max(1, n)), 360.0)
    return _Elements(
        altitude_km=np.full(n, a_km - _EARTH_RADIUS_KM),
        inclination_deg=55.0 + _uniform(rng, -1.0, 1.0, n),
        raan_deg=raan,
        eccentricity=_uniform(rng, 0.001, 0.015, n),
        arg_perigee_deg=_uniform(rng, 0.0, 360.0, n),
        mean_anomaly_deg=anomaly,
        bstar_per_earth_radius=np.zeros(n),
    )


def _geo(rng: np.random.Generator, n: int) -> _Elements:
    a_km = (_MU_KM3_S2 * (_SIDEREAL_DAY_S / (2.0 * math.pi)) ** 2) ** (1.0 / 3.0)
    return _Elements(
        altitude_km=np.full(n, a_km - _EARTH_RADIUS_KM),
        inclination_deg=_uniform(rng, 0.0, 0.1, n),
        raan_deg=_uniform(rng, 0.0, 360.0, n),
        eccentricity=_uniform(rng, 0.0001, 0.0005, n),
        arg_perigee_deg=_uniform(rng, 0.0, 360.0, n),
        mean_anomaly_deg=_uniform(rng, 0.0, 360.0, n),
        bstar_per_earth_radius=np.zeros(n),
    )


_BUILDERS: Mapping[str, Callable[[np.random.Generator, int], _Elements]] = {
    "iss": _iss,
    "sso": _sso,
    "starlink": _starlink,
    "polar": _polar,
    "cubesat": _cubesat,
    "meo": _meo,
    "geo": _geo,
}


def generate_tles(
    family: str,
    count: int,
    epoch: datetime,
    seed: int,
    *,
    norad_base: int | None = None,
    name_prefix: str = "SKYM",
) -> list[TLE]:
    """`count` valid TLEs of one orbit family (see `FAMILIES`), all with this epoch, deterministic in `seed`.

    Names are ``SKYM-<FAMILY>-001``...; catalog numbers run from `norad_base` (default `FAMILY_NORAD_BASE[family]`)
    and use Alpha-5 beyond 99999.
    """
    if family not in _BUILDERS:
        raise InvalidArgument(f"unknown orbit family {family!r}; choose one of {', '.join(FAMILIES)}", field="family")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidArgument(f"count must be a non-negative int, got {count!r}", field="count")
    if epoch.tzinfo is None:
        raise InvalidArgument("epoch must be timezone-aware (UTC)", field="epoch")
    base = FAMILY_NORAD_BASE[family] if norad_base is None else norad_base
    if base < 1 or base + count - 1 > ALPHA5_MAX:
        raise InvalidArgument(
            f"catalog numbers {base}..{base + count - 1} do not fit 1..{ALPHA5_MAX} (Alpha-5)", field="norad_base"
        )
    if count == 0:
        return []
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    el = _BUILDERS[family](rng, count)
    mean_motion = _mean_motion_rev_per_day(el.altitude_km)
    width = max(3, len(str(count)))
    tag = family.upper()
    return [
        format_tle(
            norad_id=base + i,
            epoch=epoch,
            inclination_deg=float(el.inclination_deg[i]),
            raan_deg=float(el.raan_deg[i]),
            eccentricity=float(el.eccentricity[i]),
            arg_perigee_deg=float(el.arg_perigee_deg[i]),
            mean_anomaly_deg=float(el.mean_anomaly_deg[i]),
            mean_motion_rev_per_day=float(mean_motion[i]),
            bstar_per_earth_radius=float(el.bstar_per_earth_radius[i]),
            element_set_no=999,
            name=f"{name_prefix}-{tag}-{i + 1:0{width}d}",
        )
        for i in range(count)
    ]


def generate_catalog(count: int, epoch: datetime, seed: int, *, mix: Mapping[str, float] | None = None) -> list[TLE]:
    """A mixed fleet of `count` TLEs split over families by `mix` weights (default `DEFAULT_MIX`).

    Families appear in `FAMILIES` order; each uses its default catalog-number block, so ids are unique.
    """
    weights = dict(DEFAULT_MIX if mix is None else mix)
    unknown = sorted(set(weights) - set(FAMILIES))
    if unknown:
        raise InvalidArgument(f"unknown orbit families in mix: {', '.join(unknown)}", field="mix")
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise InvalidArgument("mix weights must be non-negative and not all zero", field="mix")
    names = [f for f in FAMILIES if weights.get(f, 0.0) > 0]
    counts = [math.floor(count * weights[f] / total) for f in names]
    counts[0] += count - sum(counts)  # the remainder goes to the first family
    out: list[TLE] = []
    for family, n in zip(names, counts, strict=True):
        out.extend(generate_tles(family, n, epoch, seed))
    return out
