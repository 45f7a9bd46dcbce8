"""Fixtures for server tests: a database per test on SQLite AND PostgreSQL, in-process servers on loopback port 0.

PostgreSQL is required (127.0.0.1:5432, user postgres, trust auth; override with SKYMESH_TEST_PG): when it is not
reachable the PostgreSQL half of the tests fails, it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server import RunningServer, ServerConfig, serve

PG_DSN = os.environ.get("SKYMESH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

ISS_LINE1 = "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927"
ISS_LINE2 = "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537"


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'skymesh.sqlite3'}"
        return
    name = f"skymesh_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_DSN)  # fails (not skips) when PostgreSQL is down
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def test_config(db_url: str, data_dir: Path, **overrides: Any) -> ServerConfig:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "database_url": db_url,
        "data_dir": str(data_dir),
        "planning_enabled": False,
        "heartbeat_interval_s": 10.0,
        "offline_grace_s": 120.0,
        "shutdown_grace_s": 0.5,
        "drain_retry_after_s": 0.1,
        "scheduler_address": "127.0.0.1:9",
        # Tests of other features call the control API anonymously; tests/server/test_security.py proves the
        # production default (authentication on, first admin's token in an owner-only file).
        "control_auth": False,
        # Data products spawn worker processes: only the tests about them turn them on.
        "reduction_workers": 0,
    }
    values.update(overrides)
    return ServerConfig(**values)


test_config.__test__ = False  # type: ignore[attr-defined]

StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(db_url: str, tmp_path: Path) -> AsyncIterator[StartServer]:
    """start_server(**config_overrides) -> a running server on this test's database; all stopped at teardown."""
    started: list[RunningServer] = []

    async def _start(**overrides: Any) -> RunningServer:
        data_dir = Path(overrides.pop("data_dir", tmp_path / "data"))  # replicas may each have their own
        running = await serve(test_config(db_url, data_dir, **overrides))
        started.append(running)
        return running

    yield _start
    for running in reversed(started):
        await running.stop(grace_s=0.1)


@dataclass
class Fleet:
    server: RunningServer
    keys: dict[str, str]  # station_id -> api key

    @property
    def address(self) -> str:
        return self.server.address


async def add_station(server: RunningServer, station_id: str, kind: StationKind = StationKind.GROUND_STATION) -> str:
    await server.repo.create_station(
        Station(station_id, station_id.upper(), kind, GeoLocation(52.0, 4.4, 10.0), bands=("UHF",))
    )
    return (await server.repo.issue_station_key(station_id)).api_key


@pytest.fixture
async def fleet(start_server: StartServer) -> Fleet:
    server = await start_server()
    return Fleet(server, {s: await add_station(server, s) for s in ("gs1", "gs2")})
