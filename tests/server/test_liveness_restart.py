"""Liveness transitions (rule 9), Drain on shutdown (rule 10), and a server killed and restarted mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.model import StationState
from skymesh.server import RunningServer
from tests.server.agent_client import AgentClient
from tests.server.conftest import StartServer, add_station


async def _wait_for(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():  # type: ignore[misc]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _state(server: RunningServer, station_id: str) -> StationState:
    return (await server.repo.get_station(station_id)).station.state


async def test_liveness_transitions_written_on_change_only(start_server: StartServer) -> None:
    server = await start_server(heartbeat_interval_s=0.2, stale_after_intervals=2, offline_grace_s=0.6)
    key = await add_station(server, "gs1")
    seen_before = (await server.repo.get_station("gs1")).state_changed_at
    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")
        assert await _state(server, "gs1") == StationState.ONLINE
        changed_at = (await server.repo.get_station("gs1")).state_changed_at
        assert changed_at > seen_before
        # Heartbeats keep it ONLINE without touching the row.
        for _ in range(4):
            await agent.heartbeat()
            await asyncio.sleep(0.1)
        assert (await server.repo.get_station("gs1")).state_changed_at == changed_at
        # Silence: STALE after 2 intervals; any message brings it back.
        await _wait_for(lambda: _is(server, StationState.STALE))
        await agent.heartbeat()
        await _wait_for(lambda: _is(server, StationState.ONLINE))
    await _wait_for(lambda: _is(server, StationState.DISCONNECTED))
    await _wait_for(lambda: _is(server, StationState.OFFLINE))


async def _is(server: RunningServer, state: StationState) -> bool:
    return await _state(server, "gs1") == state


async def test_shutdown_drains_agents(start_server: StartServer) -> None:
    server = await start_server()
    key = await add_station(server, "gs1")
    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")
        stop = asyncio.create_task(server.stop(grace_s=1.0))
        drain = await agent.expect("drain")
        assert drain.retry_after.ToMilliseconds() == 100
        code, _ = await agent.status()
        assert code == grpc.StatusCode.OK
        await stop


async def test_restart_mid_stream_loses_nothing_acked_and_sends_no_command_twice(start_server: StartServer) -> None:
    first = await start_server()
    key = await add_station(first, "gs1")
    command = await first.dispatcher.send_command("gs1", agent_pb2.Command(stow=agent_pb2.Stow()), ttl_s=3600)
    acked = 0
    async with AgentClient.connect(first.address, key, "gs1") as agent:
        await agent.expect("welcome")
        got = await agent.expect("command")
        assert got.command_id == command.command_id
        await agent.command_update(got, agent_pb2.COMMAND_STATE_RECEIVED)
        for seq in range(1, 6):
            await agent.telemetry(seq)
        for _ in range(5):
            acked = (await agent.expect("upstream_ack")).committed_seq
        boot = agent.boot_id
        # Kill the server under the open stream: no drain wait, in-flight RPCs cancelled.
        await first.server.stop(None)
        code, _ = await agent.status()
        assert code != grpc.StatusCode.OK
    await first.stop(grace_s=0)
    second = await start_server(listen="127.0.0.1:0")
    assert await _state(second, "gs1") == StationState.DISCONNECTED
    second_command = await second.dispatcher.send_command(
        "gs1", agent_pb2.Command(point=agent_pb2.Point(azimuth_deg=1, elevation_deg=2)), ttl_s=3600
    )
    async with AgentClient.connect(second.address, key, "gs1", boot_id=boot, last_command_seq=got.seq) as agent:
        welcome = await agent.expect("welcome")
        assert {r.boot_id: r.committed_seq for r in welcome.resume} == {boot: acked}
        # Only the new command arrives; the one stored before the restart is not sent as new again.
        fresh = await agent.expect("command")
        assert fresh.command_id == second_command.command_id
        assert fresh.seq == got.seq + 1
        await agent.telemetry(acked)  # re-sent after the cut: a duplicate
        assert (await agent.expect("upstream_ack")).committed_seq == acked
        await agent.telemetry(acked + 1)
        assert (await agent.expect("upstream_ack")).committed_seq == acked + 1
    assert await second.repo.count_telemetry("gs1") == acked + 1
