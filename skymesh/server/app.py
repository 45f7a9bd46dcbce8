"""Assembling and running the server: `serve(config)` builds the grpc.aio server with every servicer, health
checking, reflection (behind the same token check as the control API) and keepalive settings, gives a fresh database
its first admin (token in an owner-only file), starts the liveness monitor and the planner, and returns a
`RunningServer` that tests, the demo and `skymesh server` stop gracefully (Drain to agents, grace, close the DB).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.control.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from skymesh.api.guard import GuardInterceptor
from skymesh.api.scheduler.v1 import scheduler_pb2_grpc
from skymesh.api.validation import CHECKED_WHEN_CONVERTED
from skymesh.core.clock import Clock, SystemClock
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import StationState
from skymesh.observability.endpoint import start_endpoint
from skymesh.observability.grpc_tracing import TracingClientInterceptor, TracingServerInterceptor
from skymesh.observability.metrics import ServerMetrics
from skymesh.server.alerts.ingest import AlertIngest
from skymesh.server.alerts.kafka import ConfluentAlertConsumer, consume
from skymesh.server.alerts.watch import AlertWatcher
from skymesh.server.auth import ControlAuthInterceptor, bootstrap_admin
from skymesh.server.config import ServerConfig
from skymesh.server.control import (
    AlertServicer,
    CampaignServicer,
    JobServicer,
    ObservationServicer,
    StationServicer,
    TargetServicer,
    UserServicer,
)
from skymesh.server.control.live import EventServicer, PlanServicer, SiteServicer
from skymesh.server.control.people import AuditServicer, AuthServicer
from skymesh.server.db import Repository, create_engine, migrate
from skymesh.server.db.errors import translate_db_error
from skymesh.server.dispatch import Dispatcher
from skymesh.server.events import EventBus
from skymesh.server.groupcommit import GroupCommitter
from skymesh.server.health import HealthMonitor
from skymesh.server.liveness import Liveness
from skymesh.server.looplag import LoopLagMonitor
from skymesh.server.observe import StationGauges, readiness_checks
from skymesh.server.planning import Planner
from skymesh.server.reduction import Reducer, is_reducible
from skymesh.server.replicas import ReplicaLink, new_replica_id
from skymesh.server.retention import TelemetryMaintenance
from skymesh.server.sessions import SessionHub
from skymesh.server.stream import AgentServicer
from skymesh.server.uploads import Uploads

__all__ = ["RunningServer", "serve"]

log = logging.getLogger(__name__)

_SERVICE_NAMES = (
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    stations_pb2.DESCRIPTOR.services_by_name["StationService"].full_name,
    targets_pb2.DESCRIPTOR.services_by_name["TargetService"].full_name,
    targets_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name,
    observations_pb2.DESCRIPTOR.services_by_name["ObservationService"].full_name,
    observations_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    users_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name,
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    auth_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["PlanService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["SiteService"].full_name,
)

_MAX_PENDING_CALLS = 20_000
# Server keepalive 60 s; agents may ping every 20 s or more, even with no call in flight.
_GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    # Calls gRPC core has accepted but the application has not yet taken (grpc.aio takes them one by one on the
    # event loop). Core's default limits refused about a quarter of a 3,000-agent reconnect storm
    # before any handler saw it, so the server logged nothing and the agents saw their Hello write fail with
    # INTERNAL "Internal error from Core" (the refusal's real status is lost on that path). Connect's own shedding
    # (`hello_queue_max`, UNAVAILABLE with a retry-after) is where overload is answered; this only has to be above
    # the largest storm expected (issue 8: 10,000 stations per process).
    ("grpc.server.max_pending_requests", _MAX_PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", _MAX_PENDING_CALLS),
]


@dataclass
class RunningServer:
    """A started server. `address` is "host:port" with the port actually bound (listen on port 0 to pick one)."""

    config: ServerConfig
    server: grpc.aio.Server
    port: int
    repo: Repository
    engine: AsyncEngine
    hub: SessionHub
    liveness: Liveness
    planner: Planner | None
    dispatcher: Dispatcher
    metrics_port: int | None
    alerts: AlertIngest
    metrics: ServerMetrics
    events: EventBus
    _background: asyncio.Task[None]
    _scheduler_channel: grpc.aio.Channel
    _health: Any
    _metrics_server: Any = None
    _stopped: bool = field(default=False)
    reducer: Reducer | None = None
    committer: GroupCommitter | None = None
    hellos: GroupCommitter | None = None
    key_lookups: GroupCommitter | None = None
    slew_reads: GroupCommitter | None = None
    command_updates: GroupCommitter | None = None
    replica_id: str = ""
    replicas: ReplicaLink | None = None

    @property
    def address(self) -> str:
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain agents (they come back after `drain_retry_after_s`), stop RPCs after the grace, close the DB."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        await self._health.enter_graceful_shutdown()
        drain = agent_pb2.Drain(reason="server shutting down")
        drain.retry_after.FromMilliseconds(int(self.config.drain_retry_after_s * 1000))
        if self.hub.drain(drain):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(grace, 2.0)):
                    await self.hub.wait_empty()
        await self.server.stop(grace)
        for committer in (self.committer, self.hellos, self.key_lookups, self.slew_reads, self.command_updates):
            if committer is not None:
                await committer.close()
        self._background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._background
        await self._scheduler_channel.close(None)
        if self.replicas is not None:
            await self.replicas.close()  # releases the planner lock at once
        if self.reducer is not None:
            await self.reducer.stop()
        await self.repo.wait_idle()
        await self.engine.dispose()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.close)
        log.info("server stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def _background(
    liveness: Liveness,
    planner: Planner | None,
    extra: dict[str, Callable[[], Coroutine[Any, Any, Any]]],
    replicas: ReplicaLink | None = None,
) -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(liveness.run(), name="liveness")
        if replicas is not None:
            tg.create_task(replicas.run(), name="replicas")
        if planner is not None:
            tg.create_task(planner.run(), name="planner")
        for name, loop in extra.items():
            tg.create_task(loop(), name=name)


def _forward_plan_request(dispatcher: Dispatcher, reason: str) -> None:
    """A plan request on a replica that does not plan: NOTIFY the one that does (best effort; it also plans on its
    interval and on the events it sees itself). While one is on its way, more add nothing (the planner debounces a
    burst into one plan anyway): a reconnect storm does not become a NOTIFY storm."""
    if _FORWARDS:
        return
    task = asyncio.get_running_loop().create_task(dispatcher.forward_plan_request(reason))
    _FORWARDS.add(task)
    task.add_done_callback(_FORWARDS.discard)


_FORWARDS: set[asyncio.Task[None]] = set()


async def serve(config: ServerConfig, *, clock: Clock | None = None) -> RunningServer:
    """Start the server described by `config` and return once it is accepting connections."""
    clock = clock or SystemClock()
    await asyncio.to_thread(Path(config.data_dir).mkdir, parents=True, exist_ok=True)
    engine = create_engine(config.database_url)
    try:
        return await _start(config, clock, engine)
    except BaseException:
        await engine.dispose()
        raise


async def _start(config: ServerConfig, clock: Clock, engine: AsyncEngine) -> RunningServer:
    # This process's own registry, built before anything records a metric.
    metrics = ServerMetrics.start()
    metrics.replan_interval.set(config.replan_interval_s if config.planning_enabled else 0)
    if config.migrate:
        await migrate(engine)
    repo = Repository(engine, clock)
    hub = SessionHub()
    events = EventBus(clock)
    dispatcher = Dispatcher(repo, hub, events)
    replica_id = new_replica_id()
    replicas: ReplicaLink | None = None
    if config.replicas and engine.dialect.name == "postgresql":
        replicas = ReplicaLink(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
            replica_id,
            repo,
            hub,
            dispatcher,
            want_lead=config.planning_enabled,
            on_plan_request=lambda reason: replan(reason),
            on_orphans=lambda: liveness.sweep(),
            on_event=events.relay,
            on_events_lost=events.resync,
            poll_s=config.replica_poll_s,
            sweep_s=config.replica_sweep_s,
        )
        await replicas.connect()  # before the first stream: other replicas see this one alive from now
        dispatcher.notify = replicas.notify
        events.forward = replicas.relay_event  # Watch on any replica sees every replica's events
    scheduler_channel = grpc.aio.insecure_channel(
        config.scheduler_address,
        interceptors=[TracingClientInterceptor()],  # type: ignore[list-item]
        # A large plan is one big response: not bound by gRPC's default 4 MiB receive limit.
        options=[
            ("grpc.max_receive_message_length", config.scheduler_max_message_mb << 20),
            ("grpc.max_send_message_length", config.scheduler_max_message_mb << 20),
        ],
    )
    loop_lag = LoopLagMonitor()  # how late the event loop runs (skymesh_server_event_loop_lag_seconds)
    planner = (
        Planner(
            repo,
            dispatcher,
            scheduler_pb2_grpc.SchedulerServiceStub(scheduler_channel),  # type: ignore[arg-type]
            config,
            clock,
            failing_devices=lambda station_id: liveness.failing_devices(station_id),  # liveness is built below
            leadership=replicas,
            forward=lambda reason: _forward_plan_request(dispatcher, reason),
            loop_lag=loop_lag,
        )
        if config.planning_enabled
        else None
    )

    def replan(reason: str) -> None:
        if planner is not None:
            planner.request(reason)

    if config.control_auth:
        await bootstrap_admin(repo, config.admin_token_path)
    else:
        log.warning("control API authentication is OFF (control_auth: false): anyone on this host is admin")
    liveness = Liveness(
        repo,
        hub,
        config,
        clock,
        on_schedulable_change=lambda s: replan(f"station {s} state"),
        on_state_change=events.station_state,
        replica=replica_id,
    )
    alert_ingest = AlertIngest(repo, dispatcher, config.alerts, replan)
    alert_loops: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {"event-loop-lag": loop_lag.run}
    if config.alerts.watch_dir:
        watcher = AlertWatcher(alert_ingest, Path(config.alerts.watch_dir), config.alerts.watch_interval_s)
        alert_loops["alert-watcher"] = watcher.run
    if config.alerts.kafka_bootstrap:
        kafka = config.alerts
        consumer = ConfluentAlertConsumer(
            kafka.kafka_bootstrap, kafka.kafka_topics, kafka.kafka_group_id, kafka.kafka_config
        )
        alert_loops["alert-kafka"] = lambda: consume(consumer, alert_ingest)
    if replicas is not None and planner is not None:
        await replicas.try_lock()  # the first replica up plans from the start (not after a retry interval)
    await liveness.load()
    if planner is not None:  # streams did not survive a restart: plan once the stations are back (or the grace ends)
        planner.await_reconnects(
            [sid for sid in await repo.station_states() if liveness.state(sid) == StationState.DISCONNECTED],
            liveness.state,
        )
    # Background loops beyond the alert ones ride along in the same dict (`_background` owns them all).
    alert_loops["telemetry-maintenance"] = TelemetryMaintenance(repo, config, clock).run
    reducer = Reducer(repo, config, on_bad=replan)
    await reducer.start()  # before the listener: bad thresholds fail the start, and no upload can slip past
    if reducer.enabled:
        alert_ingest.skymap_tiler = reducer.tile_skymap
        alert_loops["alert-skymaps"] = alert_ingest.tile_pending  # once: maps stored but not tiled before a stop

    def reduce_upload(resource_name: str, kind: str) -> None:
        if is_reducible(kind, resource_name):
            reducer.submit(resource_name)

    # The guard goes first: every RPC's request limits and error mapping (skymesh.api.guard). Telemetry samples are
    # checked where the stream converts them, in the same pass (`skymesh.server.wire.telemetry_from_proto`).
    server = grpc.aio.server(
        interceptors=[
            GuardInterceptor(translate_db_error, deferred=CHECKED_WHEN_CONVERTED),
            TracingServerInterceptor(),
            ControlAuthInterceptor(repo, required=config.control_auth),
        ],
        options=_GRPC_OPTIONS,
    )
    agent_servicer = AgentServicer(
        repo,
        hub,
        liveness,
        dispatcher,
        Uploads(repo, config, on_complete=reduce_upload),
        config,
        clock,
        events,
        replica=replica_id,
    )

    # Read at a station's first telemetry batch: after a connect storm thousands at once, so they share reads
    # instead of taking one pool connection and transaction each.
    slew_reads = GroupCommitter(repo, write=repo.slew_rates, linger_s=0.005, overload_reason="HEALTH_OVERLOADED")

    async def slew_rate_of(station_id: str) -> float:
        rate: float = await slew_reads.submit(station_id, "", 0, None)
        return rate

    def health_changed(station_id: str, detector: str, opened: bool) -> None:
        liveness.report_anomaly(station_id, detector, opened)  # failing hardware: DEGRADED while the event is open

    agent_servicer.health = HealthMonitor(
        repo.open_health_event, repo.close_health_event, slew_rate_of=slew_rate_of, on_change=health_changed
    )
    agent_pb2_grpc.add_AgentServiceServicer_to_server(agent_servicer, server)
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(repo), server)
    auth_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(repo), server)
    events_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(events), server)
    events_pb2_grpc.add_PlanServiceServicer_to_server(PlanServicer(repo), server)
    events_pb2_grpc.add_SiteServiceServicer_to_server(
        SiteServicer(repo, liveness, events, hub, replica=replica_id), server
    )
    stations_pb2_grpc.add_StationServiceServicer_to_server(
        StationServicer(repo, hub, liveness, replan, station_keys=agent_servicer.station_keys), server
    )
    targets_pb2_grpc.add_TargetServiceServicer_to_server(TargetServicer(repo, dispatcher, replan), server)
    targets_pb2_grpc.add_CampaignServiceServicer_to_server(CampaignServicer(repo, replan), server)
    observations_pb2_grpc.add_ObservationServiceServicer_to_server(
        ObservationServicer(repo, config.uploads_dir), server
    )
    observations_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(repo, dispatcher, planner), server)
    users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(repo), server)
    alerts_pb2_grpc.add_AlertServiceServicer_to_server(AlertServicer(repo, alert_ingest), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*_SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    creds = None
    if config.tls_cert_file and config.tls_key_file:
        key = await asyncio.to_thread(Path(config.tls_key_file).read_bytes)
        cert = await asyncio.to_thread(Path(config.tls_cert_file).read_bytes)
        client_ca = (
            await asyncio.to_thread(Path(config.tls_client_ca_file).read_bytes) if config.tls_client_ca_file else None
        )
        creds = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
    try:
        port = server.add_secure_port(config.listen, creds) if creds else server.add_insecure_port(config.listen)
    except RuntimeError as exc:  # grpc's only word for it: "Failed to bind to address"
        raise InvalidArgument(
            f"cannot listen on {config.listen}: in use, or not an address of this host", field="listen"
        ) from exc
    metrics.registry.register(StationGauges(hub, planner))
    await server.start()
    for name in ("", *_SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    metrics_server = None
    metrics_port = None
    if config.metrics_port is not None:
        metrics_server = start_endpoint(
            metrics.registry,
            port=config.metrics_port,
            addr=config.metrics_addr,
            readiness=readiness_checks(engine, scheduler_channel if planner is not None else None),
        )
        metrics_port = metrics_server.port

    alert_loops["key-recheck"] = agent_servicer.recheck_keys  # open streams' keys, one read per round
    background = asyncio.create_task(
        _background(liveness, planner, alert_loops, replicas), name="skymesh-server-background"
    )
    running = RunningServer(
        config=config,
        server=server,
        port=port,
        repo=repo,
        engine=engine,
        hub=hub,
        liveness=liveness,
        planner=planner,
        dispatcher=dispatcher,
        metrics_port=metrics_port,
        alerts=alert_ingest,
        metrics=metrics,
        events=events,
        _background=background,
        _scheduler_channel=scheduler_channel,
        _health=health_servicer,
        _metrics_server=metrics_server,
        reducer=reducer,
        committer=agent_servicer.committer,
        hellos=agent_servicer.hellos,
        key_lookups=agent_servicer.station_keys.lookups,
        slew_reads=slew_reads,
        command_updates=agent_servicer.command_updates,
        replica_id=replica_id,
        replicas=replicas,
    )
    log.info("skymesh server listening on %s (database %s)", running.address, engine.url.render_as_string())
    return running
