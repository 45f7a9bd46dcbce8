"""EventService.Watch (the event bus to one caller, resumable from a cursor), PlanService.GetLatestPlan (the last
plan's explanations of what was not scheduled, stored by the planner: every replica answers it) and
SiteService.ReportHeartbeat (a site without an agent stream reports itself alive).

A heartbeat is fenced like a stream (docs/replicas.md): the replica receiving it takes the station's next session
epoch without a stream (as an adoption does) unless it holds it already, so its liveness writes are the only ones
that count. A station whose agent stream is live (open on this server, or ONLINE/STALE/DEGRADED under a session
held by another live replica) is refused with FAILED_PRECONDITION: its stream reports its liveness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from skymesh.api.control.v1 import events_pb2, events_pb2_grpc
from skymesh.api.errors import abort_with, grpc_errors
from skymesh.core.errors import Aborted, FailedPrecondition, InvalidArgument, SkyMeshError
from skymesh.core.ids import check_id
from skymesh.core.model import StationState
from skymesh.server.auth import current_actor
from skymesh.server.control.stations import _station_msg
from skymesh.server.db import Repository
from skymesh.server.events import EventBus
from skymesh.server.liveness import Liveness
from skymesh.server.sessions import SessionHub
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
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    @grpc_errors
    async def GetLatestPlan(
        self, request: events_pb2.GetLatestPlanRequest, context: Ctx
    ) -> events_pb2.GetLatestPlanResponse:
        # Stored by the planner after each plan: any replica answers, not only the one that planned.
        stored = await self._repo.latest_plan()
        return (
            events_pb2.GetLatestPlanResponse.FromString(stored)
            if stored is not None
            else events_pb2.GetLatestPlanResponse()
        )


_STREAM_STATES = (StationState.ONLINE, StationState.STALE, StationState.DEGRADED)


class SiteServicer(events_pb2_grpc.SiteServiceServicer):
    def __init__(
        self, repo: Repository, liveness: Liveness, events: EventBus, hub: SessionHub, *, replica: str
    ) -> None:
        self._repo = repo
        self._liveness = liveness
        self._events = events
        self._hub = hub
        self._replica = replica  # this process's replica id (skymesh.server.replicas)

    async def _claim(self, station_id: str, stored: StationState) -> None:
        """Hold the station's session here (without a stream) before writing its liveness; refuse a live stream's."""
        if self._hub.connected(station_id):
            raise FailedPrecondition(
                "the station's agent stream is open: the stream reports its liveness",
                field="station_id",
                reason="STREAM_OPEN",
            )
        holder = await self._repo.session_holder(station_id)
        if holder is not None and holder[1] == self._replica:
            return  # held here already (an earlier heartbeat, an adoption, or a stream of ours that ended)
        live_stream = holder is not None and bool(holder[2]) and stored in _STREAM_STATES
        if live_stream and holder is not None and holder[1] in await self._repo.live_replicas():
            raise FailedPrecondition(
                "the station's agent stream is open on another replica: the stream reports its liveness",
                field="station_id",
                reason="STREAM_OPEN",
            )
        epoch = await self._repo.adopt_session(station_id, holder[0] if holder is not None else 0, self._replica)
        if epoch is None:
            raise Aborted("another session took the station meanwhile; retry", reason="CONTENDED")
        self._liveness.claimed(station_id, epoch, stored)

    @grpc_errors
    async def ReportHeartbeat(
        self, request: events_pb2.ReportHeartbeatRequest, context: Ctx
    ) -> events_pb2.ReportHeartbeatResponse:
        if not request.station_id:
            raise InvalidArgument("must not be empty", field="station_id")
        stored = await self._repo.get_station(request.station_id)  # NotFound names station_id
        await self._claim(request.station_id, stored.station.state)
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
