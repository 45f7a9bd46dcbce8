"""Source extraction and aperture photometry on one frame, with `sep` (SExtractor's algorithms as a library), and
the PSF width with `photutils.psf.fit_fwhm` (a circular Gaussian fitted to bright, isolated, unsaturated stars).

Fluxes are in electrons (ADU x gain) with errors from the background RMS and the Poisson noise of the source; the
aperture radius is a multiple of the measured FWHM, the same for every star, so aperture losses cancel in
differential photometry.

Imports: numpy, sep, photutils; server side only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import sep
from numpy.typing import NDArray

__all__ = ["Extraction", "extract_sources", "measure_apertures"]

_FWHM_STARS = 10
_FIT_SHAPE_MIN = 7


@dataclass(frozen=True)
class Extraction:
    """Detected sources (0-based pixels) and frame-wide measures. Arrays share one order: brightest first."""

    x_px: NDArray[np.float64]
    y_px: NDArray[np.float64]
    flux_e: NDArray[np.float64]  # isophotal, for ranking only
    a_px: NDArray[np.float64]
    b_px: NDArray[np.float64]
    saturated: NDArray[np.bool_]
    background: NDArray[np.float32]  # ADU, per pixel
    sky_adu: float  # median background level
    sky_rms_adu: float
    fwhm_px: float  # NaN when no star could be fitted
    ellipticity: float  # median 1 - b/a of the stars used for the FWHM

    def __len__(self) -> int:
        return len(self.x_px)


def _saturated(
    data: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64], level: float
) -> NDArray[np.bool_]:
    """True where any pixel of the 5x5 box around a source reaches 98% of full scale."""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    h, w = data.shape
    ix = np.clip(np.round(x).astype(np.int64)[:, None] + np.arange(-2, 3)[None, :], 0, w - 1)
    iy = np.clip(np.round(y).astype(np.int64)[:, None] + np.arange(-2, 3)[None, :], 0, h - 1)
    boxes = data[iy[:, :, None], ix[:, None, :]]
    out: NDArray[np.bool_] = boxes.reshape(len(x), -1).max(axis=1) >= 0.98 * level
    return out


def _fwhm(
    sub: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64], guess_px: float
) -> NDArray[np.float64]:
    from photutils.psf import fit_fwhm

    size = max(_FIT_SHAPE_MIN, int(np.ceil(3.0 * guess_px)) | 1)
    h, w = sub.shape
    inside = (x > size) & (x < w - size - 1) & (y > size) & (y < h - size - 1)
    if not np.any(inside):
        return np.zeros(0)
    from astropy.utils.exceptions import AstropyUserWarning

    with warnings.catch_warnings():
        # photutils warns when a fit did not converge; such stars come back as NaN or wild values, dropped below.
        warnings.simplefilter("ignore", AstropyUserWarning)
        fwhm = fit_fwhm(sub, xypos=np.column_stack([x[inside], y[inside]]), fwhm=guess_px, fit_shape=size)
    values = np.asarray(fwhm, dtype=np.float64)
    return values[np.isfinite(values) & (values > 0.5) & (values < 10 * size)]


def extract_sources(
    data: NDArray[np.float64], *, gain_e_per_adu: float, saturation_adu: float, threshold_sigma: float = 5.0
) -> Extraction:
    """Background (sep's mesh), detection above `threshold_sigma` x the global RMS, saturation, FWHM, ellipticity."""
    bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
    background = bkg.back()
    sub = data - background
    sep.set_extract_pixstack(max(300_000, data.size // 4))
    objects = sep.extract(sub, threshold_sigma, err=bkg.globalrms, minarea=5, deblend_cont=0.005)
    h, w = data.shape
    keep = (
        (objects["b"] > 0)
        & (objects["x"] > 2)
        & (objects["x"] < w - 3)
        & (objects["y"] > 2)
        & (objects["y"] < h - 3)
        & ((objects["flag"] & sep.OBJ_TRUNC) == 0)
    )
    objects = objects[keep]
    objects = objects[np.argsort(-objects["flux"])]
    x = np.asarray(objects["x"], dtype=np.float64)
    y = np.asarray(objects["y"], dtype=np.float64)
    a = np.asarray(objects["a"], dtype=np.float64)
    b = np.asarray(objects["b"], dtype=np.float64)
    saturated = _saturated(data, x, y, saturation_adu)
    # FWHM and shape from the brightest unsaturated stars that have no neighbour within 10 sigma-widths.
    fwhm_px, ellipticity = float("nan"), float("nan")
    good = np.flatnonzero(~saturated & (objects["flag"] == 0))
    if len(good):
        guess = float(np.median(2.3548 * np.sqrt((a[good] ** 2 + b[good] ** 2) / 2.0)))
        dist = np.hypot(x[good, None] - x[None, :], y[good, None] - y[None, :])
        dist[dist == 0] = np.inf
        isolated = good[dist.min(axis=1) > 10.0 * max(guess, 1.0)][:_FWHM_STARS]
        if len(isolated):
            ellipticity = float(np.median(1.0 - b[isolated] / a[isolated]))
            fwhms = _fwhm(sub, x[isolated], y[isolated], guess)
            if len(fwhms):
                fwhm_px = float(np.median(fwhms))
    return Extraction(
        x_px=x,
        y_px=y,
        flux_e=np.asarray(objects["flux"], dtype=np.float64) * gain_e_per_adu,
        a_px=a,
        b_px=b,
        saturated=saturated,
        background=background,
        sky_adu=float(np.median(background)),
        sky_rms_adu=float(bkg.globalrms),
        fwhm_px=fwhm_px,
        ellipticity=ellipticity,
    )


def measure_apertures(
    data: NDArray[np.float64],
    background: NDArray[np.float32],
    x_px: NDArray[np.float64],
    y_px: NDArray[np.float64],
    *,
    radius_px: float,
    sky_rms_adu: float,
    gain_e_per_adu: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Background-subtracted aperture fluxes and their 1-sigma errors, in electrons."""
    if len(x_px) == 0:
        return np.zeros(0), np.zeros(0)
    sub = np.ascontiguousarray(data - background)
    flux, err, _flag = sep.sum_circle(sub, x_px, y_px, radius_px, err=sky_rms_adu, gain=gain_e_per_adu, subpix=5)
    return np.asarray(flux, dtype=np.float64) * gain_e_per_adu, np.asarray(err, dtype=np.float64) * gain_e_per_adu
