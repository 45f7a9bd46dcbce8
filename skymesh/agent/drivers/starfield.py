"""Star fields for the simulated camera, so a simulated telescope uploads frames the server's data-products pipeline
can calibrate: the stars of a catalogue file around the pointing, projected on the tangent plane (TAN), each spread
by a Gaussian PSF integrated over the pixels, on a sky background, with Poisson and read noise, a bias and 16-bit
clipping; plus the FITS cards a real camera driver writes (pointing, TAN WCS hint, gain, read noise, full scale).

The catalogue is a CSV or ECSV file (comment lines start with '#') with columns `ra_deg`, `dec_deg` and one
`mag_<filter>` per filter, optionally `star_id`; `skymesh/products/data/reference_fields.ecsv` is one.

Imports: stdlib and numpy only (the agent never needs astropy).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["StarCatalogue", "load_star_catalogue", "render_star_field"]

_ERF = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True)
class StarCatalogue:
    star_id: tuple[str, ...]
    ra_deg: NDArray[np.float64]
    dec_deg: NDArray[np.float64]
    magnitudes: dict[str, NDArray[np.float64]]  # filter -> magnitudes

    def __len__(self) -> int:
        return len(self.ra_deg)


def load_star_catalogue(path: str | Path) -> StarCatalogue:
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    body = [line for line in lines if not line.lstrip().startswith("#")]
    if not body:
        raise ValueError(f"{path}: no header line")
    delimiter = "," if "," in body[0] else " "
    rows = list(csv.reader(body, delimiter=delimiter, skipinitialspace=True))
    header = [name.strip() for name in rows[0]]
    for needed in ("ra_deg", "dec_deg"):
        if needed not in header:
            raise ValueError(f"{path}: needs a {needed!r} column (has {header})")
    data = rows[1:]
    column = {name: [row[i] for row in data] for i, name in enumerate(header)}
    ids = tuple(column.get("star_id", [str(i) for i in range(len(data))]))
    mags = {
        name.removeprefix("mag_"): np.asarray(values, dtype=np.float64)
        for name, values in column.items()
        if name.startswith("mag_")
    }
    return StarCatalogue(
        ids, np.asarray(column["ra_deg"], dtype=np.float64), np.asarray(column["dec_deg"], dtype=np.float64), mags
    )


def _gnomonic_deg(
    ra_deg: NDArray[np.float64], dec_deg: NDArray[np.float64], ra0_deg: float, dec0_deg: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Standard coordinates (xi east, eta north) in degrees; `front` is False for the far hemisphere."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    ra0, dec0 = math.radians(ra0_deg), math.radians(dec0_deg)
    cos_c = math.sin(dec0) * np.sin(dec) + math.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    front = cos_c > 1e-6
    safe = np.where(front, cos_c, 1.0)
    xi = np.cos(dec) * np.sin(ra - ra0) / safe
    eta = (math.cos(dec0) * np.sin(dec) - math.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / safe
    return np.degrees(xi), np.degrees(eta), front


def _pixel_integrated(offsets: NDArray[np.float64], sigma_px: float) -> NDArray[np.float64]:
    k = 1.0 / (math.sqrt(2.0) * sigma_px)
    upper = np.asarray(_ERF((offsets + 0.5) * k), dtype=np.float64)
    lower = np.asarray(_ERF((offsets - 0.5) * k), dtype=np.float64)
    out: NDArray[np.float64] = 0.5 * (upper - lower)
    return out


def render_star_field(
    catalogue: StarCatalogue,
    *,
    ra_deg: float,
    dec_deg: float,
    band: str,
    exposure_s: float,
    size_px: int,
    pixel_scale_arcsec: float,
    fwhm_arcsec: float,
    zero_point_mag: float,
    extinction_mag: float,
    sky_e_per_s_px: float,
    read_noise_e: float,
    gain_e_per_adu: float,
    rng: np.random.Generator,
    extra_stars: tuple[tuple[float, float, float], ...] = (),
    magnitude_offsets: dict[int, float] | None = None,
    pointing_error_arcsec: tuple[float, float] = (0.0, 0.0),
    bias_adu: float = 300.0,
) -> tuple[NDArray[np.uint16], dict[str, Any]]:
    """The image in ADU and the camera's FITS cards. The header's WCS hint is the pointing (ra_deg, dec_deg); the
    sky is centred `pointing_error_arcsec` (east, north) away from it, as with a real mount."""
    true_dec = dec_deg + pointing_error_arcsec[1] / 3600.0
    true_ra = (ra_deg + pointing_error_arcsec[0] / 3600.0 / max(math.cos(math.radians(true_dec)), 1e-6)) % 360.0
    mags = catalogue.magnitudes.get(band, catalogue.magnitudes.get("V"))
    if mags is None:
        raise ValueError(f"the star catalogue has no magnitudes in {band!r} (nor V)")
    mags = mags.copy()
    for index, delta in (magnitude_offsets or {}).items():
        mags[index] += delta
    ra = np.r_[catalogue.ra_deg, [s[0] for s in extra_stars]]
    dec = np.r_[catalogue.dec_deg, [s[1] for s in extra_stars]]
    mags = np.r_[mags, [s[2] for s in extra_stars]]
    xi, eta, front = _gnomonic_deg(ra, dec, true_ra, true_dec)
    scale_deg = pixel_scale_arcsec / 3600.0
    centre = (size_px - 1) / 2.0
    x = centre - xi / scale_deg  # east to the left, north up
    y = centre + eta / scale_deg
    on = front & (x > -5) & (x < size_px + 4) & (y > -5) & (y < size_px + 4)
    electrons = 10.0 ** (-0.4 * (mags[on] + extinction_mag - zero_point_mag)) * exposure_s
    image = np.full((size_px, size_px), sky_e_per_s_px * exposure_s)
    sigma_px = fwhm_arcsec / pixel_scale_arcsec / 2.3548
    half = math.ceil(5 * sigma_px) + 2
    for xs, ys, flux in zip(x[on], y[on], electrons, strict=True):
        cx, cy = round(float(xs)), round(float(ys))
        x0, x1 = max(cx - half, 0), min(cx + half + 1, size_px)
        y0, y1 = max(cy - half, 0), min(cy + half + 1, size_px)
        if x0 >= x1 or y0 >= y1:
            continue
        fx = _pixel_integrated(np.arange(x0, x1) - xs, sigma_px)
        fy = _pixel_integrated(np.arange(y0, y1) - ys, sigma_px)
        image[y0:y1, x0:x1] += flux * np.outer(fy, fx)
    counts = rng.poisson(image) + rng.normal(0.0, read_noise_e, image.shape)
    adu = np.clip(np.round(counts / gain_e_per_adu + bias_adu), 0, 65535).astype(np.uint16)
    cards: dict[str, Any] = {
        "RA": round(ra_deg, 6),
        "DEC": round(dec_deg, 6),
        "GAIN": gain_e_per_adu,
        "RDNOISE": read_noise_e,
        "SATURATE": 65535,
        "PIXSCALE": pixel_scale_arcsec,
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CRVAL1": round(ra_deg, 6),
        "CRVAL2": round(dec_deg, 6),
        "CRPIX1": (size_px + 1) / 2.0,
        "CRPIX2": (size_px + 1) / 2.0,
        "CDELT1": -scale_deg,
        "CDELT2": scale_deg,
        "CUNIT1": "deg",
        "CUNIT2": "deg",
        "RADESYS": "ICRS",
        "EQUINOX": 2000.0,
    }
    return adu, cards
