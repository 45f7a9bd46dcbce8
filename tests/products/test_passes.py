"""Pass products against recordings made the way the agent makes them (its simulated radio over a real propagated
pass, written by its IqRecorder as SigMF): SNR follows elevation and matches the link budget, the Doppler residual
is ~0 when the orbit is right, an offset is caught, silence is caught, and the waterfall is a PNG."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skymesh.agent.drivers.base import LinkGeometry
from skymesh.agent.drivers.simulated import SimulatedRadio, link_snr_db
from skymesh.agent.recording import IqRecorder
from skymesh.agent.tracking import SatelliteTrack, doppler_frequency_hz
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.model import GeoLocation
from skymesh.products.passes import PassThresholds, analyze_pass
from tests.agent.test_executor import EPOCH, SITE, _find_pass

NOMINAL_HZ = 437.1e6


async def _record(tmp_path: Path, name: str, **radio_params: Any) -> tuple[Path, str, str, list[float]]:
    """One pass recorded every 10 s as the agent does it (tuned to the predicted Doppler); returns the archive, the
    TLE and the link-budget SNR at each capture."""
    (tle,) = generate_tles("iss", 1, EPOCH, seed=7)
    aos, los, _ = _find_pass(tle.line1, tle.line2)
    track = SatelliteTrack(tle.line1, tle.line2, SITE, aos, los)
    radio = SimulatedRadio(np.random.default_rng(11), {"record_iq": True, **radio_params})
    recorder = IqRecorder(radio.iq_sample_rate_hz)
    budget: list[float] = []
    when = aos
    while when < los:
        look = track.at(when)
        tuned = doppler_frequency_hz(NOMINAL_HZ, look.range_rate_km_s)
        await radio.set_frequency(tuned)
        radio.update_geometry(LinkGeometry(look.range_km, look.elevation_deg, look.range_rate_km_s, 0.0, NOMINAL_HZ))
        if look.elevation_deg > 0:
            recorder.add(when, tuned, radio.iq_snippet(2048))
            budget.append(
                link_snr_db(look.range_km, NOMINAL_HZ, look.elevation_deg, eirp_dbw=radio_params.get("eirp_dbw", 0.0))
            )
        when += timedelta(seconds=10)
    archive = recorder.write(
        tmp_path / name,
        target_id="sat-1",
        target_name="SAT 1",
        norad_id=tle.norad_id,
        tle_line1=tle.line1,
        tle_line2=tle.line2,
        nominal_hz=NOMINAL_HZ,
        location=GeoLocation(SITE.latitude_deg, SITE.longitude_deg, SITE.altitude_m),
    )
    return archive, tle.line1, tle.line2, budget


async def test_a_good_pass(tmp_path: Path) -> None:
    archive, _l1, _l2, budget = await _record(tmp_path, "good")
    png = tmp_path / "good.png"
    result = analyze_pass(archive, waterfall_path=png)
    assert result.error == "" and result.flags == () and result.good
    assert result.captures == len(budget) and result.detected >= 0.9 * result.captures
    assert abs(result.doppler_offset_hz) < 30.0 and result.doppler_rms_hz < 30.0
    assert result.quality_score > 0.9
    assert result.snr_elevation_correlation > 0.8
    # The measured SNR is the link budget's (within the estimator's scatter).
    measured = np.array(result.snr_db)
    assert float(np.median(measured - np.array(budget))) == pytest.approx(0.0, abs=1.5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_frequency_offset_is_caught(tmp_path: Path) -> None:
    """A carrier 2 kHz away from the orbit's prediction (a wrong TLE, clock or transmitter) is flagged."""
    archive, _l1, _l2, _budget = await _record(tmp_path, "offset", transmitter_offset_hz=2000.0)
    result = analyze_pass(archive)
    assert "DOPPLER_OFFSET" in result.flags and not result.good
    assert result.doppler_offset_hz == pytest.approx(2000.0, abs=30.0)
    assert result.quality_score < 0.1
    lenient = analyze_pass(archive, thresholds=PassThresholds(max_doppler_offset_hz=5000.0))
    assert lenient.flags == () and lenient.good


async def test_silence_is_caught(tmp_path: Path) -> None:
    archive, _l1, _l2, _budget = await _record(tmp_path, "quiet", eirp_dbw=-60.0)
    result = analyze_pass(archive)
    assert result.flags[:1] == ("NO_SIGNAL",) and not result.good and result.quality_score == 0.0


def test_unreadable_recordings_say_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sigmf"
    bad.write_bytes(b"not a tar archive")
    assert "SigMF" in analyze_pass(bad).error


def test_a_silent_recording_is_no_signal(tmp_path: Path) -> None:
    """All-zero samples (a dead SDR) must not crash the analysis."""
    recorder = IqRecorder(48_000.0)
    (tle,) = generate_tles("iss", 1, EPOCH, seed=7)
    aos, _los, _ = _find_pass(tle.line1, tle.line2)
    for k in range(5):
        recorder.add(aos + timedelta(seconds=10 * k), NOMINAL_HZ, np.zeros(2048, dtype=np.complex64))
    archive = recorder.write(
        tmp_path / "dead",
        target_id="sat-1",
        target_name="SAT 1",
        norad_id=tle.norad_id,
        tle_line1=tle.line1,
        tle_line2=tle.line2,
        nominal_hz=NOMINAL_HZ,
        location=SITE,
    )
    result = analyze_pass(archive)
    assert result.error == "" and result.flags == ("NO_SIGNAL",) and result.captures == 5
