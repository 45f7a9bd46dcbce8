"""Hostile input on every RPC, as an attacker or a careless client would send it (issue 7): random messages derived
from the proto descriptors, raw random bytes on a raw channel with identity serializers, on the agent stream,
uploads, the control API and the scheduler service; SQLite and PostgreSQL.

Whatever comes in: never UNKNOWN or INTERNAL, no internals in the details, nothing written for a refused request,
and the server still serves afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.control.v1 import observations_pb2, stations_pb2, stations_pb2_grpc, targets_pb2
from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.scheduler.service import start_server
from skymesh.server.db.records import Role
from tests.server.conftest import Fleet
from tests.server.hostile import message_strategy

_INTERNALS = ("sqlalchemy", "Traceback", "SQL", "asyncpg", "sqlite", "<class", "Unexpected")
_TABLES = ("stations", "targets", "campaigns", "jobs", "commands", "telemetry", "observations", "artifacts")
# In CI the examples are derandomized (the same every run: a landing gate must be reproducible); elsewhere each run
# explores new ones — run `pytest tests/server/test_hostile.py` a few times, or raise max_examples, to hunt.
_HOSTILE = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
_IDENTITY: Any = None  # no serializer: raw bytes on the wire


# The client's own gRPC core reports a write that races the server's end of a stream as this; the server never
# says it (its INTERNAL is "internal error (error id ...)", and it is logged, which `_no_server_errors` checks).
_CLIENT_CORE = "Internal error from Core"


def _assert_clean(code: grpc.StatusCode, details: str) -> None:
    assert code != grpc.StatusCode.UNKNOWN, details
    assert code != grpc.StatusCode.INTERNAL or details == _CLIENT_CORE, details
    for word in _INTERNALS:
        assert word not in (details or ""), (code, details)


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test sent, the server logged no error: no INTERNAL of its own, no grpc 'Unexpected' traceback."""
    caplog.set_level(logging.WARNING)
    yield
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def _counts(fleet: Fleet) -> dict[str, int]:
    async with fleet.server.engine.connect() as conn:
        return {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in _TABLES}


async def _admin(fleet: Fleet) -> tuple[tuple[str, str], ...]:
    await fleet.server.repo.create_user("hostile-admin", Role.ADMIN)
    token = await fleet.server.repo.issue_user_token("hostile-admin")
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def channel(fleet: Fleet) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(fleet.address) as ch:
        yield ch


async def _still_serves(channel: grpc.aio.Channel, admin: Any) -> None:
    stub = stations_pb2_grpc.StationServiceStub(channel)
    listed = await stub.ListStations(stations_pb2.ListStationsRequest(), metadata=admin, timeout=10)
    assert {s.station_id for s in listed.stations} >= {"gs1", "gs2"}


async def _unary(channel: grpc.aio.Channel, path: str, raw: bytes, metadata: Any) -> tuple[grpc.StatusCode, str]:
    call = channel.unary_unary(path, request_serializer=_IDENTITY, response_deserializer=_IDENTITY)
    try:
        await call(raw, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def _stream(
    channel: grpc.aio.Channel, path: str, raws: list[bytes], metadata: Any
) -> tuple[grpc.StatusCode, str]:
    call = channel.stream_stream(path, request_serializer=_IDENTITY, response_deserializer=_IDENTITY)(
        metadata=metadata, timeout=30
    )
    try:
        for raw in raws:
            await call.write(raw)
        await call.done_writing()
        while await call.read() is not grpc.aio.EOF:  # type: ignore[attr-defined]
            pass
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    except grpc.aio.UsageError:
        pass  # the server ended the call while we were still writing: its status says why
    return await call.code(), await call.details() or ""


_CONTROL_UNARY = [
    (f"/{svc.full_name}/{m.name}", m.input_type)
    for module in (stations_pb2, targets_pb2, observations_pb2)
    for svc in module.DESCRIPTOR.services_by_name.values()
    for m in svc.methods
]
_AGENT = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


@pytest.fixture
async def admin(fleet: Fleet) -> tuple[tuple[str, str], ...]:
    return await _admin(fleet)


@pytest.fixture
def station(fleet: Fleet) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {fleet.keys['gs1']}"),)


@_HOSTILE
@given(raw=st.binary(min_size=1, max_size=256), method=st.sampled_from(_CONTROL_UNARY))
async def test_random_bytes_on_control_methods(
    fleet: Fleet, channel: grpc.aio.Channel, admin: Any, raw: bytes, method: tuple[str, Any]
) -> None:
    code, details = await _unary(channel, method[0], raw, admin)
    _assert_clean(code, details)
    await _still_serves(channel, admin)


@_HOSTILE
@given(raws=st.lists(st.binary(min_size=1, max_size=256), min_size=1, max_size=3))
async def test_random_bytes_on_agent_methods_write_nothing(
    fleet: Fleet, channel: grpc.aio.Channel, admin: Any, station: Any, raws: list[bytes]
) -> None:
    before = await _counts(fleet)
    for path in (f"/{_AGENT}/Connect", f"/{_AGENT}/UploadArtifact"):
        code, details = await _stream(channel, path, raws, station)
        _assert_clean(code, details)
    code, details = await _unary(channel, f"/{_AGENT}/QueryUploadStatus", raws[0], station)
    _assert_clean(code, details)
    # Random bytes are never a Hello of gs1 followed by a valid reliable message: nothing is stored.
    assert await _counts(fleet) == before
    await _still_serves(channel, admin)


@pytest.mark.parametrize("raw", [b"\x0a\x02\xff\xfe", b"\x0a\x05ab"], ids=["invalid-utf8", "truncated"])
async def test_malformed_protobuf_is_invalid_argument(
    channel: grpc.aio.Channel, admin: Any, station: Any, raw: bytes
) -> None:
    path = f"/{stations_pb2.DESCRIPTOR.services_by_name['StationService'].full_name}/GetStation"
    code, details = await _unary(channel, path, raw, admin)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    code, details = await _stream(channel, f"/{_AGENT}/Connect", [raw], station)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details


# Writes and lookups (listing takes no input worth fuzzing; Replan runs the planner).
_CONTROL_MESSAGES = st.one_of(
    *[
        st.tuples(st.just(path), message_strategy(desc))
        for path, desc in _CONTROL_UNARY
        if "/List" not in path and "Replan" not in path
    ]
)


@_HOSTILE
@given(case=_CONTROL_MESSAGES)
async def test_random_control_requests_never_unknown_and_refusals_write_nothing(
    fleet: Fleet, channel: grpc.aio.Channel, admin: Any, case: tuple[str, Any]
) -> None:
    path, message = case
    before = await _counts(fleet)
    code, details = await _unary(channel, path, message.SerializeToString(), admin)
    _assert_clean(code, details)
    if code != grpc.StatusCode.OK:
        assert await _counts(fleet) == before, (path, code, details)


_HELLO = agent_pb2.ConnectRequest(
    hello=agent_pb2.Hello(station_id="gs1", agent_version="t", protocol_version=1, boot_id="hostile-boot")
)


def _as_gs1(hello: Any) -> agent_pb2.ConnectRequest:
    # Random fields over a valid Hello, speaking for the key's own station: it gets past the first checks.
    request = agent_pb2.ConnectRequest()
    request.CopyFrom(_HELLO)
    request.hello.MergeFrom(hello)
    request.hello.station_id = "gs1"
    return request


def _reliable(pair: tuple[Any, int]) -> agent_pb2.ConnectRequest:
    request, seq = pair
    request.seq = seq
    return request  # type: ignore[no-any-return]


_FIRST = st.one_of(st.just(_HELLO), message_strategy(agent_pb2.Hello.DESCRIPTOR).map(_as_gs1))
_THEN = st.tuples(message_strategy(agent_pb2.ConnectRequest.DESCRIPTOR), st.sampled_from([0, 1, 2, 2**63])).map(
    _reliable
)


@_HOSTILE
@given(first=_FIRST, then=_THEN)
async def test_random_agent_messages_never_unknown_and_refusals_write_nothing(
    fleet: Fleet,
    channel: grpc.aio.Channel,
    admin: Any,
    station: Any,
    first: agent_pb2.ConnectRequest,
    then: agent_pb2.ConnectRequest,
) -> None:
    if first.hello.boot_id and not then.boot_id:
        then.boot_id = first.hello.boot_id
    before = await _counts(fleet)
    code, details = await _stream(
        channel, f"/{_AGENT}/Connect", [first.SerializeToString(), then.SerializeToString()], station
    )
    _assert_clean(code, details)
    # A refusal writes nothing. (OK, or the client's own deadline on a loaded machine, may follow stored data.)
    if code not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED):
        assert await _counts(fleet) == before, (code, details)
    await _still_serves(channel, admin)


@_HOSTILE
@given(chunks=st.lists(message_strategy(agent_pb2.UploadArtifactRequest.DESCRIPTOR), min_size=1, max_size=3))
async def test_random_uploads_never_unknown(
    channel: grpc.aio.Channel, station: Any, chunks: list[agent_pb2.UploadArtifactRequest]
) -> None:
    code, details = await _stream(
        channel, f"/{_AGENT}/UploadArtifact", [c.SerializeToString() for c in chunks], station
    )
    _assert_clean(code, details)


_SCHEDULER = scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"]
_SCHEDULER_PATHS = [f"/{_SCHEDULER.full_name}/{m.name}" for m in _SCHEDULER.methods]


@pytest.fixture
async def scheduler_channel() -> AsyncIterator[grpc.aio.Channel]:
    server, port = await start_server("127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


@_HOSTILE
@given(raw=st.binary(min_size=1, max_size=64), path=st.sampled_from(_SCHEDULER_PATHS))
async def test_scheduler_service_refuses_random_bytes_cleanly(
    scheduler_channel: grpc.aio.Channel, raw: bytes, path: str
) -> None:
    code, details = await _unary(scheduler_channel, path, raw, ())
    _assert_clean(code, details)


async def test_scheduler_service_names_the_bad_field(scheduler_channel: grpc.aio.Channel) -> None:
    request = scheduler_pb2.ComputePlanRequest()
    request.stations.add(station_id="s\x00")
    path = f"/{_SCHEDULER.full_name}/ComputePlan"
    code, details = await _unary(scheduler_channel, path, request.SerializeToString(), ())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith("stations[0].station_id") and "NUL" in details, details


async def test_control_characters_in_a_boot_id_are_refused_not_internal(
    fleet: Fleet, channel: grpc.aio.Channel, admin: Any, station: Any
) -> None:
    """Found by the suite above: a refused message is named by its boot id in trailing metadata, and a boot id
    with a control character made gRPC answer INTERNAL "Invalid metadata". Identifiers are printable ASCII now."""
    before = await _counts(fleet)
    hello = agent_pb2.ConnectRequest(
        hello=agent_pb2.Hello(station_id="gs1", agent_version="t", protocol_version=1, boot_id="hostile-boot")
    )
    bad = agent_pb2.ConnectRequest(job_update=agent_pb2.JobUpdate(), seq=1, boot_id="\x1f")
    code, details = await _stream(
        channel, f"/{_AGENT}/Connect", [hello.SerializeToString(), bad.SerializeToString()], station
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "boot_id" in details, (code, details)
    assert await _counts(fleet) == before
    await _still_serves(channel, admin)


def test_metadata_values_are_made_printable() -> None:
    from skymesh.api.errors import metadata_value

    assert metadata_value("boot-1") == "boot-1"
    assert metadata_value("a\x1fb%c é") == "a%1Fb%25c %C3%A9"
