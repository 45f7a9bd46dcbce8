"""Every control List RPC pages: page_size + page_token in, next_page_token out, over a stable order, on SQLite and
PostgreSQL. Following the tokens yields every row once, in the order of one unpaged answer; a token from another
query or not from this server is refused; an unpaged answer that would be cut is refused with PAGE_REQUIRED."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from skymesh.api.control.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from skymesh.core.model import CelestialTarget, TimeWindow
from skymesh.server import RunningServer
from skymesh.server.control import paging
from skymesh.server.db.records import CampaignRecord, PlannedJob, Role
from skymesh.server.wire import observation_from_proto
from tests.server.agent_client import observation_record
from tests.server.conftest import StartServer, add_station


async def _follow(call: Callable[..., Awaitable[Any]], make: Callable[..., Any], field: str, size: int) -> list[Any]:
    """Every item of a listing, page by page; asserts each page is full but the last and tokens end it."""
    items: list[Any] = []
    token = ""
    for _ in range(1000):
        reply = await call(make(page_size=size, page_token=token))
        page = list(getattr(reply, field))
        items += page
        token = reply.next_page_token
        if not token:
            assert len(page) <= size
            return items
        assert len(page) == size
    raise AssertionError("tokens never ended")


async def _server(start_server: StartServer) -> RunningServer:
    server = await start_server()
    for i in range(7):
        await add_station(server, f"gs-{i:02d}")
    for i in range(5):
        await server.repo.create_campaign(CampaignRecord(f"camp-{i}", f"Campaign {i}", "", 0.0, None, None))
    for i in range(6):
        await server.repo.create_target(CelestialTarget(f"star-{i}", f"Star {i}", 10.0 * i, 5.0), campaign_id="")
    for i in range(4):
        await server.repo.create_user(f"user-{i}", Role.OBSERVER)
        await server.repo.issue_user_token(f"user-{i}")
    # 18 jobs on one station, three at each start time: the order needs its tie-break on job_id.
    now = datetime.now(UTC).replace(microsecond=123456)
    planned = [
        PlannedJob("gs-00", f"star-{t}", TimeWindow(now + timedelta(hours=h), now + timedelta(hours=h, minutes=10)))
        for h in range(6)
        for t in range(3)
    ]
    await server.repo.apply_plan(["gs-00"], planned)
    return server


async def test_every_list_pages_without_loss_or_repeat(start_server: StartServer) -> None:
    server = await _server(start_server)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stations = stations_pb2_grpc.StationServiceStub(channel)
        targets = targets_pb2_grpc.TargetServiceStub(channel)
        campaigns = targets_pb2_grpc.CampaignServiceStub(channel)
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        users = users_pb2_grpc.UserServiceStub(channel)
        cases: Sequence[tuple[Callable[..., Awaitable[Any]], Callable[..., Any], str, Callable[[Any], str]]] = [
            (stations.ListStations, stations_pb2.ListStationsRequest, "stations", lambda s: s.station_id),
            (targets.ListTargets, targets_pb2.ListTargetsRequest, "targets", lambda t: t.target_id),
            (campaigns.ListCampaigns, targets_pb2.ListCampaignsRequest, "campaigns", lambda c: c.campaign_id),
            (jobs.ListJobs, observations_pb2.ListJobsRequest, "jobs", lambda j: j.job_id),
            (users.ListUsers, users_pb2.ListUsersRequest, "users", lambda u: u.user_id),
        ]
        for call, make, field, ident in cases:
            whole = [ident(x) for x in getattr(await call(make()), field)]
            assert len(whole) >= 4, field
            assert len(set(whole)) == len(whole), field
            for size in (1, 3, len(whole), len(whole) + 5):
                paged = [ident(x) for x in await _follow(call, make, field, size)]
                assert paged == whole, (field, size)
        # Users keep their own tokens on every page.
        for user in await _follow(users.ListUsers, users_pb2.ListUsersRequest, "users", 2):
            assert len(user.tokens) == 1, user.user_id
        # Jobs come in (start, job_id) order, so equal starts never swap between pages.
        listed = (await jobs.ListJobs(observations_pb2.ListJobsRequest(station_id="gs-00"))).jobs
        keys = [(j.window.start.ToDatetime(), j.job_id) for j in listed]
        assert keys == sorted(keys) and len(keys) == 18


async def test_observations_page_newest_first(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs-1")
    await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
    for _ in range(9):
        await server.repo.submit_observation("gs-1", observation_from_proto(observation_record(target_id="m31")))
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = observations_pb2_grpc.ObservationServiceStub(channel)

        def make(**kw: Any) -> observations_pb2.ListObservationsRequest:
            return observations_pb2.ListObservationsRequest(station_id="gs-1", **kw)

        whole = [o.record.observation_id for o in (await stub.ListObservations(make())).observations]
        assert len(whole) == 9
        paged = await _follow(stub.ListObservations, make, "observations", 2)
        assert [o.record.observation_id for o in paged] == whole
        starts = [o.record.start.ToDatetime() for o in paged]
        assert starts == sorted(starts, reverse=True)


async def test_audit_pages_with_tokens(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    await server.repo.create_user("ada", Role.ADMIN)
    token = await server.repo.issue_user_token("ada")
    for i in range(5):
        await server.repo.create_user(f"u-{i}", Role.OBSERVER, actor="user:ada")
    meta = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        audit = auth_pb2_grpc.AuditServiceStub(channel)

        async def call(req: auth_pb2.ListAuditEntriesRequest) -> auth_pb2.ListAuditEntriesResponse:
            return await audit.ListAuditEntries(req, metadata=meta)

        whole = [e.id for e in (await call(auth_pb2.ListAuditEntriesRequest(page_size=500))).entries]
        paged = [e.id for e in await _follow(call, auth_pb2.ListAuditEntriesRequest, "entries", 2)]
        assert paged == whole and len(whole) >= 7


async def test_bad_tokens_and_cut_answers_are_refused(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await _server(start_server)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stations = stations_pb2_grpc.StationServiceStub(channel)
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        first = await jobs.ListJobs(observations_pb2.ListJobsRequest(station_id="gs-00", page_size=2))
        assert first.next_page_token
        for bad in ("nope", "x" * 600, first.next_page_token[:-3], "e30"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await jobs.ListJobs(observations_pb2.ListJobsRequest(station_id="gs-00", page_token=bad))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "page_token" in (err.value.details() or "")
        # A token answers only the query that issued it: other filters would page a different list.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await jobs.ListJobs(observations_pb2.ListJobsRequest(station_id="gs-01", page_token=first.next_page_token))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "other filters" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.ListStations(stations_pb2.ListStationsRequest(page_token=first.next_page_token))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.ListStations(stations_pb2.ListStationsRequest(page_size=-1))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # An answer without page_size is whole or refused, never silently cut (the ceiling lowered for the test).
        monkeypatch.setattr(paging, "MAX_UNPAGED", 5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.ListStations(stations_pb2.ListStationsRequest())
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "page_size" in (err.value.details() or "")
        monkeypatch.setattr(paging, "MAX_UNPAGED", 7)
        assert len((await stations.ListStations(stations_pb2.ListStationsRequest())).stations) == 7
        huge = await stations.ListStations(stations_pb2.ListStationsRequest(page_size=5000))
        assert len(huge.stations) == 7 and not huge.next_page_token
