"""Synthetic star fields for tests, demos and benchmarks: known positions, magnitudes, PSF, sky, noise and WCS,
written as the FITS file a real camera driver writes (the INDI/Alpaca headers: DATE-OBS, EXPTIME, FILTER, OBJECT,
RA/DEC, OBJCTRA/OBJCTDEC, SITELAT/SITELONG, GAIN, SATURATE and a TAN WCS *hint* from the mount position, which is off
from the true WCS by the pointing error and the camera's rotation, as on a real telescope).

Photons: a star of magnitude m gives 10^(-0.4 (m - zero_point_mag + k X + cloud_mag)) e-/s, spread by a Gaussian or
Moffat PSF integrated over each pixel; sky in e-/s/px; Poisson noise on everything, Gaussian read noise, a bias, and
clipping at the ADC's full scale. Broken frames (`broken`): trailed (the mount drifted), cloudy (a zero-point drop),
out of focus (a wide PSF), saturated (a long exposure).

Imports: numpy, scipy, astropy (coordinates, time, io.fits, wcs), `skymesh.astro`, `skymesh.products.catalog`;
server side only.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from numpy.typing import NDArray
from scipy.special import erf

from skymesh.astro.celestial import airmass, radec_to_altaz
from skymesh.astro.frames import datetime_to_jd
from skymesh.products.catalog import ReferenceCatalogue

__all__ = ["BrokenKind", "FrameSpec", "RenderedFrame", "airmass_at", "broken", "render_frame"]

BrokenKind = Literal["trailed", "cloudy", "out_of_focus", "saturated"]

_MOFFAT_OVERSAMPLE = 3


@dataclass(frozen=True)
class FrameSpec:
    """One exposure of a field. Angles in degrees, times UTC, fluxes in electrons."""

    ra_deg: float  # where the mount points (the field centre, before the pointing error)
    dec_deg: float
    object_name: str
    date_obs: datetime
    filter: str = "V"
    exposure_s: float = 30.0
    width_px: int = 512
    height_px: int = 512
    pixel_scale_arcsec: float = 1.5
    rotation_deg: float = 0.4  # camera rotation the WCS hint does not know about
    pointing_error_arcsec: tuple[float, float] = (12.0, -8.0)  # true centre minus mount position (RA*cos d, Dec)
    fwhm_arcsec: float = 2.5
    psf: Literal["gaussian", "moffat"] = "moffat"
    moffat_beta: float = 3.0
    zero_point_mag: float = 22.0  # magnitude giving 1 e-/s above the atmosphere
    extinction_mag_per_airmass: float = 0.15
    cloud_mag: float = 0.0  # grey extinction by clouds
    sky_e_per_s_px: float = 3.0
    gain_e_per_adu: float = 1.5
    read_noise_e: float = 8.0
    bias_adu: float = 300.0
    saturation_adu: int = 65535
    trail_px: float = 0.0  # length of a linear trail (mount drift) over the exposure
    trail_angle_deg: float = 30.0
    site_latitude_deg: float = 28.76
    site_longitude_deg: float = -17.88
    site_altitude_m: float = 2300.0
    magnitude_overrides: tuple[tuple[str, float], ...] = ()  # (star_id, magnitude in `filter`): variables
    seed: int = 1

    def replace(self, **changes: Any) -> FrameSpec:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RenderedFrame:
    """The image and what is true about it (for checking the pipeline)."""

    image_adu: NDArray[np.uint16]
    header: fits.Header
    true_wcs: WCS
    star_id: NDArray[np.str_]  # stars that fall on the chip
    x_px: NDArray[np.float64]  # 0-based pixel positions
    y_px: NDArray[np.float64]
    true_magnitude: NDArray[np.float64]  # in the frame's filter, above the atmosphere
    electrons: NDArray[np.float64]  # expected electrons from each star (after extinction and clouds)
    airmass: float

    def fits_bytes(self) -> bytes:
        buffer = io.BytesIO()
        fits.PrimaryHDU(data=self.image_adu, header=self.header).writeto(buffer)
        return buffer.getvalue()

    def write(self, path: str) -> None:
        fits.PrimaryHDU(data=self.image_adu, header=self.header).writeto(path, overwrite=True)


def broken(spec: FrameSpec, kind: BrokenKind) -> FrameSpec:
    """The same exposure gone wrong in one of the ways quality flags must catch."""
    if kind == "trailed":
        return spec.replace(trail_px=6.0 * spec.fwhm_arcsec / spec.pixel_scale_arcsec)
    if kind == "cloudy":
        return spec.replace(cloud_mag=1.0, sky_e_per_s_px=spec.sky_e_per_s_px * 1.5)
    if kind == "out_of_focus":
        return spec.replace(fwhm_arcsec=spec.fwhm_arcsec * 3.5, psf="gaussian")
    if kind == "saturated":
        return spec.replace(exposure_s=spec.exposure_s * 20.0)
    raise ValueError(f"unknown broken frame kind {kind!r}")


def _wcs(spec: FrameSpec, ra_deg: float, dec_deg: float, rotation_deg: float) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra_deg, dec_deg]
    w.wcs.crpix = [(spec.width_px + 1) / 2.0, (spec.height_px + 1) / 2.0]
    scale = spec.pixel_scale_arcsec / 3600.0
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    # East left, north up, rotated by `rotation_deg`.
    w.wcs.cd = np.array([[-scale * c, scale * s], [scale * s, scale * c]])
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    return w


def airmass_at(ra_deg: float, dec_deg: float, latitude_deg: float, longitude_deg: float, at: datetime) -> float:
    """Kasten & Young airmass of a J2000 position seen from a site (`skymesh.astro`: no IERS tables needed)."""
    alt, _az = radec_to_altaz([ra_deg], [dec_deg], [latitude_deg], [longitude_deg], [datetime_to_jd(at)])
    return float(airmass(alt)[0, 0, 0])


def _gaussian_stamp(dx: NDArray[np.float64], dy: NDArray[np.float64], sigma_px: float) -> NDArray[np.float64]:
    """Pixel-integrated unit-flux Gaussian on a grid of pixel-centre offsets (separable erf differences)."""
    k = 1.0 / (np.sqrt(2.0) * sigma_px)
    fx = 0.5 * (erf((dx + 0.5) * k) - erf((dx - 0.5) * k))
    fy = 0.5 * (erf((dy + 0.5) * k) - erf((dy - 0.5) * k))
    out: NDArray[np.float64] = np.outer(fy, fx)
    return out


def _moffat_stamp(dx: NDArray[np.float64], dy: NDArray[np.float64], fwhm_px: float, beta: float) -> NDArray[np.float64]:
    """Unit-flux Moffat averaged over sub-pixels (normalised analytically, so flux outside the stamp is lost)."""
    alpha = fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    n = _MOFFAT_OVERSAMPLE
    sub = (np.arange(n) + 0.5) / n - 0.5
    xx = (dx[None, :, None] + sub[None, None, :]).reshape(1, -1)
    yy = (dy[:, None, None] + sub[None, None, :]).reshape(-1, 1)
    r2 = xx**2 + yy**2
    profile = (beta - 1.0) / (np.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)
    out: NDArray[np.float64] = profile.reshape(len(dy), n, len(dx), n).mean(axis=(1, 3))
    return out


def render_frame(spec: FrameSpec, catalogue: ReferenceCatalogue) -> RenderedFrame:
    """Render one exposure of the catalogue stars around (ra_deg, dec_deg)."""
    rng = np.random.default_rng(spec.seed)
    start = Time(spec.date_obs.astimezone(UTC))
    mount = SkyCoord(spec.ra_deg * u.deg, spec.dec_deg * u.deg)
    true_centre = mount.spherical_offsets_by(
        spec.pointing_error_arcsec[0] * u.arcsec, spec.pointing_error_arcsec[1] * u.arcsec
    )
    true_wcs = _wcs(spec, float(true_centre.ra.deg), float(true_centre.dec.deg), spec.rotation_deg)
    hint_wcs = _wcs(spec, spec.ra_deg, spec.dec_deg, 0.0)
    mid_utc = spec.date_obs.astimezone(UTC) + timedelta(seconds=spec.exposure_s / 2.0)
    airmass = airmass_at(
        float(true_centre.ra.deg), float(true_centre.dec.deg), spec.site_latitude_deg, spec.site_longitude_deg, mid_utc
    )
    if not math.isfinite(airmass):
        raise ValueError(f"{spec.object_name} is below the horizon at {mid_utc.isoformat()}: not observable")

    column = f"mag_{spec.filter}"
    if column not in catalogue.table.colnames:
        raise ValueError(f"the catalogue has no magnitudes in filter {spec.filter!r}")
    half_diag_deg = np.hypot(spec.width_px, spec.height_px) * spec.pixel_scale_arcsec / 3600.0 / 2.0
    near = catalogue.cone(float(true_centre.ra.deg), float(true_centre.dec.deg), half_diag_deg * 1.05 + 0.01)
    ids = np.asarray(near.table["star_id"], dtype=str)
    mags = np.asarray(near.table[column], dtype=np.float64).copy()
    overrides = dict(spec.magnitude_overrides)
    for i, sid in enumerate(ids):
        if sid in overrides:
            mags[i] = overrides[sid]
    x, y = true_wcs.all_world2pix(near.coords.ra.deg, near.coords.dec.deg, 0)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    on = (x > -0.5) & (x < spec.width_px - 0.5) & (y > -0.5) & (y < spec.height_px - 0.5)
    ids, mags, x, y = ids[on], mags[on], x[on], y[on]
    rate = 10 ** (-0.4 * (mags - spec.zero_point_mag + spec.extinction_mag_per_airmass * airmass + spec.cloud_mag))
    electrons = rate * spec.exposure_s

    image = np.full((spec.height_px, spec.width_px), spec.sky_e_per_s_px * spec.exposure_s, dtype=np.float64)
    fwhm_px = spec.fwhm_arcsec / spec.pixel_scale_arcsec
    sigma_px = fwhm_px / 2.3548
    trail_steps = max(1, int(np.ceil(spec.trail_px)) * 2) if spec.trail_px > 0 else 1
    half = int(np.ceil(5.0 * fwhm_px + spec.trail_px / 2.0)) + 2
    angle = np.radians(spec.trail_angle_deg)
    offsets = np.linspace(-0.5, 0.5, trail_steps) * spec.trail_px if trail_steps > 1 else np.zeros(1)
    for xi, yi, flux in zip(x, y, electrons, strict=True):
        cx, cy = int(np.rint(xi)), int(np.rint(yi))
        x0, x1 = max(cx - half, 0), min(cx + half + 1, spec.width_px)
        y0, y1 = max(cy - half, 0), min(cy + half + 1, spec.height_px)
        if x0 >= x1 or y0 >= y1:
            continue
        stamp = np.zeros((y1 - y0, x1 - x0))
        for off in offsets:
            px, py = xi + off * np.cos(angle), yi + off * np.sin(angle)
            dx = np.arange(x0, x1) - px
            dy = np.arange(y0, y1) - py
            if spec.psf == "gaussian":
                stamp += _gaussian_stamp(dx, dy, sigma_px)
            else:
                stamp += _moffat_stamp(dx, dy, fwhm_px, spec.moffat_beta)
        image[y0:y1, x0:x1] += stamp * (flux / len(offsets))
    electrons_seen = rng.poisson(image).astype(np.float64) + rng.normal(0.0, spec.read_noise_e, image.shape)
    adu = np.clip(np.round(electrons_seen / spec.gain_e_per_adu + spec.bias_adu), 0, spec.saturation_adu)
    header = _camera_header(spec, hint_wcs, start, airmass)
    return RenderedFrame(
        image_adu=adu.astype(np.uint16),
        header=header,
        true_wcs=true_wcs,
        star_id=ids,
        x_px=x,
        y_px=y,
        true_magnitude=mags,
        electrons=electrons,
        airmass=airmass,
    )


def _camera_header(spec: FrameSpec, hint: WCS, start: Time, airmass: float) -> fits.Header:
    """What INDI's CCD driver (with a mount snooped) writes, plus the WCS hint from the mount position."""
    header = fits.Header()
    header["IMAGETYP"] = ("Light Frame", "frame type")
    header["DATE-OBS"] = (start.isot, "UTC start of the exposure")
    header["EXPTIME"] = (spec.exposure_s, "[s] exposure duration")
    header["FILTER"] = (spec.filter, "filter")
    header["OBJECT"] = (spec.object_name, "target name")
    header["RA"] = (spec.ra_deg, "[deg] mount right ascension (J2000)")
    header["DEC"] = (spec.dec_deg, "[deg] mount declination (J2000)")
    mount = SkyCoord(spec.ra_deg * u.deg, spec.dec_deg * u.deg)
    header["OBJCTRA"] = (mount.ra.to_string(unit=u.hourangle, sep=" ", precision=2), "mount RA (hms)")
    header["OBJCTDEC"] = (mount.dec.to_string(unit=u.deg, sep=" ", precision=1, alwayssign=True), "mount Dec (dms)")
    header["SITELAT"] = (spec.site_latitude_deg, "[deg] site latitude")
    header["SITELONG"] = (spec.site_longitude_deg, "[deg] site longitude, east positive")
    header["SITEELEV"] = (spec.site_altitude_m, "[m] site altitude")
    header["AIRMASS"] = (round(airmass, 4), "airmass at mid-exposure")
    header["GAIN"] = (spec.gain_e_per_adu, "[e-/ADU]")
    header["RDNOISE"] = (spec.read_noise_e, "[e-] read noise")
    header["SATURATE"] = (spec.saturation_adu, "[ADU] full scale")
    header["PIXSCALE"] = (spec.pixel_scale_arcsec, "[arcsec/px]")
    header["INSTRUME"] = ("SkyMesh synthetic camera", "")
    header.update(hint.to_header())
    return header
