"""The CCD photometric model shared by the simulated camera and the exposure-time calculator."""

from __future__ import annotations

import math

import pytest

from skymesh.core.photometry import electrons_per_s, peak_fraction, zero_point_mag


def test_zero_point_scales_with_collecting_area() -> None:
    assert zero_point_mag(1.0) == pytest.approx(23.1)
    assert zero_point_mag(2.0) - zero_point_mag(1.0) == pytest.approx(2.5 * math.log10(4.0))  # 4x the area
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="aperture_m"):
            zero_point_mag(bad)


def test_electrons_follow_the_magnitude_scale() -> None:
    assert electrons_per_s(23.1, 23.1) == pytest.approx(1.0)
    assert electrons_per_s(13.1, 23.1) == pytest.approx(1e4)  # 10 magnitudes: 10^4
    assert electrons_per_s(18.1, 23.1) / electrons_per_s(23.1, 23.1) == pytest.approx(100.0)


def test_peak_fraction_of_a_gaussian_star() -> None:
    assert peak_fraction(0.1, 10.0) == pytest.approx(1.0)  # a star far smaller than its pixel
    # A star many pixels wide: the pixel holds about its area times the Gaussian's peak density.
    sigma_px = 8.0 / 0.8 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    assert peak_fraction(8.0, 0.8) == pytest.approx(1.0 / (2.0 * math.pi * sigma_px**2), rel=5e-3)
    assert peak_fraction(1.3, 0.8) > peak_fraction(1.8, 0.8)  # better seeing, brighter peak
