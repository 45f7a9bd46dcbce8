"""Station liveness (docs/protocol.md rule 9): last-seen in memory, database writes only on state transitions.

    ONLINE       a stream is open and messages arrive
    DEGRADED     as ONLINE, but the agent's Hello or last heartbeat says a device is failing (`report_devices`)
    STALE        a stream is open but nothing arrived for `stale_after_intervals` heartbeat intervals
    DISCONNECTED no stream; keeps its accepted work (runs autonomously) but gets no new work
    OFFLINE      no stream for longer than `offline_grace_s`

The wanted state is derived from in-memory facts (is a stream open, when was the last message, when did the last
stream end) and written through one lock, so a late "stream ended" can never overwrite a newer ONLINE. A change to
or from a schedulable state calls `on_schedulable_change` (the planner's trigger). A Hello's ONLINE (or DEGRADED) is
written by the Hello's own group transaction (`opened`), and the monitor writes all transitions of a tick in one
transaction (`refresh_many`): a reconnect storm costs a few transactions, not two per station.

With several server replicas on one PostgreSQL (issue 8), a station's state is written only by the replica that
holds its current session epoch (`opened` by a Hello, or `adopt`ed from a replica that died): each write is
conditioned on that epoch, and a replica whose write is refused forgets the station, so replicas never fight over
it. Stations whose holder died are found by `sweep` and adopted by exactly one live replica, which marks them
DISCONNECTED and, after the grace, OFFLINE (unless their agents reconnect first, to any replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from skymesh.core.clock import Clock
from skymesh.core.model import StationState
from skymesh.observability.metrics import STATIONS_BY_STATE
from skymesh.server.config import ServerConfig
from skymesh.server.db import Repository
from skymesh.server.sessions import SessionHub

__all__ = ["Liveness"]

log = logging.getLogger(__name__)

# Health detectors whose open event means the station cannot do demanding work well: its rotator, radio, camera or
# clock. Heartbeat jitter is the link's (STALE covers that), not the hardware's.
_LOST = -1  # the epoch of a station this replica lost: every write with it is refused
_WRITE_GROUP = 500  # liveness transitions written per transaction
_LOG_EACH = 20  # more transitions than this in one pass (a storm) are logged as one line at INFO, each at DEBUG

DEGRADING_DETECTORS = frozenset({"rotator_pointing_error", "radio_snr_residual", "camera_temperature", "clock_offset"})


class Liveness:
    def __init__(
        self,
        repo: Repository,
        hub: SessionHub,
        config: ServerConfig,
        clock: Clock,
        on_schedulable_change: Callable[[str], None] = lambda _station: None,
        on_state_change: Callable[[str, StationState, StationState], None] = lambda _s, _old, _new: None,
        *,
        replica: str = "",
    ) -> None:
        self._replica = replica  # this process's replica id (skymesh.server.replicas)
        self._epoch: dict[str, int] = {}  # the session epoch this replica holds each station at
        self._repo = repo
        self._hub = hub
        self._config = config
        self._clock = clock
        self._on_change = on_schedulable_change
        self._on_state = on_state_change
        self._beat: dict[str, float] = {}  # stations without a stream that report heartbeats (SiteService)
        self._state: dict[str, StationState] = {}
        self._publish_pending = False  # a `_publish` is scheduled for this loop turn
        self._last_seen: dict[str, float] = {}
        self._ended_at: dict[str, float] = {}
        self._failing: dict[str, tuple[str, ...]] = {}
        self._anomalies: dict[str, set[str]] = {}  # open health events of detectors that mean failing hardware
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def last_seen(self, station_id: str) -> datetime | None:
        """When the last message from the station arrived (in memory; the database has it as of the last
        transition)."""
        seen = self._last_seen.get(station_id)
        if seen is None:
            return None
        return self._clock.now() - timedelta(seconds=self._clock.monotonic() - seen)

    def state(self, station_id: str) -> StationState:
        return self._state.get(station_id, StationState.OFFLINE)

    async def load(self) -> None:
        """Take the states from the database at start. Streams did not survive the restart: stations held by no
        live replica (all of them, for a single server) are adopted and count as disconnected from now."""
        self._state = await self._repo.station_states()
        alone = not (await self._repo.live_replicas() - {self._replica})
        await self.sweep(unclaimed=alone)
        for station_id in list(self._state):
            await self.refresh(station_id)
        self._publish()

    async def sweep(self, *, unclaimed: bool = False) -> list[str]:
        """Adopt the stations whose holding replica has died (its PostgreSQL connection is gone): this replica takes
        their next epoch without a stream, so it alone moves them to DISCONNECTED and then OFFLINE. Returns them."""
        orphans = await self._repo.orphaned_sessions(self._replica, unclaimed=unclaimed)
        adopted = []
        for station_id, epoch in orphans.items():
            new_epoch = await self._repo.adopt_session(station_id, epoch, self._replica)
            if new_epoch is not None:
                adopted.append((station_id, new_epoch))
        states = await self._repo.station_states()
        # Stations held elsewhere: this replica's view (gauges, the planner's wait for reconnects) follows the
        # database, which their holders write.
        for station_id, state in states.items():
            held = self._epoch.get(station_id, _LOST) != _LOST or self._hub.connected(station_id)
            if not held and station_id not in self._beat:
                self._state[station_id] = state
        self._publish()
        if adopted:
            now = self._clock.monotonic()
            for station_id, new_epoch in adopted:
                if self._hub.connected(station_id):
                    continue  # its agent is back here already (a newer epoch than this one): the stream decides
                self._epoch[station_id] = new_epoch
                self._state[station_id] = states.get(station_id, StationState.OFFLINE)
                if self._state[station_id] != StationState.OFFLINE:
                    self._ended_at[station_id] = now
            log.info("adopted %d stations whose replica is gone", len(adopted))
            self._wake.set()
        return [s for s, _e in adopted]

    def hello_state(self, station_id: str) -> StationState:
        """The state a Hello here puts the station in (written by the Hello's own transaction): DEGRADED while a
        device it reported (`report_devices`, called first) or an open health event says so, else ONLINE."""
        degraded = self._failing.get(station_id) or self._anomalies.get(station_id)
        return StationState.DEGRADED if degraded else StationState.ONLINE

    def claimed(self, station_id: str, epoch: int, stored: StationState) -> None:
        """A heartbeat-only site's session was taken here at `epoch` (SiteService, no stream); `stored` is its state
        in the database as of that moment (another replica may have written it since this one last looked). The
        caller's `refresh` then writes what the heartbeat means."""
        self._epoch[station_id] = epoch
        self._state[station_id] = stored
        self._ended_at.pop(station_id, None)

    async def opened(self, station_id: str, epoch: int, stored: StationState, written: StationState) -> None:
        """A Hello here took the station at `epoch` and its transaction moved the stored state from `stored` (as
        another replica may have left it) to `written`: the same bookkeeping and callbacks as a `refresh` that
        wrote it, without a transaction of its own. Under the lock, so a refresh in flight with the older epoch
        finishes first (its write either committed before the Hello's or was refused)."""
        async with self._lock:
            if self._epoch.get(station_id, 0) > epoch:
                return  # a newer Hello here already holds it (two Hellos answered out of order)
            self._epoch[station_id] = epoch
            self._state[station_id] = written
            self._ended_at.pop(station_id, None)
            self._last_seen[station_id] = self._clock.monotonic()
            if stored != written:
                log.debug("station %s: %s -> %s", station_id, stored.name, written.name)
                self._publish_soon()
                self._on_state(station_id, stored, written)
        if stored.schedulable != written.schedulable:
            self._on_change(station_id)

    def touch(self, station_id: str) -> bool:
        """A message arrived. Returns True when the station's state must be refreshed (it was not ONLINE)."""
        self._last_seen[station_id] = self._clock.monotonic()
        return self._state.get(station_id) not in (StationState.ONLINE, StationState.DEGRADED)

    def failing_devices(self, station_id: str) -> tuple[str, ...]:
        """Roles ("rotator", "radio", ...) the station's agent last reported failing."""
        return self._failing.get(station_id, ())

    def report_devices(self, station_id: str, failing: tuple[str, ...]) -> bool:
        """The agent's health report (Hello or heartbeat). True when it changed what is failing (refresh then)."""
        failing = tuple(sorted(set(failing)))
        if self._failing.get(station_id, ()) == failing:
            return False
        if failing:
            self._failing[station_id] = failing
        else:
            self._failing.pop(station_id, None)
        log.info("station %s: failing devices %s", station_id, ", ".join(failing) or "none")
        if self._state.get(station_id) == StationState.DEGRADED:
            self._on_change(station_id)  # still DEGRADED, but what it can do changed (the planner narrows by device)
        return True

    def report_anomaly(self, station_id: str, detector: str, opened: bool) -> bool:
        """A telemetry health detector (skymesh.server.health) opened or closed an event. Detectors that mean failing
        hardware or time (DEGRADING_DETECTORS) make the station DEGRADED while open; the monitor writes the change
        on its next pass. True when the set of open anomalies changed."""
        if detector not in DEGRADING_DETECTORS:
            return False
        open_now = self._anomalies.setdefault(station_id, set())
        if (detector in open_now) == opened:
            return False
        if opened:
            open_now.add(detector)
        else:
            open_now.discard(detector)
            if not open_now:
                del self._anomalies[station_id]
        self._wake.set()
        return True

    def heartbeat(self, station_id: str) -> None:
        """A station without an agent stream reports itself alive: ONLINE until a heartbeat is overdue (STALE),
        then DISCONNECTED and OFFLINE after the grace, like a stream that ended at its last heartbeat."""
        now = self._clock.monotonic()
        self._last_seen[station_id] = now
        self._beat[station_id] = now
        self._ended_at[station_id] = now + self._config.stale_after_s
        self._wake.set()

    def stream_ended(self, station_id: str) -> None:
        """Synchronous (safe in `finally` while cancelled): the monitor writes the transition shortly."""
        self._ended_at[station_id] = self._clock.monotonic()
        self._wake.set()

    def _wanted(self, station_id: str, now: float) -> StationState:
        if self._hub.connected(station_id):
            seen = self._last_seen.get(station_id, now)
            if now - seen > self._config.stale_after_s:
                return StationState.STALE
            degraded = self._failing.get(station_id) or self._anomalies.get(station_id)
            return StationState.DEGRADED if degraded else StationState.ONLINE
        beat = self._beat.get(station_id)
        if beat is not None and now - beat <= self._config.stale_after_s:
            return StationState.ONLINE
        ended = self._ended_at.get(station_id)
        if ended is None:
            return self._state.get(station_id, StationState.OFFLINE)
        return StationState.OFFLINE if now - ended >= self._config.offline_grace_s else StationState.DISCONNECTED

    async def refresh(self, station_id: str) -> StationState:
        [state] = await self.refresh_many([station_id])
        return state

    async def refresh_many(self, station_ids: Iterable[str]) -> list[StationState]:
        """Re-derive each station's state and write every transition in one transaction (the monitor's tick: a
        reconnect storm ends thousands of streams at once). Returns each station's state after it."""
        ids = list(station_ids)
        moved: list[tuple[str, StationState, StationState]] = []
        async with self._lock:
            now = self._clock.monotonic()
            out = [self._wanted(station_id, now) for station_id in ids]
            todo = [
                (i, station_id, self._state.get(station_id, StationState.OFFLINE), self._epoch.get(station_id))
                for i, station_id in enumerate(ids)
                if out[i] != self._state.get(station_id, StationState.OFFLINE)
            ]
            for start in range(0, len(todo), _WRITE_GROUP):
                part = todo[start : start + _WRITE_GROUP]
                written = await self._repo.set_station_states(
                    [(station_id, out[i], self.last_seen(station_id), epoch) for i, station_id, _old, epoch in part]
                )
                for (i, station_id, old, epoch), ok in zip(part, written, strict=True):
                    if not ok and epoch is not None:
                        # A newer session holds the station (here or on another replica): its state is that
                        # session's to write. This replica forgets it, and writes nothing more for it until a Hello
                        # here claims it again.
                        self._epoch[station_id] = _LOST
                        self._ended_at.pop(station_id, None)
                        self._state.pop(station_id, None)
                        out[i] = old
                        continue
                    self._state[station_id] = out[i]
                    log.log(
                        logging.INFO if len(todo) <= _LOG_EACH else logging.DEBUG,
                        "station %s: %s -> %s",
                        station_id,
                        old.name,
                        out[i].name,
                    )
                    self._on_state(station_id, old, out[i])
                    moved.append((station_id, old, out[i]))
            if todo:
                self._publish()
            if len(todo) > _LOG_EACH:  # a storm: one line, not one per station
                counts = Counter(f"{old.name} -> {new.name}" for _, old, new in moved)
                log.info("%d stations changed state: %s", len(moved), ", ".join(f"{n} {t}" for t, n in counts.items()))
        for station_id, old, new in moved:
            if old.schedulable != new.schedulable:
                self._on_change(station_id)
        return out

    def _publish_soon(self) -> None:
        """`_publish` once per event-loop turn: a reconnect storm's Hellos each change a state, and counting every
        station for each of them costs O(K) per Hello (O(K^2) for the storm)."""
        if not self._publish_pending:
            self._publish_pending = True
            asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        self._publish_pending = False
        counts = dict.fromkeys(StationState, 0)
        for state in self._state.values():
            counts[state] += 1
        for state, n in counts.items():
            STATIONS_BY_STATE.labels(state.name.lower()).set(n)

    def _tick_s(self) -> float:
        return max(0.05, min(1.0, self._config.heartbeat_interval_s / 4, self._config.offline_grace_s / 4 or 1.0))

    async def run(self) -> None:
        """The monitor: re-derives every known station's state each tick (and at once after a stream ends)."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races the wake-up,
            # and this task must stop when its owner cancels it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_s()):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh_many(sorted(set(self._state) | set(self._ended_at) | set(self._last_seen)))
            except Exception:  # a database hiccup must not kill the monitor; next tick retries
                log.exception("liveness refresh failed")
