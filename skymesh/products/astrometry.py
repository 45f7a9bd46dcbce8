"""Astrometric calibration: match detections to the reference catalogue starting from the camera's WCS hint, then
fit a TAN WCS with `astropy.wcs.utils.fit_wcs_from_points` and report the fit's RMS in arcsec.

The hint (from the mount position) can be off by the pointing error and the camera rotation. The offset is found
first as the peak of the histogram of all detection-catalogue pixel offsets (robust to missing and spurious stars);
then stars are paired by nearest neighbour (`SkyCoord.match_to_catalog_sky`) inside a radius that shrinks as the WCS
improves.

Imports: numpy, astropy; server side only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import fit_wcs_from_points
from numpy.typing import NDArray

__all__ = ["AstrometricSolution", "solve_astrometry"]

_MIN_MATCHES = 6


@dataclass(frozen=True)
class AstrometricSolution:
    wcs: WCS
    detection_index: NDArray[np.int64]  # matched pairs: detections ...
    catalogue_index: NDArray[np.int64]  # ... and catalogue rows (of the catalogue given to `solve_astrometry`)
    rms_arcsec: float

    @property
    def matched(self) -> int:
        return len(self.detection_index)


def _offset_peak(
    xd: NDArray[np.float64], yd: NDArray[np.float64], xc: NDArray[np.float64], yc: NDArray[np.float64], max_px: float
) -> tuple[float, float]:
    dx = (xd[:, None] - xc[None, :]).ravel()
    dy = (yd[:, None] - yc[None, :]).ravel()
    near = (np.abs(dx) < max_px) & (np.abs(dy) < max_px)
    bins = np.arange(-max_px, max_px + 2.0, 2.0)
    hist, ex, ey = np.histogram2d(dx[near], dy[near], bins=[bins, bins])
    i, j = np.unravel_index(int(np.argmax(hist)), hist.shape)
    cx, cy = 0.5 * (ex[i] + ex[i + 1]), 0.5 * (ey[j] + ey[j + 1])
    # Refine on the pairs in and around the peak bin.
    close = near & (np.abs(dx - cx) < 3.0) & (np.abs(dy - cy) < 3.0)
    if np.count_nonzero(close) >= 3:
        return float(np.median(dx[close])), float(np.median(dy[close]))
    return float(cx), float(cy)


def _match(
    wcs: WCS, x: NDArray[np.float64], y: NDArray[np.float64], catalogue: SkyCoord, radius_arcsec: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    detected = wcs.pixel_to_world(x, y)
    idx, sep2d, _ = detected.match_to_catalog_sky(catalogue)
    ok = sep2d.arcsec < radius_arcsec
    det = np.flatnonzero(ok)
    cat = np.asarray(idx, dtype=np.int64)[ok]
    # One detection per catalogue star: keep the closest.
    order = np.argsort(sep2d.arcsec[ok])
    _, first = np.unique(cat[order], return_index=True)
    keep = order[first]
    return det[keep].astype(np.int64), cat[keep]


def _rms_arcsec(wcs: WCS, x: NDArray[np.float64], y: NDArray[np.float64], catalogue: SkyCoord) -> float:
    fitted = wcs.pixel_to_world(x, y)
    return float(np.sqrt(np.mean(fitted.separation(catalogue).arcsec ** 2)))


def solve_astrometry(
    hint: WCS,
    x_px: NDArray[np.float64],
    y_px: NDArray[np.float64],
    catalogue: SkyCoord,
    *,
    pixel_scale_arcsec: float,
    max_offset_arcsec: float = 180.0,
) -> AstrometricSolution | None:
    """Fit a WCS to the detections at (x_px, y_px) (0-based, brightest first); None when too few stars match."""
    if len(x_px) < _MIN_MATCHES or len(catalogue) < _MIN_MATCHES:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = hint.deepcopy()
    xc, yc = wcs.world_to_pixel(catalogue)
    xc, yc = np.asarray(xc, dtype=np.float64), np.asarray(yc, dtype=np.float64)
    use = slice(0, 150)  # the brightest detections carry the offset; all of them would only add noise
    dx, dy = _offset_peak(x_px[use], y_px[use], xc, yc, max_offset_arcsec / pixel_scale_arcsec)
    wcs.wcs.crpix = [wcs.wcs.crpix[0] + dx, wcs.wcs.crpix[1] + dy]
    det: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
    cat: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
    for radius_px in (4.0, 2.0, 1.0):
        det, cat = _match(wcs, x_px, y_px, catalogue, radius_px * pixel_scale_arcsec + 0.5)
        if len(det) < _MIN_MATCHES:
            return None
        wcs = fit_wcs_from_points((x_px[det], y_px[det]), catalogue[cat], proj_point="center", projection="TAN")
    return AstrometricSolution(
        wcs=wcs,
        detection_index=det,
        catalogue_index=cat,
        rms_arcsec=_rms_arcsec(wcs, x_px[det], y_px[det], catalogue[cat]),
    )
