"""Unit normalisation for alerts: error radii to degrees at 90 % containment, fluxes to AB magnitudes or erg/s/cm².

Error regions are treated as circular 2-D Gaussians, for which the radius containing probability p is
sigma * sqrt(-2 ln(1 - p)); a radius quoted at one containment is rescaled to 90 % with that law (as GROWTH's GCN
handler does per mission). Imports only the standard library.
"""

from __future__ import annotations

import math

from skymesh.server.alerts.model import AlertParseError

__all__ = [
    "AB_ZERO_POINT_NJY",
    "ANGLE_TO_DEG",
    "ab_mag_error_from_njy",
    "ab_mag_from_njy",
    "energy_flux_to_erg_s_cm2",
    "radius_to_90_deg",
]

TARGET_CONTAINMENT = 0.9
# m_AB = -2.5 log10(f / 3631 Jy) = -2.5 log10(f_nJy) + 31.40007 (Rubin's docs round it to 31.4)
AB_ZERO_POINT_NJY = 2.5 * math.log10(3631e9)

ANGLE_TO_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "arcmin": 1.0 / 60.0, "arcsec": 1.0 / 3600.0,
                "rad": 180.0 / math.pi}  # fmt: skip

_ENERGY_FLUX_TO_CGS = {
    "erg/s/cm2": 1.0,
    "erg/cm2/s": 1.0,
    "erg s-1 cm-2": 1.0,
    "erg cm-2 s-1": 1.0,
    "erg/s/cm^2": 1.0,
    "erg/cm^2/s": 1.0,
    "w/m2": 1.0e3,  # 1 W/m² = 1e7 erg/s / 1e4 cm²
    "w m-2": 1.0e3,
    "mw/m2": 1.0,
}


def radius_to_90_deg(radius: float, unit: str = "deg", containment: float = TARGET_CONTAINMENT) -> float:
    """A circular error radius in `unit` at `containment` (0..1), as degrees at 90 % containment."""
    factor = ANGLE_TO_DEG.get(unit.strip().lower())
    if factor is None:
        raise AlertParseError(f"unknown angle unit {unit!r}", field="error_radius")
    if not (math.isfinite(radius) and radius >= 0):
        raise AlertParseError(f"{radius} is not a radius", field="error_radius")
    if not 0.0 < containment < 1.0:
        raise AlertParseError(f"containment {containment} is not within (0, 1)", field="containment_probability")
    scale = math.sqrt(-2.0 * math.log(1.0 - TARGET_CONTAINMENT)) / math.sqrt(-2.0 * math.log(1.0 - containment))
    return radius * factor * scale


def ab_mag_from_njy(flux_njy: float) -> float | None:
    """AB magnitude of a flux density in nJy (Rubin's unit); None when the flux is not positive (no magnitude)."""
    if not (math.isfinite(flux_njy) and flux_njy > 0):
        return None
    return -2.5 * math.log10(flux_njy) + AB_ZERO_POINT_NJY


def ab_mag_error_from_njy(flux_njy: float, flux_error_njy: float | None) -> float | None:
    if flux_error_njy is None or not (math.isfinite(flux_njy) and flux_njy > 0 and math.isfinite(flux_error_njy)):
        return None
    return 2.5 / math.log(10.0) * abs(flux_error_njy) / flux_njy


def energy_flux_to_erg_s_cm2(value: float, unit: str) -> float:
    factor = _ENERGY_FLUX_TO_CGS.get(unit.strip().lower())
    if factor is None:
        raise AlertParseError(f"unknown energy-flux unit {unit!r}", field="flux")
    return value * factor
