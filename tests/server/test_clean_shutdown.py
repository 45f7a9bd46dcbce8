"""Agents that leave while the server is pushing to them, and a server that stops while pushing, leave no traceback
in the server's log (issue 7: ExecuteBatchError from the stream writer at the end of every demo). Real server,
real gRPC, raw clients; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

import pytest

from skymesh.api.agent.v1 import agent_pb2
from tests.server.agent_client import AgentClient
from tests.server.conftest import Fleet, StartServer, add_station


def _big_schedule(version: int) -> agent_pb2.ConnectResponse:
    schedule = agent_pb2.Schedule(version=version)
    for i in range(3000):
        schedule.jobs.add(job_id=f"job-{version}-{i:05d}", filter="V", exposure_s=30.0)
    return agent_pb2.ConnectResponse(schedule=schedule)


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info is not None or "Traceback" in r.getMessage() or "Unexpected" in r.getMessage()
    ]


async def test_agents_leaving_mid_push_and_shutdown_mid_push_log_no_traceback(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server()
    fleet = Fleet(server, {s: await add_station(server, s) for s in ("gs1", "gs2", "gs3", "gs4")})
    caplog.set_level(logging.DEBUG)
    # Two agents read one message of a large push and hang up while the server is still writing to them.
    for station in ("gs1", "gs2"):
        async with AgentClient.connect(fleet.address, fleet.keys[station], station) as agent:
            await agent.expect("welcome")
            session = server.hub.get(station)
            assert session is not None
            for version in range(1, 40):
                session.push(_big_schedule(version))
            await agent.recv()
        # leaving the block cancels the call mid-push
    # Two more are mid-push when the server stops.
    agents = []
    for station in ("gs3", "gs4"):
        context = AgentClient.connect(fleet.address, fleet.keys[station], station)
        agent = await context.__aenter__()
        await agent.expect("welcome")
        session = server.hub.get(station)
        assert session is not None
        for version in range(1, 40):
            session.push(_big_schedule(version))
        agents.append((context, agent))
    await asyncio.sleep(0.2)
    for _context, agent in agents:
        agent.call.cancel()
    await server.stop(grace_s=0.5)
    for context, _agent in agents:
        await context.__aexit__(None, None, None)
    for _ in range(20):  # let grpc finish tearing the calls down
        await asyncio.sleep(0.05)
    assert _tracebacks(caplog) == []
    assert not server.hub.sessions()
