"""A database outage reaches clients as UNAVAILABLE with retry advice, never UNKNOWN with the driver's text; the
stream resumes from the server's cursor once the database is back and nothing acked is lost (real server, real
PostgreSQL whose database stops accepting connections and has its backends terminated)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import grpc
import pytest
from sqlalchemy import text

from skymesh.agent.config import config_from_mapping
from skymesh.agent.runtime import Agent
from skymesh.agent.store import Store
from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.observability.metrics import AgentMetrics
from skymesh.server.db.records import Role
from tests.server.agent_client import AgentClient
from tests.server.conftest import PG_DSN, Fleet, StartServer, add_station


def _reconnects(reason: str) -> float:
    """The agent's reconnects for `reason` so far (the agents of this test run in this process)."""
    value: float = AgentMetrics.current().reconnects.labels(reason=reason)._value.get()
    return value


_INTERNALS = ("sqlalchemy", "asyncpg", "SQL", "Traceback", "terminat", "accepting")


async def _outage(db_url: str, *, down: bool) -> None:
    name = db_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if down else "true"}')
        if down:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
    finally:
        await admin.close()


def _assert_unavailable(err: grpc.aio.AioRpcError) -> None:
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    for word in _INTERNALS:
        assert word not in (err.details() or ""), err.details()
    assert float(dict(err.trailing_metadata() or ())["skymesh-error-retry-after-s"]) > 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_database_outage_is_unavailable_and_the_stream_resumes(fleet: Fleet, db_url: str) -> None:
    repo = fleet.server.repo
    await repo.create_user("outage-admin", Role.ADMIN)
    admin = (("authorization", f"Bearer {await repo.issue_user_token('outage-admin')}"),)
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        await agent.telemetry(1)
        assert (await agent.expect("upstream_ack")).committed_seq == 1
        await _outage(db_url, down=True)
        try:
            await agent.telemetry(2)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await agent.expect("upstream_ack")
            _assert_unavailable(info.value)
            async with grpc.aio.insecure_channel(fleet.address) as channel:
                stub = stations_pb2_grpc.StationServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as listed:
                    await stub.ListStations(stations_pb2.ListStationsRequest(), metadata=admin)
                _assert_unavailable(listed.value)
        finally:
            await _outage(db_url, down=False)
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", boot_id=agent.boot_id) as again:
        welcome = await again.expect("welcome")
        assert {r.boot_id: r.committed_seq for r in welcome.resume}[agent.boot_id] == 1
        await again.telemetry(2)
        assert (await again.expect("upstream_ack")).committed_seq == 2
    assert await repo.count_telemetry("gs1") == 2


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_real_agent_backs_off_through_an_outage_and_loses_nothing(
    start_server: StartServer, db_url: str, tmp_path: Path
) -> None:
    server = await start_server(telemetry_batch_interval_s=0.2, heartbeat_interval_s=1.0)
    key = await add_station(server, "gs1")
    config = config_from_mapping(
        {
            "station_id": "gs1",
            "server_address": server.address,
            "api_key": key,
            "state_dir": str(tmp_path / "agent"),
            "location": {"latitude_deg": 52.0, "longitude_deg": 4.4, "altitude_m": 10.0},
            "bands": ["UHF"],
            "telemetry_rate_hz": 20.0,
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
        }
    )
    config.state_dir.mkdir(parents=True)
    unknown_before = _reconnects("unknown")
    unavailable_before = _reconnects("unavailable")
    agent = Agent(config)
    task = asyncio.create_task(agent.run())
    try:
        for _ in range(100):
            if await server.repo.count_telemetry("gs1") >= 3:
                break
            await asyncio.sleep(0.1)
        await _outage(db_url, down=True)
        await asyncio.sleep(3.0)
        await _outage(db_url, down=False)
        probe = Store(config.database_path)
        try:
            for _ in range(200):  # the spool drains once the database is back
                await asyncio.sleep(0.1)
                if probe.outbox_depth() == 0 and _reconnects("unavailable") > 0:
                    break
            assert probe.outbox_depth() <= 2  # at most what was spooled in the last instant
            assert probe.rejected() == []
        finally:
            probe.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert _reconnects("unavailable") > unavailable_before
    assert _reconnects("unknown") == unknown_before
    async with server.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT boot_id, seq FROM telemetry ORDER BY boot_id, seq"))).all()
    seqs = [seq for _boot, seq in rows]
    assert len({boot for boot, _ in rows}) == 1
    assert seqs == list(range(1, len(seqs) + 1))  # contiguous: nothing acked was lost, nothing stored twice
