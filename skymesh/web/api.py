"""The JSON API, `/api/v1`: the DATAS backbone's endpoints (targets ranked for a site, observations, sites and
heartbeats, campaigns, alerts, light curves) and what the dashboard needs (jobs per site over a time range, cancel,
replan, the latest plan's reasons for what was not scheduled). Each handler checks its input, makes gRPC calls
with the caller's token, and shapes the answer with `skymesh.web.views`. The server enforces roles.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from google.protobuf.timestamp_pb2 import Timestamp

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import alerts_pb2, events_pb2, observations_pb2, stations_pb2, targets_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.api.errors import error_from_rpc
from skymesh.core.errors import InvalidArgument, NotFound, SkyMeshError, Unavailable
from skymesh.web.catalogue import rank
from skymesh.web.client import ControlClient
from skymesh.web.czml import czml_document
from skymesh.web.errors import rename_field
from skymesh.web.models import CampaignIn, CancelIn, ObservationIn, SiteIn, TargetIn
from skymesh.web.pages import MAX_TOKEN_CHARS, open_pinned, pinned_token
from skymesh.web.session import Caller, caller
from skymesh.web.sky import sky_json
from skymesh.web.views import (
    campaign_json,
    explanation_json,
    forecast_json,
    iso,
    iso_dt,
    job_json,
    observation_json,
    station_json,
    target_json,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

Who = Annotated[Caller, Depends(caller)]
_PAGE_SIZE_DOC = "At most this many items per answer; follow next_page_token for the rest."
_PAGE_TOKEN_DOC = (
    "Opaque: empty for the first page, then the previous answer's next_page_token, with the same filters (else 400 "
    "on page_token). The server's keyset token: following the tokens returns every item once, even while the list "
    "changes. The answer's next_page_token is empty on the last page."
)
PageSize = Annotated[int, Query(ge=1, le=1000, description=_PAGE_SIZE_DOC)]
PageToken = Annotated[str, Query(max_length=MAX_TOKEN_CHARS, description=_PAGE_TOKEN_DOC)]
SiteId = Annotated[str, Query(max_length=64)]

_JOB_STATES = {name.removeprefix("JOB_STATE_").lower(): value for name, value in common_pb2.JobState.items() if value}
_STATION_STATES = {
    name.removeprefix("STATION_STATE_").lower(): value for name, value in common_pb2.StationState.items() if value
}
_KINDS = {"ground_station": common_pb2.STATION_KIND_GROUND_STATION, "telescope": common_pb2.STATION_KIND_TELESCOPE}


def client(request: Request) -> ControlClient:
    c: ControlClient = request.app.state.client
    return c


Client = Annotated[ControlClient, Depends(client)]


def _utc(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidArgument("must carry a time zone (e.g. 2026-01-01T00:00:00Z)", field=field)
    return value.astimezone(UTC)


def _window(after: datetime | None, before: datetime | None, default_span: timedelta | None) -> Any:
    """A TimeWindow message from optional bounds, or None when both are absent and there is no default span."""
    if after is None and before is None and default_span is None:
        return None
    now = datetime.now(UTC)
    start = _utc(after, "after") if after is not None else None
    end = _utc(before, "before") if before is not None else None
    span = default_span or timedelta(days=3650)
    start = start or ((end or now) - span)
    end = end or (start + 2 * span if default_span else now + span)
    if end <= start:
        raise InvalidArgument("must be later than after", field="before")
    return common_pb2.TimeWindow(start=timestamp_from_datetime(start), end=timestamp_from_datetime(end))


def _paged_window(
    page_token: str, after: datetime | None, before: datetime | None, default_span: timedelta | None
) -> tuple[str, Any]:
    """(the server's page token, the TimeWindow to ask for) of a list whose range may default relative to now: a
    bound the caller left out is the one its first page resolved (`skymesh.web.pages`), so every page asks the
    server the same question."""
    server_token, pinned = open_pinned(page_token)
    try:
        if after is None and "after" in pinned:
            after = _stamp(pinned["after"]).ToDatetime(tzinfo=UTC)
        if before is None and "before" in pinned:
            before = _stamp(pinned["before"]).ToDatetime(tzinfo=UTC)
    except ValueError:
        raise InvalidArgument("is not a page token this API issued", field="page_token") from None
    return server_token, _window(after, before, default_span)


def _stamp(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def _pin(server_token: str, window: Any) -> str:
    pinned = {} if window is None else {"after": window.start.ToJsonString(), "before": window.end.ToJsonString()}
    return pinned_token(server_token, pinned)


# ------------------------------------------------------------------------------------------------------ sites


@router.get("/sites", tags=["sites"], summary="List sites (stations) with their state")
async def list_sites(
    who: Who,
    c: Client,
    kind: Literal["ground_station", "telescope"] | None = None,
    state: Literal["online", "stale", "disconnected", "offline"] | None = None,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """By site_id."""
    req = stations_pb2.ListStationsRequest(
        kind=_KINDS[kind] if kind else 0,  # type: ignore[arg-type]
        state=_STATION_STATES[state] if state else 0,  # type: ignore[arg-type]
        page_size=page_size,
        page_token=page_token,
    )
    resp = await c.call(c.stations.ListStations, req, who.token)
    return {"sites": [station_json(s) for s in resp.stations], "next_page_token": resp.next_page_token}


@router.get("/sites/{site_id}", tags=["sites"], summary="One site")
async def get_site(site_id: str, who: Who, c: Client) -> dict[str, Any]:
    resp = await c.call(c.stations.GetStation, stations_pb2.GetStationRequest(station_id=site_id), who.token)
    return station_json(resp.station)


@router.post("/sites", tags=["sites"], status_code=201, summary="Register a site (admin)")
async def create_site(body: SiteIn, who: Who, c: Client) -> dict[str, Any]:
    station = common_pb2.Station(
        station_id=body.site_id,
        name=body.name or body.site_id,
        kind=_KINDS[body.kind],
        location=common_pb2.GeoLocation(
            latitude_deg=body.latitude_deg, longitude_deg=body.longitude_deg, altitude_m=body.altitude_m
        ),
        min_elevation_deg=body.min_elevation_deg,
        bands=body.bands,
        slew_rate_deg_s=body.slew_rate_deg_s,
        aperture_m=body.aperture_m,
        filters=body.filters,
        limiting_magnitude=body.limiting_magnitude,
        fov_deg=body.fov_deg,
    )
    try:
        resp = await c.call(c.stations.CreateStation, stations_pb2.CreateStationRequest(station=station), who.token)
    except SkyMeshError as exc:
        raise rename_field(
            exc, [("station.station_id", "site_id"), ("station.location", ""), ("station", "")]
        ) from None
    return station_json(resp.station)


@router.put("/sites/{site_id}/heartbeat", tags=["sites"], summary="A site without an agent stream reports it is alive")
async def site_heartbeat(site_id: str, who: Who, c: Client) -> dict[str, Any]:
    resp = await c.call(c.sites.ReportHeartbeat, events_pb2.ReportHeartbeatRequest(station_id=site_id), who.token)
    return station_json(resp.station)


# ---------------------------------------------------------------------------------------------------- targets


async def _ranked(
    c: ControlClient, who: Caller, site_id: str, count: int, priority_min: float, campaign: str, at: datetime | None
) -> dict[str, Any]:
    # Only what this kind of station can observe: telescopes rank sidereal targets, ground stations satellites.
    # The station and the catalogue (usually just "unchanged since version N", with the caller's token: the server
    # checks the role each time) are asked for together; the scheduler is sent the list once, then named by id.
    station_resp, catalogue = await asyncio.gather(
        c.call(c.stations.GetStation, stations_pb2.GetStationRequest(station_id=site_id), who.token),
        c.target_catalogues.current(c, who.token, campaign),
        return_exceptions=True,
    )
    if isinstance(station_resp, BaseException):  # the station's error first, as when it was asked for first
        raise station_resp
    if isinstance(catalogue, BaseException):
        raise catalogue
    station = station_resp.station
    sel = catalogue.select(
        "celestial" if station.kind == common_pb2.STATION_KIND_TELESCOPE else "satellite", priority_min
    )
    when = _utc(at, "at") if at is not None else datetime.now(UTC)
    ranked = await rank(c, sel, station, timestamp_from_datetime(when), count)
    by_id = sel.by_id
    out = []
    for r in ranked:
        item: dict[str, Any] = target_json(by_id[r.target_id]) if r.target_id in by_id else {"target_id": r.target_id}
        item.update(score=r.score, altitude_deg=r.altitude_deg, airmass=r.airmass, remaining_s=r.remaining_s)
        out.append(item)
    return {"site_id": site_id, "at": iso_dt(when), "targets": out, "next_page_token": ""}


@router.get("/targets", tags=["targets"], summary="Targets; with site_id, the ranked list visible from that site")
async def list_targets(
    who: Who,
    c: Client,
    site_id: SiteId = "",
    count: Annotated[int, Query(ge=1, le=500)] = 20,
    priority_min: Annotated[float, Query(ge=0, le=100)] = 0.0,
    campaign: Annotated[str, Query(max_length=64)] = "",
    at: datetime | None = None,
    page_size: PageSize = 100,
    page_token: PageToken = "",
) -> dict[str, Any]:
    if site_id:
        return await _ranked(c, who, site_id, count, priority_min, campaign, at)
    # Without site_id: by target_id, pages of the server's list; priority_min is applied to each page, so a page
    # may hold fewer than page_size targets (even none) while next_page_token is set.
    req = targets_pb2.ListTargetsRequest(campaign_id=campaign, page_size=page_size, page_token=page_token)
    resp = await c.call(c.targets.ListTargets, req, who.token)
    targets = [t for t in resp.targets if t.priority >= priority_min]
    return {"targets": [target_json(t) for t in targets], "next_page_token": resp.next_page_token}


@router.get("/targets/{target_id}", tags=["targets"], summary="One target, and why it is not scheduled (if so)")
async def get_target(target_id: str, who: Who, c: Client) -> dict[str, Any]:
    resp = await c.call(c.targets.GetTarget, targets_pb2.GetTargetRequest(target_id=target_id), who.token)
    out = target_json(resp.target)
    # The latest plan's simulated power/data state for a satellite with a spacecraft profile (null otherwise).
    out["spacecraft_forecast"] = (
        forecast_json(resp.spacecraft_forecast) if resp.HasField("spacecraft_forecast") else None
    )
    plan = await c.call(c.plans.GetLatestPlan, events_pb2.GetLatestPlanRequest(), who.token)
    out["unscheduled_reasons"] = [
        r for e in plan.unscheduled if e.target_id == target_id for r in explanation_json(e)["reasons"]
    ]
    return out


def _split_tle(body: TargetIn) -> tuple[str, str, str]:
    """(line1, line2, name) from a pasted element set or the two separate lines."""
    if body.tle:
        lines = [ln.rstrip() for ln in body.tle.strip().splitlines() if ln.strip()]
        if len(lines) == 3:
            return lines[1], lines[2], lines[0].removeprefix("0 ").strip()
        if len(lines) == 2:
            return lines[0], lines[1], ""
        raise InvalidArgument("must be two TLE lines, optionally after a name line", field="tle")
    if not body.tle_line1 or not body.tle_line2:
        raise InvalidArgument("a satellite needs 'tle' or 'tle_line1' and 'tle_line2'", field="tle")
    return body.tle_line1, body.tle_line2, ""


@router.post("/targets", tags=["targets"], status_code=201, summary="Create a satellite (TLE) or celestial target")
async def create_target(body: TargetIn, who: Who, c: Client) -> dict[str, Any]:
    msg = common_pb2.Target(
        target_id=body.target_id, name=body.name, priority=body.priority, campaign_id=body.campaign_id
    )
    if body.kind == "satellite":
        line1, line2, tle_name = _split_tle(body)
        msg.name = msg.name or tle_name or body.target_id
        msg.satellite.CopyFrom(
            common_pb2.SatelliteTarget(
                tle_line1=line1,
                tle_line2=line2,
                band=body.band,
                downlink_frequency_hz=body.downlink_frequency_hz,
                elements_source="web",
            )
        )
    else:
        if body.ra_deg is None:
            raise InvalidArgument("a celestial target needs ra_deg", field="ra_deg")
        if body.dec_deg is None:
            raise InvalidArgument("a celestial target needs dec_deg", field="dec_deg")
        msg.name = msg.name or body.target_id
        msg.celestial.CopyFrom(
            common_pb2.CelestialTarget(
                ra_deg=body.ra_deg,
                dec_deg=body.dec_deg,
                magnitude=body.magnitude,
                filters=body.filters,
                exposure_s=body.exposure_s,
                exposure_count=body.exposure_count,
                cadence_s=body.cadence_s,
            )
        )
    try:
        resp = await c.call(c.targets.CreateTarget, targets_pb2.CreateTargetRequest(target=msg), who.token)
    except SkyMeshError as exc:
        pasted = [] if not body.tle else [("target.satellite", "tle")]  # the one field the client sent
        raise rename_field(
            exc,
            [
                *pasted,
                ("target.satellite.line1", "tle_line1"),
                ("target.satellite.line2", "tle_line2"),
                ("target.satellite", "tle"),
                ("target.celestial", ""),
                ("target", ""),
            ],
        ) from None
    return target_json(resp.target)


# -------------------------------------------------------------------------------------------------- campaigns


@router.get("/campaigns", tags=["campaigns"], summary="List campaigns")
async def list_campaigns(who: Who, c: Client, page_size: PageSize = 100, page_token: PageToken = "") -> dict[str, Any]:
    """By campaign_id."""
    req = targets_pb2.ListCampaignsRequest(page_size=page_size, page_token=page_token)
    resp = await c.call(c.campaigns.ListCampaigns, req, who.token)
    return {"campaigns": [campaign_json(x) for x in resp.campaigns], "next_page_token": resp.next_page_token}


@router.get("/campaigns/{campaign_id}", tags=["campaigns"], summary="A campaign with its targets and progress")
async def get_campaign(campaign_id: str, who: Who, c: Client) -> dict[str, Any]:
    campaigns = (await c.call(c.campaigns.ListCampaigns, targets_pb2.ListCampaignsRequest(), who.token)).campaigns
    found = [x for x in campaigns if x.campaign_id == campaign_id]
    if not found:
        raise NotFound(f"no campaign {campaign_id!r}", field="campaign_id")
    campaign = found[0]
    req = targets_pb2.ListTargetsRequest(campaign_id=campaign_id)
    targets = (await c.call(c.targets.ListTargets, req, who.token)).targets
    window = campaign.start.seconds and campaign.end.seconds
    jobs_req = observations_pb2.ListJobsRequest(
        window=common_pb2.TimeWindow(start=campaign.start, end=campaign.end) if window else None
    )
    jobs = (await c.call(c.jobs.ListJobs, jobs_req, who.token)).jobs
    progress: dict[str, dict[str, int]] = {t.target_id: {"planned": 0, "succeeded": 0, "failed": 0} for t in targets}
    for j in jobs:
        p = progress.get(j.target_id)
        if p is None:
            continue
        p["planned"] += 1
        if j.state == common_pb2.JOB_STATE_SUCCEEDED:
            p["succeeded"] += 1
        elif j.state in (common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_ABORTED, common_pb2.JOB_STATE_EXPIRED):
            p["failed"] += 1
    done = sum(p["succeeded"] for p in progress.values())
    planned = sum(p["planned"] for p in progress.values())
    out = campaign_json(campaign)
    out["targets"] = [dict(target_json(t), progress=progress[t.target_id]) for t in targets]
    out["progress"] = {"jobs_planned": planned, "jobs_succeeded": done, "fraction": done / planned if planned else 0.0}
    return out


@router.post("/campaigns", tags=["campaigns"], status_code=201, summary="Create a campaign")
async def create_campaign(body: CampaignIn, who: Who, c: Client) -> dict[str, Any]:
    msg = targets_pb2.Campaign(
        campaign_id=body.campaign_id,
        name=body.name or body.campaign_id,
        description=body.description,
        priority_boost=body.priority_boost,
    )
    if body.start is not None:
        msg.start.CopyFrom(timestamp_from_datetime(_utc(body.start, "start")))
    if body.end is not None:
        msg.end.CopyFrom(timestamp_from_datetime(_utc(body.end, "end")))
    try:
        resp = await c.call(c.campaigns.CreateCampaign, targets_pb2.CreateCampaignRequest(campaign=msg), who.token)
    except SkyMeshError as exc:
        raise rename_field(exc, [("campaign", "")]) from None
    return campaign_json(resp.campaign)


# ------------------------------------------------------------------------------------------------ jobs & plan


@router.get("/jobs", tags=["jobs"], summary="Jobs per site over a time range (default: the last and next 24 h)")
async def list_jobs(
    who: Who,
    c: Client,
    site_id: SiteId = "",
    state: Annotated[str, Query(max_length=20)] = "",
    after: datetime | None = None,
    before: datetime | None = None,
    page_size: PageSize = 1000,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """In start order (then job_id): jobs whose window overlaps [after, before)."""
    if state and state not in _JOB_STATES:
        raise InvalidArgument(f"must be one of {', '.join(_JOB_STATES)}", field="state")
    server_token, window = _paged_window(page_token, after, before, timedelta(hours=24))
    req = observations_pb2.ListJobsRequest(
        station_id=site_id,
        state=_JOB_STATES.get(state, 0),  # type: ignore[arg-type]
        window=window,
        page_size=page_size,
        page_token=server_token,
    )
    resp = await c.call(c.jobs.ListJobs, req, who.token)
    return {"jobs": [job_json(j) for j in resp.jobs], "next_page_token": _pin(resp.next_page_token, window)}


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], summary="Cancel a job (operator); a running one is aborted")
async def cancel_job(job_id: str, who: Who, c: Client, body: CancelIn | None = None) -> dict[str, Any]:
    reason = body.reason if body is not None else ""
    req = observations_pb2.CancelJobRequest(job_id=job_id, reason=reason or "cancelled from the web gateway")
    return job_json((await c.call(c.jobs.CancelJob, req, who.token)).job)


@router.post("/replan", tags=["jobs"], summary="Ask the scheduler for a new plan now (operator)")
async def replan(who: Who, c: Client) -> dict[str, Any]:
    resp = await c.call(c.jobs.Replan, observations_pb2.ReplanRequest(), who.token)
    return {
        "assignments": resp.assignments,
        "unscheduled": resp.unscheduled,
        "objective": resp.objective,
        "gap": resp.gap,
    }


@router.get("/plan", tags=["jobs"], summary="The latest plan: what was not scheduled, and why")
async def latest_plan(who: Who, c: Client) -> dict[str, Any]:
    resp = await c.call(c.plans.GetLatestPlan, events_pb2.GetLatestPlanRequest(), who.token)
    return {
        "planned_at": iso(resp.planned_at),
        "reason": resp.reason,
        "assignments": resp.assignments,
        "unscheduled": [explanation_json(e) for e in resp.unscheduled],
    }


# ------------------------------------------------------------------------------------------------ observations


@router.get("/observations", tags=["observations"], summary="Query observations (newest first)")
async def list_observations(
    who: Who,
    c: Client,
    target_id: Annotated[str, Query(max_length=64)] = "",
    site_id: SiteId = "",
    after: datetime | None = None,
    before: datetime | None = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
    page_token: PageToken = "",
) -> dict[str, Any]:
    server_token, window = _paged_window(page_token, after, before, None)
    req = observations_pb2.ListObservationsRequest(
        target_id=target_id, station_id=site_id, window=window, page_size=page_size, page_token=server_token
    )
    resp = await c.call(c.observations.ListObservations, req, who.token)
    return {
        "observations": [observation_json(o) for o in resp.observations],
        "next_page_token": _pin(resp.next_page_token, window),
    }


@router.post("/observations", tags=["observations"], status_code=201, summary="Submit observation data")
async def submit_observation(body: ObservationIn, who: Who, c: Client, response: Response) -> dict[str, Any]:
    start = _utc(body.observed_at, "observed_at")
    record = agent_pb2.ObservationRecord(
        observation_id=body.observation_id or str(uuid.uuid4()),
        target_id=body.target_id,
        start=timestamp_from_datetime(start),
        end=timestamp_from_datetime(start + timedelta(seconds=body.exposure_s)),
        exposure_s=body.exposure_s,
        airmass=body.airmass or 0.0,
        seeing_arcsec=body.seeing_arcsec,
        quality_flags=body.quality_flags,
    )
    if body.magnitude is not None:
        record.photometry.CopyFrom(
            agent_pb2.Photometry(filter=body.filter, magnitude=body.magnitude, magnitude_error=body.magnitude_error)
        )
    if body.ra_deg is not None and body.dec_deg is not None:
        record.astrometry.CopyFrom(agent_pb2.Astrometry(ra_deg=body.ra_deg, dec_deg=body.dec_deg))
    req = events_pb2.SubmitObservationRequest(station_id=body.site_id, observation=record)
    try:
        resp = await c.call(c.sites.SubmitObservation, req, who.token)
    except SkyMeshError as exc:
        raise rename_field(
            exc,
            [
                ("station_id", "site_id"),
                ("observation.photometry", ""),
                ("observation.astrometry", ""),
                ("observation", ""),
            ],
        ) from None
    if not resp.created:
        response.status_code = 200
    return {"observation_id": resp.observation_id, "created": resp.created}


@router.get(
    "/observations/{observation_id}/artifacts/{artifact_id}",
    tags=["observations"],
    summary="Download an observation's artifact (FITS, IQ/SigMF) or, with product=waterfall, its waterfall PNG",
    response_class=StreamingResponse,
)
async def download_artifact(
    observation_id: Annotated[str, Path(max_length=64)],
    artifact_id: Annotated[str, Path(max_length=64)],
    who: Who,
    c: Client,
    product: Literal["original", "waterfall"] = "original",
) -> StreamingResponse:
    """Streamed from the server in chunks as they arrive (never held whole in the gateway)."""
    req = observations_pb2.DownloadArtifactRequest(
        observation_id=observation_id,
        artifact_id=artifact_id,
        product=observations_pb2.ARTIFACT_PRODUCT_WATERFALL if product == "waterfall" else 0,  # type: ignore[arg-type]
    )
    call = c.observations.DownloadArtifact(req, metadata=c.metadata(who.token))
    chunks = aiter(call)
    try:
        head = await anext(chunks)  # the first chunk says what it is, or the server's refusal arrives here
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc) from exc
    except StopAsyncIteration:
        raise Unavailable("the server ended the download without sending it") from None
    info = head.info

    async def body() -> AsyncIterator[bytes]:
        try:
            yield head.data
            async for chunk in chunks:
                yield chunk.data
        finally:
            call.cancel()

    headers = {
        "content-length": str(info.size_bytes),
        "content-disposition": f'attachment; filename="{info.filename}"',
        "cache-control": "private, no-store",
    }
    if info.sha256:
        headers["x-skymesh-sha256"] = info.sha256
    return StreamingResponse(body(), media_type=info.media_type, headers=headers)


@router.get("/lightcurve/{target_id}", tags=["observations"], summary="A target's light curve (JSON or CSV)")
async def light_curve(
    target_id: str,
    request: Request,
    who: Who,
    c: Client,
    filter: Annotated[str, Query(max_length=16)] = "",
    format: Literal["json", "csv"] | None = None,
) -> Response:
    req = observations_pb2.GetLightCurveRequest(target_id=target_id, filter=filter)
    resp = await c.call(c.observations.GetLightCurve, req, who.token)
    points: list[dict[str, Any]] = [
        {
            "at": iso(p.at),
            "magnitude": p.magnitude,
            "magnitude_error": p.magnitude_error,
            "site_id": p.station_id,
            "quality_flags": list(p.quality_flags),
        }
        for p in resp.points
    ]
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if not wants_csv:
        return JSONResponse({"target_id": target_id, "filter": filter, "points": points})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["at", "magnitude", "magnitude_error", "site_id", "quality_flags"])
    for p in points:
        writer.writerow([p["at"], p["magnitude"], p["magnitude_error"], p["site_id"], ";".join(p["quality_flags"])])
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="lightcurve-{target_id}.csv"'},
    )


_ALERT_FORMATS = Literal["gcn-json", "voevent", "tns-json", "ztf-avro", "rubin-avro"]


@router.post(
    "/alerts",
    tags=["alerts"],
    status_code=202,
    summary="Submit an alert packet as its source sent it (GCN JSON, VOEvent XML, TNS JSON, ZTF/Rubin avro)",
)
async def submit_alert(request: Request, who: Who, c: Client, format: _ALERT_FORMATS | None = None) -> dict[str, Any]:
    """The body is the raw packet (any content type; the format is sniffed unless `format` names it). The server
    parses, deduplicates and stores it, and an accepted alert replans at once; a packet it cannot parse is kept as
    rejected and answered 400 naming why."""
    packet = await request.body()
    if not packet:
        raise InvalidArgument("must not be empty: send the alert packet as the request body", field="body")
    req = alerts_pb2.IngestAlertRequest(packet=packet, format_hint=format or "", origin="web")
    resp = await c.call(c.alerts.IngestAlert, req, who.token)
    return {
        "alerts": [
            {
                "alert_id": a.alert_id,
                "source": a.source,
                "alert_type": a.alert_type,
                "external_id": a.external_id,
                "revision": a.revision,
                "status": alerts_pb2.AlertStatus.Name(a.status).removeprefix("ALERT_STATUS_").lower(),
                "target_id": a.target_id,
                "retraction": a.retraction,
                "role": a.role,
            }
            for a in resp.alerts
        ],
        "replan_requested": resp.replan_requested,
    }


# ---------------------------------------------------------------------------------------------------------- sky


@router.get(
    "/sky", tags=["map"], summary="Satellites now with ground tracks (±1 orbit), footprints; the sub-solar point"
)
async def sky(who: Who, c: Client, at: datetime | None = None, tracks: bool = True) -> dict[str, Any]:
    when = _utc(at, "at") if at is not None else datetime.now(UTC)
    targets = (await c.call(c.targets.ListTargets, targets_pb2.ListTargetsRequest(), who.token)).targets
    return await asyncio.to_thread(sky_json, list(targets), when, tracks=tracks)


@router.get("/czml", tags=["map"], summary="CZML for a 3D view: satellites (sampled SGP4) and stations")
async def czml(
    who: Who,
    c: Client,
    start: datetime | None = None,
    hours: Annotated[float, Query(gt=0, le=48)] = 3.0,
    step_s: Annotated[float, Query(ge=10, le=600)] = 60.0,
) -> list[dict[str, Any]]:
    begin = _utc(start, "start") if start is not None else datetime.now(UTC)
    stations = (await c.call(c.stations.ListStations, stations_pb2.ListStationsRequest(), who.token)).stations
    targets = (await c.call(c.targets.ListTargets, targets_pb2.ListTargetsRequest(), who.token)).targets
    return await asyncio.to_thread(czml_document, list(stations), list(targets), begin, hours, step_s)
