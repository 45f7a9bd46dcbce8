"""JobService (list, cancel: an unstarted job is cancelled and its schedule re-sent, a running one gets an urgent
AbortJob command; replan) and ObservationService (observations by target/station/time, light curves, artifact
downloads: `skymesh.server.control.artifacts`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

import grpc

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
from skymesh.api.convert import job_state_from_proto, time_window_from_proto, timestamp_from_datetime
from skymesh.api.errors import grpc_errors
from skymesh.core.errors import InvalidArgument, SkyMeshError, Unavailable
from skymesh.core.ids import check_id
from skymesh.core.model import TimeWindow
from skymesh.server.auth import current_actor
from skymesh.server.control.artifacts import download_artifact
from skymesh.server.control.paging import key_time, page_request
from skymesh.server.db import Repository
from skymesh.server.db.records import ObservationReduction
from skymesh.server.dispatch import Dispatcher
from skymesh.server.planning import Planner
from skymesh.server.wire import job_to_proto

__all__ = ["JobServicer", "ObservationServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]
_ABORT_TTL_S = 600.0


_REDUCTION_STATES = {
    "good": observations_pb2.REDUCTION_STATE_GOOD,
    "bad": observations_pb2.REDUCTION_STATE_BAD,
    "error": observations_pb2.REDUCTION_STATE_ERROR,
}


def _reduction_to_proto(r: ObservationReduction) -> observations_pb2.Reduction:
    msg = observations_pb2.Reduction(
        state=_REDUCTION_STATES.get(r.state, observations_pb2.REDUCTION_STATE_UNSPECIFIED),
        filter=r.filter,
        magnitude=r.magnitude or 0.0,
        magnitude_error=r.magnitude_error or 0.0,
        zero_point_mag=r.zero_point_mag or 0.0,
        zero_point_error_mag=r.zero_point_error_mag or 0.0,
        airmass=r.airmass or 0.0,
        fwhm_arcsec=r.fwhm_arcsec or 0.0,
        wcs_rms_arcsec=r.wcs_rms_arcsec or 0.0,
        quality_flags=list(r.quality_flags),
        pass_quality_score=r.pass_quality_score or 0.0,
        doppler_offset_hz=r.doppler_offset_hz or 0.0,
        peak_snr_db=r.peak_snr_db or 0.0,
        error=r.error,
        waterfall_path=r.waterfall_path,
    )
    if r.reduced_at is not None:
        msg.reduced_at.CopyFrom(timestamp_from_datetime(r.reduced_at))
    return msg


def _window(msg: Any, field: str, present: bool) -> TimeWindow | None:
    return time_window_from_proto(msg, field) if present else None


class JobServicer(observations_pb2_grpc.JobServiceServicer):
    def __init__(self, repo: Repository, dispatcher: Dispatcher, planner: Planner | None) -> None:
        self._repo = repo
        self._dispatcher = dispatcher
        self._planner = planner

    @grpc_errors
    async def ListJobs(
        self, request: observations_pb2.ListJobsRequest, context: Ctx
    ) -> observations_pb2.ListJobsResponse:
        if request.station_id:
            check_id(request.station_id, field="station_id")
        states = [job_state_from_proto(request.state)] if request.state else []
        window = _window(request.window, "window", request.HasField("window"))
        query = f"jobs|{request.station_id}|{request.state}|{window.start.isoformat() if window else ''}|"
        query += window.end.isoformat() if window else ""
        page = page_request(request.page_size, request.page_token, query, what="jobs", key_length=2)
        jobs, token = page.finish(
            await self._repo.list_jobs(
                station_id=request.station_id,
                states=states,
                window=window,
                after=(key_time(page.after[0]), page.after[1]) if page.after else None,
                limit=page.fetch,
            ),
            lambda j: (j.window.start.isoformat(), j.job_id),
        )
        return observations_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs], next_page_token=token)

    @grpc_errors
    async def CancelJob(
        self, request: observations_pb2.CancelJobRequest, context: Ctx
    ) -> observations_pb2.CancelJobResponse:
        if not request.job_id:
            raise InvalidArgument("must not be empty", field="job_id")
        actor = current_actor()
        # One transaction (skymesh.server.db.work): the job read and locked, then either its cancel (and schedule
        # version) or, for a running job, the AbortJob in the outbox; the audit row with it.
        abort = self._dispatcher.command_payload(
            agent_pb2.Command(abort_job=agent_pb2.AbortJob(job_id=request.job_id, reason=request.reason))
        )
        done = await self._repo.cancel_or_abort_job(
            request.job_id,
            request.reason,
            actor=actor,
            abort=abort,
            abort_ttl_s=_ABORT_TTL_S,
            abort_priority=agent_pb2.COMMAND_PRIORITY_URGENT,
        )
        job = done.job
        if job.state != done.before and self._dispatcher.events is not None:
            self._dispatcher.events.job(job.job_id, job.station_id, done.before, job.state)
        if done.command is not None:
            await self._dispatcher.deliver_command(done.command)
        elif done.version is not None:
            await self._dispatcher.push_schedule(job.station_id)
        return observations_pb2.CancelJobResponse(job=job_to_proto(job))

    @grpc_errors
    async def Replan(self, request: observations_pb2.ReplanRequest, context: Ctx) -> observations_pb2.ReplanResponse:
        if self._planner is None:
            raise Unavailable("planning is disabled on this server")
        try:
            result = await self._planner.plan_once(reason="Replan RPC", join=True)
        except SkyMeshError:
            raise
        except Exception as exc:
            raise Unavailable(f"planning failed: {exc}") from exc
        return observations_pb2.ReplanResponse(
            assignments=result.assignments, unscheduled=result.unscheduled, objective=result.objective, gap=result.gap
        )


class ObservationServicer(observations_pb2_grpc.ObservationServiceServicer):
    def __init__(self, repo: Repository, uploads_root: Path) -> None:
        self._repo = repo
        self._uploads_root = uploads_root

    def DownloadArtifact(  # type: ignore[override]
        self, request: observations_pb2.DownloadArtifactRequest, context: Ctx
    ) -> AsyncIterator[observations_pb2.DownloadArtifactResponse]:
        return download_artifact(self._repo, self._uploads_root, request, context)

    @grpc_errors
    async def ListObservations(
        self, request: observations_pb2.ListObservationsRequest, context: Ctx
    ) -> observations_pb2.ListObservationsResponse:
        if request.target_id:
            check_id(request.target_id, field="target_id")
        if request.station_id:
            check_id(request.station_id, field="station_id")
        window = _window(request.window, "window", request.HasField("window"))
        query = f"observations|{request.target_id}|{request.station_id}|{window.start.isoformat() if window else ''}|"
        query += window.end.isoformat() if window else ""
        page = page_request(
            request.page_size, request.page_token, query, what="observations", key_length=2, default=100
        )
        rows, token = page.finish(
            await self._repo.list_observations(
                target_id=request.target_id,
                station_id=request.station_id,
                window=window,
                after=(key_time(page.after[0]), page.after[1]) if page.after else None,
                limit=page.fetch,
            ),
            lambda r: (r.start.isoformat(), r.observation_id),
        )
        # Which upload each drawn waterfall came from: its file is the upload's file plus ".waterfall.png".
        drawn = {r.observation_id for r in rows if r.reduction is not None and r.reduction.waterfall_path}
        sources = {
            (a.observation_id, PurePosixPath(a.path).name + ".waterfall.png"): a.artifact_id
            for a in await self._repo.complete_artifacts(drawn)
        }
        out = []
        for row in rows:
            record = agent_pb2.ObservationRecord()
            record.ParseFromString(row.raw)
            msg = observations_pb2.Observation(
                station_id=row.station_id, record=record, received_at=timestamp_from_datetime(row.received_at)
            )
            if row.reduction is not None:
                msg.reduction.CopyFrom(_reduction_to_proto(row.reduction))
                if row.reduction.waterfall_path:
                    name = PurePosixPath(row.reduction.waterfall_path).name
                    msg.reduction.waterfall_artifact_id = sources.get((row.observation_id, name), "")
            out.append(msg)
        return observations_pb2.ListObservationsResponse(observations=out, next_page_token=token)

    @grpc_errors
    async def GetLightCurve(
        self, request: observations_pb2.GetLightCurveRequest, context: Ctx
    ) -> observations_pb2.GetLightCurveResponse:
        check_id(request.target_id, field="target_id")
        await self._repo.get_target(request.target_id)
        points = await self._repo.light_curve(
            request.target_id,
            filter=request.filter,
            window=_window(request.window, "window", request.HasField("window")),
            include_bad=request.include_bad,
        )
        return observations_pb2.GetLightCurveResponse(
            target_id=request.target_id,
            filter=request.filter,
            points=[
                observations_pb2.LightCurvePoint(
                    at=timestamp_from_datetime(p.at),
                    magnitude=p.magnitude,
                    magnitude_error=p.magnitude_error,
                    station_id=p.station_id,
                    quality_flags=list(p.quality_flags),
                    airmass=p.airmass,
                    filter=p.filter,
                    reduced=p.reduced,
                    observation_id=p.observation_id,
                )
                for p in points
            ],
        )
