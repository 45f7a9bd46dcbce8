"""AlertService: IngestAlert (operator role, enforced by `ControlAuthInterceptor`: not a Get/List method), GetAlert and
ListAlerts (observer). A packet that does not parse is kept as rejected and answered INVALID_ARGUMENT with reason
ALERT_REJECTED; the rejected record's id travels in the error details."""

from __future__ import annotations

from typing import Any

import grpc

from skymesh.api.control.v1 import alerts_pb2, alerts_pb2_grpc
from skymesh.api.convert import time_window_to_proto, timestamp_from_datetime
from skymesh.api.errors import grpc_errors
from skymesh.core.errors import InvalidArgument
from skymesh.server.alerts.ingest import AlertIngest
from skymesh.server.alerts.model import AlertFormat, AlertStatus
from skymesh.server.auth import current_actor
from skymesh.server.control.paging import key_time, page_request
from skymesh.server.db import Repository
from skymesh.server.db.alerts import AlertRecord

__all__ = ["AlertServicer", "alert_to_proto"]

Ctx = grpc.aio.ServicerContext[Any, Any]
_MAX_ORIGIN = 200


def alert_to_proto(r: AlertRecord, *, duplicate: bool = False) -> alerts_pb2.Alert:
    msg = alerts_pb2.Alert(
        alert_id=r.alert_id,
        source=r.source,
        alert_type=r.alert_type,
        external_id=r.external_id,
        revision=r.revision,
        event_name=r.event_name,
        format=r.format,
        role=r.role,
        retraction=r.retraction,
        status=int(AlertStatus.DUPLICATE if duplicate else r.status),  # type: ignore[arg-type]
        target_id=r.target_id or "",
        received_at=timestamp_from_datetime(r.received_at),
        filter=r.filter,
        detail=r.detail,
        origin=r.origin,
        error=r.error,
        raw_size_bytes=r.raw_size_bytes,
        priority=r.priority,
        schema_version=r.schema_version,
        cutouts=list(r.cutouts),
    )
    if r.event_time is not None:
        msg.event_time.CopyFrom(timestamp_from_datetime(r.event_time))
    if r.window is not None:
        msg.time_critical.CopyFrom(time_window_to_proto(r.window))
    for name in ("ra_deg", "dec_deg", "error_radius_deg", "magnitude_ab", "magnitude_error", "flux_erg_s_cm2"):
        value = getattr(r, name)
        if value is not None:
            setattr(msg, name, value)
    return msg


class AlertServicer(alerts_pb2_grpc.AlertServiceServicer):
    def __init__(self, repo: Repository, ingest: AlertIngest) -> None:
        self._repo = repo
        self._ingest = ingest

    @grpc_errors
    async def IngestAlert(self, request: alerts_pb2.IngestAlertRequest, context: Ctx) -> alerts_pb2.IngestAlertResponse:
        hint = None
        if request.format_hint:
            try:
                hint = AlertFormat(request.format_hint)
            except ValueError:
                formats = ", ".join(f.value for f in AlertFormat)
                raise InvalidArgument(
                    f"unknown format {request.format_hint!r} (one of {formats})", field="format_hint"
                ) from None
        if len(request.origin) > _MAX_ORIGIN:
            raise InvalidArgument(f"longer than {_MAX_ORIGIN} characters", field="origin")
        actor = current_actor()
        origin = f"grpc:{actor}" + (f":{request.origin}" if request.origin else "")
        result = await self._ingest.ingest(request.packet, origin=origin, hint=hint, actor=actor)
        if result.error is not None:
            assert result.rejected is not None
            result.error.details["alert_id"] = result.rejected.alert_id
            raise result.error
        return alerts_pb2.IngestAlertResponse(
            alerts=[alert_to_proto(o.record, duplicate=o.duplicate) for o in result.outcomes],
            replan_requested=result.replan_requested,
        )

    @grpc_errors
    async def GetAlert(self, request: alerts_pb2.GetAlertRequest, context: Ctx) -> alerts_pb2.GetAlertResponse:
        if not request.alert_id:
            raise InvalidArgument("must not be empty", field="alert_id")
        record, raw = await self._repo.get_alert(request.alert_id)
        return alerts_pb2.GetAlertResponse(alert=alert_to_proto(record), raw=raw if request.include_raw else b"")

    @grpc_errors
    async def ListAlerts(self, request: alerts_pb2.ListAlertsRequest, context: Ctx) -> alerts_pb2.ListAlertsResponse:
        status = None
        if request.status:
            try:
                status = AlertStatus(request.status)
            except ValueError:
                raise InvalidArgument(f"unknown status {request.status}", field="status") from None
        query = f"alerts|{request.source}|{request.status}|{request.target_id}"
        page = page_request(request.page_size, request.page_token, query, what="alerts", key_length=2, default=100)
        records, token = page.finish(
            await self._repo.list_alerts(
                source=request.source,
                status=status,
                target_id=request.target_id,
                after=(key_time(page.after[0]), page.after[1]) if page.after else None,
                limit=page.fetch,
            ),
            lambda r: (r.received_at.isoformat(), r.alert_id),
        )
        return alerts_pb2.ListAlertsResponse(alerts=[alert_to_proto(r) for r in records], next_page_token=token)
