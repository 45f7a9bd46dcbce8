"""CancelJob over real gRPC to a connected agent, on SQLite and PostgreSQL: one transaction (a failure part way leaves
nothing written and nothing sent), the AbortJob delivered at once, the agent's reports group-committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
from skymesh.core.jobs import JobState
from skymesh.server.db import Repository
from skymesh.server.db.models import AuditRow, CommandRow, StationRow
from skymesh.server.db.records import CommandStateValue, CommandUpdateIn
from tests.server.agent_client import AgentClient
from tests.server.conftest import Fleet
from tests.server.test_stream_work import _jobs


async def _count(repo: Repository, query: Any) -> int:
    async with repo.engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def _audits(repo: Repository) -> int:
    return await _count(
        repo, select(func.count()).select_from(AuditRow).where(AuditRow.action.in_(["cancel_job", "enqueue_command"]))
    )


async def _command_seq(repo: Repository, station_id: str) -> int:
    return await _count(repo, select(StationRow.command_seq).where(StationRow.station_id == station_id))


async def _wait_command_state(repo: Repository, command_id: str, state: CommandStateValue) -> None:
    for _ in range(200):
        if (await repo.get_command(command_id)).state == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"command {command_id} never reached {state.name}")


async def test_cancel_of_a_running_job_aborts_it_at_the_agent_in_one_transaction(fleet: Fleet) -> None:
    repo = fleet.server.repo
    [running] = await _jobs(fleet, 5)
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
            await agent.expect("welcome")
            await agent.expect("schedule")
            await agent.job_update(1, running, common_pb2.JOB_STATE_RUNNING)
            await agent.expect("upstream_ack")
            # A row already holding the station's next seq: the outbox insert fails after the seq was taken.
            seq_before, audits_before = await _command_seq(repo, "gs1"), await _audits(repo)
            at = (await repo.get_job(running)).updated_at
            async with repo.engine.begin() as conn:
                await conn.execute(
                    insert(CommandRow),
                    {
                        "command_id": "planted",
                        "station_id": "gs1",
                        "seq": seq_before + 1,
                        "kind": "stow",
                        "payload": b"",
                        "not_before": at,
                        "expires_at": at,
                        "priority": 2,
                        "state": int(CommandStateValue.CANCELLED),
                        "created_at": at,
                        "updated_at": at,
                    },
                )
            with pytest.raises(grpc.aio.AioRpcError):
                await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=running, reason="stop"))
            # Nothing half-done: the seq not taken, no audit row, no command queued or sent.
            assert await _command_seq(repo, "gs1") == seq_before
            assert await _audits(repo) == audits_before
            assert [c.command_id for c in await repo.list_commands("gs1")] == ["planted"]
            assert (await repo.get_job(running)).state == JobState.RUNNING
            async with repo.engine.begin() as conn:
                await conn.execute(delete(CommandRow).where(CommandRow.command_id == "planted"))

            reply = await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=running, reason="stop"))
            assert reply.job.state == common_pb2.JOB_STATE_RUNNING
            command = await agent.expect("command")
            assert command.abort_job.job_id == running and command.abort_job.reason == "stop"
            assert command.priority == agent_pb2.COMMAND_PRIORITY_URGENT
            assert command.seq == seq_before + 1
            [stored] = await repo.list_commands("gs1")
            assert (stored.command_id, stored.job_id, stored.kind) == (command.command_id, running, "abort_job")
            assert await _audits(repo) == audits_before + 1
            # The agent's reports, acked only once stored (group commit).
            await agent.command_update(command, agent_pb2.COMMAND_STATE_RECEIVED)
            await _wait_command_state(repo, command.command_id, CommandStateValue.RECEIVED)
            await agent.command_update(command, agent_pb2.COMMAND_STATE_SUCCEEDED)
            await _wait_command_state(repo, command.command_id, CommandStateValue.SUCCEEDED)
            await agent.job_update(2, running, common_pb2.JOB_STATE_ABORTED)
            await agent.expect("upstream_ack")
        assert (await repo.get_job(running)).state == JobState.ABORTED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=running))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


class _FailingAuditInsert:
    """A connection whose audit insert fails: the step after the job's cancel and its schedule bump."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(getattr(statement, "table", None), "name", "") == "audit_log":
            raise RuntimeError("injected failure before the audit row")
        return await self._conn.execute(statement, *args, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._conn.scalar(statement, *args, **kwargs)


async def test_a_failed_cancel_of_a_dispatched_job_leaves_job_and_schedule_as_they_were(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = fleet.server.repo
    [queued] = await _jobs(fleet, 600)
    core = type(repo)._core

    @asynccontextmanager
    async def failing(operation: str) -> AsyncIterator[Any]:
        async with core(repo, operation) as conn:
            yield _FailingAuditInsert(conn)

    async with grpc.aio.insecure_channel(fleet.address) as channel:
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
            await agent.expect("welcome")
            first = await agent.expect("schedule")
            assert [j.job_id for j in first.jobs] == [queued]
            assert (await repo.get_job(queued)).state == JobState.DISPATCHED
            with monkeypatch.context() as patch:
                patch.setattr(repo, "_core", failing)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=queued, reason="clouds"))
                assert err.value.code() == grpc.StatusCode.INTERNAL
            assert (await repo.get_job(queued)).state == JobState.DISPATCHED
            assert await repo.schedule_version("gs1") == first.version
            reply = await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=queued, reason="clouds"))
            assert reply.job.state == common_pb2.JOB_STATE_CANCELLED
            second = await agent.expect("schedule")
            assert (second.version, list(second.jobs)) == (first.version + 1, [])


async def test_command_reports_group_commit_in_order_and_fence(fleet: Fleet) -> None:
    repo = fleet.server.repo
    a = await repo.enqueue_command(
        "gs1", "stow", b"", not_before=repo.clock.now(), expires_at=repo.clock.now(), priority=2
    )
    b = await repo.enqueue_command(
        "gs2", "stow", b"", not_before=repo.clock.now(), expires_at=repo.clock.now(), priority=3
    )
    results = await repo.apply_command_updates(
        [
            ("gs1", "", 0, CommandUpdateIn(a.command_id, CommandStateValue.RECEIVED)),
            ("gs1", "", 0, CommandUpdateIn(a.command_id, CommandStateValue.SUCCEEDED, 0, "done")),
            ("gs1", "", 0, CommandUpdateIn(a.command_id, CommandStateValue.RECEIVED)),  # a regression: ignored
            ("gs1", "", 0, CommandUpdateIn(b.command_id, CommandStateValue.RECEIVED)),  # not gs1's command
            ("gs2", "", 0, CommandUpdateIn(b.command_id, CommandStateValue.RECEIVED)),  # stale epoch
        ],
        [None, None, None, None, 12345],
    )
    assert results[:3] == [True, True, False]
    assert [type(r).__name__ for r in results[3:]] == ["NotFound", "Aborted"]
    assert (await repo.get_command(a.command_id)).state == CommandStateValue.SUCCEEDED
    assert (await repo.get_command(a.command_id)).detail == "done"
    assert (await repo.get_command(b.command_id)).state == CommandStateValue.QUEUED
