"""Getting work to agents: schedules (full snapshots, jobs marked DISPATCHED once written) and commands (outbox
first, then a live push when the station's stream is open here; otherwise replayed when it connects).

With several replicas (issue 8), a station's stream may be open on another replica: then the dispatcher announces
the work through `notify` (PostgreSQL NOTIFY, skymesh.server.replicas), and the replica holding the stream delivers
it from the outbox (`deliver_outbox`, `push_schedule`) at once; its fallback poll catches a missed notification."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from skymesh.api.agent.v1 import agent_pb2
from skymesh.observability import tracing
from skymesh.observability.metrics import COMMANDS, JOBS
from skymesh.server.db import Repository
from skymesh.server.db.records import CommandRecord, JobChange, ScheduleSnapshot, TargetRecord
from skymesh.server.events import EventBus
from skymesh.server.sessions import AgentSession, SessionHub
from skymesh.server.wire import command_message, schedule_message

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


# (kind, items): tell the other replicas. Kinds: "c" new commands for these stations, "s" new schedules for these
# stations, "h" these "station=epoch" claims were taken (older streams elsewhere end), "p" a plan is wanted (reason).
Notify = Callable[[str, Sequence[str]], Awaitable[None]]


class Dispatcher:
    def __init__(
        self, repo: Repository, hub: SessionHub, events: EventBus | None = None, *, notify: Notify | None = None
    ) -> None:
        self._repo = repo
        self._hub = hub
        self.events = events
        self.notify = notify  # None: a single server (SQLite, or one process), nothing to tell

    async def _tell(self, kind: str, items: Sequence[str]) -> None:
        if self.notify is not None and items:
            try:
                await self.notify(kind, items)
            except Exception as exc:  # the outbox poll of the holding replica is the fallback
                log.warning("could not notify replicas (%s %d): %s", kind, len(items), exc)

    async def forward_plan_request(self, reason: str) -> None:
        """Ask the replica that plans for a plan (this one does not hold the planner lock)."""
        await self._tell("p", [reason.replace(",", ";")[:200]])

    async def announce_claim(self, station_id: str, epoch: int) -> None:
        """A Hello here took the station at `epoch`: a stream of it on another replica ends at once."""
        await self._tell("h", [f"{station_id}={epoch}"])

    async def deliver_outbox(self, session: AgentSession) -> int:
        """Queue the station's open commands the agent has not confirmed durable (above its Hello's seq) on this
        stream; the session skips those it already sent. Returns how many were queued."""
        commands, expired = await self._repo.commands_for_replay(session.station_id, session.replay_from)
        if expired:
            COMMANDS.labels("expired").inc(expired)
        queued = 0
        for command in commands:
            session.command_head = max(session.command_head, command.seq)
            queued += session.push_command(command_message(command))
        return queued

    async def push_schedule(self, station_id: str, session: AgentSession | None = None) -> bool:
        """Send the station's current schedule to its open stream, if any. Returns whether one was queued."""
        session = session or self._hub.get(station_id)
        if session is None:
            await self._tell("s", [station_id])  # its stream may be open on another replica
            return False
        [snapshot] = await self._repo.schedule_snapshots([station_id])
        await self._send(snapshot, session)
        return True

    async def push_schedules(self, station_ids: list[str]) -> int:
        """`push_schedule` for many stations (a new plan): the snapshots of the connected ones read together, each
        target once. Returns how many were queued."""
        sessions = {sid: s for sid in station_ids if (s := self._hub.get(sid)) is not None}
        await self._tell("s", [sid for sid in station_ids if sid not in sessions])
        ids = list(sessions)
        sent = 0
        targets: dict[str, TargetRecord] = {}  # each target (and its elements) read once for the whole push
        for i in range(0, len(ids), 20):  # in slices: the event loop serves other calls between them
            snapshots = await self._repo.schedule_snapshots(ids[i : i + 20], targets=targets)
            # The slice's jobs marked DISPATCHED in one transaction (not one per station).
            marked = await self._repo.mark_dispatched_many(
                {snap.station_id: [job.job_id for job, _target in snap.jobs] for snap in snapshots}
            )
            for n, snapshot in enumerate(snapshots):
                if n % 5 == 4:
                    await asyncio.sleep(0)  # building a schedule message is ~20 us a job: the loop serves between
                self._deliver(snapshot, sessions[snapshot.station_id], marked.get(snapshot.station_id, []))
                sent += 1
        return sent

    async def _send(self, snapshot: ScheduleSnapshot, session: AgentSession) -> None:
        # Marked before the write: if the stream breaks first, the agent's Hello shows an older version on
        # reconnect and gets this schedule again, so DISPATCHED never strands a job.
        changes = await self._repo.mark_dispatched(snapshot.station_id, [job.job_id for job, _target in snapshot.jobs])
        self._deliver(snapshot, session, changes)

    def _deliver(self, snapshot: ScheduleSnapshot, session: AgentSession, changes: Sequence[JobChange]) -> None:
        for change in changes:
            JOBS.labels(change.new.name.lower()).inc()
            if self.events is not None and change.applied:
                self.events.job(change.job_id, change.station_id, change.old, change.new)
        message = agent_pb2.ConnectResponse(schedule=schedule_message(snapshot))
        tracing.inject(message.schedule.trace_context)  # the agent continues the trace that made this schedule
        session.schedule_version = snapshot.version
        session.push(message)

    @staticmethod
    def command_payload(payload: agent_pb2.Command) -> tuple[str, bytes]:
        """(kind, bytes) of a command to store (payload: a Command with only its oneof set), carrying the current
        trace: a replay continues the same trace."""
        kind = payload.WhichOneof("payload")
        if kind is None:
            raise ValueError("command payload must set one of its oneof fields")
        traced = agent_pb2.Command()
        traced.CopyFrom(payload)
        tracing.inject(traced.trace_context)
        return kind, traced.SerializeToString()

    async def deliver_command(self, record: CommandRecord) -> None:
        """A command just committed to the outbox: pushed to the station's stream if it is open here (an urgent one
        ahead of everything queued for it), else announced to the other replicas (the holder delivers it from the
        outbox; without a holder the agent gets it on its next Hello)."""
        COMMANDS.labels("queued").inc()
        session = self._hub.get(record.station_id)
        if session is not None:
            session.command_head = max(session.command_head, record.seq)
            session.push_command(command_message(record))
        else:
            await self._tell("c", [record.station_id])  # its stream may be open on another replica

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
        kind, stored = self.command_payload(payload)
        start = not_before or self._repo.clock.now()
        record = await self._repo.enqueue_command(
            station_id,
            kind,
            stored,
            not_before=start,
            expires_at=start + timedelta(seconds=ttl_s),
            priority=priority,
            job_id=job_id,
            actor=actor,
        )
        await self.deliver_command(record)
        return record
