"""The one great-circle formula (agent pointing error, mount slews, health detectors, scheduler slews)."""

from __future__ import annotations

import pytest

from skymesh.core.sphere import separation_deg


def test_known_separations() -> None:
    assert separation_deg(0.0, 0.0, 90.0, 0.0) == pytest.approx(90.0)
    assert separation_deg(10.0, 90.0, 250.0, 90.0) == pytest.approx(0.0, abs=1e-6)  # the pole has no azimuth
    assert separation_deg(30.0, 20.0, 30.0, 20.0) == 0.0  # rounding never takes acos past 1
    assert separation_deg(0.0, -45.0, 180.0, 45.0) == pytest.approx(180.0)


def test_mechanical_angles_name_the_same_direction() -> None:
    # A flipped rotator points at sky (az, el) with (az + 180, 180 - el); an overwound one with az + 360.
    assert separation_deg(40.0, 30.0, 220.0, 150.0) == pytest.approx(0.0, abs=1e-6)
    assert separation_deg(400.0, 30.0, 40.0, 31.0) == pytest.approx(1.0)
