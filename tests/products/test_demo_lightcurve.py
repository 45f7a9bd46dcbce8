"""The demo's light curves are real reductions and recognisable: the demo's catalogue (`skymesh.cli.demo.
demo_catalogue`) feeds the simulated camera and the server's pipeline alike, and a variable at delta Cep's position
with its amplitude and its period shortened from 5.366 d to 0.2 d, observed 24 times over two cycles, gives back its
period in a Lomb-Scargle periodogram of the pipeline's calibrated magnitudes: at delta Cep's own V 3.95 in the
demo's exposures (`demo_exposure_s`, unsaturated on its largest telescope), and at V 11 in 2 s exposures."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.timeseries import LombScargle

from skymesh.agent.drivers.base import ExposureRequest
from skymesh.agent.drivers.simulated import SimulatedCamera
from skymesh.cli.demo import demo_catalogue, demo_exposure_s
from skymesh.core.clock import SystemClock
from skymesh.products import load_reference_catalogue, reduce_frame
from skymesh.sim.fleet import VARIABLE_STARS

PERIOD_S = 0.2 * 86400.0
FRAMES = 24


def test_demo_variable_light_curve_is_recognisable(tmp_path: Path) -> None:
    delta_cep = next(v for v in VARIABLE_STARS if v.target_id == "delta-cep")
    star = dataclasses.replace(delta_cep, magnitude=11.0, period_days=PERIOD_S / 86400.0)
    path = demo_catalogue((star,), tmp_path / "demo_fields.ecsv")
    assert path is not None
    catalogue = load_reference_catalogue(str(path))
    camera = SimulatedCamera(
        SystemClock(),
        np.random.default_rng(3),
        {
            "aperture_m": 0.4,
            "star_catalogue": str(path),
            "variables": {star.target_id: {"period_s": PERIOD_S, "amplitude_mag": star.amplitude_mag}},
        },
    )
    epoch = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
    rng = np.random.default_rng(4)
    offsets_s = np.sort(rng.uniform(0.0, 2.0 * PERIOD_S, FRAMES))  # irregular, as a scheduler's visits are
    times, mags, errs, truth = [], [], [], []
    for offset in offsets_s:
        start = epoch + timedelta(seconds=float(offset))
        request = ExposureRequest(2.0, "V", star.target_id, star.name, star.ra_deg, star.dec_deg, star.magnitude,
                                  70.0, start)  # fmt: skip
        exposure = camera.measure(request)
        result = reduce_frame(exposure.data, catalogue, target_ra_deg=star.ra_deg, target_dec_deg=star.dec_deg)
        assert result.good, (result.error, result.flags)
        times.append(offset)
        mags.append(result.magnitude)
        errs.append(result.magnitude_error)
        truth.append(star.magnitude + camera.variables[star.target_id].delta_mag(start))
    residual = np.asarray(mags) - np.asarray(truth)
    assert abs(float(np.mean(residual))) < 0.02
    assert float(np.std(residual)) < 3.0 * float(np.median(errs))
    frequency, power = LombScargle(np.asarray(times), np.asarray(mags), np.asarray(errs)).autopower(
        minimum_frequency=1.0 / (2.0 * PERIOD_S), maximum_frequency=20.0 / PERIOD_S, samples_per_peak=20
    )
    best_period_s = 1.0 / float(frequency[np.argmax(power)])
    assert best_period_s == pytest.approx(PERIOD_S, rel=0.05)
    assert float(np.ptp(mags)) == pytest.approx(2.0 * star.amplitude_mag, abs=0.15)


def test_demo_delta_cep_at_its_own_brightness_is_unsaturated_and_periodic(tmp_path: Path) -> None:
    """delta Cep as the demo has it (V 3.95, 0.45 mag), its period shortened to 0.2 d: the demo's exposure choice
    (unsaturated at maximum light on the demo's largest telescope, 1 m) gives frames the pipeline accepts on the
    1 m and on a 0.4 m alike, and a periodogram of their magnitudes finds the period; the 0.5 s the demo used to
    expose saturates even the 0.4 m."""
    delta_cep = next(v for v in VARIABLE_STARS if v.target_id == "delta-cep")
    star = dataclasses.replace(delta_cep, period_days=PERIOD_S / 86400.0)
    path = demo_catalogue((star,), tmp_path / "demo_fields.ecsv")
    assert path is not None
    catalogue = load_reference_catalogue(str(path))
    variables = {star.target_id: {"period_s": PERIOD_S, "amplitude_mag": star.amplitude_mag}}
    cameras = [
        SimulatedCamera(
            SystemClock(),
            np.random.default_rng(5 + i),
            {"aperture_m": aperture_m, "star_catalogue": str(path), "variables": variables},
        )
        for i, aperture_m in enumerate((1.0, 0.4))
    ]
    exposure_s = demo_exposure_s(star, aperture_m=1.0)
    assert 0.001 <= exposure_s < 0.01
    epoch = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)

    def request(offset_s: float, duration_s: float) -> ExposureRequest:
        start = epoch + timedelta(seconds=offset_s)
        return ExposureRequest(duration_s, "V", star.target_id, star.name, star.ra_deg, star.dec_deg, star.magnitude,
                               70.0, start)  # fmt: skip

    for camera in cameras[1:]:  # the old 0.5 s saturates even the 0.4 m: its light curve had no good points
        old = reduce_frame(camera.measure(request(0.0, 0.5)).data, catalogue, target_ra_deg=star.ra_deg,
                           target_dec_deg=star.dec_deg)  # fmt: skip
        assert not old.good and "SATURATED" in old.flags
    rng = np.random.default_rng(6)
    offsets_s = np.sort(rng.uniform(0.0, 2.0 * PERIOD_S, 16))  # 16 frames: the test stays under 30 s
    times, mags, errs, truth = [], [], [], []
    for n, offset in enumerate(offsets_s):
        camera = cameras[n % 2]
        exposure = camera.measure(request(float(offset), exposure_s))
        result = reduce_frame(exposure.data, catalogue, target_ra_deg=star.ra_deg, target_dec_deg=star.dec_deg)
        assert result.good, (camera.aperture_m, result.error, result.flags)
        times.append(offset)
        mags.append(result.magnitude)
        errs.append(result.magnitude_error)
        truth.append(star.magnitude + camera.variables[star.target_id].delta_mag(exposure.start))
    residual = np.asarray(mags) - np.asarray(truth)
    assert abs(float(np.mean(residual))) < 0.02
    frequency, power = LombScargle(np.asarray(times), np.asarray(mags), np.asarray(errs)).autopower(
        minimum_frequency=1.0 / (2.0 * PERIOD_S), maximum_frequency=20.0 / PERIOD_S, samples_per_peak=20
    )
    assert 1.0 / float(frequency[np.argmax(power)]) == pytest.approx(PERIOD_S, rel=0.05)
    assert float(np.ptp(mags)) == pytest.approx(2.0 * star.amplitude_mag, abs=0.15)
