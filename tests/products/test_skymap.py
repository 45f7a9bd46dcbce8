"""LVK sky maps, flat and multi-order, written here from the public format (a FITS BINTABLE with ORDERING, NSIDE and
PROB, or NUNIQ with UNIQ and PROBDENSITY): the 90 % credible area matches the analytic value of the Gaussian blob the
map holds, the ranked tiles cover it, and hostile or broken files are refused with a clear error."""

from __future__ import annotations

import functools
import gzip
import io
import math

import numpy as np
import pytest
from astropy.io import fits
from astropy_healpix import healpix_to_lonlat, level_ipix_to_uniq

from skymesh.products.skymap import SkyMapError, credible_area_deg2, read_skymap, tile_pointings

RA0, DEC0, SIGMA_DEG = 120.0, -30.0, 3.0
NSIDE = 128
# A circular 2-D Gaussian holds 90 % within 2.146 sigma (sqrt(-2 ln 0.1)).
AREA_90_DEG2 = math.pi * (math.sqrt(-2.0 * math.log(0.1)) * SIGMA_DEG) ** 2


def _blob(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec, ra0, dec0 = map(np.radians, (ra_deg, dec_deg, RA0, DEC0))
    cos_d = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    d = np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0)))
    return np.exp(-0.5 * (d / SIGMA_DEG) ** 2)


def _fits(columns: list[fits.Column], cards: dict[str, object]) -> bytes:
    table = fits.BinTableHDU.from_columns(columns)
    for key, value in cards.items():
        table.header[key] = value
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()


def flat_map(nside: int = NSIDE, ordering: str = "NESTED") -> bytes:
    lon, lat = healpix_to_lonlat(np.arange(12 * nside * nside), nside, order=ordering.lower())
    prob = _blob(lon.deg, lat.deg)
    prob /= prob.sum()
    cards = {"PIXTYPE": "HEALPIX", "ORDERING": ordering, "COORDSYS": "C", "NSIDE": nside, "INDXSCHM": "IMPLICIT",
             "OBJECT": "S261202ab"}  # fmt: skip
    return _fits([fits.Column(name="PROB", format="D", array=prob)], cards)


def multi_order_map() -> bytes:
    """Order 5 everywhere, refined to order 8 within 12 degrees of the peak (as BAYESTAR refines where it matters)."""
    uniq, density = [], []
    coarse = 2**5
    lon, lat = healpix_to_lonlat(np.arange(12 * coarse**2), coarse, order="nested")
    near = _blob(lon.deg, lat.deg) > math.exp(-0.5 * 16)
    for ipix in range(12 * coarse**2):
        if near[ipix]:
            children = ipix * 64 + np.arange(64)  # order 8 = order 5 + 3 levels: 4^3 children
            clon, clat = healpix_to_lonlat(children, 2**8, order="nested")
            uniq.extend(level_ipix_to_uniq(8, children).tolist())
            density.extend(_blob(clon.deg, clat.deg).tolist())
        else:
            uniq.append(int(level_ipix_to_uniq(5, ipix)))
            density.append(float(_blob(lon.deg[ipix : ipix + 1], lat.deg[ipix : ipix + 1])[0]))
    uniq_a = np.asarray(uniq, dtype=np.int64)
    dens = np.asarray(density)
    level = np.floor(np.log2(uniq_a / 4) / 2).astype(int)
    dens /= np.sum(dens * 4 * math.pi / (12 * 4.0**level))
    cards = {"PIXTYPE": "HEALPIX", "ORDERING": "NUNIQ", "COORDSYS": "C", "MOCORDER": 8, "INDXSCHM": "EXPLICIT",
             "OBJECT": "S261202ab"}  # fmt: skip
    return _fits(
        [fits.Column(name="UNIQ", format="K", array=uniq_a), fits.Column(name="PROBDENSITY", format="D", array=dens)],
        cards,
    )


@pytest.mark.parametrize("kind", ["flat-nested", "flat-ring-gzip", "multi-order"])
def test_credible_area_and_ranked_tiles(kind: str) -> None:
    packet = {
        "flat-nested": lambda: flat_map(),
        "flat-ring-gzip": lambda: gzip.compress(flat_map(ordering="RING")),
        "multi-order": multi_order_map,
    }[kind]()
    skymap = read_skymap(packet)
    assert skymap.object_name == "S261202ab"
    assert float(skymap.probability.sum()) == pytest.approx(1.0)
    assert credible_area_deg2(skymap) == pytest.approx(AREA_90_DEG2, rel=0.06)
    tiles = tile_pointings(skymap, fov_deg=3.0, max_tiles=40)
    probs = [t.probability for t in tiles]
    assert probs == sorted(probs, reverse=True)
    best = tiles[0]
    assert abs(best.dec_deg - DEC0) < 2.0 and abs((best.ra_deg - RA0 + 180) % 360 - 180) < 2.5
    # 40 tiles of 9 deg^2 hold the whole 90 % region (~130 deg^2) with room for the tiles' ragged edges.
    assert 0.88 <= sum(probs) <= 0.95


@functools.cache
def _hostile() -> dict[str, bytes]:
    good = flat_map(nside=16)
    lon, _lat = healpix_to_lonlat(np.arange(12 * 16 * 16), 16, order="nested")
    negative = np.full(len(lon), 1.0 / len(lon))
    negative[0] = -0.1
    return {
        "not a FITS": b'{"superevent_id": "S261202ab"}',
        "truncated": good[: len(good) // 2],
        "NSIDE": _fits(
            [fits.Column(name="PROB", format="D", array=np.ones(12) / 12)], {"ORDERING": "NESTED", "NSIDE": 1 << 20}
        ),
        "pixels": _fits(
            [fits.Column(name="PROB", format="D", array=np.ones(100) / 100)], {"ORDERING": "NESTED", "NSIDE": 16}
        ),
        "ORDERING": _fits(
            [fits.Column(name="PROB", format="D", array=np.ones(12) / 12)], {"ORDERING": "SPIRAL", "NSIDE": 1}
        ),
        "finite and >= 0": _fits(
            [fits.Column(name="PROB", format="D", array=negative)], {"ORDERING": "NESTED", "NSIDE": 16}
        ),
        "UNIQ": _fits(
            [
                fits.Column(name="UNIQ", format="K", array=np.array([1, 2, 3])),
                fits.Column(name="PROBDENSITY", format="D", array=np.ones(3)),
            ],
            {"ORDERING": "NUNIQ"},
        ),
        "tile the sphere": _fits(
            [
                fits.Column(name="UNIQ", format="K", array=np.array([4, 4, 5])),
                fits.Column(name="PROBDENSITY", format="D", array=np.ones(3)),
            ],
            {"ORDERING": "NUNIQ"},
        ),
        "inflates": gzip.compress(b"SIMPLE  =" + b"\0" * (65 << 20)),
        "binary table": _primary_only(),
    }


def _primary_only() -> bytes:
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("reason", list(_hostile()))
def test_hostile_and_broken_maps_are_refused_clearly(reason: str) -> None:
    with pytest.raises(SkyMapError, match=reason):
        read_skymap(_hostile()[reason])
