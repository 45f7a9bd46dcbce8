"""The control API's security over real gRPC: authentication on by default with the first admin's token in an
owner-only file, deny-by-default methods (server reflection included, health open), roles, the identifier grammar
at the boundary (nothing stored on a refusal) and DeleteStation (keys revoked, stream ended, work ended, id kept)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from skymesh.api.channel import control_channel
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import (
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, TimeWindow
from skymesh.server import RunningServer, serve
from skymesh.server.db.records import PlannedJob, Role
from tests.server.agent_client import AgentClient
from tests.server.conftest import PG_DSN, StartServer, test_config


def _station(station_id: str) -> common_pb2.Station:
    return common_pb2.Station(
        station_id=station_id,
        name="Delft",
        kind=common_pb2.STATION_KIND_GROUND_STATION,
        location=common_pb2.GeoLocation(latitude_deg=52.0, longitude_deg=4.37, altitude_m=5.0),
        bands=["UHF"],
    )


async def _plan(server: RunningServer, *starts_in_s: float) -> list[str]:
    """Apply a plan giving gs1 one job on m31 per start (seconds from now); the ids of gs1's scheduled jobs."""
    if not await server.repo.list_targets():
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
    now = datetime.now(UTC)
    windows = [TimeWindow(now + timedelta(seconds=s), now + timedelta(seconds=s + 60)) for s in starts_in_s]
    await server.repo.apply_plan(["gs1"], [PlannedJob("gs1", "m31", w) for w in windows])
    return [j.job_id for j in await server.repo.list_jobs(station_id="gs1", states=[JobState.SCHEDULED])]


def _admin_token(server: RunningServer) -> str:
    return server.config.admin_token_path.read_text().strip()


async def _list_services(channel: grpc.aio.Channel) -> list[str]:
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    reply = await call.read()
    assert isinstance(reply, reflection_pb2.ServerReflectionResponse)
    return [s.name for s in reply.list_services_response.service]


async def test_authenticated_by_default_with_an_owner_only_admin_token(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    path = server.config.admin_token_path
    assert path.stat().st_mode & 0o777 == 0o600
    token = _admin_token(server)
    assert token.startswith("smu_")
    async with control_channel(server.address) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations_pb2_grpc.StationServiceStub(anonymous).ListStations(stations_pb2.ListStationsRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Reflection would hand an anonymous caller the whole API: it needs a token too. Health stays open.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _list_services(anonymous)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    async with control_channel(server.address, token="smu_0000_wrong") as wrong:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _list_services(wrong)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with control_channel(server.address, token=token) as admin:
        assert "skymesh.api.control.v1.StationService" in await _list_services(admin)
        created = await stations_pb2_grpc.StationServiceStub(admin).CreateStation(
            stations_pb2.CreateStationRequest(station=_station("gs-delft"))
        )
        assert created.station.station_id == "gs-delft"
    # A restart (or another replica) on the same database leaves the admin and the file alone.
    before = path.stat().st_mtime_ns
    await server.stop(grace_s=0.1)
    again = await start_server(control_auth=True)
    assert path.stat().st_mtime_ns == before and _admin_token(again) == token
    async with control_channel(again.address, token=token) as admin:
        listed = await stations_pb2_grpc.StationServiceStub(admin).ListStations(stations_pb2.ListStationsRequest())
        assert [s.station_id for s in listed.stations] == ["gs-delft"]


async def test_roles_on_every_service(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    await server.repo.create_user("otto", Role.OBSERVER)
    await server.repo.create_user("opal", Role.OPERATOR)
    observer = await server.repo.issue_user_token("otto")
    operator = await server.repo.issue_user_token("opal")
    async with control_channel(server.address, token=_admin_token(server)) as admin:
        await stations_pb2_grpc.StationServiceStub(admin).CreateStation(
            stations_pb2.CreateStationRequest(station=_station("gs1"))
        )
    async with control_channel(server.address, token=observer) as channel:
        assert await _list_services(channel)  # reading the API's shape is an observer's right
        await observations_pb2_grpc.JobServiceStub(channel).ListJobs(observations_pb2.ListJobsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await targets_pb2_grpc.TargetServiceStub(channel).DeleteTarget(
                targets_pb2.DeleteTargetRequest(target_id="m31")
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with control_channel(server.address, token=operator) as channel:
        stations = stations_pb2_grpc.StationServiceStub(channel)
        await stations.SetStationWeather(
            stations_pb2.SetStationWeatherRequest(station_id="gs1", weather=common_pb2.WEATHER_CLEAR)
        )
        for call in (
            stations.DeleteStation(stations_pb2.DeleteStationRequest(station_id="gs1")),
            stations.IssueStationKey(stations_pb2.IssueStationKeyRequest(station_id="gs1")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "needs role admin" in (err.value.details() or "")
    assert [s.station.station_id for s in await server.repo.list_stations()] == ["gs1"]


BAD_IDS = ["../../etc", "/abs", "GS1", "gs 1", "gs1\x00", "-gs", "gs-", "1gs", "a" * 64, "gs\u0131", ""]


async def test_identifier_grammar_refuses_and_stores_nothing(start_server: StartServer) -> None:
    server = await start_server()
    async with control_channel(server.address) as channel:
        for bad in BAD_IDS:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stations_pb2_grpc.StationServiceStub(channel).CreateStation(
                    stations_pb2.CreateStationRequest(station=_station(bad))
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            assert (err.value.details() or "").startswith("station.station_id: "), bad
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await targets_pb2_grpc.CampaignServiceStub(channel).CreateCampaign(
                    targets_pb2.CreateCampaignRequest(campaign=targets_pb2.Campaign(campaign_id=bad))
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            assert (err.value.details() or "").startswith("campaign.campaign_id: "), bad
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stations_pb2_grpc.StationServiceStub(channel).GetStation(
                    stations_pb2.GetStationRequest(station_id=bad)
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    assert await server.repo.list_stations() == []
    assert await server.repo.list_campaigns() == []
    assert not await asyncio.to_thread(lambda: any(Path(server.config.data_dir).rglob("etc")))


async def test_delete_station_revokes_ends_and_keeps_history(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    async with control_channel(server.address, token=_admin_token(server)) as admin:
        stations = stations_pb2_grpc.StationServiceStub(admin)
        await stations.CreateStation(stations_pb2.CreateStationRequest(station=_station("gs1")))
        key = await stations.IssueStationKey(stations_pb2.IssueStationKeyRequest(station_id="gs1"))
        spare = await stations.IssueStationKey(stations_pb2.IssueStationKeyRequest(station_id="gs1"))

        job_ids = await _plan(server, 600, 1200)
        async with AgentClient.connect(server.address, key.api_key, "gs1") as agent:
            await agent.expect("welcome")
            deleted = await stations.DeleteStation(stations_pb2.DeleteStationRequest(station_id="gs1"))
            code, details = await agent.status()
            assert code == grpc.StatusCode.UNAUTHENTICATED, details
        assert (deleted.revoked_key_count, deleted.cancelled_job_count) == (2, 2)
        for job_id in job_ids:
            assert (await server.repo.get_job(job_id)).state == JobState.CANCELLED
        for api_key in (key.api_key, spare.api_key):  # no way back in with any old key
            async with AgentClient.connect(server.address, api_key, "gs1") as agent:
                code, _ = await agent.status()
                assert code == grpc.StatusCode.UNAUTHENTICATED
        refusals = {
            "GetStation": (stations.GetStation(stations_pb2.GetStationRequest(station_id="gs1")), "NOT_FOUND"),
            "IssueStationKey": (
                stations.IssueStationKey(stations_pb2.IssueStationKeyRequest(station_id="gs1")),
                "NOT_FOUND",
            ),
            "DeleteStation": (stations.DeleteStation(stations_pb2.DeleteStationRequest(station_id="gs1")), "NOT_FOUND"),
            "CreateStation": (
                stations.CreateStation(stations_pb2.CreateStationRequest(station=_station("gs1"))),
                "ALREADY_EXISTS",
            ),
        }
        for name, (call, code_name) in refusals.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode[code_name], name
        listed = await stations.ListStations(stations_pb2.ListStationsRequest())
        assert listed.stations == []
        # The history keeps its id: the cancelled jobs are still listed under it.
        jobs = await observations_pb2_grpc.JobServiceStub(admin).ListJobs(
            observations_pb2.ListJobsRequest(station_id="gs1")
        )
        assert sorted(j.job_id for j in jobs.jobs) == sorted(job_ids)
        # A plan computed before the deletion gives the station nothing.
        assert (await _plan(server, 1800)) == []


def test_admin_token_file_is_never_wider_than_owner(tmp_path: Path) -> None:
    from skymesh.server.auth import write_owner_only

    old = os.umask(0)
    try:
        path = tmp_path / "deep" / "admin.token"
        write_owner_only(path, "smu_x_y\n")
        write_owner_only(path, "smu_x_z\n")  # replaced atomically, still owner-only
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "smu_x_z\n"
    assert [p.name for p in path.parent.iterdir()] == ["admin.token"]


async def test_user_service_creates_lists_and_revokes(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    async with control_channel(server.address, token=_admin_token(server)) as admin:
        users = users_pb2_grpc.UserServiceStub(admin)
        created = await users.CreateUser(users_pb2.CreateUserRequest(user_id="opal", role=users_pb2.ROLE_OPERATOR))
        assert created.token.startswith(f"smu_{created.token_id}_")
        assert [t.token_id for t in created.user.tokens] == [created.token_id]
        for request, code, field in (
            (users_pb2.CreateUserRequest(user_id="opal", role=users_pb2.ROLE_OPERATOR), "ALREADY_EXISTS", "user_id"),
            (users_pb2.CreateUserRequest(user_id="Opal", role=users_pb2.ROLE_OPERATOR), "INVALID_ARGUMENT", "user_id"),
            (users_pb2.CreateUserRequest(user_id="olga"), "INVALID_ARGUMENT", "role"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await users.CreateUser(request)
            assert err.value.code() == grpc.StatusCode[code]
            assert (err.value.details() or "").startswith(f"{field}: ")
        async with control_channel(server.address, token=created.token) as operator:
            campaigns = targets_pb2_grpc.CampaignServiceStub(operator)
            await campaigns.CreateCampaign(
                targets_pb2.CreateCampaignRequest(campaign=targets_pb2.Campaign(campaign_id="c1"))
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await users_pb2_grpc.UserServiceStub(operator).ListUsers(users_pb2.ListUsersRequest())
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            listed = await users.ListUsers(users_pb2.ListUsersRequest())
            assert [(u.user_id, u.role) for u in listed.users] == [
                ("admin", users_pb2.ROLE_ADMIN),
                ("opal", users_pb2.ROLE_OPERATOR),
            ]
            assert created.token.split("_", 2)[2] not in str(listed)  # secrets are never listed
            revoked = await users.RevokeUserToken(users_pb2.RevokeUserTokenRequest(token_id=created.token_id))
            assert revoked.user_id == "opal"
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await campaigns.ListCampaigns(targets_pb2.ListCampaignsRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        listed = await users.ListUsers(users_pb2.ListUsersRequest())
        assert listed.users[1].tokens[0].HasField("revoke_time")


async def test_a_database_outage_is_unavailable_not_unknown(tmp_path: Path) -> None:
    name = f"skymesh_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        server = await serve(test_config(f"{base}/{name}", tmp_path / "data", control_auth=True))
        try:
            token = _admin_token(server)
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # the database goes away under the server
            async with control_channel(server.address, token=token) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stations_pb2_grpc.StationServiceStub(channel).ListStations(stations_pb2.ListStationsRequest())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "credentials" in (err.value.details() or "") and "SELECT" not in (err.value.details() or "")
        finally:
            await server.stop(grace_s=0.1)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
