"""rotctld / rigctld drivers against the real Hamlib daemons (dummy models, `-m 1`)."""

from __future__ import annotations

import asyncio

import pytest

from skymesh.agent.drivers.base import DriverError
from skymesh.agent.drivers.rigctld import RigctldRadio
from skymesh.agent.drivers.rotctld import RotctldRotator
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
