"""Fixtures for the gateway: a real control server (control auth on) on SQLite and PostgreSQL, a real scheduler,
and `skymesh web` served by uvicorn on a loopback port, all in-process over real gRPC and real HTTP. Users, their
passwords and tokens are made through the server's repository, as an admin's tooling would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
import uvicorn

from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, TimeWindow
from skymesh.scheduler.service import start_server as start_scheduler
from skymesh.server import RunningServer, serve
from skymesh.server.db.records import PlannedJob, Role
from skymesh.web import WebConfig, create_app
from tests.server.conftest import ISS_LINE1, ISS_LINE2, db_url, test_config  # noqa: F401  (db_url: a fixture)

PASSWORD = "correct-horse-battery"
ROLES = {"ada": Role.ADMIN, "otto": Role.OPERATOR, "olga": Role.OBSERVER}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Web:
    server: RunningServer
    base_url: str
    tokens: dict[str, str] = field(default_factory=dict)  # user -> personal token
    keys: dict[str, str] = field(default_factory=dict)  # station -> agent api key

    def http(self, user: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=20.0)

    async def plan_jobs(self, station_id: str, target_id: str, *starts_in_s: float) -> list[str]:
        """Jobs for `target_id` at `station_id` starting at these offsets from now (the planner's repository path)."""
        repo = self.server.repo
        now = datetime.now(UTC)
        windows = [TimeWindow(now + timedelta(seconds=s), now + timedelta(seconds=s + 300)) for s in starts_in_s]
        await repo.apply_plan([station_id], [PlannedJob(station_id, target_id, w) for w in windows])
        jobs = await repo.list_jobs(station_id=station_id)
        return [j.job_id for j in sorted(jobs, key=lambda j: j.window.start) if j.target_id == target_id]


async def start_gateway(config: WebConfig) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
            ssl_certfile=config.tls_cert_file or None,  # as skymesh.web.serve does
            ssl_keyfile=config.tls_key_file or None,
        )
    )
    task = asyncio.create_task(server.serve(), name="gateway")
    for _ in range(200):
        if server.started:
            break
        if task.done():
            await task
        await asyncio.sleep(0.05)
    else:
        raise TimeoutError("gateway did not start")
    return server, task


@pytest.fixture
async def web(db_url: str, tmp_path: Path) -> AsyncIterator[Web]:  # noqa: F811
    async with web_system(db_url, tmp_path) as w:
        yield w


@contextlib.asynccontextmanager
async def web_system(db_url: str, tmp_path: Path) -> AsyncIterator[Web]:  # noqa: F811
    scheduler, sched_port = await start_scheduler("127.0.0.1:0")
    running = await serve(
        test_config(
            db_url,
            tmp_path / "data",
            control_auth=True,
            scheduler_address=f"127.0.0.1:{sched_port}",
            heartbeat_interval_s=2.0,
            offline_grace_s=30.0,
        )
    )
    gateway = None
    try:
        repo = running.repo
        w = Web(running, "")
        for user, role in ROLES.items():
            await repo.create_user(user, role)
            await repo.set_password(user, PASSWORD)
            w.tokens[user] = await repo.issue_user_token(user)
        sites = {
            "gs-athens": (37.97, 23.72, StationKind.GROUND_STATION),
            "tel-paranal": (-24.63, -70.40, StationKind.TELESCOPE),
        }
        for station_id, (lat, lon, kind) in sites.items():
            telescope = kind == StationKind.TELESCOPE
            await repo.create_station(
                Station(
                    station_id,
                    station_id.upper(),
                    kind,
                    GeoLocation(lat, lon, 100.0),
                    bands=() if telescope else ("UHF",),
                    filters=("V",) if telescope else (),
                    aperture_m=0.4 if telescope else 0.0,
                )
            )
            w.keys[station_id] = (await repo.issue_station_key(station_id)).api_key
        await repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27, priority=7))
        port = free_port()
        config = WebConfig(
            listen=f"127.0.0.1:{port}",
            server_address=running.address,
            scheduler_address=f"127.0.0.1:{sched_port}",
            max_body_bytes=64 * 1024,
        )
        gateway = await start_gateway(config)
        w.base_url = f"http://127.0.0.1:{port}"
        yield w
    finally:
        if gateway is not None:
            gateway[0].should_exit = True
            await gateway[1]
        await running.stop(grace_s=0.1)
        await scheduler.stop(0.1)


async def login(client: httpx.AsyncClient, user: str) -> str:
    """Password login through the gateway; returns the CSRF token (the cookie stays in the client)."""
    resp = await client.post("/api/v1/login", json={"username": user, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    csrf: str = resp.json()["csrf_token"]
    return csrf


__all__ = ["ISS_LINE1", "ISS_LINE2", "PASSWORD", "ROLES", "Web", "free_port", "grpc", "login", "start_gateway"]
