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
from skymesh.api.common.v1 import common_pb2
from skymesh.core.jobs import JobState
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


# Stations per slice of a plan's push: one read of their snapshots, one transaction marking their jobs, and their
# messages built in a worker thread while the next slice is read (~1,800 jobs at 72 a station).
_PUSH_SLICE = 25


def _undispatched(snapshot: ScheduleSnapshot) -> list[str]:
    """The snapshot's jobs still SCHEDULED: the only ones sending it marks DISPATCHED (after a steady plan, a few
    thousand of 36,000 at 500 x 3,000: the rest were marked when an earlier schedule went out, and a job never goes
    back to SCHEDULED, so leaving them out of the UPDATE changes nothing)."""
    return [job.job_id for job, _target in snapshot.jobs if job.state == JobState.SCHEDULED]


def _schedule_responses(
    snapshots: Sequence[ScheduleSnapshot], targets: dict[str, common_pb2.Target]
) -> list[agent_pb2.ConnectResponse]:
    """The slice's schedule messages: pure CPU, run in a worker thread (`targets`: each target's message, shared)."""
    return [agent_pb2.ConnectResponse(schedule=schedule_message(snapshot, targets)) for snapshot in snapshots]


class Dispatcher:
    def __init__(
        self, repo: Repository, hub: SessionHub, events: EventBus | None = None, *, notify: Notify | None = None
    ) -> None:
        self._repo = repo
        self._hub = hub
        self.events = events
        self.notify = notify  # None: a single server (SQLite, or one process), nothing to tell
        self._pushing: set[str] = set()  # stations a running `push_schedules` has yet to deliver

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
        target once. Returns how many were queued.

        The schedule messages (~20 us of CPU a job: 36,000 jobs at 500 x 3,000) are built in a worker thread, a
        slice at a time, while the event loop reads and marks the next slice: the loop only queues the finished
        messages. Each target's message is built once for the whole push."""
        sessions = {sid: s for sid in station_ids if (s := self._hub.get(sid)) is not None}
        await self._tell("s", [sid for sid in station_ids if sid not in sessions])
        # A station another push has yet to reach is left to it: that push reads its snapshot later than now, so it
        # sends at least the version asked for here. (The replicas' fallback poll, every few seconds, saw the
        # stations a plan's push had not reached yet as behind and pushed them again, concurrently: twice the work,
        # and the two pushes' marks deadlocked in PostgreSQL at 500 x 3,000.)
        ids = [sid for sid in sessions if sid not in self._pushing]
        undelivered = set(ids)
        self._pushing.update(ids)
        try:
            return await self._push_slices(ids, sessions, undelivered)
        finally:
            self._pushing.difference_update(undelivered)

    async def _push_slices(self, ids: list[str], sessions: dict[str, AgentSession], undelivered: set[str]) -> int:
        sent = 0
        targets: dict[str, TargetRecord] = {}  # each target (and its elements) read once for the whole push
        target_msgs: dict[str, common_pb2.Target] = {}  # and its message built once (only the worker touches it)
        building: asyncio.Future[list[agent_pb2.ConnectResponse]] | None = None
        ready: tuple[list[ScheduleSnapshot], dict[str, list[JobChange]]] | None = None
        for i in range(0, len(ids) + _PUSH_SLICE, _PUSH_SLICE):  # one more turn: the last slice's messages
            snapshots: list[ScheduleSnapshot] = []
            marked: dict[str, list[JobChange]] = {}
            if i < len(ids):
                snapshots = await self._repo.schedule_snapshots(ids[i : i + _PUSH_SLICE], targets=targets)
                # The slice's jobs marked DISPATCHED in one transaction (not one per station), before the write.
                marked = await self._repo.mark_dispatched_many(
                    {snap.station_id: _undispatched(snap) for snap in snapshots}
                )
            if building is not None and ready is not None:
                messages = await building
                for n, (snapshot, message) in enumerate(zip(ready[0], messages, strict=True)):
                    if n % 10 == 9:
                        await asyncio.sleep(0)
                    self._deliver(
                        snapshot, sessions[snapshot.station_id], ready[1].get(snapshot.station_id, []), message
                    )
                    self._pushing.discard(snapshot.station_id)
                    undelivered.discard(snapshot.station_id)
                    sent += 1
                building = ready = None
            if snapshots:
                ready = (snapshots, marked)
                building = asyncio.ensure_future(asyncio.to_thread(_schedule_responses, snapshots, target_msgs))
        return sent

    async def _send(self, snapshot: ScheduleSnapshot, session: AgentSession) -> None:
        # Marked before the write: if the stream breaks first, the agent's Hello shows an older version on
        # reconnect and gets this schedule again, so DISPATCHED never strands a job.
        changes = await self._repo.mark_dispatched(snapshot.station_id, _undispatched(snapshot))
        self._deliver(snapshot, session, changes)

    def _deliver(
        self,
        snapshot: ScheduleSnapshot,
        session: AgentSession,
        changes: Sequence[JobChange],
        message: agent_pb2.ConnectResponse | None = None,
    ) -> None:
        for change in changes:
            JOBS.labels(change.new.name.lower()).inc()
            if self.events is not None and change.applied:
                self.events.job(change.job_id, change.station_id, change.old, change.new)
        if message is None:
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
