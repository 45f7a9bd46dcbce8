"""The control API over real gRPC: roles and tokens, station keys (revocation ends streams), targets with TLE
validation and history, campaigns, job cancel (urgent AbortJob for a running job), observations and light curves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import (
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
)
from skymesh.core.jobs import JobState
from skymesh.core.model import SatelliteTarget, TimeWindow
from skymesh.server.db.records import PlannedJob, Role
from tests.server.agent_client import AgentClient, observation_record
from tests.server.conftest import ISS_LINE1, ISS_LINE2, Fleet, StartServer
from tests.server.test_stream_work import _jobs

GS = common_pb2.Station(
    station_id="gs9",
    name="Delft",
    kind=common_pb2.STATION_KIND_GROUND_STATION,
    location=common_pb2.GeoLocation(latitude_deg=52.0, longitude_deg=4.37, altitude_m=5.0),
    min_elevation_deg=10.0,
    bands=["UHF"],
)


def _auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def test_roles_and_key_revocation(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    await server.repo.create_user("ada", Role.ADMIN)
    await server.repo.create_user("otto", Role.OBSERVER)
    admin = await server.repo.issue_user_token("ada")
    observer = await server.repo.issue_user_token("otto")
    async with grpc.aio.insecure_channel(server.address) as channel:
        stations = stations_pb2_grpc.StationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.ListStations(stations_pb2.ListStationsRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.CreateStation(stations_pb2.CreateStationRequest(station=GS), metadata=_auth(observer))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        created = await stations.CreateStation(stations_pb2.CreateStationRequest(station=GS), metadata=_auth(admin))
        assert created.station.state == common_pb2.STATION_STATE_OFFLINE
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.CreateStation(stations_pb2.CreateStationRequest(station=GS), metadata=_auth(admin))
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        bad = common_pb2.Station()
        bad.CopyFrom(GS)
        bad.location.latitude_deg = 95
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.CreateStation(stations_pb2.CreateStationRequest(station=bad), metadata=_auth(admin))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "station.location.latitude_deg" in (err.value.details() or "")
        listed = await stations.ListStations(stations_pb2.ListStationsRequest(), metadata=_auth(observer))
        assert [s.station_id for s in listed.stations] == ["gs9"]
        issued = await stations.IssueStationKey(
            stations_pb2.IssueStationKeyRequest(station_id="gs9"), metadata=_auth(admin)
        )
        assert issued.api_key.startswith(f"smk_{issued.key_id}_")
        async with AgentClient.connect(server.address, issued.api_key, "gs9") as agent:
            await agent.expect("welcome")
            await stations.RevokeStationKey(
                stations_pb2.RevokeStationKeyRequest(key_id=issued.key_id), metadata=_auth(admin)
            )
            code, _ = await agent.status()
            assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_targets_tle_validation_and_history(start_server: StartServer) -> None:
    server = await start_server()
    async with grpc.aio.insecure_channel(server.address) as channel:
        targets = targets_pb2_grpc.TargetServiceStub(channel)
        campaigns = targets_pb2_grpc.CampaignServiceStub(channel)
        await campaigns.CreateCampaign(
            targets_pb2.CreateCampaignRequest(campaign=targets_pb2.Campaign(campaign_id="c1", priority_boost=2))
        )
        sat = common_pb2.Target(
            target_id="iss",
            priority=5,
            campaign_id="c1",
            satellite=common_pb2.SatelliteTarget(tle_line1=ISS_LINE1, tle_line2=ISS_LINE2[:-1] + "0"),
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await targets.CreateTarget(targets_pb2.CreateTargetRequest(target=sat))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("target.satellite.line2")
        sat.satellite.tle_line2 = ISS_LINE2
        created = (await targets.CreateTarget(targets_pb2.CreateTargetRequest(target=sat))).target
        assert created.satellite.norad_id == 25544
        assert created.campaign_id == "c1"
        updated = await targets.UpdateElements(
            targets_pb2.UpdateElementsRequest(
                target_id="iss", tle_line1=ISS_LINE1, tle_line2=ISS_LINE2, elements_source="celestrak"
            )
        )
        assert updated.target.satellite.elements_source == "celestrak"
        assert [t.source for t in await server.repo.tle_history("iss")] == ["", "celestrak"]
        star = common_pb2.Target(
            target_id="m31", priority=3, aliases=["NGC 224"], celestial=common_pb2.CelestialTarget(ra_deg=400)
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await targets.CreateTarget(targets_pb2.CreateTargetRequest(target=star))
        assert (err.value.details() or "").startswith("ra_deg") or "ra_deg" in (err.value.details() or "")
        star.celestial.ra_deg = 10.68
        await targets.CreateTarget(targets_pb2.CreateTargetRequest(target=star))
        listed = await targets.ListTargets(targets_pb2.ListTargetsRequest())
        assert [t.target_id for t in listed.targets] == ["iss", "m31"]
        await targets.DeleteTarget(targets_pb2.DeleteTargetRequest(target_id="m31"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await targets.GetTarget(targets_pb2.GetTargetRequest(target_id="m31"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_cancel_jobs_and_observations(fleet: Fleet) -> None:
    running, queued = await _jobs(fleet, 5, 600)
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        observations = observations_pb2_grpc.ObservationServiceStub(channel)
        async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
            await agent.expect("welcome")
            schedule = await agent.expect("schedule")
            assert {j.job_id for j in schedule.jobs} == {queued, running}
            await agent.job_update(1, running, common_pb2.JOB_STATE_RUNNING)
            await agent.expect("upstream_ack")
            # Cancelling a dispatched job: CANCELLED at once and a new schedule without it.
            reply = await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=queued, reason="clouds"))
            assert reply.job.state == common_pb2.JOB_STATE_CANCELLED
            schedule = await agent.expect("schedule")
            assert [j.job_id for j in schedule.jobs] == [running]
            # Cancelling a running job: an urgent AbortJob command; the agent reports ABORTED.
            reply = await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=running, reason="stop"))
            assert reply.job.state == common_pb2.JOB_STATE_RUNNING
            command = await agent.expect("command")
            assert command.abort_job.job_id == running
            assert command.priority == agent_pb2.COMMAND_PRIORITY_URGENT
            await agent.observation(2, observation_record(job_id=running, magnitude=11.0))
            await agent.expect("upstream_ack")
            await agent.job_update(3, running, common_pb2.JOB_STATE_ABORTED)
            await agent.expect("upstream_ack")
        assert (await fleet.server.repo.get_job(running)).state == JobState.ABORTED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=running))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        listed = await jobs.ListJobs(observations_pb2.ListJobsRequest(station_id="gs1"))
        assert len(listed.jobs) == 2
        found = await observations.ListObservations(observations_pb2.ListObservationsRequest(target_id="m31"))
        assert [o.record.job_id for o in found.observations] == [running]
        curve = await observations.GetLightCurve(observations_pb2.GetLightCurveRequest(target_id="m31", filter="V"))
        assert [p.magnitude for p in curve.points] == [11.0]


async def test_new_elements_resend_the_schedule(fleet: Fleet) -> None:
    repo = fleet.server.repo
    await repo.create_target(SatelliteTarget("iss", "ISS", 25544, ISS_LINE1, ISS_LINE2))
    now = datetime.now(UTC)
    await repo.apply_plan(
        ["gs1"], [PlannedJob("gs1", "iss", TimeWindow(now + timedelta(hours=1), now + timedelta(hours=2)))]
    )
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        targets = targets_pb2_grpc.TargetServiceStub(channel)
        async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
            await agent.expect("welcome")
            first = await agent.expect("schedule")
            await targets.UpdateElements(
                targets_pb2.UpdateElementsRequest(
                    target_id="iss", tle_line1=ISS_LINE1, tle_line2=ISS_LINE2, elements_source="space-track"
                )
            )
            second = await agent.expect("schedule")
            assert second.version == first.version + 1
            assert second.jobs[0].target.satellite.elements_source == "space-track"


async def test_an_operators_cancel_sticks_across_replans(fleet: Fleet) -> None:
    repo = fleet.server.repo
    await repo.create_target(SatelliteTarget("iss", "ISS", 25544, ISS_LINE1, ISS_LINE2))
    now = datetime.now(UTC)
    window = TimeWindow(now + timedelta(hours=1), now + timedelta(hours=1, minutes=8))
    await repo.apply_plan(["gs1"], [PlannedJob("gs1", "iss", window)])
    (job,) = await repo.list_jobs(station_id="gs1")
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        await jobs.CancelJob(observations_pb2.CancelJobRequest(job_id=job.job_id, reason="interference"))
    # The scheduler proposes the same pass again (it does not know about the cancel): no new job appears.
    await repo.apply_plan(["gs1"], [PlannedJob("gs1", "iss", window)])
    states = sorted(j.state for j in await repo.list_jobs(station_id="gs1"))
    assert states == [JobState.CANCELLED]


async def test_a_replan_keeps_moves_and_cancels_jobs_by_the_diff(fleet: Fleet) -> None:
    repo = fleet.server.repo
    await repo.create_target(SatelliteTarget("iss", "ISS", 25544, ISS_LINE1, ISS_LINE2))
    now = datetime.now(UTC).replace(microsecond=0)
    hour = [TimeWindow(now + timedelta(hours=h), now + timedelta(hours=h, minutes=8)) for h in (1, 3, 5)]
    first = await repo.apply_plan(["gs1"], [PlannedJob("gs1", "iss", w) for w in hour])
    assert (first.created, first.kept, first.cancelled) == (3, 0, 0)
    ids = {j.window.start: j.job_id for j in await repo.list_jobs(station_id="gs1")}
    # Same plan again: nothing changes, no new schedule version.
    again = await repo.apply_plan(["gs1"], [PlannedJob("gs1", "iss", w) for w in hour])
    assert (again.created, again.kept, again.cancelled, again.versions) == (0, 3, 0, {})
    # Pass 1 shifted by two minutes (the same job, moved), pass 2 dropped (cancelled), pass 3 kept.
    moved = TimeWindow(hour[0].start + timedelta(minutes=2), hour[0].end + timedelta(minutes=2))
    out = await repo.apply_plan(["gs1"], [PlannedJob("gs1", "iss", moved), PlannedJob("gs1", "iss", hour[2])])
    assert (out.created, out.kept, out.cancelled) == (0, 2, 1) and set(out.versions) == {"gs1"}
    jobs = {j.job_id: j for j in await repo.list_jobs(station_id="gs1")}
    assert jobs[ids[hour[0].start]].window == moved and jobs[ids[hour[0].start]].state == JobState.SCHEDULED
    assert jobs[ids[hour[1].start]].state == JobState.CANCELLED
    assert jobs[ids[hour[2].start]].state == JobState.SCHEDULED


async def test_a_disconnected_station_that_missed_its_latest_schedule_keeps_the_removed_jobs_frozen(
    fleet: Fleet,
) -> None:
    repo = fleet.server.repo
    await repo.create_target(SatelliteTarget("iss", "ISS", 25544, ISS_LINE1, ISS_LINE2))
    now = datetime.now(UTC)
    passes = [TimeWindow(now + timedelta(hours=h), now + timedelta(hours=h, minutes=8)) for h in (1, 3)]
    first = await repo.apply_plan(["gs1"], [PlannedJob("gs1", "iss", w) for w in passes])
    await repo.record_schedule_ack("gs1", first.versions["gs1"], "")
    second = await repo.apply_plan(["gs1"], [PlannedJob("gs1", "iss", passes[1])])  # the 1 h pass removed
    assert second.cancelled == 1
    later = now + timedelta(days=1)  # nothing is frozen by its start time: only by being held
    # The stream ended before the agent acknowledged the new schedule: it may still run the removed pass.
    held = await repo.frozen_jobs(later, held_by=["gs1"])
    assert sorted(j.window.start for j in held) == [w.start for w in passes]
    assert await repo.frozen_jobs(later) == []  # connected stations: only what they hold by state
    await repo.record_schedule_ack("gs1", second.versions["gs1"], "")
    assert [j.window.start for j in await repo.frozen_jobs(later, held_by=["gs1"])] == [passes[1].start]
