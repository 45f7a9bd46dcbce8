"""AuthService (password login, expiring sessions, logout, personal tokens), AuditService, EventService.Watch and
the event bus, over real gRPC with control auth on, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest

from skymesh.api.control.v1 import auth_pb2, auth_pb2_grpc, events_pb2, events_pb2_grpc
from skymesh.core.clock import SystemClock
from skymesh.core.jobs import JobState
from skymesh.core.model import StationState
from skymesh.server.db.records import Role
from skymesh.server.events import EventBus
from tests.server.conftest import StartServer


def _meta(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_login_logout_expiry_and_roles(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    repo = server.repo
    await repo.create_user("otto", Role.OPERATOR)
    await repo.create_user("ada", Role.ADMIN)
    await repo.set_password("otto", "a-long-password")
    async with grpc.aio.insecure_channel(server.address) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        audit = auth_pb2_grpc.AuditServiceStub(channel)
        for username, password in (("otto", "wrong-password"), ("nobody", "a-long-password"), ("ada", "anything!")):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await auth.Login(auth_pb2.LoginRequest(username=username, password=password))
            assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "wrong username or password" in (bad.value.details() or "")
        resp = await auth.Login(auth_pb2.LoginRequest(username="otto", password="a-long-password", ttl_s=3600))
        assert resp.role == "operator" and resp.token.startswith("smu_")
        expires = resp.expires_at.ToDatetime(tzinfo=UTC)
        assert 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600
        who = await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=_meta(resp.token))
        assert (who.user_id, who.role) == ("otto", "operator")
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await audit.ListAuditEntries(auth_pb2.ListAuditEntriesRequest(), metadata=_meta(resp.token))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as short:
            await auth.SetPassword(auth_pb2.SetPasswordRequest(user_id="ada", password="x"), metadata=_meta(resp.token))
        assert short.value.code() == grpc.StatusCode.PERMISSION_DENIED
        personal = await auth.CreatePersonalToken(
            auth_pb2.CreatePersonalTokenRequest(label="cron"), metadata=_meta(resp.token)
        )
        await auth.Logout(auth_pb2.LogoutRequest(), metadata=_meta(resp.token))
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=_meta(resp.token))
        assert gone.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The personal token outlives the session it was made from.
        assert (await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=_meta(personal.token))).user_id == "otto"
        admin = await repo.issue_user_token("ada")
        entries = (
            await audit.ListAuditEntries(auth_pb2.ListAuditEntriesRequest(page_size=3), metadata=_meta(admin))
        ).entries
        assert [e.action for e in entries] == ["issue_user_token", "logout", "issue_personal_token"]
        assert entries[1].actor == "user:otto" and entries[1].detail["token_id"]
    # A session past its expiry is refused (the expiry is checked on every call, not only at login).
    short_session = await repo.login("otto", "a-long-password", ttl_s=0.001)
    await asyncio.sleep(0.05)
    with pytest.raises(Exception, match="expired"):
        await repo.authenticate_user(short_session.token)


async def test_password_rules_name_the_field(start_server: StartServer) -> None:
    server = await start_server()
    await server.repo.create_user("olga", Role.OBSERVER)
    with pytest.raises(Exception, match="8-256") as exc:
        await server.repo.set_password("olga", "short")
    assert getattr(exc.value, "field", None) == "password"


async def test_watch_needs_a_token_and_streams_job_events(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    await server.repo.create_user("olga", Role.OBSERVER)
    token = await server.repo.issue_user_token("olga")
    async with grpc.aio.insecure_channel(server.address) as channel:
        events = events_pb2_grpc.EventServiceStub(channel)
        anonymous = events.Watch(events_pb2.WatchRequest())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await anonymous.read()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call = events.Watch(events_pb2.WatchRequest(), metadata=_meta(token))
        await call.initial_metadata()  # sent before any event: the watch is accepted
        server.events.job("job-1", "gs1", JobState.RUNNING, JobState.SUCCEEDED)
        first = await asyncio.wait_for(call.read(), 5)
        assert first.WhichOneof("event") == "job" and first.job.job_id == "job-1"
        call.cancel()
        # Resume after that cursor: the next event only.
        server.events.station_state("gs1", StationState.OFFLINE, StationState.ONLINE)
        again = events.Watch(events_pb2.WatchRequest(cursor=first.cursor), metadata=_meta(token))
        nxt = await asyncio.wait_for(again.read(), 5)
        assert nxt.WhichOneof("event") == "station_state" and nxt.station_state.station_id == "gs1"
        again.cancel()


async def test_bus_resumes_and_resyncs_old_or_foreign_cursors() -> None:
    bus = EventBus(SystemClock(), capacity=3)
    for i in range(5):
        bus.job(f"j{i}", "gs1", JobState.SCHEDULED, JobState.DISPATCHED)
    stream = bus.watch(f"{bus._run}.1")
    assert (await anext(stream)).WhichOneof("event") == "resync"
    await stream.aclose()
    stream = bus.watch(f"{bus._run}.3")
    assert [(await anext(stream)).job.job_id for _ in range(2)] == ["j3", "j4"]
    await stream.aclose()
    stream = bus.watch("someone-else.9")
    assert (await anext(stream)).resync.reason == "cursor from another server run"
    await stream.aclose()
    assert bus.watchers == 0
