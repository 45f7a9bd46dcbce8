"""The `AgentService.Connect` stream, implementing docs/protocol.md (the rules are numbered there).

One handler per stream: authenticate (rule 1), check Hello, answer Welcome with resume cursors (2), take over the
station from an older session (3), push the schedule if the agent's version differs (6) and replay open commands
(5), then run three tasks until one ends the stream: the reader (each reliable message is committed with its
cursor before its UpstreamAck, rule 4), the single writer, and a watcher for supersession, revocation and Drain.

Every message has passed `skymesh.api.validation` when it is read (the guard interceptor installs it as the
deserializer); a message refused there or by the repository ends the stream with INVALID_ARGUMENT (or NOT_FOUND,
FAILED_PRECONDITION, RESOURCE_EXHAUSTED for an oversized one) naming the field, writes none of its data, and, for a
reliable message, names it in trailing metadata and records the refusal so the cursor moves past it (rule 4). The
reader enforces the credit window and paces each station (rule 12). A client that leaves mid-write ends its
stream quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import grpc

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.convert import timestamp_from_datetime, timestamp_to_datetime
from skymesh.api.errors import abort_with, grpc_code_for, is_transport_error
from skymesh.api.validation import (
    AGENT_MAX_MESSAGE_BYTES,
    MAX_SAMPLE_CHANNELS,
    MAX_TELEMETRY_SAMPLES,
    MessageRefused,
)
from skymesh.core.clock import Clock
from skymesh.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SkyMeshError,
    Unauthenticated,
)
from skymesh.core.model import StationState
from skymesh.observability import tracing
from skymesh.observability.metrics import (
    COMMANDS,
    JOBS,
    SERVER_ACK_LAG,
    SERVER_DEDUP_HITS,
    SERVER_INGESTED,
    SERVER_RECONNECTS,
    STREAM_MESSAGES,
)
from skymesh.server.auth import StationKeys, authenticate_station
from skymesh.server.config import ServerConfig
from skymesh.server.db import Repository
from skymesh.server.db.records import (
    CommandStateValue,
    CommandUpdateIn,
    HelloClaim,
    HelloIn,
    JobUpdateIn,
    ObservationIn,
    TelemetryIn,
    UpstreamResult,
)
from skymesh.server.dispatch import Dispatcher
from skymesh.server.events import EventBus
from skymesh.server.groupcommit import GroupCommitter
from skymesh.server.health import HealthMonitor
from skymesh.server.liveness import Liveness
from skymesh.server.sessions import AgentSession, Pacer, SessionHub
from skymesh.server.uploads import Uploads
from skymesh.server.wire import job_update_from_proto, observation_from_proto, telemetry_from_proto

__all__ = ["PROTOCOL_VERSION", "AgentServicer"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]
_RELIABLE = frozenset({"job_update", "telemetry", "observation"})
_MAX_SEQ = 2**63 - 1
_INLINE_VALUES = 2_000  # telemetry values converted on the event loop; more go to a thread


def _is_content_refusal(error: SkyMeshError) -> bool:
    """Refused for what the message says (so the agent must set exactly it aside), not for the stream's state."""
    if error.reason == "UPSTREAM_REFUSED_BEFORE":
        return True
    if isinstance(error, ResourceExhausted):
        return error.reason == "MESSAGE_TOO_LARGE"
    if isinstance(error, FailedPrecondition):
        return error.reason != "UPSTREAM_SEQ_GAP"
    return isinstance(error, InvalidArgument | NotFound)


def _nameable(request: agent_pb2.ConnectRequest | None) -> bool:
    """A reliable message whose boot and seq can be named back to the agent and recorded."""
    return (
        request is not None
        and request.WhichOneof("body") in _RELIABLE
        and 0 < len(request.boot_id) <= 64
        and "\x00" not in request.boot_id
        and 1 <= request.seq <= _MAX_SEQ
    )


class _StreamClosed(Exception):
    """The stream ends normally (client half-close, Drain written, or OK close)."""


def _capabilities(caps: agent_pb2.Capabilities) -> dict[str, Any]:
    return {
        "kind": int(caps.kind),
        "bands": list(caps.bands),
        "filters": list(caps.filters),
        "aperture_m": caps.aperture_m,
        "slew_rate_deg_s": caps.slew_rate_deg_s,
        "min_elevation_deg": caps.min_elevation_deg,
        "max_elevation_deg": caps.max_elevation_deg,
        "azimuth_min_deg": caps.azimuth_min_deg,
        "azimuth_max_deg": caps.azimuth_max_deg,
        "drivers": list(caps.drivers),
    }


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        repo: Repository,
        hub: SessionHub,
        liveness: Liveness,
        dispatcher: Dispatcher,
        uploads: Uploads,
        config: ServerConfig,
        clock: Clock,
        events: EventBus | None = None,
        *,
        replica: str = "",
    ) -> None:
        self._replica = replica  # this process's replica id, recorded with each session it holds
        self._events = events or EventBus(clock)
        self._repo = repo
        self._hub = hub
        self._liveness = liveness
        self._dispatcher = dispatcher
        self._uploads = uploads
        self._config = config
        self._clock = clock
        self._pacers: dict[str, Pacer] = {}
        self._settling: set[asyncio.Task[None]] = set()  # liveness of Hellos whose streams ended before Welcome
        self.committer = GroupCommitter(repo)
        self.station_keys = StationKeys(repo)  # verified keys (5 s), misses batched
        # Hellos are group-committed too; beyond `hello_queue_max` waiting, a Hello is shed at once with UNAVAILABLE
        # and a retry-after (the agent comes back after it) instead of timing out in a queue it cannot leave.
        self.hellos = GroupCommitter(
            repo,
            write=repo.record_hellos,
            max_group=config.hello_group_max,
            max_queued=config.hello_queue_max,
            retry_after_s=config.hello_retry_after_s,
            overload_reason="CONNECT_OVERLOADED",
        )
        # Agents' command reports (RECEIVED, SUCCEEDED...) share transactions too, as telemetry does.
        self.command_updates = GroupCommitter(
            repo, write=repo.apply_command_updates, max_group=200, linger_s=0.005, overload_reason="INGEST_OVERLOADED"
        )
        self.health: HealthMonitor | None = None  # set by the app: telemetry anomaly detectors

    # ------------------------------------------------------------------------------------------------ Connect

    async def Connect(  # type: ignore[override]
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        try:
            station_id, key_id = await authenticate_station(self._repo, context, self.station_keys)
            try:
                first = await context.read()
            except MessageRefused as refused:
                raise refused.error from None
            if first is _EOF:
                return
            assert isinstance(first, agent_pb2.ConnectRequest)
            hello = self._check_hello(first, station_id)
        except SkyMeshError as exc:
            SERVER_RECONNECTS.labels(exc.reason.lower()).inc()
            await abort_with(context, exc)
            return
        STREAM_MESSAGES.labels("up", "hello").inc()
        session = AgentSession(station_id, key_id, hello.boot_id)
        error: SkyMeshError | None = None
        reason = "closed"
        try:
            await self._open(session, hello, context)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._reader(session, context))
                tg.create_task(self._writer(session, context))
                tg.create_task(self._watch(session))
        except* _StreamClosed:
            reason = "drained" if session.ended.is_set() and session.end_error is None else "closed"
        except* SkyMeshError as group:
            error = group.exceptions[0]  # type: ignore[assignment]
            reason = error.reason.lower() if error is not None else "error"
        except* (
            grpc.aio.AbortError,
            grpc.aio.UsageError,
            grpc.aio.InternalError,  # ExecuteBatchError: a write to a client that has gone
            asyncio.InvalidStateError,
            ConnectionError,
        ):
            reason = "transport"
        finally:
            self._hub.unregister(session)
            if not self._hub.connected(station_id):
                self._liveness.stream_ended(station_id)
            SERVER_RECONNECTS.labels(reason).inc()
            # DEBUG: a reconnect storm ends every stream at once (SERVER_RECONNECTS counts them by reason).
            log.debug("station %s: session %s ended (%s)", station_id, session.session_id, reason)
        if error is not None:
            # A client that has gone cannot be told (abort's own AbortError still ends the RPC).
            with contextlib.suppress(grpc.aio.UsageError, grpc.aio.InternalError, asyncio.InvalidStateError):
                await abort_with(context, error)

    def _check_hello(self, first: agent_pb2.ConnectRequest, station_id: str) -> agent_pb2.Hello:
        if first.WhichOneof("body") != "hello":
            raise InvalidArgument("first message must be hello")
        hello = first.hello
        if hello.station_id != station_id:
            raise PermissionDenied(
                f"this key belongs to station {station_id!r}, not {hello.station_id!r}", field="hello.station_id"
            )
        if not hello.boot_id:
            raise InvalidArgument("must not be empty", field="hello.boot_id")
        if hello.protocol_version < 1:
            raise InvalidArgument("must be set (1 or more)", field="hello.protocol_version")
        if hello.protocol_version > PROTOCOL_VERSION:
            raise InvalidArgument(
                f"protocol {hello.protocol_version} is newer than this server's {PROTOCOL_VERSION}",
                field="hello.protocol_version",
            )
        return hello

    async def _open(
        self, session: AgentSession, hello: agent_pb2.Hello, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        station_id = session.station_id
        now = self._clock.now()
        offset_s = 0.0
        if hello.HasField("agent_time"):
            offset_s = (timestamp_to_datetime(hello.agent_time, "hello.agent_time") - now).total_seconds()
        failing = _failing_devices(hello.devices)
        self._liveness.report_devices(station_id, failing)
        wanted = self._liveness.hello_state(station_id)
        # Group commit: the Hellos of every stream that is ready share one transaction (facts, state, epoch, resume
        # cursors, schedule version, open commands); a queue too long to answer in time sheds with UNAVAILABLE.
        submitted = asyncio.ensure_future(
            self.hellos.submit(
                station_id,
                "",
                0,
                HelloIn(
                    agent_version=hello.agent_version,
                    capabilities=_capabilities(hello.capabilities),
                    clock_offset_s=offset_s,
                    boot_ids=(hello.boot_id, *hello.pending_boot_ids),
                    replica=self._replica,
                    session_id=session.session_id,
                    state=wanted,
                ),
            )
        )
        try:
            claim: HelloClaim = await asyncio.shield(submitted)
        except asyncio.CancelledError:
            # The stream ended while its Hello was in a group: the group still commits (state and epoch written),
            # so liveness must still learn of it, and of the stream's end, or the stored ONLINE would stay.
            submitted.add_done_callback(lambda done: self._hello_abandoned(station_id, wanted, done))
            raise
        cursors = claim.cursors
        session.epoch = claim.epoch
        session.replay_from = hello.last_command_seq
        session.schedule_version = hello.schedule_version
        await self._liveness.opened(station_id, claim.epoch, claim.state, wanted)
        # A stream of this station on another replica (a half-open connection) ends now, not at its next write.
        await self._dispatcher.announce_claim(station_id, claim.epoch)
        welcome = agent_pb2.Welcome(
            session_id=session.session_id,
            server_id=self._config.server_id,
            protocol_version=PROTOCOL_VERSION,
            max_unacked=self._config.max_unacked,
            resume=[agent_pb2.BootResume(boot_id=b, committed_seq=seq) for b, seq in cursors.items()],
            server_time=timestamp_from_datetime(now),
            max_message_bytes=AGENT_MAX_MESSAGE_BYTES,
            max_batch_samples=MAX_TELEMETRY_SAMPLES,
            max_sample_channels=MAX_SAMPLE_CHANNELS,
            upstream_rate_per_s=self._config.upstream_rate_per_s,
        )
        welcome.heartbeat_interval.FromMilliseconds(int(self._config.heartbeat_interval_s * 1000))
        welcome.telemetry_batch_interval.FromMilliseconds(int(self._config.telemetry_batch_interval_s * 1000))
        # Take over the station (and go ONLINE) before the Welcome: once an agent holds a Welcome, the server
        # already counts it as connected. Pushes queued meanwhile wait for the writer, which starts after it.
        self._hub.register(session)
        if self._liveness.touch(station_id):  # the Hello's state was not ONLINE/DEGRADED after all (a race)
            await self._liveness.refresh(station_id)
        await context.write(agent_pb2.ConnectResponse(welcome=welcome))
        STREAM_MESSAGES.labels("down", "welcome").inc()
        if hello.schedule_version != claim.schedule_version:
            await self._dispatcher.push_schedule(station_id, session)
        if claim.open_command_head > session.replay_from:  # else nothing to replay: no transaction
            await self._dispatcher.deliver_outbox(session)

    def _hello_abandoned(self, station_id: str, wanted: StationState, done: asyncio.Future[HelloClaim]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        claim = done.result()

        async def settle() -> None:
            await self._liveness.opened(station_id, claim.epoch, claim.state, wanted)
            if not self._hub.connected(station_id):
                self._liveness.stream_ended(station_id)

        task = asyncio.get_running_loop().create_task(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def recheck_keys(self) -> None:
        """Every `key_recheck_s`, the keys of all streams open here are checked in one read (not one transaction
        per stream: 166 a second at 10,000 streams); a stream whose key was revoked elsewhere (`skymesh keys
        revoke`, another replica) ends with UNAUTHENTICATED KEY_REVOKED. Run by the server as a background loop."""
        while True:
            await asyncio.sleep(self._config.key_recheck_s)
            sessions = self._hub.sessions()
            if not sessions:
                continue
            try:
                valid = await self._repo.keys_valid({s.key_id for s in sessions})
            except Exception as exc:  # the database is down for a moment: the next round checks again
                log.warning("re-checking %d station keys failed: %s", len(sessions), exc)
                continue
            for session in sessions:
                if session.key_id not in valid:
                    session.close(Unauthenticated("station key revoked", reason="KEY_REVOKED"))

    async def _watch(self, session: AgentSession) -> None:
        await session.ended.wait()  # superseded, revoked (here or by `recheck_keys`), drained or cut off
        if session.end_error is not None:
            raise session.end_error
        raise _StreamClosed

    async def _writer(self, session: AgentSession, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        while True:
            item = await session.next_outbound()
            try:
                await context.write(item.message)
            except Exception as exc:
                if is_transport_error(exc):
                    # The agent went away mid-write (it is stopping, or its connection dropped): end quietly.
                    raise _StreamClosed from None
                raise
            if item.settles is not None:  # an UpstreamAck: the hot path, one per reliable message
                STREAM_MESSAGES.labels("down", "upstream_ack").inc()
                session.settle(*item.settles)
                continue
            STREAM_MESSAGES.labels("down", item.message.WhichOneof("body") or "empty").inc()
            if item.on_sent is not None:
                await item.on_sent()

    async def _reader(self, session: AgentSession, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        pacer = self._pacers.get(session.station_id)
        if pacer is None:
            pacer = Pacer(self._config.upstream_rate_per_s, self._config.upstream_burst)
            self._pacers[session.station_id] = pacer
        while True:
            refused: SkyMeshError | None = None
            try:
                request = await context.read()
            except MessageRefused as exc:
                refused, request = exc.error, exc.message
            if request is _EOF:
                raise _StreamClosed
            assert request is None or isinstance(request, agent_pb2.ConnectRequest)
            if self._liveness.touch(session.station_id):
                await self._liveness.refresh(session.station_id)
            if refused is not None:
                await self._refuse(session, request, refused)
            assert request is not None
            wait_s = pacer.delay_s()  # `Pacer.take` inline: no coroutine per message while within the rate
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            kind = request.WhichOneof("body")
            try:
                if kind in _TRACED_UP:  # only these carry a trace context: no span machinery for telemetry
                    with tracing.continued(f"agent {kind}", getattr(request, kind).trace_context):
                        await self._handle(session, request, kind)
                else:
                    await self._handle(session, request, kind)
            except SkyMeshError as exc:
                await self._refuse(session, request, exc)

    async def _refuse(
        self, session: AgentSession, request: agent_pb2.ConnectRequest | None, error: SkyMeshError
    ) -> None:
        """End the stream with `error`. A reliable message refused for its content is recorded (the cursor moves
        past it) and named, so the agent can set exactly it aside instead of resending it forever."""
        if request is not None and _nameable(request) and _is_content_refusal(error):
            await self._repo.refuse_upstream(
                session.station_id,
                request.boot_id,
                request.seq,
                grpc_code_for(error).name,
                str(error),
                epoch=session.epoch,
            )
            error.details.update({"upstream-boot-id": request.boot_id, "upstream-seq": str(request.seq)})
            log.warning(
                "station %s: refused upstream %s/%d: %s", session.station_id, request.boot_id, request.seq, error
            )
        raise error

    async def _handle(self, session: AgentSession, request: agent_pb2.ConnectRequest, kind: str | None) -> None:
        STREAM_MESSAGES.labels("up", kind or "empty").inc()
        station_id = session.station_id
        if kind is None:
            raise InvalidArgument("message has no body", field="body")
        if kind == "hello":
            raise InvalidArgument("hello may only be the first message", field="hello")
        if kind == "heartbeat":
            if self.health is not None:  # clock offset and heartbeat jitter detectors
                beat = request.heartbeat
                agent_time = (
                    timestamp_to_datetime(beat.agent_time, "heartbeat.agent_time")
                    if beat.HasField("agent_time")
                    else None
                )
                await self.health.heartbeat(station_id, agent_time, self._clock.now())
            if self._liveness.report_devices(station_id, _failing_devices(request.heartbeat.devices)):
                await self._liveness.refresh(station_id)
            return
        if kind == "command_update":
            upd = request.command_update
            if not upd.command_id:
                raise InvalidArgument("must not be empty", field="command_update.command_id")
            try:
                state = CommandStateValue(upd.state)
            except ValueError:
                raise InvalidArgument(f"unknown state {upd.state}", field="command_update.state") from None
            if state == CommandStateValue.QUEUED:
                raise InvalidArgument("must be set", field="command_update.state")
            if await self.command_updates.submit(
                station_id, "", 0, CommandUpdateIn(upd.command_id, state, upd.cause, upd.detail), epoch=session.epoch
            ):
                COMMANDS.labels(state.name.lower()).inc()
            return
        if kind == "schedule_ack":
            await self._repo.record_schedule_ack(
                station_id, request.schedule_ack.version, request.schedule_ack.error, epoch=session.epoch
            )
            return
        assert kind in _RELIABLE or kind == "abandoned"
        if not request.boot_id:
            raise InvalidArgument("must be set on job updates, telemetry and observations", field="boot_id")
        if request.seq < 1:
            raise InvalidArgument("must be at least 1 on job updates, telemetry and observations", field="seq")
        if len(session.unacked) >= self._config.max_unacked:
            raise ResourceExhausted(
                f"more than max_unacked={self._config.max_unacked} upstream messages sent ahead of their acks",
                field="seq",
                reason="MAX_UNACKED",
                details={"limit": str(self._config.max_unacked)},
            )
        session.unacked.append((request.boot_id, request.seq))
        received = time.perf_counter()
        if kind == "abandoned":
            reason = request.abandoned.reason or "no reason given"
            committed = await self._repo.refuse_upstream(
                station_id,
                request.boot_id,
                request.seq,
                "ABANDONED",
                f"abandoned by the agent: {reason}",
                epoch=session.epoch,
            )
            log.warning(
                "station %s: agent abandoned upstream %s/%d: %s", station_id, request.boot_id, request.seq, reason
            )
            self._ack(session, request.boot_id, committed, received)
            return
        item: JobUpdateIn | TelemetryIn | ObservationIn
        if kind == "telemetry":
            # A large batch is converted off the event loop so it does not hold up the other streams; a small one
            # inline (the thread hop costs more than the conversion).
            samples = request.telemetry.samples
            if samples and len(samples) * len(samples[0].values) > _INLINE_VALUES:
                item = await asyncio.to_thread(telemetry_from_proto, request.telemetry, request.boot_id)
            else:
                item = telemetry_from_proto(request.telemetry, request.boot_id)
            # Group commit: one transaction for the telemetry of every stream that is ready (acked after it).
            result: UpstreamResult = await self.committer.submit(
                station_id, request.boot_id, request.seq, item, epoch=session.epoch
            )
        else:
            item = (
                job_update_from_proto(request.job_update)
                if kind == "job_update"
                else observation_from_proto(request.observation)
            )
            result = await self._repo.ingest_upstream(
                station_id, request.boot_id, request.seq, item, epoch=session.epoch
            )
        if result.duplicate:
            SERVER_DEDUP_HITS.labels(kind).inc()
        else:
            SERVER_INGESTED.labels(kind).inc()
        if result.job_change is not None and result.job_change.applied:
            JOBS.labels(result.job_change.new.name.lower()).inc()
            change = result.job_change
            self._events.job(change.job_id, station_id, change.old, change.new)
        elif isinstance(item, ObservationIn) and not result.duplicate:
            self._events.observation(item.observation_id, station_id, item.target_id or "")
        elif isinstance(item, TelemetryIn) and not result.duplicate:  # live summary, <= 1 Hz (skymesh.server.events)
            self._events.telemetry(station_id, request.telemetry.samples)
        self._ack(session, request.boot_id, result.committed_seq, received)
        if self.health is not None and isinstance(item, TelemetryIn) and not result.duplicate:
            try:  # after the ack: detectors never delay it, and never end the stream
                await self.health.observe(station_id, item.columns)
            except Exception as exc:  # the slew-rate read or an event write failed (the database): next batch
                log.warning("station %s: health detectors skipped a batch: %s: %s", station_id, type(exc).__name__, exc)

    @staticmethod
    def _ack(session: AgentSession, boot_id: str, committed: int, received: float) -> None:
        session.push(
            agent_pb2.ConnectResponse(upstream_ack=agent_pb2.UpstreamAck(boot_id=boot_id, committed_seq=committed)),
            settles=(boot_id, committed),
        )
        SERVER_ACK_LAG.observe(time.perf_counter() - received)

    # ------------------------------------------------------------------------------------------------ uploads

    async def UploadArtifact(  # type: ignore[override]
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.UploadArtifactResponse:
        return await self._uploads.upload(request_iterator, context)

    async def QueryUploadStatus(  # type: ignore[override]
        self, request: agent_pb2.QueryUploadStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.QueryUploadStatusResponse:
        return await self._uploads.query(request, context)


_TRACED_UP = frozenset({"command_update", "schedule_ack", "job_update"})  # the bodies with a trace_context


# A device still connected counts as failing after this many errors in a row: one timeout is not a broken device,
# and every DEGRADED transition replans the station's work.
FAILING_AFTER_ERRORS = 3


def _failing_devices(devices: Sequence[agent_pb2.DeviceHealth]) -> tuple[str, ...]:
    """Roles of the devices an agent reports unreachable or failing (a bounded, short list: it is logged)."""
    return tuple(
        sorted({d.role[:32] for d in devices[:16] if not d.connected or d.consecutive_errors >= FAILING_AFTER_ERRORS})
    )
