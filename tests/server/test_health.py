"""Station health: the robust z-score detectors (clean noise stays quiet, a fault opens an event within `confirm`
samples and closes after `clear`), and the whole path on a real server: telemetry over the agent stream -> a stored
health event with its evidence window -> the server's health metrics."""

from __future__ import annotations

import asyncio
import random
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.model import StationState
from skymesh.server.health import DETECTORS, Deriver, HealthMonitor, RobustZDetector, derive, median_and_mad
from tests.server.agent_client import AgentClient
from tests.server.conftest import StartServer, add_station

CAMERA = next(s for s in DETECTORS if s.name == "camera_temperature")


def test_clean_noise_stays_quiet_for_a_simulated_day() -> None:
    rng = random.Random(7)
    detector = RobustZDetector(CAMERA)
    events = [c for t in range(86_400) if (c := detector.update(float(t), -10.0 + rng.gauss(0.0, 0.05)))]
    assert events == []


def test_a_step_opens_after_confirm_samples_and_closes_after_clear() -> None:
    rng = random.Random(1)
    detector = RobustZDetector(CAMERA)
    for t in range(600):
        assert detector.update(float(t), -10.0 + rng.gauss(0.0, 0.05)) is None
    changes = [(t, c) for t in range(600, 700) if (c := detector.update(float(t), -8.0 + rng.gauss(0.0, 0.05)))]
    assert [(t, c.opened) for t, c in changes] == [(600 + CAMERA.confirm - 1, True)]
    opened = changes[0][1]
    assert opened.z > CAMERA.threshold_z and opened.evidence["median"] == pytest.approx(-10.0, abs=0.05)
    assert len(opened.evidence["samples"]) == CAMERA.evidence
    closes = [t for t in range(700, 800) if (c := detector.update(float(t), -10.0 + rng.gauss(0.0, 0.05)))]
    assert closes == [700 + CAMERA.clear - 1]


def test_snr_residual_takes_the_geometry_out() -> None:
    base = {"radio.frequency_hz": 437e6, "target.elevation_deg": 60.0}
    near = derive({**base, "radio.snr_db": 20.0, "target.range_km": 500.0})
    far = derive({**base, "radio.snr_db": 20.0 - 20.0 * 0.60206, "target.range_km": 2000.0})
    assert near["radio_snr_residual"] == pytest.approx(far["radio_snr_residual"], abs=1e-3)  # 4x range: -12 dB
    assert derive({**base, "radio.snr_db": 1.0, "target.range_km": 900.0}) == {}  # in the noise: not scored
    assert derive({**base, "radio.snr_db": 9.0, "target.range_km": 900.0, "target.elevation_deg": -1.0}) == {}


def test_pointing_residual_is_zero_for_a_rotator_that_keeps_up_or_slews_at_full_speed() -> None:
    deriver = Deriver(slew_rate_deg_s=6.0)
    look = {"target.azimuth_deg": 100.0, "target.elevation_deg": 30.0}
    assert deriver(0.0, {**look, "rotator.pointing_error_deg": 0.5, "rotator.azimuth_deg": 99.5,
                         "rotator.elevation_deg": 30.0}) == {}  # fmt: skip
    # The target moved 0.43 deg; the rotator reached the last command and trails by that: healthy, a small residual
    # (the baseline the detector learns: a clean day's median is about 0.24 deg).
    keeping_up = deriver(1.0, {"target.azimuth_deg": 100.5 / 1.0, "target.elevation_deg": 30.0,
                               "rotator.pointing_error_deg": 0.43, "rotator.azimuth_deg": 100.0,
                               "rotator.elevation_deg": 30.0})  # fmt: skip
    assert 0.0 <= keeping_up["rotator_pointing_error"] <= 0.5
    # Stuck: the error grows by the target's motion while the rotator does not move.
    stuck = deriver(2.0, {"target.azimuth_deg": 104.0, "target.elevation_deg": 30.0,
                          "rotator.pointing_error_deg": 3.5, "rotator.azimuth_deg": 100.0,
                          "rotator.elevation_deg": 30.0})  # fmt: skip
    assert stuck["rotator_pointing_error"] > 2.0
    # A wrap-around swing at full slew speed: error huge, residual 0.
    swing = deriver(3.0, {"target.azimuth_deg": 104.5, "target.elevation_deg": 30.0,
                          "rotator.pointing_error_deg": 9.0, "rotator.azimuth_deg": 106.0,
                          "rotator.elevation_deg": 30.0})  # fmt: skip
    assert swing["rotator_pointing_error"] == 0.0


def _batch(boot_id: str, seq: int, start: datetime, values: list[float]) -> agent_pb2.ConnectRequest:
    samples = [
        agent_pb2.TelemetrySample(
            at=timestamp_from_datetime(start + timedelta(seconds=i)), values={"camera.temperature_c": v}
        )
        for i, v in enumerate(values)
    ]
    return agent_pb2.ConnectRequest(boot_id=boot_id, seq=seq, telemetry=agent_pb2.TelemetryBatch(samples=samples))


async def test_a_warming_camera_opens_a_stored_health_event(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server()
    key = await add_station(server, "tel-1")
    rng = random.Random(3)
    readings = [-10.0 + rng.gauss(0.0, 0.05) for _ in range(300)] + [-7.0 + rng.gauss(0.0, 0.05) for _ in range(20)]
    start = datetime.now(UTC) - timedelta(seconds=len(readings))
    async with AgentClient.connect(server.address, key, "tel-1") as agent:
        await agent.expect("welcome")
        for seq, i in enumerate(range(0, len(readings), 10), start=1):
            await agent.send(_batch(agent.boot_id, seq, start + timedelta(seconds=i), readings[i : i + 10]))
            ack = await agent.expect("upstream_ack", skip=("schedule",))
            assert ack.committed_seq == seq
        # A hardware anomaly open on a connected station makes it DEGRADED: the scheduler gives it no new work.
        for _ in range(100):
            if (await server.repo.get_station("tel-1")).station.state == StationState.DEGRADED:
                break
            await asyncio.sleep(0.05)
        assert (await server.repo.get_station("tel-1")).station.state == StationState.DEGRADED
    events = await server.repo.health_events("tel-1")
    assert [(e.detector, e.closed_at) for e in events] == [("camera_temperature", None)]
    event = events[0]
    assert event.opened_at == start + timedelta(seconds=300 + CAMERA.confirm - 1)  # detection delay: confirm samples
    assert event.peak_z > CAMERA.threshold_z
    assert event.evidence["samples"][-1][1] == pytest.approx(readings[300 + CAMERA.confirm - 1])
    registry = server.metrics.registry
    assert (
        registry.get_sample_value("skymesh_server_station_health_events_total", {"detector": "camera_temperature"}) == 1
    )
    assert registry.get_sample_value("skymesh_server_station_health_open", {"detector": "camera_temperature"}) == 1


async def test_heartbeats_feed_clock_offset_and_jitter_detectors() -> None:
    opened: list[tuple[str, str]] = []

    async def open_event(station_id: str, detector: str, at: datetime, z: float, evidence: dict[str, object]) -> None:
        opened.append((station_id, detector))

    async def close_event(station_id: str, detector: str, at: datetime) -> None:
        return None

    monitor = HealthMonitor(open_event, close_event)
    rng = random.Random(2)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    received = t0
    for i in range(200):  # 10 s heartbeats, 20 ms of network jitter, the agent's clock 0.3 s ahead
        received = t0 + timedelta(seconds=10 * i + rng.uniform(0.0, 0.02))
        await monitor.heartbeat(
            "gs-1", received - timedelta(seconds=rng.uniform(0.0, 0.02)) + timedelta(seconds=0.3), received
        )
    assert opened == []
    for i in range(200, 205):  # the agent's clock steps 2 s
        received = t0 + timedelta(seconds=10 * i)
        await monitor.heartbeat("gs-1", received + timedelta(seconds=2.3), received)
    assert opened == [("gs-1", "clock_offset")]
    for _ in range(5):  # heartbeats start arriving 30 s apart
        received = received + timedelta(seconds=30)
        await monitor.heartbeat("gs-1", received + timedelta(seconds=2.3), received)
    assert ("gs-1", "heartbeat_jitter") in opened
    # A reconnect after an outage is a gap, not jitter: it is not scored.
    before = len(opened)
    await monitor.heartbeat("gs-2", t0, t0)
    await monitor.heartbeat("gs-2", t0 + timedelta(hours=1), t0 + timedelta(hours=1))
    assert len(opened) == before


@given(
    st.lists(
        st.one_of(
            st.sampled_from([0.0, 1.0, 1.0000001, 2.5, -3.0, 0.1, 0.30000000000000004]),
            st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
        ),
        min_size=1,
        max_size=700,
    )
)
def test_median_and_mad_from_one_sort_equal_statistics(values: list[float]) -> None:
    median = statistics.median(values)
    assert median_and_mad(values) == (median, statistics.median(abs(x - median) for x in values))
