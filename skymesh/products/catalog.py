"""The reference catalogue of the SkyMesh test fields: positions and magnitudes of the stars the pipeline matches
detections to (astrometry) and calibrates against (differential photometry).

The fields are synthetic, generated deterministically by `generate_reference_catalogue` and shipped as a small ECSV
file (`data/reference_fields.ecsv`, read with `astropy.table`); a test regenerates it and compares. Each field has one
designated target star at its centre (`<field>-target`), never used as a comparison star.

Imports: numpy, astropy; never grpc, SQLAlchemy or other `skymesh` services (server-side library only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

__all__ = [
    "FILTERS",
    "TEST_FIELDS",
    "FieldCentre",
    "ReferenceCatalogue",
    "generate_reference_catalogue",
    "load_reference_catalogue",
]

FILTERS = ("B", "V", "R", "I")
_FIELD_RADIUS_DEG = 0.25
_MIN_SEPARATION_ARCSEC = 8.0


@dataclass(frozen=True)
class FieldCentre:
    name: str
    ra_deg: float
    dec_deg: float
    target_v_mag: float
    seed: int
    star_count: int = 420


TEST_FIELDS: tuple[FieldCentre, ...] = (
    FieldCentre("sm-field-a", 150.0, 20.0, 13.0, seed=11),
    FieldCentre("sm-field-var", 337.29, 58.42, 13.5, seed=12),
)


@dataclass(frozen=True)
class ReferenceCatalogue:
    """Stars with ICRS positions and magnitudes per filter (columns `mag_B`, `mag_V`, ...)."""

    table: Table

    @functools.cached_property
    def coords(self) -> SkyCoord:
        ra = np.asarray(self.table["ra_deg"], dtype=np.float64)
        dec = np.asarray(self.table["dec_deg"], dtype=np.float64)
        return SkyCoord(ra * u.deg, dec * u.deg)

    def cone(self, ra_deg: float, dec_deg: float, radius_deg: float) -> ReferenceCatalogue:
        centre = SkyCoord(ra_deg * u.deg, dec_deg * u.deg)
        keep = self.coords.separation(centre).deg <= radius_deg
        return ReferenceCatalogue(self.table[keep])

    def has_filter(self, band: str) -> bool:
        return f"mag_{band}" in self.table.colnames

    def __len__(self) -> int:
        return len(self.table)


def _field_stars(field: FieldCentre) -> Table:
    rng = np.random.default_rng(field.seed)
    # Uniform over the disc in the tangent plane; rejection keeps stars apart so blends do not bias the checks.
    xs: list[float] = [0.0]
    ys: list[float] = [0.0]
    min_sep = _MIN_SEPARATION_ARCSEC / 3600.0
    while len(xs) < field.star_count:
        r = _FIELD_RADIUS_DEG * np.sqrt(rng.uniform())
        phi = rng.uniform(0.0, 2 * np.pi)
        x, y = r * np.cos(phi), r * np.sin(phi)
        if np.min(np.hypot(np.asarray(xs) - x, np.asarray(ys) - y)) >= min_sep:
            xs.append(float(x))
            ys.append(float(y))
    n = len(xs)
    # Star counts grow ~10^(0.3 m) between V = 11 and 19 (inverse-CDF sampling).
    lo, hi = 10 ** (0.3 * 11.0), 10 ** (0.3 * 19.0)
    v = np.log10(lo + rng.uniform(size=n) * (hi - lo)) / 0.3
    v[0] = field.target_v_mag
    b_v = rng.uniform(0.3, 1.2, size=n)
    centre = SkyCoord(field.ra_deg * u.deg, field.dec_deg * u.deg)
    frame = centre.skyoffset_frame()
    world = SkyCoord(lon=np.asarray(xs) * u.deg, lat=np.asarray(ys) * u.deg, frame=frame).icrs
    ids = [f"{field.name}-target"] + [f"{field.name}-{i:04d}" for i in range(1, n)]
    return Table(
        {
            "field": [field.name] * n,
            "star_id": ids,
            "ra_deg": np.round(world.ra.deg, 7),
            "dec_deg": np.round(world.dec.deg, 7),
            "mag_B": np.round(v + b_v, 4),
            "mag_V": np.round(v, 4),
            "mag_R": np.round(v - 0.55 * b_v, 4),
            "mag_I": np.round(v - 1.05 * b_v, 4),
        }
    )


def generate_reference_catalogue() -> Table:
    from astropy.table import vstack

    table = vstack([_field_stars(f) for f in TEST_FIELDS])
    for name in ("ra_deg", "dec_deg"):
        table[name].unit = u.deg
    for band in FILTERS:
        table[f"mag_{band}"].unit = u.mag
    table.meta["description"] = "SkyMesh synthetic test fields (skymesh.products.catalog.generate_reference_catalogue)"
    return table


def _shipped_path() -> Path:
    return Path(str(resources.files("skymesh.products") / "data" / "reference_fields.ecsv"))


@functools.cache
def load_reference_catalogue(path: str | None = None) -> ReferenceCatalogue:
    """The shipped catalogue (or an ECSV file with the same columns)."""
    table = Table.read(path or _shipped_path(), format="ascii.ecsv")
    return ReferenceCatalogue(table)
