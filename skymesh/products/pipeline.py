"""One frame in, calibrated photometry, astrometry and quality flags out: `reduce_frame`.

Steps: read the FITS frame (`frames`), extract sources and measure the PSF (`extraction`, sep + a Moffat fit), solve the
astrometry against the reference catalogue from the header's WCS hint (`astrometry`, astropy), aperture photometry of
the matched stars, a zero point from the comparison stars (catalogue magnitude minus instrumental magnitude,
sigma-clipped, inverse-variance weighted; its error scaled by the scatter when that exceeds the noise), the target's
calibrated magnitude in the frame's filter, its measured position, the airmass, and the quality flags (`quality`).

The result (`FrameReduction`) holds plain values only, so it crosses a process pool; per-star measurements ride along
in `stars` for checks and products. Never raises for a bad frame: an unreadable one comes back with `error` set.

Imports: numpy, astropy, scipy, sep, `skymesh.astro`, `skymesh.products`; server side only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.stats import sigma_clip
from numpy.typing import NDArray

from skymesh.products.astrometry import solve_astrometry
from skymesh.products.catalog import ReferenceCatalogue
from skymesh.products.extraction import extract_sources, measure_apertures
from skymesh.products.frames import Frame, FrameError, read_frame
from skymesh.products.quality import QualityMeasures, QualityThresholds, quality_flags
from skymesh.products.synth import airmass_at

__all__ = ["DEFAULT_EXTINCTION_MAG_PER_AIRMASS", "FrameReduction", "StarPhotometry", "reduce_frame"]

# Typical extinction at a good site (mag per airmass), used to compare zero points taken at different airmasses.
DEFAULT_EXTINCTION_MAG_PER_AIRMASS: Mapping[str, float] = MappingProxyType({"B": 0.25, "V": 0.15, "R": 0.10, "I": 0.07})
_APERTURE_FWHM = 2.0  # aperture radius in FWHM
_MIN_COMPARISON_SNR = 20.0
_TARGET_MATCH_ARCSEC = 2.0
_MIN_REFERENCE_STARS = 6


@dataclass(frozen=True)
class StarPhotometry:
    """Every matched catalogue star on the frame (arrays in one order)."""

    star_id: NDArray[np.str_]
    x_px: NDArray[np.float64]
    y_px: NDArray[np.float64]
    ra_deg: NDArray[np.float64]  # measured (centroid through the fitted WCS)
    dec_deg: NDArray[np.float64]
    catalogue_magnitude: NDArray[np.float64]
    instrumental_magnitude: NDArray[np.float64]  # -2.5 log10(e-/s)
    magnitude_error: NDArray[np.float64]
    saturated: NDArray[np.bool_]
    comparison: NDArray[np.bool_]  # used for the zero point


@dataclass(frozen=True)
class FrameReduction:
    error: str = ""  # set: the frame could not be reduced at all
    filter: str = ""
    object_name: str = ""
    date_obs: datetime | None = None
    exposure_s: float = math.nan
    airmass: float = math.nan
    magnitude: float = math.nan  # calibrated, in `filter`
    magnitude_error: float = math.nan
    instrumental_magnitude: float = math.nan
    flux_e_per_s: float = math.nan
    zero_point_mag: float = math.nan  # magnitude giving 1 e-/s through this frame's atmosphere
    zero_point_error_mag: float = math.nan
    zero_point_airmass1_mag: float = math.nan  # corrected to airmass 1 with the filter's extinction
    zero_point_drop_mag: float = math.nan  # reference minus this frame's (airmass-1) zero point
    comparison_stars: int = 0
    comparison_ids: tuple[str, ...] = ()
    target_ra_deg: float = math.nan  # measured
    target_dec_deg: float = math.nan
    wcs_rms_arcsec: float = math.nan
    matched_stars: int = 0
    star_count: int = 0
    fwhm_arcsec: float = math.nan
    ellipticity: float = math.nan
    sky_e_per_s_px: float = math.nan
    saturated_fraction: float = math.nan
    flags: tuple[str, ...] = ()
    good: bool = False
    wcs_header: dict[str, float | str] = field(default_factory=dict)
    stars: StarPhotometry | None = None


def _instrumental(
    flux_e: NDArray[np.float64], err_e: NDArray[np.float64], exposure_s: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(flux_e > 0, -2.5 * np.log10(flux_e / exposure_s), np.nan)
        err = np.where(flux_e > 0, 2.5 / np.log(10.0) * err_e / flux_e, np.nan)
    return mag, err


def _zero_point(zp: NDArray[np.float64], err: NDArray[np.float64]) -> tuple[float, float, NDArray[np.bool_]]:
    """Inverse-variance mean of the comparison stars' zero points after 3-sigma clipping (MAD-based)."""
    clipped = sigma_clip(zp, sigma=3.0, maxiters=5, stdfunc="mad_std")
    used = ~np.ma.getmaskarray(clipped)
    w = 1.0 / err[used] ** 2
    mean = float(np.sum(w * zp[used]) / np.sum(w))
    error = float(1.0 / np.sqrt(np.sum(w)))
    n = int(np.count_nonzero(used))
    if n > 1:
        chi2 = float(np.sum(w * (zp[used] - mean) ** 2) / (n - 1))
        error *= math.sqrt(max(chi2, 1.0))
    return mean, error, used


def _airmass(frame: Frame, ra_deg: float | None, dec_deg: float | None) -> float:
    if frame.header_airmass is not None and frame.header_airmass >= 1.0:
        return frame.header_airmass
    if None in (ra_deg, dec_deg, frame.site_latitude_deg, frame.site_longitude_deg):
        return math.nan
    assert ra_deg is not None and dec_deg is not None
    assert frame.site_latitude_deg is not None and frame.site_longitude_deg is not None
    return airmass_at(ra_deg, dec_deg, frame.site_latitude_deg, frame.site_longitude_deg, frame.mid_exposure)


def reduce_frame(
    source: str | Path | bytes,
    catalogue: ReferenceCatalogue,
    *,
    target_ra_deg: float | None = None,
    target_dec_deg: float | None = None,
    reference_zero_point_mag: float | Mapping[str, float] | None = None,
    thresholds: QualityThresholds | None = None,
    extinction_mag_per_airmass: Mapping[str, float] = DEFAULT_EXTINCTION_MAG_PER_AIRMASS,
    read_noise_e: float | None = None,
) -> FrameReduction:
    """Reduce one frame. The target defaults to the pointing (RA/DEC); `reference_zero_point_mag` is the station's
    clear-sky zero point at airmass 1 in the frame's filter, or a mapping filter -> that (None or a filter not in the
    mapping: clouds are not judged)."""
    limits = thresholds or QualityThresholds()
    try:
        frame = read_frame(source)
    except FrameError as exc:
        return FrameReduction(error=str(exc))
    band = frame.filter
    ra_t = target_ra_deg if target_ra_deg is not None else frame.pointing_ra_deg
    dec_t = target_dec_deg if target_dec_deg is not None else frame.pointing_dec_deg
    airmass = _airmass(frame, ra_t, dec_t)
    ex = extract_sources(frame.data, gain_e_per_adu=frame.gain_e_per_adu, saturation_adu=frame.saturation_adu)
    scale = frame.pixel_scale_arcsec or math.nan
    rn = read_noise_e if read_noise_e is not None else float(frame.header.get("RDNOISE", 0.0) or 0.0)
    sky_e = max((ex.sky_rms_adu * frame.gain_e_per_adu) ** 2 - rn**2, 0.0) / frame.exposure_s
    fwhm_px = ex.fwhm_px if math.isfinite(ex.fwhm_px) else float(np.median(2.3548 * ex.a_px[:25])) if len(ex) else 3.0
    base = {
        "filter": band,
        "object_name": frame.object_name,
        "date_obs": frame.date_obs,
        "exposure_s": frame.exposure_s,
        "airmass": airmass,
        "star_count": len(ex),
        "fwhm_arcsec": ex.fwhm_px * scale,
        "ellipticity": ex.ellipticity,
        "sky_e_per_s_px": sky_e,
    }
    # What the frame cannot be judged without: these make it unreducible here (an error), not bad data.
    if frame.wcs_hint is None or not frame.pixel_scale_arcsec:
        return FrameReduction(
            error="no pointing: the header has neither a celestial WCS nor RA/DEC with a pixel scale",
            **base,  # type: ignore[arg-type]
        )
    h, w = frame.data.shape
    centre = frame.wcs_hint.pixel_to_world((w - 1) / 2.0, (h - 1) / 2.0)
    radius_deg = math.hypot(w, h) * frame.pixel_scale_arcsec / 7200.0 + 0.06
    near = catalogue.cone(float(centre.ra.deg), float(centre.dec.deg), radius_deg)
    if len(near) < _MIN_REFERENCE_STARS:
        return FrameReduction(
            error=f"the reference catalogue has {len(near)} stars around RA {centre.ra.deg:.4f} Dec "
            f"{centre.dec.deg:.4f} (at least {_MIN_REFERENCE_STARS} needed)",
            **base,  # type: ignore[arg-type]
        )
    if not near.has_filter(band):
        return FrameReduction(
            error=f"FILTER: the reference catalogue has no magnitudes in {band!r}",
            **base,  # type: ignore[arg-type]
        )
    solution = solve_astrometry(
        frame.wcs_hint, ex.x_px, ex.y_px, near.coords, pixel_scale_arcsec=frame.pixel_scale_arcsec
    )
    if solution is None:
        measures = QualityMeasures(
            fwhm_arcsec=base["fwhm_arcsec"],  # type: ignore[arg-type]
            ellipticity=ex.ellipticity,
            sky_e_per_s_px=sky_e,
            star_count=len(ex),
            saturated_fraction=float(np.mean(ex.saturated)) if len(ex) else 0.0,
            target_saturated=False,
            magnitude_error=math.nan,
            wcs_rms_arcsec=math.nan,
            zero_point_drop_mag=math.nan,
            calibrated=False,
        )
        flags = quality_flags(measures, limits)
        return FrameReduction(**base, flags=flags, good=False)  # type: ignore[arg-type]

    wcs = solution.wcs
    det, cat = solution.detection_index, solution.catalogue_index
    radius_px = _APERTURE_FWHM * fwhm_px
    column = f"mag_{band}"
    flux, err = measure_apertures(
        frame.data,
        ex.background,
        ex.x_px[det],
        ex.y_px[det],
        radius_px=radius_px,
        sky_rms_adu=ex.sky_rms_adu,
        gain_e_per_adu=frame.gain_e_per_adu,
    )
    inst, inst_err = _instrumental(flux, err, frame.exposure_s)
    star_ids = np.asarray(near.table["star_id"], dtype=str)[cat]
    cat_mag = np.asarray(near.table[column], dtype=np.float64)[cat]
    saturated = ex.saturated[det]
    measured = wcs.pixel_to_world(ex.x_px[det], ex.y_px[det])

    target: SkyCoord | None = None
    target_row = -1
    if ra_t is not None and dec_t is not None:
        target = SkyCoord(ra_t * u.deg, dec_t * u.deg)
        seps = near.coords[cat].separation(target).arcsec if len(cat) else np.zeros(0)
        if len(seps) and float(seps.min()) < _TARGET_MATCH_ARCSEC:
            target_row = int(np.argmin(seps))
    snr = np.divide(flux, err, out=np.zeros_like(flux), where=err > 0)
    comparison = np.isfinite(cat_mag) & np.isfinite(inst) & ~saturated & (snr >= _MIN_COMPARISON_SNR)
    if target_row >= 0:
        comparison[target_row] = False
    zp = zp_err = math.nan
    if np.count_nonzero(comparison) >= 3:
        idx = np.flatnonzero(comparison)
        zp, zp_err, used = _zero_point(cat_mag[idx] - inst[idx], inst_err[idx])
        comparison[idx[~used]] = False

    # The target: its matched detection, else forced photometry where the fitted WCS puts it.
    t_mag = t_err = t_inst = t_flux = math.nan
    t_ra = t_dec = math.nan
    target_saturated = False
    if target is not None:
        if target_row >= 0:
            t_inst, t_inst_err = float(inst[target_row]), float(inst_err[target_row])
            t_flux = float(flux[target_row]) / frame.exposure_s
            t_ra, t_dec = float(measured.ra.deg[target_row]), float(measured.dec.deg[target_row])
            target_saturated = bool(saturated[target_row])
        else:
            tx, ty = wcs.world_to_pixel(target)
            h, w = frame.data.shape
            if 0 <= tx < w and 0 <= ty < h:
                f1, e1 = measure_apertures(
                    frame.data,
                    ex.background,
                    np.atleast_1d(np.float64(tx)),
                    np.atleast_1d(np.float64(ty)),
                    radius_px=radius_px,
                    sky_rms_adu=ex.sky_rms_adu,
                    gain_e_per_adu=frame.gain_e_per_adu,
                )
                i1, ie1 = _instrumental(f1, e1, frame.exposure_s)
                t_inst, t_inst_err, t_flux = float(i1[0]), float(ie1[0]), float(f1[0]) / frame.exposure_s
        if math.isfinite(t_inst) and math.isfinite(zp):
            t_mag = t_inst + zp
            t_err = math.hypot(t_inst_err, zp_err)
    k = extinction_mag_per_airmass.get(band, 0.0)
    zp1 = zp + k * airmass if math.isfinite(airmass) else math.nan
    reference = (
        reference_zero_point_mag.get(band)
        if isinstance(reference_zero_point_mag, Mapping)
        else reference_zero_point_mag
    )
    drop = reference - zp1 if reference is not None else math.nan
    sat_fraction = float(np.mean(saturated)) if len(saturated) else 0.0
    measures = QualityMeasures(
        fwhm_arcsec=ex.fwhm_px * scale,
        ellipticity=ex.ellipticity,
        sky_e_per_s_px=sky_e,
        star_count=len(ex),
        saturated_fraction=sat_fraction,
        target_saturated=target_saturated,
        magnitude_error=t_err,
        wcs_rms_arcsec=solution.rms_arcsec,
        zero_point_drop_mag=drop,
        calibrated=math.isfinite(zp),
    )
    flags = quality_flags(measures, limits)
    stars = StarPhotometry(
        star_id=star_ids,
        x_px=ex.x_px[det],
        y_px=ex.y_px[det],
        ra_deg=np.asarray(measured.ra.deg, dtype=np.float64),
        dec_deg=np.asarray(measured.dec.deg, dtype=np.float64),
        catalogue_magnitude=cat_mag,
        instrumental_magnitude=inst,
        magnitude_error=inst_err,
        saturated=saturated,
        comparison=comparison,
    )
    wcs_header = {k2: v for k2, v in wcs.to_header(relax=False).items() if isinstance(v, (float, int, str))}
    return FrameReduction(
        **base,  # type: ignore[arg-type]
        magnitude=t_mag,
        magnitude_error=t_err,
        instrumental_magnitude=t_inst,
        flux_e_per_s=t_flux,
        zero_point_mag=zp,
        zero_point_error_mag=zp_err,
        zero_point_airmass1_mag=zp1,
        zero_point_drop_mag=drop,
        comparison_stars=int(np.count_nonzero(comparison)),
        comparison_ids=tuple(str(s) for s in star_ids[comparison]),
        target_ra_deg=t_ra,
        target_dec_deg=t_dec,
        wcs_rms_arcsec=solution.rms_arcsec,
        matched_stars=solution.matched,
        saturated_fraction=sat_fraction,
        flags=flags,
        good=not any(f in limits.failing for f in flags),
        wcs_header=wcs_header,
        stars=stars,
    )
