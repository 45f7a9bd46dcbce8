"""Stream rules 4-7: malformed messages, job updates through the state machine, command outbox replay and push."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import text

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, TimeWindow
from skymesh.server.db.records import CommandStateValue, PlannedJob
from tests.server.agent_client import AgentClient, observation_record, ts
from tests.server.conftest import Fleet


async def _jobs(fleet: Fleet, *starts_in_s: float, station_id: str = "gs1") -> list[str]:
    """One plan with a job per start time (seconds from now), for target m31; returns the job ids in order."""
    repo = fleet.server.repo
    await repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
    now = datetime.now(UTC)
    windows = [TimeWindow(now + timedelta(seconds=s), now + timedelta(seconds=s + 60)) for s in starts_in_s]
    await repo.apply_plan([station_id], [PlannedJob(station_id, "m31", w) for w in windows])
    jobs = await repo.list_jobs(station_id=station_id, states=[JobState.SCHEDULED])
    return [j.job_id for j in sorted(jobs, key=lambda j: j.window.start)]


async def _job(fleet: Fleet) -> str:
    return (await _jobs(fleet, 600))[0]


def _bad_observation_end() -> agent_pb2.ObservationRecord:
    record = observation_record()
    record.end.CopyFrom(ts(datetime.now(UTC) - timedelta(hours=2)))
    return record


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda c: c.observation(1, _bad_observation_end()), "observation.end"),
        (lambda c: c.observation(1, agent_pb2.ObservationRecord(observation_id="x")), "observation.start"),
        (lambda c: c.job_update(1, "no-such-job", common_pb2.JOB_STATE_RUNNING), "job_update.job_id"),
        (lambda c: c.job_update(1, "", common_pb2.JOB_STATE_RUNNING), "job_update.job_id"),
        (lambda c: c.job_update(1, "j", common_pb2.JOB_STATE_SCHEDULED), "job_update.state"),
        (lambda c: c.telemetry(0), "seq"),
        (lambda c: c.telemetry(1, values={"radio.snr_db": float("nan")}), "telemetry.samples[0].values"),
        (
            lambda c: c.send(agent_pb2.ConnectRequest(telemetry=agent_pb2.TelemetryBatch(), seq=1, boot_id="b")),
            "telemetry.samples",
        ),
        (lambda c: c.observation(1, observation_record(job_id="nope")), "observation.job_id"),
    ],
)
async def test_malformed_message_is_invalid_and_writes_nothing(fleet: Fleet, make, field: str) -> None:  # type: ignore[no-untyped-def]
    repo = fleet.server.repo
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        await make(agent)
        code, details = await agent.status()
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), details
    assert details.startswith(field), details
    # A reliable message refused for its content is recorded and the cursor moves past it, so the agent can set
    # it aside (rule 4); none of its data is written.
    cursors = await repo.get_cursors("gs1", [agent.boot_id, "b"])
    async with fleet.server.engine.connect() as conn:
        refusals = (await conn.execute(text("SELECT boot_id, seq FROM upstream_refusals"))).all()
    assert {(b, s) for b, s in refusals} == {(b, s) for b, s in cursors.items() if s}
    assert set(cursors.values()) <= {0, 1}
    assert await repo.count_telemetry("gs1") == 0
    assert await repo.list_observations(station_id="gs1") == []


async def test_job_updates_follow_the_state_machine(fleet: Fleet) -> None:
    repo = fleet.server.repo
    job_id = await _job(fleet)
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        schedule = await agent.expect("schedule")  # the agent's version 0 differs from the station's 1
        assert [j.job_id for j in schedule.jobs] == [job_id]
        assert schedule.jobs[0].target.celestial.ra_deg == pytest.approx(10.68)
        seq = 0
        for state in (common_pb2.JOB_STATE_RECEIVED, common_pb2.JOB_STATE_RUNNING):
            seq += 1
            await agent.job_update(seq, job_id, state)
            assert (await agent.expect("upstream_ack")).committed_seq == seq
        assert (await repo.get_job(job_id)).state == JobState.RUNNING
        seq += 1
        await agent.observation(seq, observation_record(job_id=job_id))
        await agent.expect("upstream_ack")
        seq += 1
        await agent.job_update(seq, job_id, common_pb2.JOB_STATE_SUCCEEDED, cause=common_pb2.CAUSE_CODE_OK)
        await agent.expect("upstream_ack")
        # An illegal move (back to RUNNING) is ignored but still acknowledged: reports are at-least-once.
        seq += 1
        await agent.job_update(seq, job_id, common_pb2.JOB_STATE_RUNNING)
        assert (await agent.expect("upstream_ack")).committed_seq == seq
    assert (await repo.get_job(job_id)).state == JobState.SUCCEEDED
    observations = await repo.list_observations(target_id="m31")
    assert len(observations) == 1
    assert len(await repo.light_curve("m31")) == 1


async def test_schedule_marks_jobs_dispatched(fleet: Fleet) -> None:
    job_id = await _job(fleet)
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        schedule = await agent.expect("schedule")
        await agent.send(agent_pb2.ConnectRequest(schedule_ack=agent_pb2.ScheduleAck(version=schedule.version)))
        await agent.heartbeat()
    assert (await fleet.server.repo.get_job(job_id)).state == JobState.DISPATCHED
    # Reconnecting with the current version: no schedule is re-sent.
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", schedule_version=schedule.version) as agent:
        await agent.expect("welcome")
        await agent.telemetry(1)
        await agent.expect("upstream_ack")


async def test_overlapping_pushes_send_each_schedule_once_and_mark_each_job_once(fleet: Fleet) -> None:
    """A plan's push and another push of the same stations at once (the replicas' poll sees the stations the plan's
    push has not reached yet as behind): the second leaves them to the first; each agent gets one schedule, with
    every job, and every job is marked DISPATCHED once (the marks of two pushes once deadlocked on PostgreSQL)."""
    repo = fleet.server.repo
    await repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
    now = datetime.now(UTC)
    planned = [
        PlannedJob(sid, "m31", TimeWindow(now + timedelta(minutes=10 * k + 5), now + timedelta(minutes=10 * k + 8)))
        for sid in ("gs1", "gs2")
        for k in range(30)
    ]
    async with (
        AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as a1,
        AgentClient.connect(fleet.address, fleet.keys["gs2"], "gs2") as a2,
    ):
        for agent in (a1, a2):
            await agent.expect("welcome")
            await agent.heartbeat()
        outcome = await repo.apply_plan(["gs1", "gs2"], planned)
        dispatcher = fleet.server.dispatcher
        sent = await asyncio.gather(*(dispatcher.push_schedules(sorted(outcome.versions)) for _ in range(3)))
        assert sorted(sent) == [0, 0, 2]
        for agent in (a1, a2):
            schedule = await agent.expect("schedule", skip=("ping",))
            assert (schedule.version, len(schedule.jobs)) == (1, 30)
            await agent.heartbeat()  # nothing else queued: the next message is not a second schedule
    jobs = await repo.list_jobs(states=[JobState.DISPATCHED])
    assert len(jobs) == 60


async def test_commands_replayed_expired_marked_and_live_pushed(fleet: Fleet) -> None:
    repo = fleet.server.repo
    dispatcher = fleet.server.dispatcher
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = await dispatcher.send_command("gs1", agent_pb2.Command(stow=agent_pb2.Stow()), not_before=past, ttl_s=60)
    kept = await dispatcher.send_command(
        "gs1", agent_pb2.Command(point=agent_pb2.Point(azimuth_deg=90, elevation_deg=45)), ttl_s=3600
    )
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        command = await agent.expect("command")
        assert (command.seq, command.command_id) == (kept.seq, kept.command_id)
        assert command.point.azimuth_deg == 90
        assert (await repo.get_command(expired.command_id)).state == CommandStateValue.EXPIRED
        await agent.command_update(command, agent_pb2.COMMAND_STATE_RECEIVED)
        # Live push, urgent.
        live = await dispatcher.send_command(
            "gs1",
            agent_pb2.Command(abort_job=agent_pb2.AbortJob(job_id="j1")),
            priority=agent_pb2.COMMAND_PRIORITY_URGENT,
        )
        pushed = await agent.expect("command")
        assert pushed.command_id == live.command_id
        assert pushed.priority == agent_pb2.COMMAND_PRIORITY_URGENT
        await agent.heartbeat()
        await agent.telemetry(1)
        await agent.expect("upstream_ack")
    assert (await repo.get_command(kept.command_id)).state == CommandStateValue.RECEIVED
    # Reconnect: everything above last_command_seq that is still open comes again; nothing at or below it.
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", last_command_seq=kept.seq) as agent:
        await agent.expect("welcome")
        again = await agent.expect("command")
        assert again.command_id == live.command_id
        await agent.command_update(again, agent_pb2.COMMAND_STATE_RECEIVED)
        await agent.command_update(again, agent_pb2.COMMAND_STATE_SUCCEEDED)
        await agent.telemetry(1)
        await agent.expect("upstream_ack")
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", last_command_seq=0) as agent:
        await agent.expect("welcome")
        again = await agent.expect("command")  # kept is RECEIVED but above 0: sent again, same id
        assert again.command_id == kept.command_id
        await agent.telemetry(1)
        await agent.expect("upstream_ack")  # and nothing else: the finished one is not re-sent
    assert (await repo.get_command(live.command_id)).state == CommandStateValue.SUCCEEDED
