"""Fixtures for the agent's tests: the protocol double on loopback, configs in tmp dirs, schedule builders."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from skymesh.agent.config import AgentConfig, DriverConfig, DriversConfig, HardwareLimits
from skymesh.agent.runtime import Agent
from skymesh.agent.sidereal import altaz_of_radec
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.astro.frames import datetime_to_jd, gmst_rad
from skymesh.core.model import GeoLocation, StationKind
from tests.agent.fake_server import FakeAgentService, start_fake_server

STATION = "tel-1"
API_KEY = "smk_test_secret"
LOCATION = GeoLocation(-30.0, 20.0, 1500.0)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAgentService, int]]:
    service = FakeAgentService(STATION, API_KEY)
    server, port = await start_fake_server(service)
    try:
        yield service, port
    finally:
        await server.stop(None)


def telescope_config(state_dir: Path, port: int, **changes: Any) -> AgentConfig:
    base: dict[str, Any] = dict(
        station_id=STATION,
        server_address=f"127.0.0.1:{port}",
        api_key=API_KEY,
        state_dir=state_dir,
        kind=StationKind.TELESCOPE,
        location=LOCATION,
        telemetry_rate_hz=5.0,
        telemetry_batch_interval_s=0.5,
        heartbeat_interval_s=1.0,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
        tracking_interval_s=0.1,
        drivers=DriversConfig(
            rotator=DriverConfig(kind="none"),
            radio=DriverConfig(kind="none"),
            mount=DriverConfig(kind="simulated"),
            camera=DriverConfig(kind="simulated", params={"image_size_px": 16}),
        ),
        limits=HardwareLimits(slew_rate_deg_s=1000.0),
        filters=("V",),
        aperture_m=0.4,
        seed=1,
    )
    base.update(changes)
    return AgentConfig(**base)


def zenith_radec(location: GeoLocation, when: datetime) -> tuple[float, float]:
    lst_deg = math.degrees(float(gmst_rad(datetime_to_jd(when)))) + location.longitude_deg
    return lst_deg % 360.0, location.latitude_deg


def telescope_job(
    job_id: str, start: datetime, end: datetime, *, exposure_s: float = 0.2, count: int = 1, magnitude: float = 12.0
) -> agent_pb2.ScheduledJob:
    ra, dec = zenith_radec(LOCATION, start)
    assert altaz_of_radec(ra, dec, LOCATION, start)[0] > 85.0
    target = common_pb2.Target(
        target_id=f"t-{job_id}",
        name=f"Star {job_id}",
        priority=5,
        celestial=common_pb2.CelestialTarget(ra_deg=ra, dec_deg=dec, magnitude=magnitude, exposure_s=exposure_s),
    )
    return agent_pb2.ScheduledJob(
        job_id=job_id,
        target=target,
        start=timestamp_from_datetime(start),
        end=timestamp_from_datetime(end),
        filter="V",
        exposure_s=exposure_s,
        exposure_count=count,
        priority=5,
    )


def schedule(version: int, *jobs: agent_pb2.ScheduledJob) -> agent_pb2.ConnectResponse:
    return agent_pb2.ConnectResponse(schedule=agent_pb2.Schedule(version=version, jobs=list(jobs)))


def now_plus(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@contextlib.asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    """Run `agent` in a task for the block; cancel it (as a kill would) and wait for it at the end."""
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10.0)
        assert done, "the agent did not stop within 10 s of being cancelled"
        with contextlib.suppress(asyncio.CancelledError):
            await task
