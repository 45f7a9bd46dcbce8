"""IQ recording during a real (propagated) satellite pass on the manual clock: the agent writes a SigMF archive with
the pass metadata and one capture per snippet, and attaches it to the pass's observation for upload."""

from __future__ import annotations

import tarfile
from datetime import timedelta
from pathlib import Path

import numpy as np
from sigmf import sigmffile

from skymesh.agent.config import DriverConfig, DriversConfig
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.clock import ManualClock
from skymesh.core.jobs import JobState
from tests.agent.test_executor import BOOT, EPOCH, _advance, _executor, _find_pass, _settle, store_messages


async def test_pass_recorded_as_sigmf(tmp_path: Path) -> None:
    (tle,) = generate_tles("iss", 1, EPOCH, seed=7)
    aos, los, _max_el = _find_pass(tle.line1, tle.line2)
    clock = ManualClock(aos - timedelta(seconds=30))
    target = common_pb2.Target(
        target_id="sat-1",
        name="SAT 1",
        priority=5,
        satellite=common_pb2.SatelliteTarget(
            norad_id=tle.norad_id, tle_line1=tle.line1, tle_line2=tle.line2, downlink_frequency_hz=437.1e6
        ),
    )
    job = agent_pb2.ScheduledJob(
        job_id="pass-1", target=target, start=timestamp_from_datetime(aos), end=timestamp_from_datetime(los)
    )
    drivers = DriversConfig(
        rotator=DriverConfig(kind="simulated"),
        radio=DriverConfig(kind="simulated", params={"noise_db": 0.3, "record_iq": True, "iq_interval_s": 10.0}),
    )
    async with _executor(tmp_path, clock, drivers=drivers) as (_, store):
        store.replace_schedule(1, [job], BOOT, clock.now())
        await _advance(clock, (los - aos).total_seconds() + 60.0, step_s=2.0)
        await _settle(lambda: store.job("pass-1").state.terminal)  # type: ignore[union-attr]
        updates = [m.job_update for m in store_messages(tmp_path) if m.WhichOneof("body") == "job_update"]
        assert store.job("pass-1").state == JobState.SUCCEEDED, updates[-1].detail  # type: ignore[union-attr]
    (obs,) = [m.observation for m in store_messages(tmp_path) if m.WhichOneof("body") == "observation"]
    (artifact,) = obs.artifacts
    assert artifact.kind == "sigmf"
    path = tmp_path / "artifacts" / obs.observation_id / f"{artifact.artifact_id}.sigmf"
    assert path.stat().st_size == artifact.size_bytes
    assert tarfile.is_tarfile(path)
    recording = sigmffile.fromarchive(str(path))
    info = recording.get_global_info()
    assert info["skymesh:norad_id"] == tle.norad_id and info["skymesh:tle_line1"] == tle.line1
    assert info["skymesh:nominal_frequency_hz"] == 437.1e6 and info["core:datatype"] == "cf32_le"
    captures = recording.get_captures()
    pass_s = (los - aos).total_seconds()
    assert abs(len(captures) - pass_s / 10.0) <= 3
    # Each capture is tuned to the Doppler-corrected frequency: within +-12 kHz of nominal at 437 MHz.
    offsets = np.array([c["core:frequency"] - 437.1e6 for c in captures])
    assert np.all(np.abs(offsets) < 12_000) and offsets.max() - offsets.min() > 5_000
    samples = recording.read_samples()
    assert samples.dtype == np.complex64 and len(samples) == 2048 * len(captures)
