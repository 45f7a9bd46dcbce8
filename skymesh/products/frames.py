"""Reading a camera's FITS frame: the image as float64 and what its header says (exposure, filter, time, site,
pointing, gain, full scale, pixel scale and the WCS hint), in the forms the pipeline needs.

Understands the headers INDI and Alpaca drivers write (DATE-OBS, EXPTIME, FILTER, OBJECT, RA/DEC in degrees or
OBJCTRA/OBJCTDEC sexagesimal, SITELAT/SITELONG, GAIN/EGAIN, SATURATE/DATAMAX, PIXSCALE or XPIXSZ/FOCALLEN, a TAN WCS).
A frame that cannot be read raises `FrameError` naming what is missing.

Imports: numpy, astropy (io.fits, wcs, coordinates); server side only.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from numpy.typing import NDArray

__all__ = ["Frame", "FrameError", "read_frame"]


class FrameError(ValueError):
    """The file is not a frame the pipeline can reduce (not FITS, no image, no exposure time...)."""


@dataclass(frozen=True)
class Frame:
    data: NDArray[np.float64]
    header: fits.Header
    date_obs: datetime
    exposure_s: float
    filter: str
    object_name: str
    gain_e_per_adu: float
    saturation_adu: float
    wcs_hint: WCS | None
    pixel_scale_arcsec: float | None
    pointing_ra_deg: float | None
    pointing_dec_deg: float | None
    site_latitude_deg: float | None
    site_longitude_deg: float | None
    header_airmass: float | None

    @property
    def mid_exposure(self) -> datetime:
        from datetime import timedelta

        return self.date_obs + timedelta(seconds=self.exposure_s / 2.0)


def _float(header: fits.Header, *keys: str) -> float | None:
    for key in keys:
        value = header.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            return number
    return None


def _angle_deg(header: fits.Header, key_deg: str, key_sex: str, unit: u.UnitBase) -> float | None:
    number = _float(header, key_deg)
    if number is not None:
        return number
    text = header.get(key_sex)
    if isinstance(text, str) and text.strip():
        try:
            return float(Angle(text.strip(), unit=unit).deg)
        except (ValueError, u.UnitsError):
            return None
    return None


def _date_obs(header: fits.Header) -> datetime:
    raw = header.get("DATE-OBS")
    if not isinstance(raw, str) or not raw.strip():
        raise FrameError("DATE-OBS: missing; the exposure's start time is needed")
    text = raw.strip().replace("Z", "")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FrameError(f"DATE-OBS: not an ISO 8601 time ({raw!r})") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _wcs_hint(header: fits.Header) -> WCS | None:
    ctype1 = str(header.get("CTYPE1", ""))
    if not ctype1.startswith("RA"):
        return None
    with warnings.catch_warnings():
        # Camera headers often carry dates and keywords astropy normalises (and warns about); the fix is harmless.
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header, naxis=2)
    return wcs if wcs.has_celestial else None


def _pixel_scale_arcsec(header: fits.Header, wcs: WCS | None) -> float | None:
    if wcs is not None:
        scales = np.abs(np.linalg.det(wcs.pixel_scale_matrix)) ** 0.5
        return float(scales * 3600.0)
    scale = _float(header, "PIXSCALE", "SCALE", "SECPIX")
    if scale is not None:
        return scale
    pixel_um = _float(header, "XPIXSZ", "PIXSIZE1")
    focal_mm = _float(header, "FOCALLEN")
    if pixel_um and focal_mm:
        return 206.265 * pixel_um / focal_mm
    return None


def _simple_wcs(ra_deg: float, dec_deg: float, scale_arcsec: float, shape: tuple[int, ...]) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra_deg, dec_deg]
    wcs.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    wcs.wcs.cdelt = [-scale_arcsec / 3600.0, scale_arcsec / 3600.0]
    return wcs


def _first_image(stream: io.BytesIO | str | Path) -> tuple[NDArray[np.float64], fits.Header]:
    with fits.open(stream, memmap=False) as hdul:
        hdu = next((h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) == 2), None)
        if hdu is None:
            raise FrameError("no 2-D image HDU in the file")
        data = np.ascontiguousarray(hdu.data, dtype=np.float64)
        header = hdu.header.copy()
        if hdu is not hdul[0]:
            for key, value in hdul[0].header.items():
                if key not in header and key not in ("SIMPLE", "EXTEND", "NAXIS", "BITPIX"):
                    header[key] = value
    return data, header


def read_frame(source: str | Path | bytes) -> Frame:
    """Read the first 2-D image HDU of a FITS file (path or bytes)."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings(record=True) as caught:
            # astropy reads a file cut short with a warning and zeros for the missing data: that is no frame.
            warnings.simplefilter("always")
            data, header = _first_image(stream)
        truncated = [str(w.message) for w in caught if "truncated" in str(w.message)]
        if truncated:
            raise FrameError(f"not a complete FITS file: {truncated[0]}")
        for w in caught:  # anything else astropy said is passed on, not swallowed
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except FrameError:
        raise
    except (OSError, ValueError, TypeError, fits.VerifyError) as exc:  # astropy's words for a malformed file
        raise FrameError(f"not a readable FITS file: {exc}") from exc
    exposure_s = _float(header, "EXPTIME", "EXPOSURE")
    if exposure_s is None or exposure_s <= 0:
        raise FrameError("EXPTIME: missing or not positive")
    date_obs = _date_obs(header)
    bitpix = int(header.get("BITPIX", 16))
    default_full = 65535.0 if bitpix == 16 else float(np.nanmax(data))
    saturation = _float(header, "SATURATE", "DATAMAX") or default_full
    wcs = _wcs_hint(header)
    scale = _pixel_scale_arcsec(header, wcs)
    ra = _angle_deg(header, "RA", "OBJCTRA", u.hourangle)
    dec = _angle_deg(header, "DEC", "OBJCTDEC", u.deg)
    if wcs is None and ra is not None and dec is not None and scale is not None:
        wcs = _simple_wcs(ra, dec, scale, data.shape)
    return Frame(
        data=data,
        header=header,
        date_obs=date_obs,
        exposure_s=exposure_s,
        filter=str(header.get("FILTER", "")).strip(),
        object_name=str(header.get("OBJECT", "")).strip(),
        gain_e_per_adu=_float(header, "GAIN", "EGAIN") or 1.0,
        saturation_adu=saturation,
        wcs_hint=wcs,
        pixel_scale_arcsec=scale,
        pointing_ra_deg=ra,
        pointing_dec_deg=dec,
        site_latitude_deg=_float(header, "SITELAT", "LAT-OBS", "OBSLAT"),
        site_longitude_deg=_float(header, "SITELONG", "LONG-OBS", "OBSLONG"),
        header_airmass=_float(header, "AIRMASS"),
    )
