"""Group commit of telemetry from all agent streams (issue 8, part 1).

Every stream's reader hands its telemetry batch to one `GroupCommitter` and waits for the answer; a single flusher
task takes whatever is queued (from any number of streams), writes it in ONE transaction
(`Repository.ingest_telemetry_many`), and answers each waiter after the commit, so acked still means stored
(docs/protocol.md rule 4) while the cost of a transaction is shared by every message in it. Seq integrity and
dedup are decided inside that transaction, per message, exactly as for a message written alone.

The queue is bounded: when it is full, `submit` refuses at once with UNAVAILABLE and a retry hint instead of letting
latency grow without limit (the stream ends; the agent resends from its durable outbox after the hint).

The same mechanism batches agent Hellos (`write=Repository.record_hellos`, skymesh.server.stream): a reconnect storm
of thousands of agents shares a few transactions instead of paying one each. `write` takes the group's
(station, boot, seq, item) tuples and epochs and answers each in order, as `ingest_telemetry_many` does.

Imports: the repository and core errors only; nothing here knows about gRPC.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from skymesh.core.errors import SkyMeshError, Unavailable
from skymesh.server.db import Repository

__all__ = ["GroupCommitter", "GroupWrite"]

# Writes one group in one transaction: (station, boot, seq, item) per message and its epoch (None: unfenced); answers
# each message in order with its result or the error that refuses it.
GroupWrite = Callable[[Sequence[tuple[str, str, int, Any]], Sequence[int | None]], Awaitable[Sequence[Any]]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    station_id: str
    boot_id: str
    seq: int
    item: Any
    epoch: int | None
    answer: asyncio.Future[Any]


def _retrieve(answer: asyncio.Future[Any]) -> None:
    if not answer.cancelled():
        answer.exception()  # retrieved: a waiter whose stream ended no longer wants it


class GroupCommitter:
    """One flusher per server. `max_group` bounds a transaction; `max_queued` bounds memory and latency;
    `linger_s` is how long a group waits for more messages before it is written (0: one event-loop turn). `write`
    (default: the repository's telemetry group insert) and `overload_reason` make the same mechanism serve Hellos."""

    def __init__(
        self,
        repo: Repository,
        *,
        max_group: int = 1000,
        max_queued: int = 20_000,
        retry_after_s: float = 2.0,
        linger_s: float = 0.02,
        write: GroupWrite | None = None,
        overload_reason: str = "INGEST_OVERLOADED",
    ) -> None:
        self._write: GroupWrite = write or repo.ingest_telemetry_many
        self._gate = repo.write_gate  # SQLite: an urgent command's transaction goes before the next group
        self._overload_reason = overload_reason
        self._linger_s = linger_s
        self._max_group = max_group
        self._max_queued = max_queued
        self._retry_after_s = retry_after_s
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.groups = 0  # transactions written (for benchmarks and tests)
        self.messages = 0

    async def submit(self, station_id: str, boot_id: str, seq: int, item: Any, *, epoch: int | None = None) -> Any:
        """The answer for this message once its group has committed; raises the error that refuses it (FENCED when
        `epoch` is no longer the station's)."""
        if len(self._queue) >= self._max_queued:
            raise Unavailable(
                f"server queue full ({self._max_queued} waiting): retry later",
                reason=self._overload_reason,
                details={"retry-after-s": f"{self._retry_after_s:g}"},
            )
        if self._closing:
            raise Unavailable("server shutting down", reason="SHUTTING_DOWN")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="skymesh-group-commit")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieve)
        self._queue.append(_Pending(station_id, boot_id, seq, item, epoch, answer))
        self._wake.set()
        # Not shielded (a future and two callbacks fewer per message): a stream that ends while its message is queued
        # cancels only its answer; the group is written from the queue all the same and skips a cancelled answer.
        return await answer

    async def close(self) -> None:
        """Write what is queued, then stop the flusher."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not (self._closing and not self._queue):
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                # Let the streams that are ready within `linger_s` add their message to this group: a transaction
                # costs the server about as much CPU for one message as for dozens, so waiting a few ms for company
                # is the cheapest thing on the hot path (acks wait at most that much longer). Full or closing: go.
                full = len(self._queue) >= self._max_group
                await asyncio.sleep(0 if full or self._closing else self._linger_s)
                count = min(len(self._queue), self._max_group)
                group = [self._queue.popleft() for _ in range(count)]
                await self._flush(group)

    async def _flush(self, group: list[_Pending]) -> None:
        try:
            async with self._gate.bulk():
                results = await self._write(
                    [(p.station_id, p.boot_id, p.seq, p.item) for p in group], [p.epoch for p in group]
                )
        except Exception as exc:  # the whole transaction failed (database down): every waiter hears it
            for pending in group:
                if not pending.answer.done():
                    pending.answer.set_exception(exc)
            return
        self.groups += 1
        self.messages += len(group)
        for pending, result in zip(group, results, strict=True):
            if pending.answer.done():
                continue
            if isinstance(result, SkyMeshError):
                pending.answer.set_exception(result)
            else:
                pending.answer.set_result(result)
