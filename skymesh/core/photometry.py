"""The photometric model of a plain V-band CCD, in one place: the agent's simulated camera
(`skymesh.agent.drivers.simulated_camera`) exposes with it and the exposure-time calculator
(`skymesh.products.exposure`) answers with it, so the calculator's "unsaturated" is the camera's.

A telescope of aperture D collects 1 e-/s from a star of magnitude 23.1 + 5 log10(D / 1 m) (quantum efficiency x
throughput about 0.25); a source of magnitude m gives 10^(-0.4 (m - zero point)) e-/s, and the sky's surface
brightness in mag/arcsec^2 the same per square arcsecond. The defaults below are the simulated camera's.

Imports the standard library only: a station agent (no numpy on a ground station) and the demo's command line load it.
"""

from __future__ import annotations

import math

__all__ = [
    "FULL_WELL_E",
    "PIXEL_SCALE_ARCSEC",
    "READ_NOISE_E",
    "SKY_MAG_ARCSEC2",
    "electrons_per_s",
    "peak_fraction",
    "zero_point_mag",
]

SKY_MAG_ARCSEC2 = 20.5  # a dark-ish site in V
PIXEL_SCALE_ARCSEC = 0.8
FULL_WELL_E = 80_000.0
READ_NOISE_E = 8.0


def zero_point_mag(aperture_m: float) -> float:
    """The V magnitude giving 1 e-/s on a telescope of `aperture_m`: 23.1 for 1 m, scaled by collecting area."""
    if not aperture_m > 0:
        raise ValueError("aperture_m must be positive")
    return 23.1 + 5.0 * math.log10(aperture_m)


def electrons_per_s(magnitude: float, zero_point: float) -> float:
    """Electrons per second from a source of `magnitude` (per square arcsecond for a surface brightness)."""
    return float(10.0 ** (-0.4 * (magnitude - zero_point)))


def peak_fraction(seeing_arcsec: float, pixel_scale_arcsec: float) -> float:
    """The share of a star's light in the pixel it is centred on (a Gaussian of FWHM `seeing_arcsec`)."""
    sigma_px = seeing_arcsec / pixel_scale_arcsec / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return math.erf(0.5 / (sigma_px * math.sqrt(2.0))) ** 2
