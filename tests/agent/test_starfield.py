"""The simulated camera's star fields: the catalogue file is read without astropy, and the server's pipeline
calibrates the frames (headers as a real driver writes them, pointing error included) to the catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from skymesh.agent.drivers.base import ExposureRequest
from skymesh.agent.drivers.simulated import SimulatedCamera
from skymesh.agent.drivers.starfield import load_star_catalogue
from skymesh.core.clock import SystemClock
from skymesh.products import load_reference_catalogue, reduce_frame
from skymesh.products.catalog import _shipped_path


def test_catalogue_files_ecsv_and_csv(tmp_path: Path) -> None:
    shipped = load_star_catalogue(_shipped_path())
    reference = load_reference_catalogue().table
    assert shipped.star_id == tuple(reference["star_id"])
    np.testing.assert_allclose(shipped.magnitudes["V"], np.asarray(reference["mag_V"]))
    csv = tmp_path / "stars.csv"
    csv.write_text("# a comment\nra_deg,dec_deg,mag_V\n10.5,-3.25,12.0\n10.6,-3.30,13.5\n")
    small = load_star_catalogue(csv)
    assert len(small) == 2 and small.star_id == ("0", "1") and list(small.magnitudes["V"]) == [12.0, 13.5]
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec\n1,2\n")
    with pytest.raises(ValueError, match="ra_deg"):
        load_star_catalogue(bad)


def test_simulated_frames_are_calibrated_by_the_pipeline() -> None:
    camera = SimulatedCamera(
        SystemClock(),
        np.random.default_rng(3),
        {"star_catalogue": str(_shipped_path()), "aperture_m": 0.4, "variables": {}},
    )
    start = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    for _ in range(3):
        exposure = camera.measure(ExposureRequest(30.0, "V", "sm-field-a-target", "A", 150.0, 20.0, 13.0, 60.0, start))
        assert exposure.headers["RA"] == "150.000000"
        result = reduce_frame(exposure.data, load_reference_catalogue(), target_ra_deg=150.0, target_dec_deg=20.0)
        assert result.flags == () and result.good, result
        assert result.magnitude == pytest.approx(13.0, abs=0.04)
        assert result.fwhm_arcsec == pytest.approx(exposure.seeing_arcsec, rel=0.15)
        assert result.exposure_s == 30.0 and result.airmass == pytest.approx(exposure.airmass, abs=1e-3)


def test_without_a_catalogue_the_camera_still_writes_its_small_frame() -> None:
    camera = SimulatedCamera(SystemClock(), np.random.default_rng(3))
    start = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    exposure = camera.measure(ExposureRequest(30.0, "V", "t", "T", 150.0, 20.0, 13.0, 60.0, start))
    assert len(exposure.data) == 2880 + 2 * 64 * 64 + (-(2 * 64 * 64) % 2880)
    assert "RA" not in exposure.headers
