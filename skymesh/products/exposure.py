"""Exposure times that keep a star below saturation: what an observer's exposure-time calculator answers first for
a bright target ("how short must I go so the peak pixel stays in the linear range?").

The photometric model is the one SkyMesh's simulated camera uses and a plain V-band CCD on a telescope of aperture D
follows: 1 e-/s from a star of magnitude 23.1 + 5 log10(D / 1 m) (quantum efficiency x throughput about 0.25), a
Gaussian PSF of the best seeing expected, integrated over the central pixel. The brightest phase of a variable is
what must fit, on the largest aperture that will observe it.

Standard library only (no astropy): the demo's command line and the server can both import it.
"""

from __future__ import annotations

import math

__all__ = ["peak_fraction", "unsaturated_exposure_s", "zero_point_mag"]


def zero_point_mag(aperture_m: float) -> float:
    """The V magnitude giving 1 e-/s on a telescope of `aperture_m` (the simulated camera's law)."""
    if not aperture_m > 0:
        raise ValueError("aperture_m must be positive")
    return 23.1 + 5.0 * math.log10(aperture_m)


def peak_fraction(seeing_arcsec: float, pixel_scale_arcsec: float) -> float:
    """The share of a star's light in the pixel it is centred on (a Gaussian of FWHM `seeing_arcsec`)."""
    sigma_px = seeing_arcsec / pixel_scale_arcsec / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return math.erf(0.5 / (sigma_px * math.sqrt(2.0))) ** 2


def unsaturated_exposure_s(
    magnitude: float,
    aperture_m: float,
    *,
    max_exposure_s: float,
    min_exposure_s: float = 0.001,
    full_well_e: float = 80_000.0,
    fill: float = 0.5,
    seeing_arcsec: float = 1.3,
    pixel_scale_arcsec: float = 0.8,
    sky_mag_arcsec2: float = 20.5,
) -> float:
    """The longest exposure (up to `max_exposure_s`, at least `min_exposure_s`) in which a star of `magnitude`
    fills its peak pixel to at most `fill` of the full well, in the best seeing expected (`seeing_arcsec`) at the
    zenith (no extinction: the worst case). Rounded down to 1 ms."""
    if not 0.0 < fill <= 1.0 or not 0.0 < min_exposure_s <= max_exposure_s:
        raise ValueError("fill must be in (0, 1] and 0 < min_exposure_s <= max_exposure_s")
    zp = zero_point_mag(aperture_m)
    star_e_s = 10.0 ** (-0.4 * (magnitude - zp)) * peak_fraction(seeing_arcsec, pixel_scale_arcsec)
    sky_e_s = 10.0 ** (-0.4 * (sky_mag_arcsec2 - zp)) * pixel_scale_arcsec**2
    exposure_s = fill * full_well_e / (star_e_s + sky_e_s)
    return float(max(min_exposure_s, min(max_exposure_s, math.floor(exposure_s * 1000.0) / 1000.0)))
