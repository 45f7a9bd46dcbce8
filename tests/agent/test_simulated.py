"""Physics of the simulated drivers: link budget, rotator kinematics and limits, photometry noise."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from skymesh.agent.drivers.base import DriverError, ExposureRequest, LinkGeometry
from skymesh.agent.drivers.simulated import (
    SimulatedCamera,
    SimulatedRadio,
    SimulatedRotator,
    airmass_from_altitude,
    free_space_path_loss_db,
    link_snr_db,
)
from skymesh.core.clock import ManualClock

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


def test_free_space_path_loss_reference_value() -> None:
    # 1000 km at 437 MHz: 20 log10(1000) + 20 log10(437) + 32.45 = 145.26 dB
    assert free_space_path_loss_db(1000.0, 437e6) == pytest.approx(145.26, abs=0.01)
    # Doubling the range costs 6.02 dB.
    assert free_space_path_loss_db(2000.0, 437e6) - free_space_path_loss_db(1000.0, 437e6) == pytest.approx(
        6.02, abs=0.01
    )


def test_snr_decreases_with_range_and_low_elevation() -> None:
    ranges = [500.0, 1000.0, 1500.0, 2500.0]
    snrs = [link_snr_db(r, 437e6, 45.0) for r in ranges]
    assert snrs == sorted(snrs, reverse=True)
    assert snrs[0] - snrs[1] == pytest.approx(6.02, abs=0.01)
    assert link_snr_db(1000.0, 437e6, 5.0) < link_snr_db(1000.0, 437e6, 60.0)
    assert link_snr_db(1000.0, 437e6, -1.0) == -20.0


async def test_simulated_radio_snr_tracks_geometry_and_tuning() -> None:
    radio = SimulatedRadio(np.random.default_rng(0), {"noise_db": 0.2})
    freq = 437e6
    near = LinkGeometry(600.0, 60.0, 0.0, 0.0, freq)
    far = LinkGeometry(2400.0, 8.0, 0.0, 0.0, freq)
    await radio.set_frequency(freq)
    radio.update_geometry(near)
    snr_near = np.mean([await radio.snr_db() for _ in range(50)])
    radio.update_geometry(far)
    snr_far = np.mean([await radio.snr_db() for _ in range(50)])
    assert snr_near > snr_far + 10.0
    # Not following Doppler (7 km/s at 437 MHz is ~10 kHz) costs SNR.
    radio.update_geometry(LinkGeometry(600.0, 60.0, 7.0, 0.0, freq))
    detuned = np.mean([await radio.snr_db() for _ in range(50)])
    assert detuned < snr_near - 5.0


async def test_rotator_moves_at_its_rate_and_respects_limits() -> None:
    clock = ManualClock(T0)
    rot = SimulatedRotator(clock, slew_rate_deg_s=5.0, azimuth_min_deg=0, azimuth_max_deg=360, park=(0.0, 0.0))
    await rot.set_position(90.0, 40.0)
    clock.advance(4.0)
    assert await rot.get_position() == pytest.approx((20.0, 20.0))
    clock.advance(4.0)
    assert await rot.get_position() == pytest.approx((40.0, 40.0))  # elevation arrived, azimuth still moving
    clock.advance(100.0)
    assert await rot.get_position() == pytest.approx((90.0, 40.0))
    with pytest.raises(DriverError, match="elevation"):
        await rot.set_position(90.0, 95.0)
    with pytest.raises(DriverError, match="azimuth"):
        await rot.set_position(400.0, 10.0)
    await rot.set_position(0.0, 0.0)
    clock.advance(2.0)
    await rot.stop()
    clock.advance(10.0)
    assert await rot.get_position() == pytest.approx((80.0, 30.0))


def _request(magnitude: float, altitude_deg: float, duration_s: float = 30.0) -> ExposureRequest:
    return ExposureRequest(duration_s, "V", "t1", "Star", 10.0, 20.0, magnitude, altitude_deg, T0)


def test_photometry_errors_grow_for_faint_targets_and_flags() -> None:
    camera = SimulatedCamera(ManualClock(T0), np.random.default_rng(1), {"aperture_m": 0.4, "image_size_px": 16})
    bright = camera.measure(_request(11.0, 70.0))
    faint = camera.measure(_request(18.5, 70.0))
    assert bright.photometry is not None and faint.photometry is not None
    assert bright.photometry.magnitude == pytest.approx(11.0, abs=0.05)
    assert faint.photometry.magnitude_error > 5 * bright.photometry.magnitude_error
    assert "LOW_ALTITUDE" not in bright.quality_flags
    low = camera.measure(_request(12.0, 20.0))
    assert {"LOW_ALTITUDE", "HIGH_AIRMASS"} <= set(low.quality_flags)
    assert low.airmass == pytest.approx(airmass_from_altitude(20.0))
    assert bright.data.startswith(b"SIMPLE  =") and len(bright.data) % 2880 == 0
    assert "SATURATED" in camera.measure(_request(4.0, 70.0)).quality_flags
    assert "LOW_SNR" in camera.measure(_request(22.0, 70.0, 5.0)).quality_flags


def test_variable_star_follows_its_light_curve() -> None:
    params = {"variables": {"t1": {"period_s": 4000.0, "amplitude_mag": 0.5, "epoch": T0.isoformat()}}}
    camera = SimulatedCamera(ManualClock(T0), np.random.default_rng(2), params)
    quarter = ExposureRequest(30.0, "V", "t1", "Star", 0, 0, 10.0, 80.0, T0.replace(minute=16, second=40))
    three_quarters = ExposureRequest(30.0, "V", "t1", "Star", 0, 0, 10.0, 80.0, T0.replace(minute=50))
    a, b = camera.measure(quarter).photometry, camera.measure(three_quarters).photometry
    assert a is not None and b is not None
    assert a.magnitude == pytest.approx(10.5, abs=0.05)
    assert b.magnitude == pytest.approx(9.5, abs=0.05)
