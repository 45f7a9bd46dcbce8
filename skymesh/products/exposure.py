"""Exposure times that keep a star below saturation: what an observer's exposure-time calculator answers first for
a bright target ("how short must I go so the peak pixel stays in the linear range?").

The photometric model is SkyMesh's simulated camera's (`skymesh.core.photometry`, which both use), the one a plain
V-band CCD on a telescope of aperture D follows: 1 e-/s from a star of magnitude 23.1 + 5 log10(D / 1 m) (quantum
efficiency x throughput about 0.25), a Gaussian PSF of the best seeing expected, integrated over the central pixel.
The brightest phase of a variable is what must fit, on the largest aperture that will observe it.

Standard library only (no astropy): the demo's command line and the server can both import it.
"""

from __future__ import annotations

import math

from skymesh.core.photometry import (
    FULL_WELL_E,
    PIXEL_SCALE_ARCSEC,
    SKY_MAG_ARCSEC2,
    electrons_per_s,
    peak_fraction,
    zero_point_mag,
)

__all__ = ["peak_fraction", "unsaturated_exposure_s", "zero_point_mag"]


def unsaturated_exposure_s(
    magnitude: float,
    aperture_m: float,
    *,
    max_exposure_s: float,
    min_exposure_s: float = 0.001,
    full_well_e: float = FULL_WELL_E,
    fill: float = 0.5,
    seeing_arcsec: float = 1.3,
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC,
    sky_mag_arcsec2: float = SKY_MAG_ARCSEC2,
) -> float:
    """The longest exposure (up to `max_exposure_s`, at least `min_exposure_s`) in which a star of `magnitude`
    fills its peak pixel to at most `fill` of the full well, in the best seeing expected (`seeing_arcsec`) at the
    zenith (no extinction: the worst case). Rounded down to 1 ms."""
    if not 0.0 < fill <= 1.0 or not 0.0 < min_exposure_s <= max_exposure_s:
        raise ValueError("fill must be in (0, 1] and 0 < min_exposure_s <= max_exposure_s")
    zp = zero_point_mag(aperture_m)
    star_e_s = electrons_per_s(magnitude, zp) * peak_fraction(seeing_arcsec, pixel_scale_arcsec)
    sky_e_s = electrons_per_s(sky_mag_arcsec2, zp) * pixel_scale_arcsec**2
    exposure_s = fill * full_well_e / (star_e_s + sky_e_s)
    return float(max(min_exposure_s, min(max_exposure_s, math.floor(exposure_s * 1000.0) / 1000.0)))
