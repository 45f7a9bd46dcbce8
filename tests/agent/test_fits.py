"""The agent's astropy-free FITS header editing and image writing, read back with astropy as the reference."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from skymesh.agent.drivers.base import DriverError
from skymesh.agent.fits import DRIVER_WINS, WcsHint, read_header, skymesh_cards, update_header, write_image

WHEN = datetime(2026, 3, 1, 22, 0, 0, 250000, tzinfo=UTC)


def _cards(**changes: object) -> dict[str, tuple[bool | int | float | str, str]]:
    args: dict[str, object] = dict(
        job_id="job-1",
        station_id="tel-1",
        target_name="M 42 (O'Dell's nebula)",
        requested_filter="V",
        date_obs=WHEN,
        exposure_s=30.0,
        site_latitude_deg=-30.24,
        site_longitude_deg=-70.74,
        site_altitude_m=2200.0,
        wcs=WcsHint(83.82, -5.39, 64, 48, 1.19),
    )
    args.update(changes)
    return skymesh_cards(**args)  # type: ignore[arg-type]


def _astropy(data: bytes) -> fits.HDUList:
    return fits.open(io.BytesIO(data))


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.uint32])
def test_written_image_reads_back_identically(dtype: type) -> None:
    rng = np.random.default_rng(1)
    high = 60000 if dtype is np.uint16 else 2**31 - 10
    image = rng.integers(0, high, size=(48, 64)).astype(dtype)
    if dtype is np.int32:
        image -= 1000
    data = write_image(image, _cards())
    assert len(data) % 2880 == 0
    with _astropy(data) as hdul:
        np.testing.assert_array_equal(hdul[0].data, image)
        h = hdul[0].header
        assert h["OBJECT"] == "M 42 (O'Dell's nebula)" and h["SMJOBID"] == "job-1" and h["EXPTIME"] == 30.0
        assert h["DATE-OBS"] == "2026-03-01T22:00:00.250"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy notes the missing MJD-OBS / DATEREF; not our concern here
            wcs = WCS(h)
        ra, dec = wcs.wcs_pix2world([[(64 + 1) / 2.0, (48 + 1) / 2.0]], 1)[0]
        assert (ra, dec) == pytest.approx((83.82, -5.39), abs=1e-9)
        # One pixel to the right is 1.19 arcsec east... to the west (RA decreases to the right).
        ra2, _ = wcs.wcs_pix2world([[(64 + 1) / 2.0 + 1, (48 + 1) / 2.0]], 1)[0]
        assert (ra - ra2) * np.cos(np.radians(dec)) * 3600 == pytest.approx(1.19, rel=1e-3)


def test_update_keeps_the_drivers_truth_and_data() -> None:
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    driver = write_image(
        image,
        {
            "EXPTIME": (29.98, "what the camera did"),
            "FILTER": ("Green", ""),
            "OBJECT": ("Unknown", ""),
            "SITELAT": (0.0, ""),
            "DATE-OBS": ("2026-03-01T22:00:01.000", ""),
        },
    )
    updated = update_header(driver, _cards(), keep=DRIVER_WINS)
    header = read_header(updated)
    assert header.get("EXPTIME") == 29.98 and header.get("DATE-OBS") == "2026-03-01T22:00:01.000"
    assert header.get("OBJECT") == "M 42 (O'Dell's nebula)" and header.get("SITELAT") == -30.24
    assert header.get("FILTER") == "Green" and header.get("SMREQFLT") == "V"
    with _astropy(updated) as hdul:
        np.testing.assert_array_equal(hdul[0].data, image)
        assert hdul[0].header["CRVAL1"] == 83.82


def test_not_fits_is_a_driver_error() -> None:
    with pytest.raises(DriverError, match="not a FITS"):
        read_header(b"hello")
    with pytest.raises(DriverError, match="END"):
        read_header(b"SIMPLE  =                    T".ljust(80))
