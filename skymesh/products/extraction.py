"""Source extraction and aperture photometry on one frame, with `sep` (SExtractor's algorithms as a library), and
the PSF width from a pixel-integrated Moffat profile fitted (scipy) to bright, isolated, unsaturated stars.

Fluxes are in electrons (ADU x gain) with errors from the background RMS and the Poisson noise of the source; the
aperture radius is a multiple of the measured FWHM, the same for every star, so aperture losses cancel in
differential photometry.

Imports: numpy, scipy, sep; server side only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep
from numpy.typing import NDArray

__all__ = ["Extraction", "extract_sources", "measure_apertures"]

_FWHM_STARS = 10


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


_OVERSAMPLE = 5
_SUBPIXEL = (np.arange(_OVERSAMPLE) + 0.5) / _OVERSAMPLE - 0.5
_MAX_BETA = 60.0  # a Moffat this steep is a Gaussian to within 1 % in FWHM


def _moffat_pixels(
    params: NDArray[np.float64], gx: NDArray[np.float64], gy: NDArray[np.float64]
) -> NDArray[np.float64]:
    """A flux-normalised circular Moffat averaged over each pixel (5 x 5 sub-pixels): what a star puts in a pixel."""
    flux, x0, y0, fwhm, beta = params
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    dx = gx[..., None, None] + _SUBPIXEL[None, None, None, :] - x0
    dy = gy[..., None, None] + _SUBPIXEL[None, None, :, None] - y0
    profile = (beta - 1.0) / (np.pi * alpha**2) * (1.0 + (dx * dx + dy * dy) / alpha**2) ** (-beta)
    out: NDArray[np.float64] = flux * profile.mean(axis=(-1, -2))
    return out


def _fwhm(
    sub: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64], guess_px: float
) -> NDArray[np.float64]:
    """FWHM (px) of each star from a pixel-integrated Moffat fit (flux, centre, FWHM, beta free).

    A Gaussian fit reads Moffat stars (real seeing, beta ~ 2.5-4.8) 8-20 % wide, because their wings are heavier;
    the Moffat fit covers both (a Gaussian is its steep-beta limit) and, integrated over the pixels, stays right on
    undersampled stars (tests/products/test_pipeline.py: within 5 % from 1.5 to 4 px, Moffat and Gaussian)."""
    from scipy.optimize import least_squares

    half = max(4, int(np.ceil(2.0 * guess_px)))
    h, w = sub.shape
    start_fwhm = max(guess_px, 1.0)
    out: list[float] = []
    for xc, yc in zip(x.tolist(), y.tolist(), strict=True):
        ix, iy = round(xc), round(yc)
        if ix - half < 0 or iy - half < 0 or ix + half >= w or iy + half >= h:
            continue
        cut = sub[iy - half : iy + half + 1, ix - half : ix + half + 1]
        gy, gx = np.mgrid[iy - half : iy + half + 1, ix - half : ix + half + 1].astype(np.float64)
        first = [max(float(cut.sum()), 1.0), xc, yc, start_fwhm, 3.0]
        lower = [0.0, xc - 2.0, yc - 2.0, 0.3, 1.2]
        upper = [np.inf, xc + 2.0, yc + 2.0, 10.0 * start_fwhm, _MAX_BETA]

        def residuals(p: NDArray[np.float64], gx: NDArray[np.float64] = gx, gy: NDArray[np.float64] = gy,
                      cut: NDArray[np.float64] = cut) -> NDArray[np.float64]:  # fmt: skip
            return (_moffat_pixels(p, gx, gy) - cut).ravel()

        fit = least_squares(residuals, first, bounds=(lower, upper), x_scale="jac")
        if fit.success and np.all(np.isfinite(fit.x)):
            out.append(float(fit.x[3]))
    values = np.asarray(out, dtype=np.float64)
    return values[(values > 0.5) & (values < 10.0 * start_fwhm)]


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
