"""The reference catalogue of the SkyMesh test fields: positions and magnitudes of the stars the pipeline matches
detections to (astrometry) and calibrates against (differential photometry).

The fields are synthetic, generated deterministically by `generate_reference_catalogue` and shipped as a small ECSV
file (`data/reference_fields.ecsv`, read with `astropy.table`); a test regenerates it and compares. Each field has one
designated target star at its centre (`<field>-target`), never used as a comparison star. `generate_field_catalogue`
makes the same kind of field around any position (the demo's targets, an alert's position at test time), and
`write_catalogue` writes it as ECSV, which both the server (`reference_catalogue`) and the simulated camera
(`star_catalogue`) read.

Imports: numpy, astropy; never grpc, SQLAlchemy or other `skymesh` services (server-side library only).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
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
    "generate_field_catalogue",
    "generate_reference_catalogue",
    "load_reference_catalogue",
    "write_catalogue",
]

FILTERS = ("B", "V", "R", "I")
_MIN_SEPARATION_ARCSEC = 8.0


@dataclass(frozen=True)
class FieldCentre:
    """One synthetic field: `star_count` stars within `radius_deg` of the centre, V magnitudes drawn from star counts
    growing as 10^(0.3 m) between `bright_v_mag` and `faint_v_mag`, the target star (`target_v_mag`) at the centre."""

    name: str
    ra_deg: float
    dec_deg: float
    target_v_mag: float
    seed: int
    star_count: int = 420
    radius_deg: float = 0.25
    bright_v_mag: float = 11.0
    faint_v_mag: float = 19.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.ra_deg < 360.0 and -90.0 <= self.dec_deg <= 90.0):
            raise ValueError(f"{self.name}: RA must be in [0, 360) and Dec in [-90, 90] degrees")
        if not 0.0 < self.radius_deg <= 5.0 or not 1 <= self.star_count <= 100_000:
            raise ValueError(f"{self.name}: radius_deg in (0, 5] and star_count in [1, 100000]")
        if not self.bright_v_mag < self.faint_v_mag:
            raise ValueError(f"{self.name}: bright_v_mag must be below faint_v_mag")


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
        r = field.radius_deg * np.sqrt(rng.uniform())
        phi = rng.uniform(0.0, 2 * np.pi)
        x, y = r * np.cos(phi), r * np.sin(phi)
        if np.min(np.hypot(np.asarray(xs) - x, np.asarray(ys) - y)) >= min_sep:
            xs.append(float(x))
            ys.append(float(y))
    n = len(xs)
    # Star counts grow ~10^(0.3 m) between the bright and faint limits (inverse-CDF sampling).
    lo, hi = 10 ** (0.3 * field.bright_v_mag), 10 ** (0.3 * field.faint_v_mag)
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


def generate_field_catalogue(fields: Sequence[FieldCentre], description: str = "") -> Table:
    """Synthetic fields around any positions, one table (deterministic for given fields and seeds)."""
    from astropy.table import vstack

    if not fields:
        raise ValueError("no fields to generate")
    table = vstack([_field_stars(f) for f in fields])
    for name in ("ra_deg", "dec_deg"):
        table[name].unit = u.deg
    for band in FILTERS:
        table[f"mag_{band}"].unit = u.mag
    table.meta["description"] = description or "SkyMesh synthetic fields (skymesh.products.catalog)"
    return table


def generate_reference_catalogue() -> Table:
    return generate_field_catalogue(
        TEST_FIELDS, "SkyMesh synthetic test fields (skymesh.products.catalog.generate_reference_catalogue)"
    )


def write_catalogue(table: Table, path: str | Path) -> Path:
    """Write a catalogue as ECSV (atomically: a reader never sees half a file)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    table.write(partial, format="ascii.ecsv", overwrite=True)
    partial.replace(target)
    return target


def _shipped_path() -> Path:
    return Path(str(resources.files("skymesh.products") / "data" / "reference_fields.ecsv"))


@functools.cache
def load_reference_catalogue(path: str | None = None) -> ReferenceCatalogue:
    """The shipped catalogue (or an ECSV file with the same columns)."""
    table = Table.read(path or _shipped_path(), format="ascii.ecsv")
    return ReferenceCatalogue(table)
