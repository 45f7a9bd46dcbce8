"""EventService.Watch (the event bus to one caller, resumable from a cursor), PlanService.GetLatestPlan (the last
plan's explanations of what was not scheduled, kept in memory by the planner) and SiteService.ReportHeartbeat (a
site without an agent stream reports itself alive)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from skymesh.api.control.v1 import events_pb2, events_pb2_grpc
from skymesh.api.convert import timestamp_from_datetime
from skymesh.api.errors import abort_with, grpc_errors
from skymesh.core.errors import InvalidArgument, SkyMeshError
from skymesh.core.ids import check_id
from skymesh.server.auth import current_actor
from skymesh.server.control.stations import _station_msg
from skymesh.server.db import Repository
from skymesh.server.events import EventBus
from skymesh.server.liveness import Liveness
from skymesh.server.planning import Planner
from skymesh.server.wire import observation_from_proto

__all__ = ["EventServicer", "PlanServicer", "SiteServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    async def Watch(  # type: ignore[override]
        self, request: events_pb2.WatchRequest, context: Ctx
    ) -> AsyncIterator[events_pb2.WatchResponse]:
        if len(request.cursor) > 64:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cursor: must be at most 64 characters")
        try:
            for i, station_id in enumerate(request.telemetry_station_ids):
                check_id(station_id, field=f"telemetry_station_ids[{i}]")
        except SkyMeshError as exc:
            await abort_with(context, exc)
        # Registered first, then headers, before any event: a client told "accepted" has missed nothing since, and can
        # tell "accepted" from "refused" without waiting for an event.
        subscription = self._bus.watch(request.cursor, request.telemetry_station_ids)
        try:
            await context.send_initial_metadata(())
            async for event in subscription:
                yield event
        finally:
            await subscription.aclose()


class PlanServicer(events_pb2_grpc.PlanServiceServicer):
    def __init__(self, planner: Planner | None) -> None:
        self._planner = planner

    @grpc_errors
    async def GetLatestPlan(
        self, request: events_pb2.GetLatestPlanRequest, context: Ctx
    ) -> events_pb2.GetLatestPlanResponse:
        latest = self._planner.latest if self._planner is not None else None
        if latest is None:
            return events_pb2.GetLatestPlanResponse()
        out = events_pb2.GetLatestPlanResponse(
            reason=latest.reason, assignments=latest.assignments, unscheduled=latest.explanations
        )
        out.planned_at.CopyFrom(timestamp_from_datetime(latest.planned_at))
        return out


class SiteServicer(events_pb2_grpc.SiteServiceServicer):
    def __init__(self, repo: Repository, liveness: Liveness, events: EventBus) -> None:
        self._repo = repo
        self._liveness = liveness
        self._events = events

    @grpc_errors
    async def ReportHeartbeat(
        self, request: events_pb2.ReportHeartbeatRequest, context: Ctx
    ) -> events_pb2.ReportHeartbeatResponse:
        if not request.station_id:
            raise InvalidArgument("must not be empty", field="station_id")
        await self._repo.get_station(request.station_id)  # NotFound names station_id
        self._liveness.heartbeat(request.station_id)
        await self._liveness.refresh(request.station_id)
        rec = await self._repo.get_station(request.station_id)
        return events_pb2.ReportHeartbeatResponse(station=_station_msg(rec, self._liveness))

    @grpc_errors
    async def SubmitObservation(
        self, request: events_pb2.SubmitObservationRequest, context: Ctx
    ) -> events_pb2.SubmitObservationResponse:
        if not request.station_id:
            raise InvalidArgument("must not be empty", field="station_id")
        if not request.HasField("observation"):
            raise InvalidArgument("must be set", field="observation")
        obs = observation_from_proto(request.observation)
        created = await self._repo.submit_observation(request.station_id, obs, actor=current_actor())
        if created:
            self._events.observation(obs.observation_id, request.station_id, obs.target_id or "")
        return events_pb2.SubmitObservationResponse(observation_id=obs.observation_id, created=created)
