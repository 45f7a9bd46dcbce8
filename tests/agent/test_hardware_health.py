"""Hardware health on the real Hamlib daemons: killed and restarted mid-pass, the drivers reconnect by themselves and
the pass record says what was lost; idle telemetry carries fresh readings only, never the last known value."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
from skymesh.agent.drivers import DriverSet, build_drivers
from skymesh.agent.drivers.base import DriverError
from skymesh.agent.drivers.rotctld import RotctldRotator
from skymesh.agent.executor import Executor
from skymesh.agent.observing import JobContext, perform_job, preposition
from skymesh.agent.runtime import Agent, device_health_of
from skymesh.agent.store import AsyncStore, Store
from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.clock import ScaledClock, SystemClock
from tests.agent.conftest import API_KEY, STATION, running
from tests.agent.daemons import daemon, free_port, require_binary
from tests.agent.fake_server import FakeAgentService
from tests.agent.passes import SkyfieldTruth, find_pass, separation_deg
from tests.agent.test_pass_planning import pass_job


async def _poll(rotator: RotctldRotator, clock: ScaledClock, out: list[tuple[datetime, float, float]]) -> None:
    while True:
        with contextlib.suppress(DriverError):
            az, el = await rotator.get_position()
            out.append((clock.now(), az, el))
        await asyncio.sleep(0.1)


def _hamlib_config(tmp_path: Path, rot_port: int, rig_port: int, **changes: object) -> AgentConfig:
    base: dict[str, object] = dict(
        station_id="gs-health",
        state_dir=tmp_path,
        tracking_interval_s=0.25,
        limits=HardwareLimits(azimuth_min_deg=-180.0, azimuth_max_deg=450.0),
        drivers=DriversConfig(
            rotator=DriverConfig(kind="rotctld", port=rot_port, timeout_s=1.0),
            radio=DriverConfig(kind="rigctld", port=rig_port, timeout_s=1.0),
        ),
    )
    base.update(changes)
    return AgentConfig(**base)  # type: ignore[arg-type]


def _argv(binary: str, port: int) -> list[str]:
    return [binary, "-m", "1", "-T", "127.0.0.1", "-t", str(port)]


async def test_daemons_killed_and_restarted_mid_pass(tmp_path: Path) -> None:
    rotctld = require_binary("rotctld", "libhamlib-utils")
    rigctld = require_binary("rigctld", "libhamlib-utils")
    p = find_pass(10.0)  # a low pass: the sky moves slowly, so the rotator catches up at once after the outage
    start, end = p.window(6.0, 6.0)
    rot_port, rig_port = free_port(), free_port()
    config = _hamlib_config(tmp_path, rot_port, rig_port, location=p.site)
    with contextlib.ExitStack() as stack:
        rot = stack.enter_context(daemon(_argv(rotctld, rot_port), rot_port))
        rig = stack.enter_context(daemon(_argv(rigctld, rig_port), rig_port))
        clock = ScaledClock(start - timedelta(seconds=3.0), 1.0)
        drivers = build_drivers(config, clock)
        await drivers.connect()
        observer = RotctldRotator("127.0.0.1", rot_port, timeout_s=1.0)
        samples: list[tuple[datetime, float, float]] = []
        poller = asyncio.create_task(_poll(observer, clock, samples))
        try:
            job = pass_job(p, start, end)
            await preposition(job, JobContext(config, drivers, clock, {}, {}))
            await clock.sleep((start - clock.now()).total_seconds())
            task = asyncio.create_task(perform_job(job, JobContext(config, drivers, clock, {}, {})))
            await asyncio.sleep(3.0)
            for proc in (rot, rig):
                proc.terminate()
                proc.wait(5)
            await asyncio.sleep(1.5)
            health = drivers.health()
            assert not health["rotator"].connected and health["rotator"].consecutive_errors > 0
            assert not health["radio"].connected
            reported = {d.role: d for d in device_health_of(drivers)}
            assert not reported["rotator"].connected and reported["rotator"].last_error
            with daemon(_argv(rotctld, rot_port), rot_port), daemon(_argv(rigctld, rig_port), rig_port):
                record = await task
                health = drivers.health()
                assert health["rotator"].healthy and health["radio"].healthy
                assert health["rotator"].errors_total > 0
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await observer.close()
            await drivers.close()
    q = record.pass_quality
    assert "HARDWARE_FAULT_DURING_PASS" in record.quality_flags and q.hardware_faults > 0
    assert q.visible_s - 5.0 < q.tracked_s < q.visible_s - 1.0  # the outage is not counted as tracked
    # Tracking resumed after the restart (the observer's own connection came back too): the last seconds of the
    # pass are on the satellite again.
    last = [(t, a, e) for t, a, e in samples if end - timedelta(seconds=4.0) <= t < end]
    assert len(last) > 10
    sky_az, sky_el = SkyfieldTruth(p).altaz_deg([t for t, _, _ in last])
    error = separation_deg(np.array([a for _, a, _ in last]), np.array([e for _, _, e in last]), sky_az, sky_el)
    assert float(error.max()) < 1.0, error


async def test_idle_telemetry_is_fresh_or_absent(tmp_path: Path) -> None:
    rotctld = require_binary("rotctld", "libhamlib-utils")
    rigctld = require_binary("rigctld", "libhamlib-utils")
    rot_port, rig_port = free_port(), free_port()
    config = _hamlib_config(tmp_path, rot_port, rig_port)
    clock = SystemClock()
    with daemon(_argv(rotctld, rot_port), rot_port) as rot, daemon(_argv(rigctld, rig_port), rig_port):
        drivers: DriverSet = build_drivers(config, clock)
        await drivers.connect()
        store = Store(config.database_path)
        store.begin_boot("b", datetime.now().astimezone())
        executor = Executor(config, AsyncStore(store), drivers, clock, "b")
        try:
            assert drivers.radio is not None
            await drivers.radio.set_frequency(437_100_000.0)
            # Someone tunes the radio by hand (`rigctl F`) on another connection: the next sample says so.
            rigctl = require_binary("rigctl", "libhamlib-utils")
            manual = await asyncio.create_subprocess_exec(
                rigctl, "-m", "2", "-r", f"127.0.0.1:{rig_port}", "F", "145800000"
            )
            assert await asyncio.wait_for(manual.wait(), 10.0) == 0
            sample = await executor._sample()
            assert sample["radio.frequency_hz"] == 145_800_000.0
            assert sample["rotator.connected"] == 1.0 and "rotator.azimuth_deg" in sample
            rot.terminate()
            rot.wait(5)
            sample = await executor._sample()
            # No reading, no value: az/el are absent (not repeated), and the rotator says it is not connected.
            assert "rotator.azimuth_deg" not in sample and "rotator.elevation_deg" not in sample
            assert sample["rotator.connected"] == 0.0 and sample["rotator.errors_total"] >= 1.0
            assert sample["radio.connected"] == 1.0 and sample["radio.frequency_hz"] == 145_800_000.0
            assert sample["rotator.last_ok_age_s"] == pytest.approx(0.0, abs=5.0)
        finally:
            await drivers.close()
            store.close()


async def test_agent_reports_device_health_in_hello_and_heartbeats(
    tmp_path: Path, fake: tuple[FakeAgentService, int]
) -> None:
    """The whole agent against the protocol double: rotctld dies, heartbeats say so; it comes back, they say so."""
    rotctld = require_binary("rotctld", "libhamlib-utils")
    rigctld = require_binary("rigctld", "libhamlib-utils")
    service, server_port = fake
    rot_port, rig_port = free_port(), free_port()
    config = _hamlib_config(
        tmp_path,
        rot_port,
        rig_port,
        station_id=STATION,
        server_address=f"127.0.0.1:{server_port}",
        api_key=API_KEY,
        telemetry_rate_hz=4.0,
        telemetry_batch_interval_s=0.5,
        heartbeat_interval_s=0.3,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
    )

    def rotator_in_last_heartbeat() -> agent_pb2.DeviceHealth | None:
        beats = service.of_kind("heartbeat")
        if not beats:
            return None
        return next((d for d in beats[-1].heartbeat.devices if d.role == "rotator"), None)

    with daemon(_argv(rigctld, rig_port), rig_port), daemon(_argv(rotctld, rot_port), rot_port) as rot:
        async with running(Agent(config)):
            await service.wait_for(lambda: service.hellos, what="hello")
            roles = {d.role: d for d in service.hellos[-1].devices}
            assert roles["rotator"].driver == "rotctld" and roles["rotator"].connected
            assert roles["radio"].driver == "rigctld" and roles["radio"].connected
            rot.terminate()
            rot.wait(5)
            await service.wait_for(
                lambda: (d := rotator_in_last_heartbeat()) is not None and not d.connected, what="rotator down"
            )
            down = rotator_in_last_heartbeat()
            assert down is not None and down.errors_total > 0 and down.last_error
            with daemon(_argv(rotctld, rot_port), rot_port):
                await service.wait_for(
                    lambda: (
                        (d := rotator_in_last_heartbeat()) is not None and d.connected and d.consecutive_errors == 0
                    ),
                    timeout_s=15.0,
                    what="rotator back",
                )
