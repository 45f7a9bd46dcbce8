"""Acked means stored, on adversarial upstream sequences; the credit window, pacing and size limits; the concrete
hostile messages of issue 7 on the real stream (real server, raw client generated from proto; SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.api.validation import AGENT_MAX_MESSAGE_BYTES
from skymesh.observability.metrics import SERVER_RECONNECTS
from skymesh.server.db.records import Role
from tests.server.agent_client import AgentClient, observation_record
from tests.server.conftest import Fleet, StartServer, add_station

_SEQS = settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _stored(fleet: Fleet, boot_id: str) -> list[int]:
    async with fleet.server.engine.connect() as conn:
        rows = await conn.execute(text("SELECT seq FROM telemetry WHERE boot_id = :b ORDER BY seq"), {"b": boot_id})
        return [int(r) for r in rows.scalars()]


async def _drive(fleet: Fleet, boot_id: str, seqs: list[int]) -> list[tuple[int, int]]:
    """Send telemetry with these seqs in this order, reconnecting after each refusal, as a careless or hostile
    client would. Returns (seq sent, committed_seq acked) for every ack."""
    acked: list[tuple[int, int]] = []
    pending = list(seqs)
    while pending:
        async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", boot_id=boot_id) as agent:
            await agent.expect("welcome")
            while pending:
                seq = pending.pop(0)
                await agent.telemetry(seq)
                try:
                    ack = await agent.expect("upstream_ack")
                except grpc.aio.AioRpcError as exc:
                    # Refused: a gap names the expected seq; a seq beyond 2^63 - 1 is out of range.
                    assert exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
                    assert "expected seq" in (exc.details() or "") or seq > 2**63 - 1, exc.details()
                    break
                assert ack.boot_id == boot_id
                acked.append((seq, ack.committed_seq))
    return acked


async def _check_acked_means_stored(fleet: Fleet, boot_id: str, acked: list[tuple[int, int]]) -> None:
    stored = await _stored(fleet, boot_id)
    cursor = (await fleet.server.repo.get_cursors("gs1", [boot_id]))[boot_id]
    assert stored == list(range(1, cursor + 1))  # no gaps, nothing beyond the cursor
    for seq, committed in acked:
        assert seq <= committed <= cursor
        assert seq in stored


@pytest.mark.parametrize(
    "seqs",
    [
        [1, 100, *range(2, 100)],
        [1, 2, 3, 10, 5],
        [2**63 - 1, 2],
        [2**63, 1, 2],
        [3, 2, 1, 2, 3, 4],
    ],
    ids=["1-100-2..99", "1-2-3-10-5", "max-then-2", "over-max", "backwards"],
)
async def test_adversarial_sequences_acked_means_stored(fleet: Fleet, seqs: list[int]) -> None:
    boot = f"boot-{len(seqs)}-{seqs[0]}"
    acked = await _drive(fleet, boot, seqs)
    await _check_acked_means_stored(fleet, boot, acked)
    if seqs[:2] == [1, 100]:
        assert await _stored(fleet, boot) == list(range(1, 100))  # 100 refused (gap), 2..99 stored
    if seqs == [1, 2, 3, 10, 5]:
        assert await _stored(fleet, boot) == [1, 2, 3]  # 5 arrives after the refusal of 10: still a gap


@_SEQS
@given(seqs=st.permutations(range(1, 7)).flatmap(lambda p: st.just(list(p))), extra=st.lists(st.integers(1, 9)))
async def test_random_permutations_acked_means_stored(fleet: Fleet, seqs: list[int], extra: list[int]) -> None:
    boot = f"perm-{time.monotonic_ns()}"
    acked = await _drive(fleet, boot, seqs + extra)
    await _check_acked_means_stored(fleet, boot, acked)


async def test_refused_message_is_named_recorded_and_refused_again(fleet: Fleet) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        await agent.telemetry(1)
        await agent.expect("upstream_ack")
        await agent.observation(2, observation_record(job_id="no-such-job"))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await agent.expect("upstream_ack")
    meta = dict(info.value.trailing_metadata() or ())
    assert (meta["skymesh-error-upstream-boot-id"], meta["skymesh-error-upstream-seq"]) == (agent.boot_id, "2")
    # The cursor moved past the refused message: the next one is taken; the refused one is refused again.
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", boot_id=agent.boot_id) as again:
        welcome = await again.expect("welcome")
        assert {r.boot_id: r.committed_seq for r in welcome.resume}[agent.boot_id] == 2
        await again.telemetry(3)
        assert (await again.expect("upstream_ack")).committed_seq == 3
        await again.observation(2, observation_record(job_id="no-such-job"))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await again.expect("upstream_ack")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "refused before" in (info.value.details() or "")
    assert await _stored(fleet, agent.boot_id) == [1, 3]
    assert await fleet.server.repo.list_observations(station_id="gs1") == []


def _hello(**fields: Any) -> agent_pb2.ConnectRequest:
    hello = agent_pb2.Hello(station_id="gs1", agent_version="t", protocol_version=1, boot_id="b-hostile")
    for name, value in fields.items():
        setattr(hello, name, value)
    return agent_pb2.ConnectRequest(hello=hello)


def _caps_nan() -> agent_pb2.ConnectRequest:
    request = _hello()
    request.hello.capabilities.aperture_m = float("nan")
    return request


HELLOS: list[tuple[str, Callable[[], agent_pb2.ConnectRequest], str]] = [
    ("agent_version-65", lambda: _hello(agent_version="v" * 65), "hello.agent_version"),
    ("agent_version-100kB", lambda: _hello(agent_version="v" * 100_000), "hello.agent_version"),
    ("agent_version-NUL", lambda: _hello(agent_version="1\x00"), "hello.agent_version"),
    ("capabilities-NaN", _caps_nan, "hello.capabilities.aperture_m"),
    ("boot_id-65", lambda: _hello(boot_id="b" * 65), "hello.boot_id"),
    ("protocol_version--5", lambda: _hello(protocol_version=-5), "hello.protocol_version"),
    ("station_id-NUL", lambda: _hello(station_id="gs1\x00"), "hello.station_id"),
]


@pytest.mark.parametrize(("make", "field"), [(m, f) for _, m, f in HELLOS], ids=[h[0] for h in HELLOS])
async def test_hostile_hello_is_refused_naming_the_field_and_writes_nothing(
    fleet: Fleet, make: Callable[[], agent_pb2.ConnectRequest], field: str
) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", first=make()) as agent:
        code, details = await agent.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith(field), details
    record = await fleet.server.repo.get_station("gs1")
    assert record.agent_version == "" and record.last_seen is None
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:  # the station still connects
        await agent.expect("welcome")


def _big_channel(size: int) -> agent_pb2.ConnectRequest:
    request = agent_pb2.ConnectRequest(seq=1, boot_id="b-big")
    request.telemetry.samples.add(values={"c" * size: 1.0})
    return request


def _big_headers(size: int) -> agent_pb2.ConnectRequest:
    record = observation_record()
    record.headers["OBSERVER"] = "x" * size
    return agent_pb2.ConnectRequest(observation=record, seq=1, boot_id="b-big")


def _long_filter() -> agent_pb2.ConnectRequest:
    record = observation_record()
    record.photometry.filter = "V" * 33
    return agent_pb2.ConnectRequest(observation=record, seq=1, boot_id="b-big")


def _huge_batch() -> agent_pb2.ConnectRequest:
    request = agent_pb2.ConnectRequest(seq=1, boot_id="b-big")
    for i in range(100_000):
        request.telemetry.samples.add(values={"radio.snr_db": float(i)}).at.FromSeconds(1_790_000_000 + i)
    return request


UPSTREAM: list[tuple[str, Callable[[], agent_pb2.ConnectRequest], grpc.StatusCode, str]] = [
    (
        "channel-name-100kB",
        lambda: _big_channel(100_000),
        grpc.StatusCode.INVALID_ARGUMENT,
        "telemetry.samples[0].values[key]",
    ),
    (
        "headers-100kB",
        lambda: _big_headers(100_000),
        grpc.StatusCode.INVALID_ARGUMENT,
        "observation.headers['OBSERVER']",
    ),
    ("channel-name-1MB", lambda: _big_channel(1_000_000), grpc.StatusCode.RESOURCE_EXHAUSTED, "over the limit"),
    ("headers-1MB", lambda: _big_headers(1_000_000), grpc.StatusCode.RESOURCE_EXHAUSTED, "over the limit"),
    ("filter-33", _long_filter, grpc.StatusCode.INVALID_ARGUMENT, "observation.photometry.filter"),
    (
        "batch-100k-samples",
        _huge_batch,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"over the limit of {AGENT_MAX_MESSAGE_BYTES}",
    ),
]


@pytest.mark.parametrize(("make", "code", "field"), [u[1:] for u in UPSTREAM], ids=[u[0] for u in UPSTREAM])
async def test_hostile_upstream_is_refused_named_and_writes_no_data(
    fleet: Fleet, make: Callable[[], agent_pb2.ConnectRequest], code: grpc.StatusCode, field: str
) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", boot_id="b-big") as agent:
        await agent.expect("welcome")
        await agent.send(make())
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await agent.recv()
    assert info.value.code() == code, info.value.details()
    assert field in (info.value.details() or "")
    meta = dict(info.value.trailing_metadata() or ())
    assert (meta["skymesh-error-upstream-boot-id"], meta["skymesh-error-upstream-seq"]) == ("b-big", "1")
    assert await fleet.server.repo.count_telemetry("gs1") == 0
    assert await fleet.server.repo.list_observations(station_id="gs1") == []


async def test_schedule_ack_of_5mb_is_refused_naming_the_limit(fleet: Fleet) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        await agent.send(agent_pb2.ConnectRequest(schedule_ack=agent_pb2.ScheduleAck(version=1, error="e" * 5_000_000)))
        code, details = await agent.status()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(AGENT_MAX_MESSAGE_BYTES) in details


async def test_create_station_with_undefined_state_is_invalid(fleet: Fleet) -> None:
    await fleet.server.repo.create_user("limits-admin", Role.ADMIN)
    token = await fleet.server.repo.issue_user_token("limits-admin")
    station = common_pb2.Station(station_id="gs9", name="GS9", state=99)  # type: ignore[arg-type]
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        stub = stations_pb2_grpc.StationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateStation(
                stations_pb2.CreateStationRequest(station=station), metadata=(("authorization", f"Bearer {token}"),)
            )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith("station.state")
    assert {r.station.station_id for r in await fleet.server.repo.list_stations()} == {"gs1", "gs2"}


async def test_welcome_advertises_the_limits(fleet: Fleet) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        welcome = await agent.expect("welcome")
    assert welcome.max_message_bytes == AGENT_MAX_MESSAGE_BYTES
    assert welcome.max_batch_samples == 1000 and welcome.max_sample_channels == 64
    assert welcome.max_unacked == fleet.server.config.max_unacked
    assert welcome.upstream_rate_per_s == fleet.server.config.upstream_rate_per_s


async def test_pacing_limits_each_stations_rate(start_server: StartServer) -> None:
    server = await start_server(upstream_rate_per_s=50.0, upstream_burst=5)
    key = await add_station(server, "gs1")
    # 30 messages at 50/s after a burst of 5 take at least (30 - 5) / 50 s; every one is acked.
    started = time.monotonic()
    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")
        for seq in range(1, 31):
            await agent.telemetry(seq)
            assert (await agent.expect("upstream_ack")).committed_seq == seq
    assert time.monotonic() - started >= 25 / 50 * 0.9


# The client's HTTP/2 receive window kept small (no BDP growth), so what it never reads backs up into the server.
_NO_READ = (("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024), ("grpc.max_receive_message_length", -1))


def _big_schedule(version: int) -> agent_pb2.ConnectResponse:
    schedule = agent_pb2.Schedule(version=version)
    for i in range(5000):
        schedule.jobs.add(job_id=f"job-{version}-{i:05d}", filter="V", exposure_s=30.0)
    return agent_pb2.ConnectResponse(schedule=schedule)


async def test_credit_window_is_enforced_on_a_client_that_never_reads(start_server: StartServer) -> None:
    server = await start_server(max_unacked=4, upstream_rate_per_s=10_000.0, upstream_burst=10_000)
    key = await add_station(server, "gs1")
    fleet = Fleet(server, {"gs1": key})
    ended_before = SERVER_RECONNECTS.labels("max_unacked")._value.get()
    async with AgentClient.connect(server.address, key, "gs1", options=_NO_READ) as agent:
        await agent.expect("welcome")
        session = server.hub.get("gs1")
        assert session is not None
        for version in range(1, 21):  # megabytes the client does not read: the server's writer is held up
            session.push(_big_schedule(version))
        for seq in range(1, 11):
            await agent.telemetry(seq)
        # The client reads nothing, so it cannot see the status behind the schedules; the server's metric shows
        # why the stream ended.
        for _ in range(200):
            if SERVER_RECONNECTS.labels("max_unacked")._value.get() > ended_before:
                break
            await asyncio.sleep(0.05)
    assert SERVER_RECONNECTS.labels("max_unacked")._value.get() == ended_before + 1
    cursor = (await server.repo.get_cursors("gs1", [agent.boot_id]))[agent.boot_id]
    assert cursor == 4  # four taken (acks queued behind the schedules), the fifth refused
    assert await _stored(fleet, agent.boot_id) == [1, 2, 3, 4]


async def test_message_over_the_transport_limit_names_the_limit(fleet: Fleet) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        await agent.expect("welcome")
        await agent.send(agent_pb2.ConnectRequest(schedule_ack=agent_pb2.ScheduleAck(version=1, error="e" * 9_000_000)))
        code, details = await agent.status()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(8 * 1024 * 1024) in details, details
