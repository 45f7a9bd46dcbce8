"""Data products end to end in one process: a real server (SQLite and PostgreSQL), a test agent on the real Connect
stream and the real UploadArtifact RPC, and the server's worker process reducing each uploaded synthetic frame.

A clean frame is calibrated and stored on its observation; a cloudy one fails quality, its job is recorded as
done-but-bad (cause BAD_DATA), the planner is asked for a new plan, and the visit is not counted against the target's
cadence; the light curve leaves the bad point out unless asked; frames uploaded while the server was down are reduced
when it starts again.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, StationKind, TimeWindow
from skymesh.products import FrameSpec, broken, load_reference_catalogue, render_frame
from skymesh.server import RunningServer
from skymesh.server.db.products import CAUSE_BAD_DATA
from skymesh.server.db.records import PlannedJob, Role
from tests.server.agent_client import AgentClient, ts
from tests.server.conftest import StartServer, add_station
from tests.server.fake_scheduler import fake_scheduler

TARGET = "sm-field-a"
TARGET_V = 13.0
CHUNK = 256 * 1024
REDUCE_TIMEOUT_S = 120.0


def _frame(kind: str = "clean", seed: int = 3) -> bytes:
    spec = FrameSpec(150.0, 20.0, TARGET, datetime(2026, 3, 1, 23, 0, tzinfo=UTC), seed=seed)
    if kind != "clean":
        spec = broken(spec, kind)  # type: ignore[arg-type]
    return render_frame(spec, load_reference_catalogue()).fits_bytes()


async def _chunks(resource: str, data: bytes) -> AsyncIterator[agent_pb2.UploadArtifactRequest]:
    digest = hashlib.sha256(data).hexdigest()
    for offset in range(0, len(data), CHUNK):
        last = offset + CHUNK >= len(data)
        yield agent_pb2.UploadArtifactRequest(
            resource_name=resource,
            write_offset=offset,
            data=data[offset : offset + CHUNK],
            finish_write=last,
            sha256=digest if last else "",
            total_size_bytes=len(data),
            kind="fits",
        )


async def _upload(server: RunningServer, key: str, observation_id: str, data: bytes) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        resource = f"observations/{observation_id}/artifacts/{uuid.uuid4()}.fits"
        done = await stub.UploadArtifact(_chunks(resource, data), metadata=(("authorization", f"Bearer {key}"),))
        assert done.complete


async def _setup(server: RunningServer, starts_in_s: tuple[float, ...] = (600, 1200)) -> tuple[str, list[str]]:
    key = await add_station(server, "tel1", StationKind.TELESCOPE)
    await server.repo.create_target(CelestialTarget(TARGET, "Field A", 150.0, 20.0, filters=("V",), cadence_s=86400))
    now = datetime.now(UTC)
    windows = [TimeWindow(now + timedelta(seconds=s), now + timedelta(seconds=s + 60)) for s in starts_in_s]
    await server.repo.apply_plan(["tel1"], [PlannedJob("tel1", TARGET, w) for w in windows])
    jobs = sorted(await server.repo.list_jobs(station_id="tel1"), key=lambda j: j.window.start)
    return key, [j.job_id for j in jobs]


async def _observe(agent: AgentClient, seq: int, job_id: str) -> tuple[int, str]:
    """The agent runs the job and reports it done with its observation (frames follow over the upload RPC)."""
    for state in (common_pb2.JOB_STATE_RECEIVED, common_pb2.JOB_STATE_RUNNING):
        seq += 1
        await agent.job_update(seq, job_id, state)
        await agent.expect("upstream_ack", skip=("schedule",))
    start = datetime.now(UTC) - timedelta(seconds=30)
    record = agent_pb2.ObservationRecord(
        observation_id=str(uuid.uuid4()),
        job_id=job_id,
        target_id=TARGET,
        start=ts(start),
        end=ts(start + timedelta(seconds=30)),
        exposure_s=30.0,
    )
    seq += 1
    await agent.observation(seq, record)
    await agent.expect("upstream_ack", skip=("schedule",))
    seq += 1
    await agent.job_update(seq, job_id, common_pb2.JOB_STATE_SUCCEEDED, cause=common_pb2.CAUSE_CODE_OK)
    await agent.expect("upstream_ack", skip=("schedule",))
    return seq, record.observation_id


async def test_uploaded_frames_are_reduced_and_bad_ones_go_back_to_the_queue(start_server: StartServer) -> None:
    server = await start_server(reduction_workers=1)
    assert server.reducer is not None
    key, (good_job, bad_job) = await _setup(server)
    async with AgentClient.connect(server.address, key, "tel1") as agent:
        await agent.expect("welcome")
        seq, good_obs = await _observe(agent, 0, good_job)
        await _upload(server, key, good_obs, _frame("clean"))
        await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
        # The clean frame set the station's clear-sky zero point; the cloudy one falls 1 mag short of it.
        seq, bad_obs = await _observe(agent, seq, bad_job)
        await _upload(server, key, bad_obs, _frame("cloudy", seed=4))
        await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
    assert server.reducer.reduced == 2 and server.reducer.failed == 0

    stored = {o.observation_id: o.reduction for o in await server.repo.list_observations(target_id=TARGET)}
    good, bad = stored[good_obs], stored[bad_obs]
    assert good is not None and bad is not None
    assert good.state == "good" and good.quality_flags == ()
    assert good.filter == "V"
    assert good.magnitude is not None and abs(good.magnitude - TARGET_V) < 0.03
    assert good.magnitude_error is not None and 0 < good.magnitude_error < 0.02
    assert good.wcs_rms_arcsec is not None and good.wcs_rms_arcsec < 0.5
    assert good.airmass is not None and 1.0 < good.airmass < 1.2
    assert good.fwhm_arcsec is not None and 2.0 < good.fwhm_arcsec < 4.0
    assert bad.state == "bad" and "CLOUDS" in bad.quality_flags

    # Done but bad: the job stays SUCCEEDED with cause BAD_DATA, and only the good visit meets the cadence demand.
    good_row, bad_row = await server.repo.get_job(good_job), await server.repo.get_job(bad_job)
    assert good_row.state == bad_row.state == JobState.SUCCEEDED
    assert bad_row.cause == CAUSE_BAD_DATA and "CLOUDS" in bad_row.detail
    assert good_row.cause != CAUSE_BAD_DATA
    later = datetime.now(UTC) + timedelta(hours=1)
    visits = await server.repo.good_visits({TARGET: 86400.0}, later)
    assert [v.job_id for v in visits] == [good_job]

    # Over the control API (with an admin token, as an authenticated deployment requires).
    await server.repo.create_user("ada", Role.ADMIN)
    auth = (("authorization", f"Bearer {await server.repo.issue_user_token('ada')}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = observations_pb2_grpc.ObservationServiceStub(channel)
        listed = await stub.ListObservations(observations_pb2.ListObservationsRequest(target_id=TARGET), metadata=auth)
        by_id = {o.record.observation_id: o.reduction for o in listed.observations}
        assert by_id[good_obs].state == observations_pb2.REDUCTION_STATE_GOOD
        assert by_id[good_obs].magnitude == pytest.approx(TARGET_V, abs=0.03)
        assert by_id[bad_obs].state == observations_pb2.REDUCTION_STATE_BAD
        curve = await stub.GetLightCurve(observations_pb2.GetLightCurveRequest(target_id=TARGET), metadata=auth)
        assert [p.observation_id for p in curve.points] == [good_obs]
        assert curve.points[0].reduced and curve.points[0].filter == "V" and curve.points[0].airmass > 1.0
        everything = await stub.GetLightCurve(
            observations_pb2.GetLightCurveRequest(target_id=TARGET, include_bad=True), metadata=auth
        )
        assert {p.observation_id for p in everything.points} == {good_obs, bad_obs}


async def test_frames_uploaded_while_products_were_off_are_reduced_at_start(start_server: StartServer) -> None:
    first = await start_server(reduction_workers=0)
    key, (job_id, _other) = await _setup(first)
    async with AgentClient.connect(first.address, key, "tel1") as agent:
        await agent.expect("welcome")
        _seq, observation_id = await _observe(agent, 0, job_id)
        await _upload(first, key, observation_id, _frame("clean"))
        await _upload(first, key, observation_id, b"SIMPLE  = not really a FITS file")
    (reduction,) = [o.reduction for o in await first.repo.list_observations(target_id=TARGET)]
    assert reduction is None
    await first.stop(grace_s=0.1)

    second = await start_server(reduction_workers=1)
    assert second.reducer is not None
    await second.reducer.wait_idle(REDUCE_TIMEOUT_S)
    assert second.reducer.reduced == 2
    (reduction,) = [o.reduction for o in await second.repo.list_observations(target_id=TARGET)]
    # One good frame makes the observation good; the unreadable one is reported, not hidden.
    assert reduction is not None and reduction.state == "good"
    assert "REDUCTION_ERROR" in reduction.quality_flags
    assert reduction.magnitude is not None and abs(reduction.magnitude - TARGET_V) < 0.03


def _hand_back_frozen(request: scheduler_pb2.ComputePlanRequest) -> list[scheduler_pb2.Assignment]:
    """Like the real scheduler: every frozen placement comes back as a kept assignment."""
    return [
        scheduler_pb2.Assignment(station_id=f.station_id, target_id=f.target_id, window=f.window, job_id=f.job_id)
        for f in request.frozen
    ]


async def test_a_bad_frame_triggers_a_replan_and_only_good_visits_meet_the_cadence(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        scheduler.plan = _hand_back_frozen
        server = await start_server(
            planning_enabled=True,
            scheduler_address=address,
            replan_debounce_s=0.05,
            replan_interval_s=3600,
            reduction_workers=1,
        )
        assert server.planner is not None and server.reducer is not None
        key, (good_job, bad_job, bad_again) = await _setup(server, starts_in_s=(-3000, -2000, -1000))
        async with AgentClient.connect(server.address, key, "tel1") as agent:
            await agent.expect("welcome")
            seq, good_obs = await _observe(agent, 0, good_job)
            seq, bad_obs = await _observe(agent, seq, bad_job)
            _seq, bad_again_obs = await _observe(agent, seq, bad_again)
            await _upload(server, key, good_obs, _frame("clean"))
            await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
            await asyncio.sleep(0.5)  # let plans asked for by the agent's arrival finish
            plans_before = len(scheduler.requests)
            await _upload(server, key, bad_obs, _frame("cloudy", seed=4))
            await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
            # The bad frame asks the planner for a new plan at once (not at the next interval, an hour away).
            for _ in range(100):
                if len(scheduler.requests) > plans_before:
                    break
                await asyncio.sleep(0.05)
            assert len(scheduler.requests) > plans_before
            frozen = {f.job_id for f in scheduler.requests[-1].frozen}
            assert good_job in frozen and bad_job not in frozen
            before = {j.job_id for j in await server.repo.list_jobs(station_id="tel1")}
            await server.planner.plan_once("test")
            # The past visit handed back is history: no new job was made from it.
            assert {j.job_id for j in await server.repo.list_jobs(station_id="tel1")} == before
            # Another bad frame of the same target within the replan interval does not replan the network again
            # (a target whose frames keep coming back bad must not make the planner spin).
            plans_before = len(scheduler.requests)
            await _upload(server, key, bad_again_obs, _frame("cloudy", seed=5))
            await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
            await asyncio.sleep(0.5)
            assert (await server.repo.get_job(bad_again)).cause == CAUSE_BAD_DATA
            assert len(scheduler.requests) == plans_before
        assert (await server.repo.get_job(bad_job)).cause == CAUSE_BAD_DATA


async def test_frames_the_pipeline_cannot_judge_do_not_fail_the_job(start_server: StartServer) -> None:
    """The simulated camera's frame (one star, no pointing in its header) cannot be calibrated here: the reduction
    is an error, the job is not marked bad, and the light curve keeps the agent's own photometry."""
    import numpy as np

    from skymesh.agent.drivers.base import ExposureRequest
    from skymesh.agent.drivers.simulated import SimulatedCamera
    from skymesh.core.clock import SystemClock

    server = await start_server(reduction_workers=1)
    assert server.reducer is not None
    key, (job_id, _other) = await _setup(server)
    camera = SimulatedCamera(SystemClock(), np.random.default_rng(1))
    start = datetime.now(UTC) - timedelta(seconds=30)
    exposure = camera.measure(ExposureRequest(30.0, "V", TARGET, "Field A", 150.0, 20.0, 13.0, 60.0, start))
    assert exposure.photometry is not None and exposure.data
    async with AgentClient.connect(server.address, key, "tel1") as agent:
        await agent.expect("welcome")
        seq = 0
        for state in (common_pb2.JOB_STATE_RECEIVED, common_pb2.JOB_STATE_RUNNING):
            seq += 1
            await agent.job_update(seq, job_id, state)
            await agent.expect("upstream_ack", skip=("schedule",))
        record = agent_pb2.ObservationRecord(
            observation_id=str(uuid.uuid4()),
            job_id=job_id,
            target_id=TARGET,
            start=ts(start),
            end=ts(start + timedelta(seconds=30)),
            exposure_s=30.0,
            photometry=agent_pb2.Photometry(
                filter="V",
                magnitude=exposure.photometry.magnitude,
                magnitude_error=exposure.photometry.magnitude_error,
            ),
        )
        await agent.observation(seq + 1, record)
        await agent.expect("upstream_ack", skip=("schedule",))
        await agent.job_update(seq + 2, job_id, common_pb2.JOB_STATE_SUCCEEDED, cause=common_pb2.CAUSE_CODE_OK)
        await agent.expect("upstream_ack", skip=("schedule",))
        await _upload(server, key, record.observation_id, exposure.data)
        await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
    (stored,) = await server.repo.list_observations(target_id=TARGET)
    assert stored.reduction is not None and stored.reduction.state == "error"
    assert "REDUCTION_ERROR" in stored.reduction.quality_flags
    # The pipeline's reason is on the API, where the observation's products are returned.
    assert stored.reduction.error.startswith("no pointing"), stored.reduction.error
    await server.repo.create_user("ada", Role.ADMIN)
    auth = (("authorization", f"Bearer {await server.repo.issue_user_token('ada')}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        listed = await observations_pb2_grpc.ObservationServiceStub(channel).ListObservations(
            observations_pb2.ListObservationsRequest(target_id=TARGET), metadata=auth
        )
    assert listed.observations[0].reduction.error == stored.reduction.error
    assert (await server.repo.get_job(job_id)).cause != CAUSE_BAD_DATA
    (point,) = await server.repo.light_curve(TARGET)
    assert not point.reduced and point.magnitude == pytest.approx(exposure.photometry.magnitude)


async def test_a_dead_worker_process_is_replaced(start_server: StartServer) -> None:
    """A worker killed between frames (out of memory, an operator's kill -9) breaks the pool: the reducer starts a
    new one and the next frame is still reduced."""
    import multiprocessing
    import os
    import signal

    server = await start_server(reduction_workers=1)
    assert server.reducer is not None
    key, (first_job, second_job) = await _setup(server)
    async with AgentClient.connect(server.address, key, "tel1") as agent:
        await agent.expect("welcome")
        seq, first = await _observe(agent, 0, first_job)
        _seq, second = await _observe(agent, seq, second_job)
        await _upload(server, key, first, _frame("clean"))
        await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
        workers = multiprocessing.active_children()
        assert workers, "the reduction ran in a worker process"
        for worker in workers:
            os.kill(worker.pid or 0, signal.SIGKILL)
            worker.join(10.0)
        await _upload(server, key, second, _frame("clean", seed=9))
        await server.reducer.wait_idle(REDUCE_TIMEOUT_S)
    assert server.reducer.reduced == 2 and server.reducer.failed == 0
    states = {
        o.observation_id: o.reduction.state
        for o in await server.repo.list_observations(target_id=TARGET)
        if o.reduction
    }
    assert states == {first: "good", second: "good"}


async def test_unknown_quality_thresholds_fail_the_start(start_server: StartServer) -> None:
    from skymesh.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="quality_thresholds"):
        await start_server(reduction_workers=1, quality_thresholds={"max_fwhm": 3.0})
