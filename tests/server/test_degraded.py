"""DEGRADED: a connected station whose agent reports a failing device gets no new work; it recovers by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.model import StationKind, StationState, work_blocked_by
from skymesh.server import RunningServer
from skymesh.server.planning import plannable_station
from tests.server.agent_client import AgentClient, ts
from tests.server.conftest import StartServer, add_station


async def _wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _beat(rotator_connected: bool, radio_errors: int = 0) -> agent_pb2.ConnectRequest:
    devices = [
        agent_pb2.DeviceHealth(role="rotator", driver="rotctld", connected=rotator_connected, errors_total=3),
        agent_pb2.DeviceHealth(role="radio", driver="rigctld", connected=True, consecutive_errors=radio_errors),
    ]
    return agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat(agent_time=ts(datetime.now(UTC)), devices=devices))


async def test_failing_device_degrades_the_station_and_recovery_restores_it(start_server: StartServer) -> None:
    server = await start_server(heartbeat_interval_s=0.2, stale_after_intervals=20)
    key = await add_station(server, "gs1")

    async def state_is(state: StationState) -> bool:
        return (await server.repo.get_station("gs1")).station.state == state

    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")
        assert await state_is(StationState.ONLINE)
        await agent.send(_beat(rotator_connected=False))
        await _wait_for(lambda: state_is(StationState.DEGRADED))
        assert server.liveness.failing_devices("gs1") == ("rotator",)
        assert not StationState.DEGRADED.schedulable  # the scheduler gives it no new work
        await agent.send(_beat(rotator_connected=True, radio_errors=1))  # one error in a row is not a failure
        await _wait_for(lambda: _failing_is(server, ()))
        await _wait_for(lambda: state_is(StationState.ONLINE))  # the row is written just after the report
        await agent.send(_beat(rotator_connected=True, radio_errors=3))
        await _wait_for(lambda: _failing_is(server, ("radio",)))
        await _wait_for(lambda: state_is(StationState.DEGRADED))
        await agent.send(_beat(rotator_connected=True))
        await _wait_for(lambda: state_is(StationState.ONLINE))
        # A heartbeat that changes nothing writes nothing.
        changed_at = (await server.repo.get_station("gs1")).state_changed_at
        await agent.send(_beat(rotator_connected=True))
        await asyncio.sleep(0.2)
        assert (await server.repo.get_station("gs1")).state_changed_at == changed_at


async def _failing_is(server: RunningServer, roles: tuple[str, ...]) -> bool:
    return bool(server.liveness.failing_devices("gs1") == roles)


def _devices_beat(**connected: bool) -> agent_pb2.ConnectRequest:
    devices = [agent_pb2.DeviceHealth(role=role, driver=role, connected=ok) for role, ok in connected.items()]
    return agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat(agent_time=ts(datetime.now(UTC)), devices=devices))


async def test_only_the_failed_capability_is_unschedulable(start_server: StartServer) -> None:
    """A ground station with an extra all-sky camera: the camera down leaves its passes schedulable (the planner
    sees it ONLINE); the radio down takes them away; a telescope's mount or camera likewise."""
    server = await start_server(heartbeat_interval_s=0.2, stale_after_intervals=20)
    key = await add_station(server, "gs1")

    async def planned_as() -> StationState | None:
        station = (await server.repo.get_station("gs1")).station
        seen = plannable_station(station, server.liveness.failing_devices("gs1"))
        return None if seen is None else seen.state

    async def degraded() -> bool:
        return (await server.repo.get_station("gs1")).station.state == StationState.DEGRADED

    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")
        assert await planned_as() == StationState.ONLINE
        await agent.send(_devices_beat(rotator=True, radio=True, camera=False))
        await _wait_for(degraded)
        assert server.liveness.failing_devices("gs1") == ("camera",)
        assert await planned_as() == StationState.ONLINE  # DEGRADED on the dashboard, still given passes
        await agent.send(_devices_beat(rotator=True, radio=False, camera=False))
        await _wait_for(lambda: _failing_is(server, ("camera", "radio")))
        assert await degraded()
        assert await planned_as() is None  # radio down: no passes
        await agent.send(_devices_beat(rotator=True, radio=True, camera=True))
        await _wait_for(lambda: _failing_is(server, ()))
        await _wait_for(lambda: planned_as_online(planned_as))
    assert work_blocked_by(StationKind.TELESCOPE, ["camera", "focuser"]) == ("camera",)
    assert work_blocked_by(StationKind.TELESCOPE, ["focuser"]) == ()
    assert work_blocked_by(StationKind.GROUND_STATION, ["camera", "rotator"]) == ("rotator",)


async def planned_as_online(planned_as: Callable[[], Awaitable[StationState | None]]) -> bool:
    return await planned_as() == StationState.ONLINE
