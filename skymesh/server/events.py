"""The in-process event bus behind `EventService.Watch`: station state changes, job transitions, new observations
and new plans, published by the code that has just committed them, fanned out to every watcher; and telemetry
summaries, at most one per second per station, sent only to the watchers that asked for that station.

Events are numbered per server run; a cursor is "<run id>.<seq>" so a watcher can resume after a reconnect. The
bus keeps the last `capacity` events: a cursor older than that, or from another run (or another replica), is
answered with a `resync` event first, and the watcher reloads its state. A watcher that cannot keep up (its queue is
full) is dropped with a resync rather than slowing the publishers: publishing never blocks and never fails.

Telemetry summaries are live only: they take no number of their own (their cursor is the last numbered event's) and
are not kept in the buffer, so a network's telemetry never pushes job transitions out of a reconnecting watcher's
reach, and a watcher too slow for them loses summaries, never its place. Batches that arrive within a second of the
station's last summary are held (their last sample of each second) and sent when the second is up.

With server replicas on PostgreSQL (docs/replicas.md), `forward` hands every event published here to the replica
link, which NOTIFYs the other replicas in batches; each of them `relay`s it to its own watchers, numbered in its own
run like its own events. A watcher on any replica therefore sees every replica's events, and its cursor stays
resumable on the replica that numbered it (elsewhere: a resync, as after a restart). When the link may have missed
notifications (its connection dropped), `resync` tells every watcher here to reload. Telemetry summaries stay with
the replica that stores the station's telemetry.

Imports only the generated API and `skymesh.core`; it knows nothing of the database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import events_pb2
from skymesh.api.convert import job_state_to_proto, timestamp_from_datetime
from skymesh.core.clock import Clock
from skymesh.core.jobs import JobState
from skymesh.core.model import StationState

__all__ = ["EventBus", "Subscription"]

log = logging.getLogger(__name__)

_QUEUE = 1024
TELEMETRY_INTERVAL_S = 1.0  # at most one summary per station per this many seconds
MAX_SUMMARY_SAMPLES = 10


class EventBus:
    def __init__(self, clock: Clock, capacity: int = 10_000) -> None:
        self._clock = clock
        self._run = secrets.token_hex(4)
        self._seq = 0
        self._buffer: collections.deque[events_pb2.WatchResponse] = collections.deque(maxlen=capacity)
        # Each watcher's queue, and the stations whose telemetry it wants.
        self._watchers: dict[asyncio.Queue[events_pb2.WatchResponse | None], frozenset[str]] = {}
        self._telemetry_wanted: collections.Counter[str] = collections.Counter()
        self._telemetry_sent: dict[str, float] = {}  # station -> monotonic time of its last summary
        self._telemetry_held: dict[str, dict[int, agent_pb2.TelemetrySample]] = {}  # station -> second -> sample
        self._telemetry_timers: dict[str, asyncio.TimerHandle] = {}
        # Replicas: called with each event published here (not with relayed ones); must never block or raise.
        self.forward: Callable[[events_pb2.WatchResponse], None] | None = None

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def _publish(self, event: events_pb2.WatchResponse, *, relayed: bool = False) -> None:
        self._seq += 1
        event.cursor = f"{self._run}.{self._seq}"
        if not relayed:  # a relayed event keeps the time its replica published it
            event.at.CopyFrom(timestamp_from_datetime(self._clock.now()))
            if self.forward is not None:
                self.forward(event)
        self._buffer.append(event)
        for queue in list(self._watchers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("event watcher fell %d events behind: dropped (it resumes with a resync)", _QUEUE)
                self._drop(queue)
                queue.get_nowait()  # room for the end marker; the resync it causes covers the lost event
                queue.put_nowait(None)

    # Publishers: called right after the change is committed.

    def relay(self, event: events_pb2.WatchResponse) -> None:
        """An event another replica published (station state, job, observation or plan): to the watchers here."""
        if event.WhichOneof("event") in ("station_state", "job", "observation", "plan"):
            self._publish(event, relayed=True)

    def resync(self, reason: str) -> None:
        """Events may have been missed (the replica link was down): every watcher here reloads its state."""
        self._publish(events_pb2.WatchResponse(resync=events_pb2.Resync(reason=reason)), relayed=True)

    def station_state(self, station_id: str, old: StationState, new: StationState) -> None:
        self._publish(
            events_pb2.WatchResponse(
                station_state=events_pb2.StationStateChanged(
                    station_id=station_id,
                    old_state=common_pb2.StationState.ValueType(int(old)),
                    new_state=common_pb2.StationState.ValueType(int(new)),
                )
            )
        )

    def job(self, job_id: str, station_id: str, old: JobState, new: JobState) -> None:
        self._publish(
            events_pb2.WatchResponse(
                job=events_pb2.JobTransition(
                    job_id=job_id,
                    station_id=station_id,
                    old_state=job_state_to_proto(old),
                    new_state=job_state_to_proto(new),
                )
            )
        )

    def observation(self, observation_id: str, station_id: str, target_id: str) -> None:
        self._publish(
            events_pb2.WatchResponse(
                observation=events_pb2.ObservationAdded(
                    observation_id=observation_id, station_id=station_id, target_id=target_id
                )
            )
        )

    def plan(self, assignments: int, unscheduled: int, changed_station_ids: list[str]) -> None:
        self._publish(
            events_pb2.WatchResponse(
                plan=events_pb2.PlanApplied(
                    assignments=assignments, unscheduled=unscheduled, changed_station_ids=changed_station_ids
                )
            )
        )

    def telemetry(self, station_id: str, samples: Sequence[agent_pb2.TelemetrySample]) -> None:
        """A batch the server has just stored (already checked: times valid, values finite)."""
        if not self._telemetry_wanted.get(station_id):
            return  # nobody is looking: no work at all
        held = self._telemetry_held.setdefault(station_id, {})
        for sample in samples[-MAX_SUMMARY_SAMPLES * 4 :]:
            held[sample.at.seconds] = sample  # the last sample of each second
        for second in sorted(held)[:-MAX_SUMMARY_SAMPLES]:
            del held[second]
        if station_id in self._telemetry_timers:
            return
        wait_s = self._telemetry_sent.get(station_id, -1e18) + TELEMETRY_INTERVAL_S - self._clock.monotonic()
        if wait_s <= 0:
            self._send_telemetry(station_id)
        else:
            loop = asyncio.get_running_loop()
            self._telemetry_timers[station_id] = loop.call_later(wait_s, self._send_telemetry, station_id)

    def _send_telemetry(self, station_id: str) -> None:
        self._telemetry_timers.pop(station_id, None)
        held = self._telemetry_held.pop(station_id, {})
        if not held:
            return
        self._telemetry_sent[station_id] = self._clock.monotonic()
        samples = [held[k] for k in sorted(held)[-MAX_SUMMARY_SAMPLES:]]
        event = events_pb2.WatchResponse(
            cursor=f"{self._run}.{self._seq}",
            telemetry=events_pb2.TelemetrySummary(station_id=station_id, samples=samples),
        )
        event.at.CopyFrom(timestamp_from_datetime(self._clock.now()))
        for queue, stations in list(self._watchers.items()):
            if station_id in stations:
                with contextlib.suppress(asyncio.QueueFull):  # lossy by design: the next summary supersedes it
                    queue.put_nowait(event)

    # Watchers.

    def _drop(self, queue: asyncio.Queue[events_pb2.WatchResponse | None]) -> None:
        stations = self._watchers.pop(queue, None)
        for station_id in stations or ():
            self._telemetry_wanted[station_id] -= 1
            if self._telemetry_wanted[station_id] <= 0:
                del self._telemetry_wanted[station_id]
                self._telemetry_held.pop(station_id, None)
                self._telemetry_sent.pop(station_id, None)
                timer = self._telemetry_timers.pop(station_id, None)
                if timer is not None:
                    timer.cancel()

    def _backlog(self, cursor: str) -> tuple[list[events_pb2.WatchResponse], str | None]:
        """(events after the cursor, resync reason or None)."""
        if not cursor:
            return [], None
        run, _, seq_text = cursor.partition(".")
        if run != self._run or not seq_text.isdigit():
            return [], "cursor from another server run"
        seq = int(seq_text)
        if seq > self._seq:
            return [], "cursor from the future"
        oldest = self._seq - len(self._buffer) + 1
        if seq + 1 < oldest:
            return [], "cursor older than the server's event buffer"
        return list(self._buffer)[seq + 1 - oldest :], None

    def watch(self, cursor: str, telemetry_station_ids: Iterable[str] = ()) -> Subscription:
        """A watcher, registered now (before the caller awaits anything): every event published from here on
        reaches it, so a client can be told "watching" before the first event without missing one."""
        return Subscription(self, cursor, frozenset(telemetry_station_ids))

    def _resync(self, reason: str) -> events_pb2.WatchResponse:
        event = events_pb2.WatchResponse(cursor=f"{self._run}.{self._seq}", resync=events_pb2.Resync(reason=reason))
        event.at.CopyFrom(timestamp_from_datetime(self._clock.now()))
        return event


class Subscription:
    """One watcher of an EventBus: its backlog (resync or events after the cursor), then live events. Iterate it, and
    `aclose()` it when done (iterating to the end, or closing, unregisters it)."""

    def __init__(self, bus: EventBus, cursor: str, stations: frozenset[str]) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[events_pb2.WatchResponse | None] = asyncio.Queue(maxsize=_QUEUE)
        # Backlog and registration happen with no await in between: nothing is missed or repeated.
        backlog, resync = bus._backlog(cursor)
        bus._watchers[self._queue] = stations
        bus._telemetry_wanted.update(stations)
        self._events = self._run(backlog, resync)

    async def _run(
        self, backlog: list[events_pb2.WatchResponse], resync: str | None
    ) -> AsyncGenerator[events_pb2.WatchResponse]:
        try:
            if resync is not None:
                yield self._bus._resync(resync)
            for old in backlog:
                yield old
            while True:
                event = await self._queue.get()
                if event is None:
                    yield self._bus._resync("watcher fell behind")
                    return
                yield event
        finally:
            self._bus._drop(self._queue)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> events_pb2.WatchResponse:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()
        self._bus._drop(self._queue)  # also when it was never iterated
