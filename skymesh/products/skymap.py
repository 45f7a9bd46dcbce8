"""Gravitational-wave sky maps (LVK HEALPix FITS, flat or multi-order) to a ranked list of telescope pointings.

LVK publishes each alert's localisation as a HEALPix map in a FITS binary table: *flat* (`ORDERING` NESTED or RING,
`NSIDE`, a `PROB` column of probability per pixel, often gzipped) or *multi-order* (`ORDERING = NUNIQ`, columns
`UNIQ` and `PROBDENSITY` per steradian). `read_skymap` reads either with astropy (FITS) and astropy-healpix (pixel
geometry: small, maintained by Astropy, numpy-only; ligo.skymap and mhealpy pull in healpy/LALSuite, far too heavy
for a server extra) into one multi-resolution form; `credible_region` is the smallest set of pixels holding `level`
of the probability (90 % by default); `tile_pointings` covers it with a square field of view, greedily from the
densest uncovered pixel, and ranks the tiles by the probability each captures.

A hostile or broken file gets a `SkyMapError` naming what is wrong, before anything large is allocated: size limit,
not FITS, truncated, no HEALPix table, an NSIDE or order out of range, a row count that does not match NSIDE,
negative or non-finite probabilities, a map that sums to nothing.

Imports: numpy, astropy, astropy-healpix; server side only (never the agent, never the server's own process).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Pointing",
    "SkyMap",
    "SkyMapError",
    "credible_area_deg2",
    "credible_region",
    "read_skymap",
    "tile_pointings",
]

MAX_SKYMAP_BYTES = 64 << 20
MAX_FLAT_NSIDE = 4096  # 201 M pixels would be 1.6 GB of float64; LVK's flat maps are NSIDE <= 2048
MAX_ORDER = 16  # multi-order: LVK refines to order 12 or so
MAX_ROWS = 20_000_000


class SkyMapError(ValueError):
    """The file is not a usable HEALPix sky map; the message says why."""


@dataclass(frozen=True)
class SkyMap:
    """Pixels of any resolution: centres (ICRS degrees), solid angle (steradians) and probability (sums to 1)."""

    ra_deg: NDArray[np.float64]
    dec_deg: NDArray[np.float64]
    area_sr: NDArray[np.float64]
    probability: NDArray[np.float64]
    object_name: str = ""

    def __len__(self) -> int:
        return len(self.probability)


@dataclass(frozen=True)
class Pointing:
    ra_deg: float
    dec_deg: float
    probability: float  # of the whole map, inside this tile (tiles do not share pixels)


def _open(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if path.stat().st_size > MAX_SKYMAP_BYTES:
            raise SkyMapError(f"the sky map is larger than {MAX_SKYMAP_BYTES} bytes")
        data = path.read_bytes()
    if len(data) > MAX_SKYMAP_BYTES:
        raise SkyMapError(f"the sky map is larger than {MAX_SKYMAP_BYTES} bytes")
    if data[:2] == b"\x1f\x8b":  # gzip, as LVK serves bayestar.fits.gz: decompress with a bound
        import zlib

        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = inflater.decompress(data, MAX_SKYMAP_BYTES + 1)
        if len(out) > MAX_SKYMAP_BYTES or inflater.unconsumed_tail:
            raise SkyMapError(f"the sky map inflates to more than {MAX_SKYMAP_BYTES} bytes")
        data = out
    if not data.startswith(b"SIMPLE  ="):
        raise SkyMapError("not a FITS file")
    return data


def read_skymap(source: bytes | str | Path) -> SkyMap:
    """Read a flat or multi-order HEALPix FITS sky map (see the module docstring for the rules)."""
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    data = _open(source)
    try:
        with warnings.catch_warnings():
            # astropy only warns about a truncated or non-standard file; here that is a refusal.
            warnings.simplefilter("error", AstropyUserWarning)
            hdus = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
        with hdus:
            table = next((h for h in hdus[1:] if isinstance(h, fits.BinTableHDU)), None)
            if table is None:
                raise SkyMapError("no binary table: a HEALPix sky map is a FITS BINTABLE extension")
            header = table.header
            ordering = str(header.get("ORDERING", "")).strip().upper()
            rows = int(header.get("NAXIS2", 0))
            if not 0 < rows <= MAX_ROWS:
                raise SkyMapError(f"NAXIS2: {rows} rows (1..{MAX_ROWS} allowed)")
            expected = int(header.get("NAXIS1", 0)) * rows
            if len(data) < 2880 * 2 + expected:  # primary + table header at the least, then the rows
                raise SkyMapError("truncated: the file is shorter than its table")
            names = [n.upper() for n in table.columns.names]
            name = str(header.get("OBJECT", "")).strip()
            if ordering == "NUNIQ":
                return _multi_order(table, names, name)
            if ordering in ("NESTED", "RING"):
                return _flat(table, header, names, ordering, rows, name)
            raise SkyMapError(f"ORDERING: {ordering or 'missing'} (NESTED, RING or NUNIQ)")
    except SkyMapError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, AstropyUserWarning) as exc:
        raise SkyMapError(f"unreadable FITS: {type(exc).__name__}: {exc}") from exc


def _column(table: object, names: list[str], name: str) -> NDArray[np.float64]:
    if name not in names:
        raise SkyMapError(f"no {name} column (has {names})")
    values = np.asarray(table.data.field(names.index(name)), dtype=np.float64).ravel()  # type: ignore[attr-defined]
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise SkyMapError(f"{name}: values must be finite and >= 0")
    return values


def _flat(table: object, header: object, names: list[str], ordering: str, rows: int, name: str) -> SkyMap:
    from astropy_healpix import healpix_to_lonlat

    nside = int(header.get("NSIDE", 0))  # type: ignore[attr-defined]
    if nside < 1 or nside > MAX_FLAT_NSIDE or nside & (nside - 1):
        raise SkyMapError(f"NSIDE: {nside} (a power of 2 up to {MAX_FLAT_NSIDE})")
    prob = _column(table, names, "PROB") if "PROB" in names else _column(table, names, names[0])
    if len(prob) != 12 * nside * nside:
        raise SkyMapError(f"{len(prob)} pixels, NSIDE {nside} has {12 * nside * nside}")
    lon, lat = healpix_to_lonlat(np.arange(len(prob)), nside, order=ordering.lower())
    area = np.full(len(prob), 4.0 * math.pi / len(prob))
    return _normalised(np.asarray(lon.deg), np.asarray(lat.deg), area, prob, name)


def _multi_order(table: object, names: list[str], name: str) -> SkyMap:
    from astropy_healpix import healpix_to_lonlat, uniq_to_level_ipix

    if "UNIQ" not in names:
        raise SkyMapError(f"no UNIQ column (has {names})")
    uniq = np.asarray(table.data.field(names.index("UNIQ")), dtype=np.int64).ravel()  # type: ignore[attr-defined]
    if np.any(uniq < 4) or np.any(uniq >= 16 * 4**MAX_ORDER):
        raise SkyMapError(f"UNIQ: values must be within [4, 16 * 4^{MAX_ORDER}) (orders 0..{MAX_ORDER})")
    density = _column(table, names, "PROBDENSITY")
    level, ipix = uniq_to_level_ipix(uniq)
    level = np.asarray(level, dtype=np.int64)
    ipix = np.asarray(ipix, dtype=np.int64)
    area = 4.0 * math.pi / (12.0 * 4.0**level)
    if not math.isclose(float(np.sum(area)), 4.0 * math.pi, rel_tol=1e-6):
        raise SkyMapError("the UNIQ pixels do not tile the sphere once")
    ra = np.empty(len(uniq))
    dec = np.empty(len(uniq))
    for order in np.unique(level):
        at = level == order
        lon, lat = healpix_to_lonlat(ipix[at], 2 ** int(order), order="nested")
        ra[at], dec[at] = lon.deg, lat.deg
    return _normalised(ra, dec, area, density * area, name)


def _normalised(
    ra: NDArray[np.float64], dec: NDArray[np.float64], area: NDArray[np.float64], prob: NDArray[np.float64], name: str
) -> SkyMap:
    total = float(np.sum(prob))
    if not total > 0:
        raise SkyMapError("the map holds no probability")
    if abs(total - 1.0) > 0.01:
        raise SkyMapError(f"the probabilities sum to {total:.4f}, not 1")
    return SkyMap(ra, dec, area, prob / total, name)


def credible_region(skymap: SkyMap, level: float = 0.9) -> NDArray[np.bool_]:
    """The smallest set of pixels holding `level` of the probability: densest first (the pixel that crosses the
    level is included)."""
    if not 0.0 < level <= 1.0:
        raise ValueError("level must be in (0, 1]")
    order = np.argsort(-(skymap.probability / skymap.area_sr), kind="stable")
    cumulative = np.cumsum(skymap.probability[order])
    count = int(np.searchsorted(cumulative, level * cumulative[-1])) + 1
    inside = np.zeros(len(skymap), dtype=bool)
    inside[order[:count]] = True
    return inside


def credible_area_deg2(skymap: SkyMap, level: float = 0.9) -> float:
    return float(np.sum(skymap.area_sr[credible_region(skymap, level)])) * (180.0 / math.pi) ** 2


def tile_pointings(skymap: SkyMap, fov_deg: float, *, level: float = 0.9, max_tiles: int = 50) -> list[Pointing]:
    """Square tiles of side `fov_deg` covering the `level` credible region, ranked by the probability they capture.

    Greedy: each tile is centred on the densest pixel of the region not yet covered and takes every uncovered
    pixel whose centre falls inside it, so tiles never count a pixel twice."""
    if not 0.0 < fov_deg <= 30.0:
        raise ValueError("fov_deg must be in (0, 30]")
    if max_tiles < 1:
        raise ValueError("max_tiles must be >= 1")
    region = np.flatnonzero(credible_region(skymap, level))
    ra = np.radians(skymap.ra_deg[region])
    dec = np.radians(skymap.dec_deg[region])
    prob = skymap.probability[region]
    density = prob / skymap.area_sr[region]
    free = np.ones(len(region), dtype=bool)
    half = math.radians(fov_deg) / 2.0
    tiles: list[Pointing] = []
    while len(tiles) < max_tiles and np.any(free):
        seed = int(np.flatnonzero(free)[np.argmax(density[free])])
        ra0, dec0 = float(ra[seed]), float(dec[seed])
        cos_c = math.sin(dec0) * np.sin(dec) + math.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
        front = cos_c > 0
        safe = np.where(front, cos_c, 1.0)
        xi = np.cos(dec) * np.sin(ra - ra0) / safe
        eta = (math.cos(dec0) * np.sin(dec) - math.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / safe
        inside = free & front & (np.abs(xi) <= math.tan(half)) & (np.abs(eta) <= math.tan(half))
        inside[seed] = True
        tiles.append(Pointing(math.degrees(ra0) % 360.0, math.degrees(dec0), float(np.sum(prob[inside]))))
        free &= ~inside
    return sorted(tiles, key=lambda t: -t.probability)
