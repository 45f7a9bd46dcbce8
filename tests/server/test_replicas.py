"""Replicas on one database (issue 8): session epochs fence every write made as a station, on SQLite and PostgreSQL;
and, on PostgreSQL, two in-process servers sharing one database: a newer Hello on one ends the older stream on the
other, a command made on the replica without the stream reaches it by NOTIFY (and by the outbox poll when the
notification is lost), the old holder never writes the station's state, only one replica plans and the other takes
the planner lock when the first stops, and a station whose replica is gone is adopted and goes OFFLINE."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.control.v1 import events_pb2, events_pb2_grpc
from skymesh.core.clock import SystemClock
from skymesh.core.errors import Aborted, Unavailable
from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, StationState
from skymesh.server.db.records import CommandStateValue, TelemetryIn
from skymesh.server.events import EventBus
from skymesh.server.replicas import ReplicaLink
from tests.server.agent_client import AgentClient
from tests.server.conftest import StartServer, add_station
from tests.server.fake_scheduler import fake_scheduler

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


async def _heartbeat(address: str, station_id: str) -> events_pb2.ReportHeartbeatResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = events_pb2_grpc.SiteServiceStub(channel)
        response: events_pb2.ReportHeartbeatResponse = await stub.ReportHeartbeat(
            events_pb2.ReportHeartbeatRequest(station_id=station_id)
        )
        return response


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL; SQLite is one process
async def test_a_heartbeat_is_fenced_and_refused_while_a_stream_holds_the_station(start_server: StartServer) -> None:
    a = await start_server(server_id="replica-a")
    b = await start_server(server_id="replica-b")
    key = await add_station(a, "gs1")
    async with AgentClient.connect(a.address, key, "gs1", boot_id="boot-1") as agent:
        await agent.expect("welcome")
        # The agent's stream (on A) reports gs1's liveness: a heartbeat on either replica is refused, and changes
        # nothing.
        for server in (a, b):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _heartbeat(server.address, "gs1")
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "stream" in (refused.value.details() or "")
        holder = await b.repo.session_holder("gs1")
        assert holder is not None and holder[1] == a.replica_id

    async def disconnected() -> bool:
        return (await b.repo.get_station("gs1")).station.state == StationState.DISCONNECTED

    await _eventually(disconnected, 5.0, "gs1 to be DISCONNECTED once its stream ended")
    # No live stream now: the heartbeat's replica takes the session (next epoch) and alone writes the state; A, the
    # old holder, is fenced and cannot take it back to DISCONNECTED and OFFLINE behind B's back.
    assert (await _heartbeat(b.address, "gs1")).station.state == int(StationState.ONLINE)
    holder = await b.repo.session_holder("gs1")
    assert holder is not None and holder[1] == b.replica_id and holder[0] == 2
    assert not await a.repo.set_station_state("gs1", StationState.OFFLINE, last_seen=None, epoch=1)
    assert (await a.repo.get_station("gs1")).station.state == StationState.ONLINE


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL; SQLite is one process
async def test_watch_on_any_replica_sees_every_replicas_events(start_server: StartServer) -> None:
    a = await start_server(server_id="replica-a")
    b = await start_server(server_id="replica-b")
    key = await add_station(a, "gs1")
    seen: dict[str, list[events_pb2.WatchResponse]] = {"a": [], "b": []}
    async with grpc.aio.insecure_channel(a.address) as ca, grpc.aio.insecure_channel(b.address) as cb:
        calls = {
            "a": events_pb2_grpc.EventServiceStub(ca).Watch(events_pb2.WatchRequest()),
            "b": events_pb2_grpc.EventServiceStub(cb).Watch(events_pb2.WatchRequest()),
        }
        for call in calls.values():
            await call.initial_metadata()  # registered: nothing published from here on is missed

        async def collect(name: str) -> None:
            async for event in calls[name]:
                seen[name].append(event)

        tasks = [asyncio.create_task(collect(name)) for name in calls]
        try:
            # A stream on A (its ONLINE transition is published on A) and an observation event published on B.
            async with AgentClient.connect(a.address, key, "gs1", boot_id="boot-1") as agent:
                await agent.expect("welcome")
                b.events.observation("obs-9", "gs1", "t1")

                def kinds(name: str) -> list[str]:
                    return [str(e.WhichOneof("event")) for e in seen[name]]

                async def both_saw_both() -> bool:
                    return all({"station_state", "observation"} <= set(kinds(n)) for n in seen)

                await _eventually(both_saw_both, 5.0, "each replica's watcher to see the other's event")
                await asyncio.sleep(0.3)  # a replica's own events would come back by NOTIFY now: they are ignored
                snapshot = {n: kinds(n) for n in seen}  # while the stream is open (its end is another transition)
        finally:
            for task in tasks:
                task.cancel()
    for name in seen:
        assert snapshot[name].count("observation") == 1 and snapshot[name].count("station_state") == 1, snapshot
        cursors = [e.cursor for e in seen[name]]
        run = cursors[0].split(".")[0]  # numbered in the run of the replica the watcher is on: resumable there
        assert all(c.startswith(run + ".") for c in cursors) and len(set(cursors)) == len(cursors)
    relayed = next(e for e in seen["a"] if e.HasField("observation"))
    assert (relayed.observation.observation_id, relayed.observation.station_id) == ("obs-9", "gs1")
    assert seen["a"][0].cursor.split(".")[0] != seen["b"][0].cursor.split(".")[0]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL; SQLite is one process
async def test_get_latest_plan_answers_on_a_replica_that_did_not_plan(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        a = await start_server(server_id="replica-a", planning_enabled=True, scheduler_address=address)
        b = await start_server(server_id="replica-b", planning_enabled=False)
        key = await add_station(a, "gs1")
        await a.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        scheduler.plan = lambda _r: []
        async with grpc.aio.insecure_channel(b.address) as channel:
            plans = events_pb2_grpc.PlanServiceStub(channel)
            assert not (await plans.GetLatestPlan(events_pb2.GetLatestPlanRequest())).HasField("planned_at")
            async with AgentClient.connect(a.address, key, "gs1") as agent:
                await agent.expect("welcome")
                assert a.planner is not None
                await a.planner.plan_once("operator asked")
            latest = await plans.GetLatestPlan(events_pb2.GetLatestPlanRequest())
    assert latest.HasField("planned_at") and latest.reason == "operator asked" and latest.assignments == 0


async def test_relayed_events_are_numbered_here_never_sent_back_and_a_gap_makes_watchers_resync() -> None:
    forwarded: list[events_pb2.WatchResponse] = []
    bus = EventBus(SystemClock())
    bus.forward = forwarded.append
    link = ReplicaLink(
        "",
        "skymesh-replica:test",
        None,
        None,
        None,
        want_lead=False,
        on_event=bus.relay,  # type: ignore[arg-type]
        on_events_lost=bus.resync,
    )
    other = EventBus(SystemClock())
    sent: list[events_pb2.WatchResponse] = []
    other.forward = sent.append
    other.job("j1", "gs1", JobState.RECEIVED, JobState.RUNNING)
    encoded = base64.b64encode(sent[0].SerializeToString()).decode()
    subscription = bus.watch("")
    link._on_event_notification(None, 4242, "skymesh_events", f"e:{encoded},not-base64!,!")
    link._pid = 4242  # a notification from this replica's own connection: its watchers already have it
    link._on_event_notification(None, 4242, "skymesh_events", f"e:{encoded}")
    got = [await anext(subscription) for _ in range(2)]
    await subscription.aclose()
    assert got[0].job.job_id == "j1" and got[0].at == sent[0].at  # the time it happened, on the other replica
    assert got[0].cursor.rsplit(".", 1)[1] == "1" and got[0].cursor != sent[0].cursor  # numbered in this run
    assert got[1].HasField("resync")  # "!": the other replica could not relay everything
    assert forwarded == []  # relayed events are not forwarded again
    assert bus._seq == 2  # the undecodable item and this replica's own notification were ignored
