"""The agent's end of the `AgentService.Connect` stream (docs/protocol.md is the contract).

One `Link` keeps one stream open for as long as the agent runs:
- opens it with `authorization: Bearer <key>` metadata and HTTP/2 keepalive (30 s, timeout 20 s, without calls);
- sends `Hello` (boot id, last durable command seq, schedule version, next upstream seq, spooled older boots,
  capabilities), expects `Welcome`, drops what `Welcome.resume` says is committed and resends the rest in order,
  never more than `max_unacked` in flight;
- `UpstreamAck` deletes from the outbox; `Command` is stored durably, then acknowledged RECEIVED (a known
  command_id is re-acknowledged with its current state and never executed again); `Schedule` replaces the stored
  schedule atomically, then `ScheduleAck` (or a NACK naming the bad field, keeping the old schedule);
- uploads artifact files over `UploadArtifact` once their observation is acknowledged (`uploads.py`);
- heartbeats at the server's interval; command state changes are reported as the executor makes them;
- reconnects with full-jitter exponential backoff (a uniform draw in [0, cap], the cap 0.5 s doubling to 30 s), so
  thousands of agents returning after a server restart spread over the cap instead of arriving in one wave; after
  `Drain.retry_after` plus jitter on a drain; after the server's retry advice plus jitter on UNAVAILABLE or
  RESOURCE_EXHAUSTED (trailing metadata `retry-after` or `skymesh-error-retry-after-s`, seconds); and only every
  `auth_retry_s` after UNAUTHENTICATED / PERMISSION_DENIED (logged as an error);
- opens a fresh channel with its own subchannel pool for every attempt: gRPC shares subchannels (and their
  connection backoff, up to 120 s) between channels of one process, so a new channel on the shared pool inherits a
  stale "Connection refused" long after the server is back;
- never sends a message over `Welcome.max_message_bytes`: such a message is set aside locally like a refused one;
  a message the server refuses for its content (named in trailing metadata) is set aside; a sequence gap
  (FAILED_PRECONDITION, reason UPSTREAM_SEQ_GAP) is answered by reconnecting and resending from Welcome's cursor.

Link timing uses real time (it is about the network); the executor uses the agent's clock.
Imports: grpc, the generated agent API and converters, `skymesh.observability`, the agent's store.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

import grpc
from grpc import aio

from skymesh.agent.aio import wait_event
from skymesh.agent.config import AgentConfig
from skymesh.agent.metrics import (
    AGENT_OUTBOX_DEPTH,
    AGENT_RECONNECTS,
    AGENT_REFUSED_MESSAGES,
    AGENT_SCHEDULE_VERSION,
    AGENT_STREAM_CONNECTED,
    AGENT_UPSTREAM_SENT,
)
from skymesh.agent.store import AsyncStore
from skymesh.agent.uploads import Uploader
from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.convert import target_from_proto, timestamp_from_datetime
from skymesh.api.validation import AGENT_MAX_MESSAGE_BYTES
from skymesh.core.clock import Clock
from skymesh.core.errors import InvalidArgument, SkyMeshError
from skymesh.observability import tracing

__all__ = ["PROTOCOL_VERSION", "Link", "channel_options"]

_log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
_DEFAULT_MAX_UNACKED = 256
# Status codes with which the server refuses a message for its content (docs/protocol.md rule 4).
_REFUSED_CODES = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # only with the trailers naming the message: too large to ever be taken
)
# Command states changed this recently are re-sent on every new session (longer than any command's lifetime).
_COMMAND_REREPORT_S = 7 * 86400.0


def channel_options() -> list[tuple[str, int]]:
    return [
        # Each channel its own subchannels: a reconnect attempt must not inherit the backoff of a dead connection.
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def _agent_version() -> str:
    # The package's own version string, not importlib.metadata's: that import costs the agent 2.7 MB of RSS (email,
    # zipfile, csv...) for one string; pyproject.toml and skymesh/__init__.py state the same version.
    import skymesh

    return skymesh.__version__


class _StreamEnded(Exception):
    """The server ended the session: a Drain (with its retry delay) or a clean end of stream."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _CallFailed(Exception):
    """A write found the RPC already finished; carries its status like `AioRpcError` does."""

    def __init__(self, code: grpc.StatusCode, details: str | None, trailing: Any = ()) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details or ""
        self._trailing = tuple(trailing or ())

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[Any, ...]:
        return self._trailing


def _trailers(err: aio.AioRpcError | _CallFailed) -> dict[str, str]:
    pairs: Any = err.trailing_metadata() or ()
    return {str(k): v for k, v in pairs if isinstance(v, str)}


# Trailing-metadata keys a server may advise a retry delay with (seconds, decimal): `retry-after` for load shedding
# (docs/protocol.md rule 10), `skymesh-error-retry-after-s` from the error choke point (a database outage).
RETRY_AFTER_KEYS = ("retry-after", "skymesh-error-retry-after-s")
_RETRY_AFTER_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _retry_after_s(err: aio.AioRpcError | _CallFailed) -> float | None:
    """The server's retry advice on UNAVAILABLE / RESOURCE_EXHAUSTED, in seconds; None without a usable one."""
    if err.code() not in _RETRY_AFTER_CODES:
        return None
    trailers = _trailers(err)
    for key in RETRY_AFTER_KEYS:
        try:
            value = float(trailers.get(key, ""))
        except ValueError:
            continue
        if 0 < value <= 3600:
            return value
    return None


def backoff_wait_s(cap_s: float, rng: random.Random) -> float:
    """Full jitter: a uniform draw in [0, cap_s] (AWS "Exponential Backoff And Jitter"), never exactly zero."""
    return max(rng.uniform(0.0, cap_s), 0.01 * cap_s)


def _first_error(exc: BaseException) -> BaseException:
    """The first non-cancellation leaf of an exception group (TaskGroup wraps what a task raised)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            leaf = _first_error(inner)
            if not isinstance(leaf, asyncio.CancelledError):
                return leaf
        return exc.exceptions[0]
    return exc


_TRACED_REPLIES = frozenset({"command_update", "schedule_ack"})


class _Session:
    def __init__(self, call: aio.StreamStreamCall[agent_pb2.ConnectRequest, agent_pb2.ConnectResponse]) -> None:
        self.call = call
        self.write_lock = asyncio.Lock()
        self.max_unacked = _DEFAULT_MAX_UNACKED
        self.max_message_bytes = AGENT_MAX_MESSAGE_BYTES
        self.heartbeat_interval_s = 10.0
        self.sent_upto: dict[str, int] = {}
        self.in_flight: deque[tuple[str, int]] = deque()

    async def raise_status(self, reason: str) -> NoReturn:
        """The stream ended: raise its error status if it has one, else `_StreamEnded(reason)`."""
        code = await self.call.code()
        if code != grpc.StatusCode.OK:
            raise _CallFailed(code, await self.call.details(), await self.call.trailing_metadata())
        raise _StreamEnded(reason)

    async def send(self, message: agent_pb2.ConnectRequest) -> None:
        tracing.inject_body(message, _TRACED_REPLIES)  # a reply inside a traced command/schedule continues it
        async with self.write_lock:
            try:
                await self.call.write(message)
            except asyncio.InvalidStateError:
                # The RPC already ended (refused, or dropped): surface its status instead.
                raise _CallFailed(
                    await self.call.code(), await self.call.details(), await self.call.trailing_metadata()
                ) from None


class Link:
    def __init__(
        self,
        config: AgentConfig,
        store: AsyncStore,
        clock: Clock,
        boot_id: str,
        capabilities: agent_pb2.Capabilities,
        *,
        current_job: Callable[[], str] = lambda: "",
        on_welcome: Callable[[agent_pb2.Welcome], None] | None = None,
        rng: random.Random | None = None,
        device_health: Callable[[], list[agent_pb2.DeviceHealth]] = list,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.boot_id = boot_id
        self.capabilities = capabilities
        self.current_job = current_job
        self.on_welcome = on_welcome
        self.device_health = device_health
        self.rng = rng or random.Random()
        self.uploader = Uploader(store, config.state_dir)
        self.connected = asyncio.Event()
        self.sessions = 0  # Welcomes received, for tests and status
        self._welcomed = False

    # ------------------------------------------------------------------------------------------------ reconnect loop

    async def run(self) -> None:
        """Keep a session open until cancelled."""
        delay_s = self.config.reconnect_initial_s
        while True:
            self._welcomed = False
            try:
                await self._session()
                reason, wait_s = "stream_ended", None
            except _StreamEnded as ended:
                reason, wait_s = ended.reason, ended.retry_after_s
            except Exception as exc:  # classified below: the reconnect loop must survive anything
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # A TaskGroup cancelled while a child failed raises the child's error, not CancelledError
                    # (Python 3.11): never let that swallow our own cancellation.
                    raise asyncio.CancelledError from exc
                err = _first_error(exc)
                if isinstance(err, _StreamEnded):
                    reason, wait_s = err.reason, err.retry_after_s
                elif isinstance(err, aio.AioRpcError | _CallFailed) and err.code() in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                ):
                    _log.error(
                        "server %s refused station %s: %s %s; check api_key (retrying in %.0f s)",
                        self.config.server_address,
                        self.config.station_id,
                        err.code().name,
                        err.details(),
                        self.config.auth_retry_s,
                    )
                    reason = err.code().name.lower()
                    wait_s = self.config.auth_retry_s * self.rng.uniform(0.9, 1.1)
                elif isinstance(err, aio.AioRpcError | _CallFailed):
                    _log.warning(
                        "stream to %s ended: %s %s", self.config.server_address, err.code().name, err.details()
                    )
                    reason, wait_s = err.code().name.lower(), _retry_after_s(err)
                    if wait_s is not None:
                        wait_s *= self.rng.uniform(1.0, 1.5)
                    if await self._set_aside_refused(err):
                        reason, wait_s = "refused_message", 0.0
                else:
                    _log.warning("stream to %s failed: %r", self.config.server_address, err)
                    reason, wait_s = type(err).__name__, None
            finally:
                self.connected.clear()
                AGENT_STREAM_CONNECTED.set(0)
            AGENT_RECONNECTS.labels(reason=reason).inc()
            if self._welcomed:
                delay_s = self.config.reconnect_initial_s
            if wait_s is None:
                wait_s = backoff_wait_s(delay_s, self.rng)
                delay_s = min(delay_s * 2, self.config.reconnect_max_s)
            _log.info("reconnecting in %.2f s (%s)", wait_s, reason)
            await asyncio.sleep(wait_s)

    async def _set_aside_refused(self, err: aio.AioRpcError | _CallFailed) -> bool:
        """If the server refused one of our spooled messages as invalid, move it out of the outbox.

        Resending it would be refused again on every reconnect and block everything behind it; the message is kept
        in the store's `rejected` table (with the server's reason) for an operator, never silently dropped.
        """
        if err.code() not in _REFUSED_CODES:
            return False
        meta = _trailers(err)
        boot_id, seq = meta.get("skymesh-error-upstream-boot-id"), meta.get("skymesh-error-upstream-seq")
        if not boot_id or not seq or not seq.isdigit():
            return False
        moved = await self.store.call(
            self.store.sync.set_aside, boot_id, int(seq), f"{err.code().name}: {err.details()}", self.clock.now()
        )
        if moved:
            AGENT_REFUSED_MESSAGES.inc()
            _log.error(
                "server refused upstream message %s/%s (%s); kept in the rejected table, resuming with the next",
                boot_id,
                seq,
                err.details(),
            )
        return moved

    async def _abandon_oversized(
        self, session: _Session, boot_id: str, message: agent_pb2.ConnectRequest, limit: int
    ) -> None:
        """A spooled message over the server's size limit (spooled before the limit was known) is never sent: it
        would end the stream every time. It moves to `rejected` for an operator, and an `Abandoned` with its seq
        takes its place, so the server's sequence has no gap."""
        error = f"RESOURCE_EXHAUSTED: {message.ByteSize()} bytes is over the server's limit of {limit} bytes"
        await self.store.call(self.store.sync.set_aside, boot_id, message.seq, error, self.clock.now())
        AGENT_REFUSED_MESSAGES.inc()
        _log.error("upstream message %s/%s not sent: %s", boot_id, message.seq, error)
        abandoned = agent_pb2.Abandoned(kind=message.WhichOneof("body") or "", reason=error)
        await session.send(agent_pb2.ConnectRequest(abandoned=abandoned, boot_id=boot_id, seq=message.seq))

    def _channel(self) -> aio.Channel:
        cert, key = self.config.tls_cert_file, self.config.tls_key_file
        if self.config.tls_ca_file is not None or cert is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self.config.tls_ca_file.read_bytes() if self.config.tls_ca_file else None,
                private_key=key.read_bytes() if key is not None else None,
                certificate_chain=cert.read_bytes() if cert is not None else None,
            )
            return aio.secure_channel(self.config.server_address, credentials, options=channel_options())
        return aio.insecure_channel(self.config.server_address, options=channel_options())

    async def _hello(self) -> agent_pb2.Hello:
        sync = self.store.sync
        spooled = await self.store.call(sync.spooled_boot_ids)
        return agent_pb2.Hello(
            station_id=self.config.station_id,
            agent_version=_agent_version(),
            protocol_version=PROTOCOL_VERSION,
            boot_id=self.boot_id,
            last_command_seq=await self.store.call(sync.last_command_seq),
            schedule_version=await self.store.call(sync.schedule_version),
            upstream_next_seq=await self.store.call(sync.next_seq, self.boot_id),
            capabilities=self.capabilities,
            agent_time=timestamp_from_datetime(self.clock.now()),
            pending_boot_ids=[b for b in spooled if b != self.boot_id],
            devices=self.device_health(),
        )

    # ------------------------------------------------------------------------------------------------ one session

    async def _session(self) -> None:
        async with self._channel() as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            # No request iterator: this end writes with call.write() (stubs only know the iterator form).
            metadata = (("authorization", f"Bearer {self.config.api_key}"),)
            call = stub.Connect(metadata=metadata)  # type: ignore[call-arg]
            session = _Session(call)
            try:
                await session.send(agent_pb2.ConnectRequest(hello=await self._hello()))
                first = await call.read()
                if not isinstance(first, agent_pb2.ConnectResponse):  # grpc.aio.EOF
                    await session.raise_status("closed_before_welcome")
                if first.WhichOneof("body") != "welcome":
                    raise _StreamEnded(f"expected welcome, got {first.WhichOneof('body')}")
                await self._on_welcome(session, first.welcome)
                async with asyncio.TaskGroup() as tg:
                    helpers = [
                        tg.create_task(self._pump(session), name="link-pump"),
                        tg.create_task(self._report_commands(session), name="link-commands"),
                        tg.create_task(self._heartbeat(session), name="link-heartbeat"),
                        tg.create_task(self.uploader.run(stub, metadata), name="link-uploads"),
                    ]
                    try:
                        await self._read_loop(session)
                    finally:
                        for task in helpers:
                            task.cancel()
            finally:
                call.cancel()

    async def _on_welcome(self, session: _Session, welcome: agent_pb2.Welcome) -> None:
        self._welcomed = True
        self.sessions += 1
        if welcome.max_unacked:
            session.max_unacked = welcome.max_unacked
        if welcome.max_message_bytes:
            session.max_message_bytes = welcome.max_message_bytes
        if welcome.heartbeat_interval.ToTimedelta().total_seconds() > 0:
            session.heartbeat_interval_s = welcome.heartbeat_interval.ToTimedelta().total_seconds()
        else:
            session.heartbeat_interval_s = self.config.heartbeat_interval_s
        for resume in welcome.resume:
            await self.store.call(self.store.sync.ack, resume.boot_id, resume.committed_seq)
            session.sent_upto[resume.boot_id] = resume.committed_seq
        # Command updates are not acknowledged: re-send the recent ones in case the last stream lost them.
        since = self.clock.now() - timedelta(seconds=_COMMAND_REREPORT_S)
        if await self.store.call(self.store.sync.rereport_commands, since):
            self.store.commands_changed.set()
        if self.on_welcome is not None:
            self.on_welcome(welcome)
        self.connected.set()
        AGENT_STREAM_CONNECTED.set(1)
        _log.info(
            "connected to %s as %s (session %s, %d spooled)",
            self.config.server_address,
            self.config.station_id,
            welcome.session_id,
            await self.store.call(self.store.sync.outbox_depth),
        )

    async def _read_loop(self, session: _Session) -> None:
        while True:
            response = await session.call.read()
            if not isinstance(response, agent_pb2.ConnectResponse):  # grpc.aio.EOF
                await session.raise_status("server_closed")
            kind = response.WhichOneof("body")
            if kind == "upstream_ack":
                await self._on_ack(session, response.upstream_ack)
            elif kind == "command":
                with tracing.continued("agent command", response.command.trace_context):
                    await self._on_command(session, response.command)
            elif kind == "schedule":
                with tracing.continued("agent schedule", response.schedule.trace_context):
                    await self._on_schedule(session, response.schedule)
            elif kind == "drain":
                retry_s = response.drain.retry_after.ToTimedelta().total_seconds()
                _log.info("server drains this stream (%s); reconnecting in ~%.1f s", response.drain.reason, retry_s)
                raise _StreamEnded("drain", retry_s + self.rng.uniform(0.0, 1.0))
            # welcome again / ping: any message counts as life

    async def _on_ack(self, session: _Session, ack: agent_pb2.UpstreamAck) -> None:
        await self.store.call(self.store.sync.ack, ack.boot_id, ack.committed_seq)
        session.in_flight = deque(
            (b, s) for b, s in session.in_flight if not (b == ack.boot_id and s <= ack.committed_seq)
        )
        self.store.outbox_changed.set()
        self.uploader.changed.set()

    async def _on_command(self, session: _Session, command: agent_pb2.Command) -> None:
        record = await self.store.call(self.store.sync.record_command, command, self.clock.now())
        update = agent_pb2.CommandUpdate(
            command_seq=command.seq,
            command_id=command.command_id,
            state=record.state,  # type: ignore[arg-type]
            cause=record.cause,  # type: ignore[arg-type]
            detail=record.detail if not record.new else "",
            at=timestamp_from_datetime(self.clock.now()),
        )
        await session.send(agent_pb2.ConnectRequest(command_update=update))
        if record.new:
            await self.store.call(self.store.sync.mark_command_reported, command.command_id, record.state)
            self.store.commands_received.set()
        else:
            _log.info(
                "command %s (seq %d) seen before: acknowledged again, not executed", command.command_id, command.seq
            )

    async def _on_schedule(self, session: _Session, schedule: agent_pb2.Schedule) -> None:
        try:
            for i, job in enumerate(schedule.jobs):
                field = f"schedule.jobs[{i}]"
                if not job.job_id:
                    raise InvalidArgument("must not be empty", field=f"{field}.job_id")
                target_from_proto(job.target, f"{field}.target")
                if job.end.ToNanoseconds() <= job.start.ToNanoseconds():
                    raise InvalidArgument("end must be after start", field=f"{field}.end")
                if job.HasField("focuser_position_steps") and job.focuser_position_steps < 0:
                    raise InvalidArgument("must not be negative", field=f"{field}.focuser_position_steps")
        except SkyMeshError as exc:
            _log.error("rejected schedule version %d: %s", schedule.version, exc)
            await session.send(
                agent_pb2.ConnectRequest(schedule_ack=agent_pb2.ScheduleAck(version=schedule.version, error=str(exc)))
            )
            return
        await self.store.call(
            self.store.sync.replace_schedule, schedule.version, list(schedule.jobs), self.boot_id, self.clock.now()
        )
        self.store.outbox_changed.set()
        self.store.schedule_changed.set()
        AGENT_SCHEDULE_VERSION.set(schedule.version)
        await session.send(agent_pb2.ConnectRequest(schedule_ack=agent_pb2.ScheduleAck(version=schedule.version)))
        _log.info("accepted schedule version %d (%d jobs)", schedule.version, len(schedule.jobs))

    async def _pump(self, session: _Session) -> None:
        """Send spooled messages in order (older boots first), at most max_unacked in flight."""
        sync = self.store.sync
        while True:
            self.store.outbox_changed.clear()
            for boot_id in await self.store.call(sync.spooled_boot_ids):
                room = session.max_unacked - len(session.in_flight)
                if room <= 0:
                    break
                after = session.sent_upto.get(boot_id, 0)
                for message in await self.store.call(sync.pending, boot_id, after, room):
                    if message.ByteSize() > session.max_message_bytes:
                        await self._abandon_oversized(session, boot_id, message, session.max_message_bytes)
                    else:
                        await session.send(message)
                    AGENT_UPSTREAM_SENT.inc()
                    session.in_flight.append((boot_id, message.seq))
                    session.sent_upto[boot_id] = message.seq
            AGENT_OUTBOX_DEPTH.set(await self.store.call(sync.outbox_depth))
            await wait_event(self.store.outbox_changed, 5.0)

    async def _report_commands(self, session: _Session) -> None:
        sync = self.store.sync
        while True:
            self.store.commands_changed.clear()
            for update in await self.store.call(sync.unreported_command_updates):
                await session.send(agent_pb2.ConnectRequest(command_update=update))
                await self.store.call(sync.mark_command_reported, update.command_id, update.state)
            await wait_event(self.store.commands_changed, 10.0)

    async def _heartbeat(self, session: _Session) -> None:
        while True:
            await asyncio.sleep(session.heartbeat_interval_s)
            beat = agent_pb2.Heartbeat(
                agent_time=timestamp_from_datetime(self.clock.now()),
                outbox_depth=await self.store.call(self.store.sync.outbox_depth),
                pending_uploads=await self.store.call(self.store.sync.pending_upload_count),
                current_job_id=self.current_job(),
                devices=self.device_health(),
            )
            await session.send(agent_pb2.ConnectRequest(heartbeat=beat))
