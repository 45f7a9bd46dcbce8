"""Server replicas on one PostgreSQL (issue 8): presence, LISTEN/NOTIFY between replicas, and the planner lock.

Several `skymesh server` processes share one PostgreSQL behind any TCP load balancer. Each agent's stream lands on
one of them; `station_sessions` records which (skymesh.server.db.replicas), fenced by an epoch. This module is the
one dedicated asyncpg connection each replica keeps besides its pool, the *presence connection*:

- its `application_name` is the replica's id (`skymesh-replica:<16 hex>`), so every replica can tell which replicas
  are alive from pg_stat_activity: a replica killed with SIGKILL disappears from it when its connection drops, and
  another replica adopts its stations (`Liveness.sweep`);
- it LISTENs on `skymesh_station`: a command or schedule made on replica X for a station whose stream is on replica
  Y reaches Y at once (payload `<kind>:<item>,<item>...`, see `skymesh.server.dispatch.Notify`), and Y delivers it
  from the outbox; a poll of the outbox heads of the streams held here (`poll_s`) is the fallback for a missed
  notification (or a presence connection that was down for a moment);
- it LISTENs on `skymesh_events`: the events each replica publishes for `EventService.Watch` reach the others'
  watchers (`relay_event`, batched, several events per NOTIFY, one round trip per batch); a replica ignores its own;
- it holds the session-level advisory lock `PLANNER_LOCK`: the replica holding it is the only one that plans; the
  lock is released by PostgreSQL when that connection dies, and another replica takes it within `lock_retry_s`.

On SQLite (one process) none of this runs and nothing changes. Imports: asyncpg, the repository, the session hub
and the dispatcher; nothing here knows about gRPC.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError

from skymesh.api.control.v1 import events_pb2
from skymesh.core.errors import Aborted
from skymesh.server.db import Repository
from skymesh.server.db.replicas import REPLICA_PREFIX
from skymesh.server.dispatch import Dispatcher
from skymesh.server.sessions import SessionHub

__all__ = ["CHANNEL", "EVENTS_CHANNEL", "PLANNER_LOCK", "ReplicaLink", "new_replica_id"]

log = logging.getLogger(__name__)

CHANNEL = "skymesh_station"
EVENTS_CHANNEL = "skymesh_events"
_MAX_EVENTS_QUEUED = 10_000  # events waiting for the link; beyond that they are dropped and the others resync
PLANNER_LOCK = 0x736B796D_706C616E  # "skymplan": one advisory lock key per database, held by the planning replica
_MAX_PAYLOAD = 7000  # bytes per NOTIFY (PostgreSQL's limit is 8000)


def new_replica_id() -> str:
    """A fresh id for this process (an application_name: at most 63 bytes)."""
    return f"{REPLICA_PREFIX}{uuid.uuid4().hex[:16]}"


def _payloads(kind: str, items: Sequence[str]) -> list[str]:
    out: list[str] = []
    batch: list[str] = []
    size = 0
    for item in items:
        if batch and size + len(item) + 1 > _MAX_PAYLOAD:
            out.append(f"{kind}:{','.join(batch)}")
            batch, size = [], 0
        batch.append(item)
        size += len(item) + 1
    if batch:
        out.append(f"{kind}:{','.join(batch)}")
    return out


class ReplicaLink:
    """The presence connection and what rides on it. `run()` is owned and cancelled by the server."""

    def __init__(
        self,
        dsn: str,
        replica_id: str,
        repo: Repository,
        hub: SessionHub,
        dispatcher: Dispatcher,
        *,
        want_lead: bool,
        on_plan_request: Callable[[str], None] = lambda _reason: None,
        on_orphans: Callable[[], Any] | None = None,
        on_event: Callable[[events_pb2.WatchResponse], None] | None = None,
        on_events_lost: Callable[[str], None] = lambda _reason: None,
        poll_s: float = 5.0,
        lock_retry_s: float = 1.0,
        sweep_s: float = 2.0,
    ) -> None:
        self.dsn = dsn
        self.replica_id = replica_id
        self._repo = repo
        self._hub = hub
        self._dispatcher = dispatcher
        self._want_lead = want_lead
        self._on_plan_request = on_plan_request
        self._on_orphans = on_orphans
        self._on_event = on_event
        self._on_events_lost = on_events_lost
        self._events: list[str] = []  # this replica's events, encoded, waiting to be NOTIFYed
        self._events_dropped = False
        self._events_wake = asyncio.Event()
        self._pid = 0  # the server pid of the presence connection: notifications from it are this replica's own
        self._poll_s = poll_s
        self._lock_retry_s = lock_retry_s
        self._sweep_s = sweep_s
        self._conn: Any = None  # asyncpg.Connection
        self._conn_lock = asyncio.Lock()
        self._leading = asyncio.Event()
        self._pending: dict[str, set[str]] = {}
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._claims: list[str] = []
        self._claims_wake = asyncio.Event()
        self.notified = 0  # notifications handled (tests, metrics)
        self.delivered_by_notify = 0
        self.delivered_by_poll = 0

    # ------------------------------------------------------------------------------------------------ presence

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    async def wait_leading(self) -> None:
        await self._leading.wait()

    async def connect(self) -> None:
        """Open the presence connection and LISTEN (at start, before the first stream: a failure fails the start)."""
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": self.replica_id})
        await conn.add_listener(CHANNEL, self._on_notification)
        if self._on_event is not None:
            await conn.add_listener(EVENTS_CHANNEL, self._on_event_notification)
        self._pid = conn.get_server_pid()
        conn.add_termination_listener(lambda _c: self._lost.set())
        self._conn = conn
        self._lost.clear()
        log.info("replica %s: presence connection up (LISTEN %s)", self.replica_id, CHANNEL)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._leading.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    async def notify(self, kind: str, items: Sequence[str]) -> None:
        """NOTIFY every replica (this one too; it ignores what it already did). Raises when the connection is down:
        the caller logs it, and the holder's outbox poll delivers instead. Claims ("h") are only queued here and
        sent in batches by `run`: a reconnect storm's Hellos do not wait in line for the presence connection."""
        if kind == "h":
            self._claims.extend(items)
            self._claims_wake.set()
            return
        await self._send(kind, items)

    async def _send(self, kind: str, items: Sequence[str]) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            raise ConnectionError("presence connection is down")
        async with self._conn_lock:  # every payload of the batch in one round trip (a storm's claims: thousands)
            await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, _payloads(kind, items))

    def relay_event(self, event: events_pb2.WatchResponse) -> None:
        """An event published here, for the other replicas' watchers (EventBus.forward): queued, never blocks."""
        if self._on_event is None:
            return
        if len(self._events) >= _MAX_EVENTS_QUEUED:
            self._events_dropped = True
            return
        self._events.append(base64.b64encode(event.SerializeToString()).decode("ascii"))
        self._events_wake.set()

    async def _send_events(self) -> None:
        while True:
            await self._events_wake.wait()
            self._events_wake.clear()
            events, self._events = self._events, []
            if self._events_dropped:
                self._events_dropped = False
                events.append("!")  # the others' watchers resync: they missed some of this replica's events
            big = [e for e in events if len(e) + 3 > _MAX_PAYLOAD]
            if big:  # a plan naming thousands of stations: the others' watchers reload instead
                events = [e for e in events if len(e) + 3 <= _MAX_PAYLOAD] + ["!"]
            conn = self._conn
            try:
                if conn is None or conn.is_closed():
                    raise ConnectionError("presence connection is down")
                async with self._conn_lock:
                    await conn.execute(
                        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                        EVENTS_CHANNEL,
                        _payloads("e", events),
                    )
            except Exception as exc:  # the others resync when their link sees this one's loss; log and go on
                log.warning("replica %s: could not relay %d events: %s", self.replica_id, len(events), exc)

    def _on_event_notification(self, _conn: Any, pid: int, _channel: str, payload: str) -> None:
        if pid == self._pid or self._on_event is None:
            return  # this replica's own events: its watchers have them
        for item in payload.partition(":")[2].split(","):
            if item == "!":
                self._on_events_lost("another replica's events were too many or too large to relay")
                continue
            try:
                event = events_pb2.WatchResponse.FromString(base64.b64decode(item, validate=True))
            except (binascii.Error, DecodeError, ValueError):
                log.warning("replica %s: ignored an undecodable event notification", self.replica_id)
                continue
            self._on_event(event)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind == "p":
            if self.leading:
                self._on_plan_request(rest or "requested by another replica")
            return
        self._pending.setdefault(kind, set()).update(i for i in rest.split(",") if i)
        self._wake.set()

    # ------------------------------------------------------------------------------------------------ loops

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._supervise(), name="replica-presence")
            tg.create_task(self._handle(), name="replica-notify")
            tg.create_task(self._poll(), name="replica-outbox-poll")
            tg.create_task(self._send_claims(), name="replica-claims")
            tg.create_task(self._send_events(), name="replica-events")
            if self._on_orphans is not None:
                tg.create_task(self._sweep(), name="replica-sweep")

    async def _supervise(self) -> None:
        """Keep the presence connection (reconnect after a loss) and, if this replica plans, try for the lock."""
        while True:
            if self._conn is None or self._conn.is_closed() or self._lost.is_set():
                if self._leading.is_set():
                    log.warning("replica %s: presence connection lost: no longer the planner", self.replica_id)
                self._leading.clear()
                old, self._conn = self._conn, None
                if old is not None:
                    old.terminate()
                try:
                    await self.connect()
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("replica %s: presence connection failed (%s); retrying", self.replica_id, exc)
                    await asyncio.sleep(self._lock_retry_s)
                    continue
                self._pending.setdefault("poll", set()).add("*")  # notifications may have been missed meanwhile
                self._wake.set()
                if old is not None:
                    self._on_events_lost("the link to the other replicas was down: events may have been missed")
            if self._want_lead and not self._leading.is_set():
                await self.try_lock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._lock_retry_s):
                    await self._lost.wait()

    async def try_lock(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            async with self._conn_lock:
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", PLANNER_LOCK)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("replica %s: planner lock attempt failed: %s", self.replica_id, exc)
            return
        if got:
            log.info("replica %s: took the planner lock: this replica plans", self.replica_id)
            self._leading.set()

    async def _send_claims(self) -> None:
        while True:
            await self._claims_wake.wait()
            self._claims_wake.clear()
            claims, self._claims = self._claims, []
            try:
                await self._send("h", claims)
            except Exception as exc:  # an older stream elsewhere then ends at its next write (FENCED)
                log.warning("replica %s: could not announce %d claims: %s", self.replica_id, len(claims), exc)

    async def _handle(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            try:
                await self._apply(pending)
            except Exception:  # a database hiccup must not kill the loop: the poll catches up
                log.exception("replica %s: handling notifications failed", self.replica_id)

    async def _apply(self, pending: dict[str, set[str]]) -> None:
        for item in pending.get("h", ()):
            station_id, _, epoch_text = item.partition("=")
            session = self._hub.get(station_id)
            held = session.epoch if session is not None else None
            if session is not None and held is not None and epoch_text.isdigit() and held < int(epoch_text):
                session.close(Aborted("superseded by a newer session on another replica", reason="SUPERSEDED"))
        for station_id in pending.get("c", ()):
            session = self._hub.get(station_id)
            if session is not None:
                self.notified += 1
                self.delivered_by_notify += await self._dispatcher.deliver_outbox(session)
        stations = [sid for sid in pending.get("s", ()) if self._hub.connected(sid)]
        if stations:
            self.notified += len(stations)
            await self._dispatcher.push_schedules(stations)
        if "poll" in pending:
            await self.poll_once()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.poll_once()
            except Exception:
                log.exception("replica %s: outbox poll failed", self.replica_id)

    async def poll_once(self) -> int:
        """The fallback: compare the outbox heads of the streams held here with what they have caught up with, and
        deliver what a missed notification would have. Returns how many stations needed it."""
        sessions = {s.station_id: s for s in self._hub.sessions() if s.epoch is not None}
        if not sessions:
            return 0
        heads = await self._repo.outbox_heads(list(sessions))
        behind = 0
        schedules = []
        for station_id, (command_seq, schedule_version) in heads.items():
            session = sessions[station_id]
            if command_seq > session.command_head:
                behind += 1
                self.delivered_by_poll += await self._dispatcher.deliver_outbox(session)
                session.command_head = max(session.command_head, command_seq)
            if schedule_version != session.schedule_version and schedule_version > 0:
                behind += 1
                schedules.append(station_id)
        if schedules:
            await self._dispatcher.push_schedules(schedules)
        return behind

    async def _sweep(self) -> None:
        assert self._on_orphans is not None
        while True:
            await asyncio.sleep(self._sweep_s)
            started = time.monotonic()
            try:
                await self._on_orphans()
            except Exception:
                log.exception("replica %s: orphan sweep failed", self.replica_id)
            if time.monotonic() - started > self._sweep_s:
                log.warning("replica %s: orphan sweep took %.1f s", self.replica_id, time.monotonic() - started)
