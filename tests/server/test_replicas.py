"""Replicas on one database (issue 8): session epochs fence every write made as a station, on SQLite and PostgreSQL;
and, on PostgreSQL, two in-process servers sharing one database: a newer Hello on one ends the older stream on the
other, a command made on the replica without the stream reaches it by NOTIFY (and by the outbox poll when the
notification is lost), the old holder never writes the station's state, only one replica plans and the other takes
the planner lock when the first stops, and a station whose replica is gone is adopted and goes OFFLINE."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.errors import Aborted, Unavailable
from skymesh.core.model import StationState
from skymesh.server.db.records import CommandStateValue, TelemetryIn
from tests.server.agent_client import AgentClient
from tests.server.conftest import StartServer, add_station

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _batch(value: float) -> TelemetryIn:
    return TelemetryIn.from_samples([{"at": AT.isoformat(), "values": {"az": value}}])


async def _hello(repo: object, station_id: str, replica: str) -> int:
    claim = await repo.record_hello(  # type: ignore[attr-defined]
        station_id, agent_version="t", capabilities={}, clock_offset_s=0.0, boot_ids=["b1"], replica=replica
    )
    return int(claim.epoch)


async def test_a_newer_hello_fences_every_write_of_the_older_epoch(start_server: StartServer) -> None:
    server = await start_server()
    repo = server.repo
    for sid in ("gs1", "gs2"):
        await add_station(server, sid)
    old = await _hello(repo, "gs1", "replica-a")
    new = await _hello(repo, "gs1", "replica-b")
    other = await _hello(repo, "gs2", "replica-a")
    assert (old, new, other) == (1, 2, 1)

    def is_fenced(exc: BaseException) -> bool:
        return isinstance(exc, Aborted) and exc.reason == "FENCED"

    with pytest.raises(Aborted) as refused:
        await repo.ingest_upstream("gs1", "b1", 1, _batch(1), epoch=old)
    assert is_fenced(refused.value)
    results = await repo.ingest_telemetry_many([("gs1", "b1", 1, _batch(1)), ("gs2", "b1", 1, _batch(2))], [old, other])
    assert is_fenced(results[0]) and not isinstance(results[1], BaseException)  # the fenced item holds nobody back
    with pytest.raises(Aborted):
        await repo.refuse_upstream("gs1", "b1", 1, "INVALID_ARGUMENT", "bad", epoch=old)
    command = await repo.enqueue_command(
        "gs1", "abort_job", b"", not_before=AT, expires_at=AT + timedelta(days=3650), priority=0
    )
    with pytest.raises(Aborted):
        await repo.apply_command_update("gs1", command.command_id, CommandStateValue.RECEIVED, 0, "", epoch=old)
    with pytest.raises(Aborted):
        await repo.record_schedule_ack("gs1", 1, "", epoch=old)
    assert not await repo.set_station_state("gs1", StationState.OFFLINE, last_seen=None, epoch=old)
    # Nothing of the old epoch was written; the holder of the new one writes as usual.
    assert await repo.get_cursors("gs1", ["b1"]) == {"b1": 0}
    assert await repo.count_telemetry("gs1") == 0
    assert (await repo.get_command(command.command_id)).state == CommandStateValue.QUEUED
    assert (await repo.ingest_upstream("gs1", "b1", 1, _batch(1), epoch=new)).committed_seq == 1
    assert await repo.apply_command_update("gs1", command.command_id, CommandStateValue.RECEIVED, 0, "", epoch=new)
    assert await repo.set_station_state("gs1", StationState.ONLINE, last_seen=None, epoch=new)


async def _eventually(probe: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL; SQLite is one process
async def test_two_replicas_share_stations_commands_liveness_and_the_planner(
    db_url: str, start_server: StartServer
) -> None:
    settings = {
        "planning_enabled": True,
        "replica_poll_s": 0.3,
        "replica_sweep_s": 0.3,
        "offline_grace_s": 1.0,
        "plan_startup_grace_s": 0.0,
    }
    a = await start_server(server_id="replica-a", **settings)
    b = await start_server(server_id="replica-b", **settings)
    assert a.replicas is not None and b.replicas is not None
    key = await add_station(a, "gs1")
    key2 = await add_station(a, "gs2")
    # One planner: the first replica holds the lock, the other refuses a Replan and passes it on.
    assert a.planner is not None and b.planner is not None
    assert a.replicas.leading and not b.replicas.leading
    with pytest.raises(Unavailable) as not_planner:
        await b.planner.plan_once("test")
    assert not_planner.value.reason == "NOT_PLANNER"

    async with AgentClient.connect(a.address, key, "gs1", boot_id="boot-1") as first:
        await first.expect("welcome")
        await first.telemetry(1)
        assert (await first.expect("upstream_ack", skip=("schedule",))).committed_seq == 1
        # The agent comes back through another replica (its old connection half-open): the newest session wins.
        async with AgentClient.connect(b.address, key, "gs1", boot_id="boot-1") as second:
            welcome = await second.expect("welcome")
            assert welcome.server_id == "replica-b"
            assert {r.boot_id: r.committed_seq for r in welcome.resume} == {"boot-1": 1}
            code, _details = await first.status()
            assert code == grpc.StatusCode.ABORTED
            # The old holder's liveness does not mark the station DISCONNECTED behind the new holder's back.
            await asyncio.sleep(0.5)
            assert (await b.repo.get_station("gs1")).station.state == StationState.ONLINE

            # A command made on the replica without the stream arrives at once (NOTIFY) ...
            sent = time.monotonic()
            await a.dispatcher.send_command("gs1", agent_pb2.Command(stow=agent_pb2.Stow()))
            command = await second.expect("command", skip=("upstream_ack", "schedule"))
            assert time.monotonic() - sent < 0.25 + b.config.replica_poll_s
            assert b.replicas.delivered_by_notify >= 1
            # ... and when the notification is lost, the holder's outbox poll delivers it.
            a.dispatcher.notify = None
            await a.dispatcher.send_command("gs1", agent_pb2.Command(stow=agent_pb2.Stow()))
            polled = await second.expect("command", skip=("upstream_ack", "schedule"), timeout_s=5.0)
            assert polled.seq == command.seq + 1 and b.replicas.delivered_by_poll >= 1

            # A station whose replica stops for good (its agent does not come back) is adopted by the survivor,
            # which alone takes it to OFFLINE.
            async with AgentClient.connect(a.address, key2, "gs2") as third:
                await third.expect("welcome")
                await a.stop(grace_s=0.1)

            async def b_plans() -> bool:
                return b.replicas is not None and b.replicas.leading

            await _eventually(b_plans, 5.0, "the planner lock to move to replica-b")

            async def gs2_offline() -> bool:
                return (await b.repo.get_station("gs2")).station.state == StationState.OFFLINE

            await _eventually(gs2_offline, 10.0, "gs2 to go OFFLINE through replica-b")
            assert (await b.repo.get_station("gs1")).station.state == StationState.ONLINE
