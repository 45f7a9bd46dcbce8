"""Assembling and running the server: `serve(config)` builds the grpc.aio server with every servicer, health
checking, reflection and keepalive settings, starts the liveness monitor and the planner, and returns a
`RunningServer` that tests, the demo and `skymesh server` stop gracefully (Drain to agents, grace, close the DB).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.control.v1 import (
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
)
from skymesh.api.scheduler.v1 import scheduler_pb2_grpc
from skymesh.core.clock import Clock, SystemClock
from skymesh.server.auth import ControlAuthInterceptor
from skymesh.server.config import ServerConfig
from skymesh.server.control import (
    CampaignServicer,
    JobServicer,
    ObservationServicer,
    StationServicer,
    TargetServicer,
)
from skymesh.server.control.live import EventServicer, PlanServicer, SiteServicer
from skymesh.server.control.people import AuditServicer, AuthServicer
from skymesh.server.db import Repository, create_engine, migrate
from skymesh.server.dispatch import Dispatcher
from skymesh.server.events import EventBus
from skymesh.server.liveness import Liveness
from skymesh.server.planning import Planner
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
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    auth_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["PlanService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["SiteService"].full_name,
)

# Server keepalive 60 s; agents may ping every 20 s or more, even with no call in flight.
_GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
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
    events: EventBus
    _background: asyncio.Task[None]
    _scheduler_channel: grpc.aio.Channel
    _health: Any
    _metrics_server: Any = None
    _stopped: bool = field(default=False)

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
        self._background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._background
        await self._scheduler_channel.close(None)
        await self.repo.wait_idle()
        await self.engine.dispose()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.shutdown)
            self._metrics_server.server_close()
        log.info("server stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def _background(liveness: Liveness, planner: Planner | None) -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(liveness.run(), name="liveness")
        if planner is not None:
            tg.create_task(planner.run(), name="planner")


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
    if config.migrate:
        await migrate(engine)
    repo = Repository(engine, clock)
    hub = SessionHub()
    events = EventBus(clock)
    dispatcher = Dispatcher(repo, hub, events)
    scheduler_channel = grpc.aio.insecure_channel(config.scheduler_address)
    planner = (
        Planner(repo, dispatcher, scheduler_pb2_grpc.SchedulerServiceStub(scheduler_channel), config, clock)  # type: ignore[arg-type]
        if config.planning_enabled
        else None
    )

    def replan(reason: str) -> None:
        if planner is not None:
            planner.request(reason)

    liveness = Liveness(
        repo,
        hub,
        config,
        clock,
        on_schedulable_change=lambda s: replan(f"station {s} state"),
        on_state_change=events.station_state,
    )
    await liveness.load()

    server = grpc.aio.server(
        interceptors=[ControlAuthInterceptor(repo, required=config.control_auth)], options=_GRPC_OPTIONS
    )
    agent_pb2_grpc.add_AgentServiceServicer_to_server(
        AgentServicer(repo, hub, liveness, dispatcher, Uploads(repo, config), config, clock, events), server
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(repo), server)
    auth_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(repo), server)
    events_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(events), server)
    events_pb2_grpc.add_PlanServiceServicer_to_server(PlanServicer(planner), server)
    events_pb2_grpc.add_SiteServiceServicer_to_server(SiteServicer(repo, liveness, events), server)
    stations_pb2_grpc.add_StationServiceServicer_to_server(StationServicer(repo, hub, liveness, replan), server)
    targets_pb2_grpc.add_TargetServiceServicer_to_server(TargetServicer(repo, dispatcher, replan), server)
    targets_pb2_grpc.add_CampaignServiceServicer_to_server(CampaignServicer(repo, replan), server)
    observations_pb2_grpc.add_ObservationServiceServicer_to_server(ObservationServicer(repo), server)
    observations_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(repo, dispatcher, planner), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*_SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    if config.tls_cert_file and config.tls_key_file:
        key = await asyncio.to_thread(Path(config.tls_key_file).read_bytes)
        cert = await asyncio.to_thread(Path(config.tls_cert_file).read_bytes)
        creds = grpc.ssl_server_credentials([(key, cert)])
        port = server.add_secure_port(config.listen, creds)
    else:
        port = server.add_insecure_port(config.listen)
    await server.start()
    for name in ("", *_SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    metrics_server = None
    metrics_port = None
    if config.metrics_port is not None:
        from prometheus_client import start_http_server

        metrics_server, _thread = start_http_server(config.metrics_port, addr=config.metrics_addr)
        metrics_port = int(metrics_server.server_port)

    background = asyncio.create_task(_background(liveness, planner), name="skymesh-server-background")
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
        events=events,
        _background=background,
        _scheduler_channel=scheduler_channel,
        _health=health_servicer,
        _metrics_server=metrics_server,
    )
    log.info("skymesh server listening on %s (database %s)", running.address, engine.url.render_as_string())
    return running
