"""A planned pass flown on the real `rotctld -m 1` (Hamlib's dummy rotator, 6 deg/s of wall time), judged against
Skyfield by a second client that polls the daemon on its own connection.

The daemon is started with `-C min_az=0,max_az=360,max_el=180` (a 360-degree rotator with a 180-degree elevation
axis) while the agent's config allows -180..450: the agent must read the daemon's limits, plan inside them (flip
mode for this north-crossing pass) and never send a position the daemon refuses. The sky runs twice as fast as the
wall clock (`ScaledClock`), so the agent is told the rotator does 3 deg/s (the pass needs 1.8).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
from skymesh.agent.drivers import build_drivers
from skymesh.agent.drivers.rotctld import RotctldRotator
from skymesh.agent.observing import JobContext, perform_job, preposition
from skymesh.agent.runtime import capabilities_of
from skymesh.core.clock import ScaledClock
from tests.agent.daemons import daemon, free_port, require_binary
from tests.agent.passes import SkyfieldTruth, find_pass, separation_deg
from tests.agent.test_pass_planning import pass_job

SPEEDUP = 2.0
DUMMY_RATE_DEG_S = 6.0


async def _poll(rotator: RotctldRotator, clock: list[ScaledClock], out: list[tuple[datetime, float, float]]) -> None:
    while True:
        az, el = await rotator.get_position()
        if len(clock) > 1:  # only once the pass's own clock runs
            out.append((clock[-1].now(), az, el))
        await asyncio.sleep(0.1)


async def _until_still(rotator: RotctldRotator) -> None:
    last = await rotator.get_position()
    for _ in range(400):
        await asyncio.sleep(0.2)
        now = await rotator.get_position()
        if now == last:
            return
        last = now
    raise AssertionError(f"rotctld still moving after 80 s at {last}")


async def test_north_crossing_pass_on_rotctld_flips_inside_the_daemons_limits(tmp_path: Path) -> None:
    binary = require_binary("rotctld", "libhamlib-utils")
    rig = require_binary("rigctld", "libhamlib-utils")
    p = find_pass(60.0)
    start, end = p.window(30.0, 30.0)  # the minute around the north crossing
    rot_port, rig_port = free_port(), free_port()
    conf = "min_az=0,max_az=360,min_el=0,max_el=180"
    with (
        daemon([binary, "-m", "1", "-T", "127.0.0.1", "-t", str(rot_port), "-C", conf], rot_port),
        daemon([rig, "-m", "1", "-T", "127.0.0.1", "-t", str(rig_port)], rig_port),
    ):
        clock = ScaledClock(start - timedelta(seconds=2.0), SPEEDUP)
        config = AgentConfig(
            station_id="gs-rotctld",
            state_dir=tmp_path,
            location=p.site,
            tracking_interval_s=0.5,
            limits=HardwareLimits(
                azimuth_min_deg=-180.0,
                azimuth_max_deg=450.0,
                elevation_max_deg=180.0,
                slew_rate_deg_s=DUMMY_RATE_DEG_S / SPEEDUP,
            ),
            drivers=DriversConfig(
                rotator=DriverConfig(kind="rotctld", port=rot_port, timeout_s=3.0),
                radio=DriverConfig(kind="rigctld", port=rig_port, timeout_s=3.0),
            ),
        )
        drivers = build_drivers(config, clock)
        await drivers.connect()
        # Hello tells the server what the station can really do: the config narrowed to the daemon's travel.
        caps = capabilities_of(config, drivers)
        assert (caps.azimuth_min_deg, caps.azimuth_max_deg, caps.max_elevation_deg) == (0.0, 360.0, 180.0)
        observer = RotctldRotator("127.0.0.1", rot_port, timeout_s=3.0)
        samples: list[tuple[datetime, float, float]] = []
        clocks = [clock]
        poller = asyncio.create_task(_poll(observer, clocks, samples))
        try:
            job = pass_job(p, start, end)
            await preposition(job, JobContext(config, drivers, clock, {}, {}))
            await _until_still(observer)  # the dummy slews in wall time; start the sky once it has arrived
            clock = ScaledClock(start - timedelta(seconds=1.0), SPEEDUP)
            clocks.append(clock)
            record = await perform_job(job, JobContext(config, drivers, clock, {}, {}))
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await observer.close()
            await drivers.close()
    q = record.pass_quality
    assert q.track_mode == "flip"
    assert q.hardware_faults == 0 and "HARDWARE_FAULT_DURING_PASS" not in record.quality_flags
    assert "CLIPPED" not in record.quality_flags
    during = [(t, az, el) for t, az, el in samples if start <= t <= end]
    assert len(during) > 150
    times = [t for t, _, _ in during]
    az, el = np.array([(a, e) for _, a, e in during]).T
    assert az.min() >= 0.0 and az.max() <= 360.0 and el.max() > 90.0  # inside the daemon's travel, flipped
    sky_az, sky_el = SkyfieldTruth(p).altaz_deg(times)
    error = separation_deg(az, el, sky_az, sky_el)
    assert float((error < 1.0).mean()) >= 0.99, np.percentile(error, [50, 95, 99, 100])
    assert q.pointing_error_p95_deg < 1.0 and q.tracked_s > 55.0, q
