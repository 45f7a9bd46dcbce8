"""Quality flags for a reduced frame, with configurable thresholds.

A frame fails (and its request goes back to the queue) when any flag in `QualityThresholds.failing` is raised.
Flags: HIGH_FWHM (seeing or focus), ELONGATED (trailing, wind shake), HIGH_SKY, FEW_STARS, SATURATED (the target, or
too many comparison stars), LOW_SNR (photometric error), HIGH_WCS_RMS, NO_WCS (astrometry failed), CLOUDS (zero
point dropped below the station's clear-sky reference), NO_TARGET (not measurable), NO_CALIBRATION (no comparison
stars or no catalogue magnitudes in the filter).

Imports: the standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["FLAGS", "QualityMeasures", "QualityThresholds", "quality_flags"]

FLAGS = (
    "HIGH_FWHM",
    "ELONGATED",
    "HIGH_SKY",
    "FEW_STARS",
    "SATURATED",
    "LOW_SNR",
    "HIGH_WCS_RMS",
    "NO_WCS",
    "CLOUDS",
    "NO_TARGET",
    "NO_CALIBRATION",
)


@dataclass(frozen=True)
class QualityThresholds:
    max_fwhm_arcsec: float = 5.0
    max_ellipticity: float = 0.3
    max_sky_e_per_s_px: float = 200.0
    min_stars: int = 10
    max_saturated_fraction: float = 0.3  # of the matched catalogue stars
    max_magnitude_error: float = 0.1
    max_wcs_rms_arcsec: float = 1.0
    max_zero_point_drop_mag: float = 0.3
    failing: tuple[str, ...] = FLAGS

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "failing":
                unknown = set(value) - set(FLAGS)
                if unknown:
                    raise ValueError(f"failing: unknown flags {sorted(unknown)}")
            elif not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{f.name}: must be a finite number >= 0")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> QualityThresholds:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown quality thresholds {sorted(unknown)}")
        if "failing" in values:
            values = {**values, "failing": tuple(values["failing"])}
        return cls(**values)


@dataclass(frozen=True)
class QualityMeasures:
    fwhm_arcsec: float  # NaN: not measured
    ellipticity: float
    sky_e_per_s_px: float
    star_count: int
    saturated_fraction: float
    target_saturated: bool
    magnitude_error: float  # NaN: no target magnitude
    wcs_rms_arcsec: float  # NaN: no solution
    zero_point_drop_mag: float  # NaN: no reference or no zero point
    calibrated: bool


def quality_flags(m: QualityMeasures, t: QualityThresholds) -> tuple[str, ...]:
    flags: list[str] = []
    if not math.isfinite(m.fwhm_arcsec) or m.fwhm_arcsec > t.max_fwhm_arcsec:
        flags.append("HIGH_FWHM")
    if math.isfinite(m.ellipticity) and m.ellipticity > t.max_ellipticity:
        flags.append("ELONGATED")
    if m.sky_e_per_s_px > t.max_sky_e_per_s_px:
        flags.append("HIGH_SKY")
    if m.star_count < t.min_stars:
        flags.append("FEW_STARS")
    if m.target_saturated or m.saturated_fraction > t.max_saturated_fraction:
        flags.append("SATURATED")
    if math.isfinite(m.magnitude_error) and m.magnitude_error > t.max_magnitude_error:
        flags.append("LOW_SNR")
    if not math.isfinite(m.wcs_rms_arcsec):
        flags.append("NO_WCS")
    elif m.wcs_rms_arcsec > t.max_wcs_rms_arcsec:
        flags.append("HIGH_WCS_RMS")
    if math.isfinite(m.zero_point_drop_mag) and m.zero_point_drop_mag > t.max_zero_point_drop_mag:
        flags.append("CLOUDS")
    if not m.calibrated:
        flags.append("NO_CALIBRATION")
    elif not math.isfinite(m.magnitude_error):
        flags.append("NO_TARGET")
    return tuple(flags)
