"""Open agent streams of this process, one per station: the newest session wins, older ones are ended.

A session owns an outbound queue drained by the stream's single writer (gRPC allows one writer at a time);
urgent commands jump the queue. Anything that must reach an agent (commands, schedules, acks, drains) is pushed
here; what happens after the write (marking jobs DISPATCHED, closing after a Drain) rides along as `on_sent`.

A session also keeps the server's side of the credit window (docs/protocol.md rule 12): the reliable messages it
has read whose acks are not yet written, mirroring the agent's own in-flight list, so an agent that sends more
than `max_unacked` ahead of its acks is caught exactly. `Pacer` is the per-station rate limit.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.errors import Aborted, ResourceExhausted, SkyMeshError
from skymesh.observability.metrics import SERVER_STREAM_DURATION, SERVER_STREAMS

__all__ = ["AgentSession", "Outbound", "Pacer", "SessionHub"]

URGENT, NORMAL = 0, 1
MAX_OUTBOUND = 4096  # messages queued for one agent that does not read them; then the stream is cut off
_counter = itertools.count()


@dataclass(order=True)
class Outbound:
    rank: int
    order: int
    message: agent_pb2.ConnectResponse = field(compare=False)
    on_sent: Callable[[], Awaitable[None]] | None = field(compare=False, default=None)
    # An UpstreamAck's (boot_id, committed_seq): once written, `AgentSession.settle` (no coroutine per ack).
    settles: tuple[str, int] | None = field(compare=False, default=None)


class AgentSession:
    def __init__(self, station_id: str, key_id: str, boot_id: str) -> None:
        self.station_id = station_id
        self.key_id = key_id
        self.boot_id = boot_id
        self.session_id = str(uuid.uuid4())
        # The station's session epoch this stream holds (stations.station_sessions): every write made as the station
        # is fenced on it. Set by the Hello's transaction.
        self.epoch: int | None = None
        # Outbox bookkeeping for commands and schedules created on other replicas (NOTIFY, or the fallback poll):
        # open commands above `replay_from` (the agent's durable seq at Hello) are what this stream delivers;
        # `command_head` and `schedule_version` are the outbox seq and schedule version it has caught up with.
        self.replay_from = 0
        self.command_head = 0
        self.schedule_version = 0
        self.opened_at = time.time()  # Unix time, for the stream-age gauge and the lifetime histogram
        self._queue: asyncio.PriorityQueue[Outbound] = asyncio.PriorityQueue()
        self._sent_command_seqs: set[int] = set()
        self.ended = asyncio.Event()
        self.end_error: SkyMeshError | None = None
        # (boot_id, seq) of reliable messages read whose acks are not yet written.
        self.unacked: deque[tuple[str, int]] = deque()

    def settle(self, boot_id: str, committed_seq: int) -> None:
        """An ack for (boot_id, committed_seq) was written: what it covers no longer counts against the credit."""
        unacked = self.unacked
        # Acks come in the order their messages were read (each stream's reader waits for one before the next).
        while unacked and unacked[0][0] == boot_id and unacked[0][1] <= committed_seq:
            unacked.popleft()
        if unacked and any(b == boot_id and s <= committed_seq for b, s in unacked):
            self.unacked = deque((b, s) for b, s in unacked if not (b == boot_id and s <= committed_seq))

    def push(
        self,
        message: agent_pb2.ConnectResponse,
        *,
        urgent: bool = False,
        on_sent: Callable[[], Awaitable[None]] | None = None,
        settles: tuple[str, int] | None = None,
    ) -> None:
        if self.ended.is_set():
            return
        if self._queue.qsize() >= MAX_OUTBOUND:
            # An agent that stops reading its stream must not hold server memory without bound: cut it off (it
            # resumes from the outbox and its cursors when it reconnects; nothing queued here is the only copy).
            self.close(
                ResourceExhausted(
                    f"more than {MAX_OUTBOUND} messages wait for this agent to read its stream",
                    reason="SLOW_CONSUMER",
                    details={"limit": str(MAX_OUTBOUND)},
                )
            )
            return
        self._queue.put_nowait(Outbound(URGENT if urgent else NORMAL, next(_counter), message, on_sent, settles))

    def push_command(self, command: agent_pb2.Command) -> bool:
        """Queue a command unless this session already sent it (replay and live push may race)."""
        if command.seq in self._sent_command_seqs:
            return False
        self._sent_command_seqs.add(command.seq)
        urgent = command.priority == agent_pb2.COMMAND_PRIORITY_URGENT
        self.push(agent_pb2.ConnectResponse(command=command), urgent=urgent)
        return True

    async def next_outbound(self) -> Outbound:
        return await self._queue.get()

    def close(self, error: SkyMeshError | None = None) -> None:
        """End the stream: with `error` as its status, or cleanly (OK) when None."""
        if not self.ended.is_set():
            self.end_error = error
            self.ended.set()


class SessionHub:
    def __init__(self) -> None:
        self._by_station: dict[str, AgentSession] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def register(self, session: AgentSession) -> None:
        old = self._by_station.get(session.station_id)
        self._by_station[session.station_id] = session
        self._empty.clear()
        if old is not None and old is not session:
            old.close(Aborted("superseded by a newer session", reason="SUPERSEDED"))
        SERVER_STREAMS.set(len(self._by_station))

    def unregister(self, session: AgentSession) -> None:
        if self._by_station.get(session.station_id) is session:
            del self._by_station[session.station_id]
            SERVER_STREAM_DURATION.observe(time.time() - session.opened_at)
        SERVER_STREAMS.set(len(self._by_station))
        if not self._by_station:
            self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def get(self, station_id: str) -> AgentSession | None:
        return self._by_station.get(station_id)

    def connected(self, station_id: str) -> bool:
        return station_id in self._by_station

    def sessions(self) -> list[AgentSession]:
        return list(self._by_station.values())

    def close_key(self, key_id: str, error: SkyMeshError) -> int:
        """End every stream opened with `key_id` (after revocation)."""
        closed = 0
        for session in self.sessions():
            if session.key_id == key_id:
                session.close(error)
                closed += 1
        return closed

    def drain(self, message: agent_pb2.Drain) -> int:
        """Tell every agent to come back later, then close each stream once the Drain is written."""
        sessions = self.sessions()
        for session in sessions:

            async def _close(s: AgentSession = session) -> None:
                s.close(None)

            session.push(agent_pb2.ConnectResponse(drain=message), urgent=True, on_sent=_close)
        return len(sessions)


class Pacer:
    """A token bucket: `take()` returns at once while the burst lasts, then paces callers to `rate_per_s`."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def delay_s(self) -> float:
        """Take one token; how long to wait before using it."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s

    async def take(self) -> None:
        wait_s = self.delay_s()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
