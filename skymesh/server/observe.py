"""What the server adds to its own metrics handle at start: per-connected-station gauges and readiness checks.

`StationGauges` is a collector read at scrape time from the session hub and the planner, so nothing is written at
heartbeat rate. Its series carry a `station_id` label, one per stream open on this replica: bounded by the number
of registered stations and removed as soon as a stream ends (the same shape as kube-state-metrics' per-pod series).

- `skymesh_server_stream_start_time_seconds{station_id}`: when the station's current stream opened (stream age is
  `time() - ...`; a flapping station shows as `changes(...[30m])`).
- `skymesh_server_station_schedule_age_seconds{station_id}`: time since the last applied plan covered the station.

`readiness_checks` are the server's `/readyz`: the database answers `SELECT 1` and the scheduler's gRPC health
service says SERVING (skipped when planning is off).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from skymesh.observability.endpoint import ReadinessCheck
from skymesh.server.planning import Planner
from skymesh.server.sessions import AgentSession, SessionHub

__all__ = ["StationGauges", "readiness_checks"]


class StationGauges(Collector):
    def __init__(self, hub: SessionHub, planner: Planner | None) -> None:
        self._hub = hub
        self._planner = planner

    def _sessions(self) -> list[AgentSession]:
        # Read from the scrape thread while the event loop may register a stream: retry the rare resize.
        for _ in range(5):
            try:
                return self._hub.sessions()
            except RuntimeError:
                continue
        return []

    def collect(self) -> Iterator[Metric]:
        sessions = self._sessions()
        started = GaugeMetricFamily(
            "skymesh_server_stream_start_time_seconds",
            "Unix time the station's current stream to this server opened",
            labels=["station_id"],
        )
        for s in sessions:
            started.add_metric([s.station_id], s.opened_at)
        yield started
        if self._planner is None:
            return
        now = time.time()
        planned_at = dict(self._planner.planned_at)
        never = self._planner.started_at
        age = GaugeMetricFamily(
            "skymesh_server_station_schedule_age_seconds",
            "Seconds since the last applied plan covered the connected station (since server start if none has)",
            labels=["station_id"],
        )
        for s in sessions:
            age.add_metric([s.station_id], max(0.0, now - planned_at.get(s.station_id, never)))
        yield age


def readiness_checks(engine: AsyncEngine, scheduler: grpc.aio.Channel | None) -> dict[str, ReadinessCheck]:
    async def database() -> str | None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None

    checks: dict[str, ReadinessCheck] = {"database": database}
    if scheduler is not None:
        stub = health_pb2_grpc.HealthStub(scheduler)

        async def scheduler_serving() -> str | None:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.5)
            except grpc.aio.AioRpcError as exc:
                return f"unreachable ({exc.code().name})"
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
            return None

        checks["scheduler"] = scheduler_serving
    return checks
