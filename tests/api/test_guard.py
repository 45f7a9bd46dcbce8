"""GuardInterceptor, the one error choke point (real grpc.aio server and client on loopback): an unexpected
exception becomes INTERNAL with an error id that is logged with its traceback and nothing else of it reaches the
client; a translated foreign error becomes what the translator says; SkyMeshError keeps its mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.api.guard import GuardInterceptor
from skymesh.core.errors import NotFound, SkyMeshError, Unavailable


class _Boom(Exception):
    pass


def _translate(exc: BaseException) -> SkyMeshError | None:
    if isinstance(exc, ConnectionRefusedError):
        return Unavailable("the database is unavailable", details={"retry-after-s": "2"})
    return None


class _Stations(stations_pb2_grpc.StationServiceServicer):
    async def GetStation(self, request: Any, context: Any) -> Any:
        if request.station_id == "boom":
            raise _Boom("UPDATE stations SET secret [SQL: sqlalchemy]")
        if request.station_id == "group":
            raise ExceptionGroup("unhandled errors in a TaskGroup", [_Boom("in a task")])
        if request.station_id == "db-down":
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        raise NotFound(f"no station {request.station_id!r}", field="station_id")


@pytest.fixture
async def stub() -> AsyncIterator[stations_pb2_grpc.StationServiceStub]:
    server = grpc.aio.server(interceptors=[GuardInterceptor(_translate)])
    stations_pb2_grpc.add_StationServiceServicer_to_server(_Stations(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield stations_pb2_grpc.StationServiceStub(channel)
    finally:
        await server.stop(0)


async def _call(stub: stations_pb2_grpc.StationServiceStub, station_id: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetStation(stations_pb2.GetStationRequest(station_id=station_id))
    return info.value


@pytest.mark.parametrize("station_id", ["boom", "group"])
async def test_unexpected_exception_is_internal_with_a_logged_error_id(
    stub: stations_pb2_grpc.StationServiceStub, station_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="skymesh.api.errors"):
        err = await _call(stub, station_id)
    assert err.code() == grpc.StatusCode.INTERNAL
    details = err.details() or ""
    for leak in ("SQL", "sqlalchemy", "secret", "_Boom", "Traceback", "TaskGroup"):
        assert leak not in details
    error_id = dict(err.trailing_metadata() or ())["skymesh-error-id"]
    assert error_id in details
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None  # the traceback is in the server's log
    assert logged[0].exc_info[0] is _Boom


async def test_translated_error_is_unavailable_with_retry_advice(stub: stations_pb2_grpc.StationServiceStub) -> None:
    err = await _call(stub, "db-down")
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "5432" not in (err.details() or "")
    assert dict(err.trailing_metadata() or ())["skymesh-error-retry-after-s"] == "2"


async def test_skymesh_errors_keep_their_mapping(stub: stations_pb2_grpc.StationServiceStub) -> None:
    err = await _call(stub, "gs9")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (err.details() or "").startswith("station_id: no station 'gs9'")
