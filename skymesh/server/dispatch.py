"""Getting work to agents: schedules (full snapshots, jobs marked DISPATCHED once written) and commands (outbox
first, then a live push when the station's stream is open here; otherwise replayed when it connects)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from skymesh.api.agent.v1 import agent_pb2
from skymesh.observability import tracing
from skymesh.observability.metrics import COMMANDS, JOBS
from skymesh.server.db import Repository
from skymesh.server.db.records import CommandRecord, ScheduleSnapshot
from skymesh.server.events import EventBus
from skymesh.server.sessions import AgentSession, SessionHub
from skymesh.server.wire import command_message, schedule_message

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, repo: Repository, hub: SessionHub, events: EventBus | None = None) -> None:
        self._repo = repo
        self._hub = hub
        self.events = events

    async def push_schedule(self, station_id: str, session: AgentSession | None = None) -> bool:
        """Send the station's current schedule to its open stream, if any. Returns whether one was queued."""
        session = session or self._hub.get(station_id)
        if session is None:
            return False
        [snapshot] = await self._repo.schedule_snapshots([station_id])
        await self._send(snapshot, session)
        return True

    async def push_schedules(self, station_ids: list[str]) -> int:
        """`push_schedule` for many stations (a new plan): the snapshots of the connected ones read together, each
        target once. Returns how many were queued."""
        sessions = {sid: s for sid in station_ids if (s := self._hub.get(sid)) is not None}
        ids = list(sessions)
        sent = 0
        for i in range(0, len(ids), 20):  # in slices: the event loop serves other calls between them
            for snapshot in await self._repo.schedule_snapshots(ids[i : i + 20]):
                await self._send(snapshot, sessions[snapshot.station_id])
                sent += 1
        return sent

    async def _send(self, snapshot: ScheduleSnapshot, session: AgentSession) -> None:
        # Marked before the write: if the stream breaks first, the agent's Hello shows an older version on
        # reconnect and gets this schedule again, so DISPATCHED never strands a job.
        for change in await self._repo.mark_dispatched(
            snapshot.station_id, [job.job_id for job, _target in snapshot.jobs]
        ):
            JOBS.labels(change.new.name.lower()).inc()
            if self.events is not None and change.applied:
                self.events.job(change.job_id, change.station_id, change.old, change.new)
        message = agent_pb2.ConnectResponse(schedule=schedule_message(snapshot))
        tracing.inject(message.schedule.trace_context)  # the agent continues the trace that made this schedule
        session.push(message)

    async def send_command(
        self,
        station_id: str,
        payload: agent_pb2.Command,
        *,
        priority: int = agent_pb2.COMMAND_PRIORITY_NORMAL,
        not_before: datetime | None = None,
        ttl_s: float = 3600.0,
        job_id: str | None = None,
        actor: str = "system",
    ) -> CommandRecord:
        """Store a command in the outbox (payload: a Command with only its oneof set), then push it if connected."""
        kind = payload.WhichOneof("payload")
        if kind is None:
            raise ValueError("command payload must set one of its oneof fields")
        now = self._repo.clock.now()
        start = not_before or now
        traced = agent_pb2.Command()
        traced.CopyFrom(payload)
        tracing.inject(traced.trace_context)  # stored with the command: a replay continues the same trace
        record = await self._repo.enqueue_command(
            station_id,
            kind,
            traced.SerializeToString(),
            not_before=start,
            expires_at=start + timedelta(seconds=ttl_s),
            priority=priority,
            job_id=job_id,
            actor=actor,
        )
        COMMANDS.labels("queued").inc()
        session = self._hub.get(station_id)
        if session is not None:
            session.push_command(command_message(record))
        return record
