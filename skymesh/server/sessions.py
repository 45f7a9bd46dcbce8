"""Open agent streams of this process, one per station: the newest session wins, older ones are ended.

A session owns an outbound queue drained by the stream's single writer (gRPC allows one writer at a time);
urgent commands jump the queue. Anything that must reach an agent (commands, schedules, acks, drains) is pushed
here; what happens after the write (marking jobs DISPATCHED, closing after a Drain) rides along as `on_sent`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.errors import Aborted, SkyMeshError
from skymesh.observability.metrics import SERVER_STREAM_DURATION, SERVER_STREAMS

__all__ = ["AgentSession", "Outbound", "SessionHub"]

URGENT, NORMAL = 0, 1
_counter = itertools.count()


@dataclass(order=True)
class Outbound:
    rank: int
    order: int
    message: agent_pb2.ConnectResponse = field(compare=False)
    on_sent: Callable[[], Awaitable[None]] | None = field(compare=False, default=None)


class AgentSession:
    def __init__(self, station_id: str, key_id: str, boot_id: str) -> None:
        self.station_id = station_id
        self.key_id = key_id
        self.boot_id = boot_id
        self.session_id = str(uuid.uuid4())
        self.opened_at = time.time()  # Unix time, for the stream-age gauge and the lifetime histogram
        self._queue: asyncio.PriorityQueue[Outbound] = asyncio.PriorityQueue()
        self._sent_command_seqs: set[int] = set()
        self.ended = asyncio.Event()
        self.end_error: SkyMeshError | None = None

    def push(
        self,
        message: agent_pb2.ConnectResponse,
        *,
        urgent: bool = False,
        on_sent: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if self.ended.is_set():
            return
        self._queue.put_nowait(Outbound(URGENT if urgent else NORMAL, next(_counter), message, on_sent))

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
