"""The real station agent end to end in one process: its simulated telescope (mount + camera rendering the star field
of the reference catalogue, with the headers a real driver writes) runs a job, the agent uploads the frame over the
upload RPC, and the server's worker calibrates it (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from skymesh.agent.config import config_from_mapping
from skymesh.agent.runtime import Agent
from skymesh.astro.celestial import hour_angle_h
from skymesh.astro.frames import datetime_to_jd
from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, TimeWindow
from skymesh.products.catalog import _shipped_path
from skymesh.server.db.products import CAUSE_BAD_DATA
from skymesh.server.db.records import PlannedJob
from tests.server.conftest import StartServer

TARGET = "sm-field-a-target"
RA_DEG, DEC_DEG = 150.0, 20.0


def _site_with_field_on_meridian(now: datetime) -> GeoLocation:
    """A site where the field transits now, at zenith distance 0 (the agent refuses targets below its limits)."""
    ha_at_greenwich_h = float(hour_angle_h([RA_DEG], [DEC_DEG], [0.0], [datetime_to_jd(now)])[0, 0, 0])
    longitude = (-15.0 * ha_at_greenwich_h + 180.0) % 360.0 - 180.0
    return GeoLocation(DEC_DEG, longitude, 100.0)


async def test_agent_frames_are_calibrated_by_the_server(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server(reduction_workers=1)
    assert server.reducer is not None
    now = datetime.now(UTC)
    site = _site_with_field_on_meridian(now)
    await server.repo.create_station(
        Station("tel1", "TEL1", StationKind.TELESCOPE, site, filters=("V",), aperture_m=1.0)
    )
    key = (await server.repo.issue_station_key("tel1")).api_key
    await server.repo.create_target(CelestialTarget(TARGET, "Field A", RA_DEG, DEC_DEG, magnitude=13.0))
    window = TimeWindow(now + timedelta(seconds=3), now + timedelta(seconds=120))
    await server.repo.apply_plan(
        ["tel1"], [PlannedJob("tel1", TARGET, window, filter="V", exposure_s=2.0, exposure_count=1)]
    )
    (job,) = await server.repo.list_jobs(station_id="tel1")
    config = config_from_mapping(
        {
            "station_id": "tel1",
            "server_address": server.address,
            "api_key": key,
            "state_dir": str(tmp_path / "agent"),
            "kind": "telescope",
            "location": {"latitude_deg": site.latitude_deg, "longitude_deg": site.longitude_deg, "altitude_m": 100.0},
            "filters": ["V"],
            "aperture_m": 1.0,
            "limits": {"slew_rate_deg_s": 90.0},
            "drivers": {"camera": {"kind": "simulated", "params": {"star_catalogue": str(_shipped_path())}}},
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
            "seed": 5,
        }
    )
    config.state_dir.mkdir(parents=True)
    agent = asyncio.create_task(Agent(config).run())
    try:
        reduction = None
        for _ in range(600):
            observations = await server.repo.list_observations(target_id=TARGET)
            if observations and observations[0].reduction is not None:
                reduction = observations[0].reduction
                break
            assert not agent.done(), agent
            await asyncio.sleep(0.2)
    finally:
        agent.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await agent
    assert reduction is not None, "no reduced observation within 120 s"
    assert reduction.state == "good", reduction
    assert reduction.filter == "V" and reduction.quality_flags == ()
    assert reduction.magnitude == pytest.approx(13.0, abs=0.05)
    assert reduction.wcs_rms_arcsec is not None and reduction.wcs_rms_arcsec < 0.5
    done = await server.repo.get_job(job.job_id)
    assert done.state == JobState.SUCCEEDED and done.cause != CAUSE_BAD_DATA
