"""A ground station's agent never loads numpy or prometheus_client: importing everything `skymesh agent` loads and
flying a short simulated pass (planned, pre-positioned, tracked with Doppler, parked) in a fresh interpreter leaves
neither in `sys.modules`. They are 15 MB and 5 MB of the agent's 40 MB budget on a Raspberry Pi
(benchmarks/agent_footprint.py); this keeps a stray import from bringing them back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.agent.passes import find_pass

ROOT = Path(__file__).resolve().parents[2]

_FLY = """
import asyncio, json, sys
from datetime import datetime, timedelta
from pathlib import Path

import skymesh.agent.runtime  # everything `skymesh agent` loads before it connects
import skymesh.agent.drivers.rotctld, skymesh.agent.drivers.rigctld  # the real ground-station drivers
from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
from skymesh.agent.drivers import build_drivers
from skymesh.agent.observing import JobContext, perform_job, preposition
from skymesh.agent.store import LocalJob
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.clock import ManualClock
from skymesh.core.jobs import JobState
from skymesh.core.model import GeoLocation

spec = json.loads(sys.argv[1])
start, end = datetime.fromisoformat(spec["start"]), datetime.fromisoformat(spec["end"])


async def main():
    config = AgentConfig(
        station_id="gs-lean",
        state_dir=Path(spec["state_dir"]),
        location=GeoLocation(*spec["site"]),
        limits=HardwareLimits(azimuth_max_deg=450.0, elevation_max_deg=180.0, slew_rate_deg_s=6.0),
        drivers=DriversConfig(rotator=DriverConfig(kind="simulated"), radio=DriverConfig(kind="simulated")),
    )
    target = common_pb2.Target(
        target_id="sat",
        name="SAT",
        priority=5,
        satellite=common_pb2.SatelliteTarget(norad_id=1, tle_line1=spec["tle"][0], tle_line2=spec["tle"][1]),
    )
    msg = agent_pb2.ScheduledJob(
        job_id="p", target=target, start=timestamp_from_datetime(start), end=timestamp_from_datetime(end)
    )
    job = LocalJob("p", msg, start, end, JobState.RUNNING, True, "b")
    clock = ManualClock(start - timedelta(seconds=60))
    drivers = build_drivers(config, clock)
    ctx = JobContext(config, drivers, clock, {}, {})
    await preposition(job, ctx)
    clock.advance(60.0)
    task = asyncio.create_task(perform_job(job, ctx))
    while not task.done():
        clock.advance(1.0)
        await asyncio.sleep(0)
    q = task.result().pass_quality
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"numpy", "prometheus_client", "skyfield", "astropy"})
    summary = {"mode": q.track_mode, "tracked_s": q.tracked_s, "p95": q.pointing_error_p95_deg}
    print(json.dumps({"loaded": loaded, **summary}))


asyncio.run(main())
"""


def test_a_tracked_simulated_pass_loads_no_numpy(tmp_path: Path) -> None:
    p = find_pass(89.5)  # overhead: flips at the culmination, the planner's whole path
    start, end = p.window(40.0, 40.0)
    spec = {
        "tle": [p.tle.line1, p.tle.line2],
        "site": [p.site.latitude_deg, p.site.longitude_deg, p.site.altitude_m],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "state_dir": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", _FLY, json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [], result
    assert result["mode"] == "flip_after_tca" and result["tracked_s"] > 70.0, result  # it really flew the pass
    assert result["p95"] < 1.0, result
