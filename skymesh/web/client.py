"""The gateway's gRPC client of the control server (and of the scheduler, for ranked target lists).

One channel per upstream for the whole process; every call carries the caller's own token as
`authorization: Bearer`, so the server decides what the caller may do. gRPC errors leave through `call`, the one
place where they become `SkyMeshError` (with the field the server named).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from skymesh.api.control.v1 import (
    alerts_pb2_grpc,
    auth_pb2_grpc,
    events_pb2_grpc,
    observations_pb2_grpc,
    stations_pb2_grpc,
    targets_pb2_grpc,
)
from skymesh.api.errors import error_from_rpc
from skymesh.api.scheduler.v1 import scheduler_pb2_grpc
from skymesh.core.errors import Unavailable
from skymesh.web.catalogue import TargetCatalogues
from skymesh.web.config import WebConfig

__all__ = ["ControlClient", "Metadata"]

_R = TypeVar("_R")
Metadata = tuple[tuple[str, str], ...]


class ControlClient:
    def __init__(self, config: WebConfig) -> None:
        self._config = config
        options = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_permit_without_calls", 1)]
        if config.server_ca_file:
            with open(config.server_ca_file, "rb") as f:  # once, at start
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.aio.secure_channel(config.server_address, creds, options=options)
            self._scheduler_channel = grpc.aio.secure_channel(config.scheduler_address, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(config.server_address, options=options)
            self._scheduler_channel = grpc.aio.insecure_channel(config.scheduler_address, options=options)
        ch = self._channel
        self.stations = stations_pb2_grpc.StationServiceStub(ch)
        self.targets = targets_pb2_grpc.TargetServiceStub(ch)
        self.campaigns = targets_pb2_grpc.CampaignServiceStub(ch)
        self.jobs = observations_pb2_grpc.JobServiceStub(ch)
        self.observations = observations_pb2_grpc.ObservationServiceStub(ch)
        self.auth = auth_pb2_grpc.AuthServiceStub(ch)
        self.audit = auth_pb2_grpc.AuditServiceStub(ch)
        self.events = events_pb2_grpc.EventServiceStub(ch)
        self.plans = events_pb2_grpc.PlanServiceStub(ch)
        self.sites = events_pb2_grpc.SiteServiceStub(ch)
        self.alerts = alerts_pb2_grpc.AlertServiceStub(ch)
        self._health = health_pb2_grpc.HealthStub(ch)
        self.scheduler = scheduler_pb2_grpc.SchedulerServiceStub(self._scheduler_channel)
        # The catalogue last listed and what the scheduler holds of it, for ranked lists (skymesh.web.catalogue).
        self.target_catalogues = TargetCatalogues()

    @staticmethod
    def metadata(token: str | None) -> Metadata:
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def call(self, method: Callable[..., Awaitable[_R]], request: object, token: str | None) -> _R:
        """One unary call with the caller's token; gRPC status -> SkyMeshError."""
        try:
            return await method(request, metadata=self.metadata(token), timeout=self._config.rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not (
                exc.trailing_metadata() or ()
            ):
                raise Unavailable(f"control server at {self._config.server_address}: {exc.code().name}") from exc
            raise error_from_rpc(exc) from exc

    async def server_health(self) -> None:
        """Raise unless the control server's gRPC health check answers SERVING."""
        reply = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unavailable(f"control server at {self._config.server_address} is not serving")

    async def close(self) -> None:
        await self._channel.close(None)
        await self._scheduler_channel.close(None)
