"""rotctld / rigctld drivers against the real Hamlib daemons (dummy models, `-m 1`)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
from skymesh.agent.drivers import build_drivers
from skymesh.agent.drivers.base import DriverError
from skymesh.agent.drivers.rigctld import RigctldRadio
from skymesh.agent.drivers.rotctld import RotctldRotator
from skymesh.agent.executor import Executor
from skymesh.agent.store import AsyncStore, Store
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.astro.frames import datetime_to_jd, ecef_to_geodetic, teme_to_ecef
from skymesh.astro.propagate import SatelliteBatch
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.clock import SystemClock
from skymesh.core.jobs import JobState
from skymesh.core.model import GeoLocation
from tests.agent.daemons import daemon, free_port, require_binary


async def test_rotctld_dummy_moves_reports_and_refuses_out_of_range() -> None:
    binary = require_binary("rotctld", "libhamlib-utils")
    port = free_port()
    with daemon([binary, "-m", "1", "-T", "127.0.0.1", "-t", str(port)], port):
        rot = RotctldRotator("127.0.0.1", port, timeout_s=3.0)
        await rot.connect()
        try:
            # Limits from \dump_state (dummy: az -180..450, el 0..90).
            assert (rot.azimuth_min_deg, rot.azimuth_max_deg) == (-180.0, 450.0)
            assert (rot.elevation_min_deg, rot.elevation_max_deg) == (0.0, 90.0)
            await rot.set_position(12.0, 8.0)
            await asyncio.sleep(0.5)
            az1, el1 = await rot.get_position()
            assert 0.0 < az1 < 12.0 and 0.0 < el1 <= 8.0  # moving at 6 deg/s, not teleporting
            for _ in range(100):
                az, el = await rot.get_position()
                if (az, el) == pytest.approx((12.0, 8.0), abs=0.05):
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"rotator stuck at {az}, {el}")
            with pytest.raises(DriverError, match="RPRT -1"):
                await rot.set_position(500.0, 10.0)
            # The connection survives an error reply.
            assert await rot.get_position() == pytest.approx((12.0, 8.0), abs=0.05)
            await rot.set_position(40.0, 8.0)
            await asyncio.sleep(0.3)
            await rot.stop()
            stopped = await rot.get_position()
            await asyncio.sleep(0.4)
            assert await rot.get_position() == pytest.approx(stopped, abs=0.01)
            await rot.park()
        finally:
            await rot.close()


async def test_rotctld_down_is_a_driver_error() -> None:
    rot = RotctldRotator("127.0.0.1", free_port(), timeout_s=1.0)
    with pytest.raises(DriverError, match="cannot connect"):
        await rot.get_position()


async def test_rigctld_dummy_tunes_and_reads_strength() -> None:
    binary = require_binary("rigctld", "libhamlib-utils")
    port = free_port()
    with daemon([binary, "-m", "1", "-T", "127.0.0.1", "-t", str(port)], port):
        radio = RigctldRadio("127.0.0.1", port, timeout_s=3.0)
        await radio.connect()
        try:
            for hz in (437_000_000.0, 437_009_876.0, 145_800_000.0):
                await radio.set_frequency(hz)
                assert await radio.get_frequency() == hz
            strength = await radio.strength_db()
            assert -60.0 < strength < 60.0
            assert await radio.snr_db() == pytest.approx(strength + 54.0, abs=20.0)
            with pytest.raises(DriverError, match=r"RPRT -1 \(EINVAL"):
                await radio._client.command("F not-a-number")
            assert await radio.get_frequency() == 145_800_000.0  # still in step after the error
        finally:
            await radio.close()


async def test_rigctld_restarted_between_commands_is_retried() -> None:
    """The daemon goes away between two commands (its end of the connection closes) and comes back on the same port:
    an idempotent command is sent again on a new connection and succeeds; a command not marked idempotent is not."""
    binary = require_binary("rigctld", "libhamlib-utils")
    port = free_port()
    argv = [binary, "-m", "1", "-T", "127.0.0.1", "-t", str(port)]
    radio = RigctldRadio("127.0.0.1", port, timeout_s=3.0)
    try:
        with daemon(argv, port):
            await radio.connect()
            await radio.set_frequency(437_000_000.0)
        with daemon(argv, port):  # a new rigctld: the old connection is closed under the client
            await radio.set_frequency(145_800_000.0)
            assert await radio.get_frequency() == 145_800_000.0
            assert radio.health().connected and radio.health().errors_total >= 1  # the closed connection counts
        with daemon(argv, port):
            assert await radio.get_frequency() == 145_000_000.0  # the dummy's power-on frequency: a new daemon
        with daemon(argv, port):
            with pytest.raises(DriverError, match="'F' failed"):
                await radio._client.command("F 144000000")  # not marked idempotent: the caller decides
            await radio.set_frequency(144_000_000.0)  # the next command finds the new connection
            assert await radio.get_frequency() == 144_000_000.0
    finally:
        await radio.close()


async def test_executor_tracks_a_pass_with_rotctld_and_rigctld(tmp_path: Path) -> None:
    """A whole pass job through the executor on the real daemons: rotator follows, radio follows Doppler."""
    rotctld = require_binary("rotctld", "libhamlib-utils")
    rigctld = require_binary("rigctld", "libhamlib-utils")
    now = datetime.now(UTC)
    (tle,) = generate_tles("iss", 1, now, seed=11)
    # Put the station right under the satellite, so it is high in the sky for the few seconds of the job.
    r, v, _ = SatelliteBatch([tle]).propagate([datetime_to_jd(now + timedelta(seconds=3))])
    r_ecef, _ = teme_to_ecef(r, v, datetime_to_jd(now + timedelta(seconds=3)))
    lat, lon, _alt = ecef_to_geodetic(r_ecef[0, 0])
    site = GeoLocation(float(lat), float(lon) if float(lon) >= -180 else float(lon) + 360.0, 0.0)
    rot_port, rig_port = free_port(), free_port()
    with (
        daemon([rotctld, "-m", "1", "-T", "127.0.0.1", "-t", str(rot_port)], rot_port),
        daemon([rigctld, "-m", "1", "-T", "127.0.0.1", "-t", str(rig_port)], rig_port),
    ):
        config = AgentConfig(
            station_id="gs-hamlib",
            state_dir=tmp_path,
            location=site,
            tracking_interval_s=0.5,
            limits=HardwareLimits(azimuth_min_deg=-180.0, azimuth_max_deg=450.0),
            drivers=DriversConfig(
                rotator=DriverConfig(kind="rotctld", port=rot_port, timeout_s=3.0),
                radio=DriverConfig(kind="rigctld", port=rig_port, timeout_s=3.0),
            ),
        )
        clock = SystemClock()
        drivers = build_drivers(config, clock)
        await drivers.connect()
        store = Store(config.database_path)
        store.begin_boot("b", now)
        target = common_pb2.Target(
            target_id="sat",
            priority=5,
            satellite=common_pb2.SatelliteTarget(
                norad_id=tle.norad_id, tle_line1=tle.line1, tle_line2=tle.line2, downlink_frequency_hz=437.5e6
            ),
        )
        job = agent_pb2.ScheduledJob(
            job_id="p",
            target=target,
            start=timestamp_from_datetime(now + timedelta(seconds=1)),
            end=timestamp_from_datetime(now + timedelta(seconds=5)),
        )
        store.replace_schedule(1, [job], "b", now)
        executor = Executor(config, AsyncStore(store), drivers, clock, "b")
        task = asyncio.create_task(executor.run())
        try:
            for _ in range(100):
                done = store.job("p")
                if done is not None and done.state.terminal:
                    break
                await asyncio.sleep(0.1)
            assert done is not None and done.state == JobState.SUCCEEDED, done
            assert drivers.rotator is not None and drivers.radio is not None
            _az, el = await drivers.rotator.get_position()
            assert el > 1.0  # it moved up toward the satellite (from park at el 0)
            tuned = await drivers.radio.get_frequency()
            assert tuned != 437.5e6 and abs(tuned - 437.5e6) < 12_000  # Doppler-corrected
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await drivers.close()
    (obs,) = [m.observation for m in store.pending("b", 0, 1000) if m.WhichOneof("body") == "observation"]
    store.close()
    assert obs.pass_quality.max_elevation_deg > 60.0
    assert obs.pass_quality.doppler_residual_hz < 1.0
