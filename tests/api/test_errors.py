"""SkyMeshError crosses gRPC with its code, field and reason intact, over a real loopback server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from skymesh.api.errors import error_from_rpc, grpc_errors
from skymesh.core.errors import InvalidArgument, NotFound, SkyMeshError


class _Servicer:
    def __init__(self, error: SkyMeshError) -> None:
        self.error = error

    @grpc_errors
    async def call(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise self.error


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            InvalidArgument("must be within [-90, 90] degrees", field="station.location.latitude_deg"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (NotFound("no such station", field="station_id", reason="STATION_NOT_FOUND"), grpc.StatusCode.NOT_FOUND),
        (
            InvalidArgument("must not be before start", field="observation.end", details={"upstream-seq": "7"}),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
async def test_error_round_trip(error: SkyMeshError, code: grpc.StatusCode) -> None:
    servicer = _Servicer(error)
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "test.Errors",
        {"Call": grpc.unary_unary_rpc_method_handler(servicer.call)},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Errors/Call")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(b"")
        assert info.value.code() == code
        assert error.field is not None and error.field in (info.value.details() or "")
        back = error_from_rpc(info.value)
        assert type(back) is type(error)
        assert back.field == error.field
        assert back.reason == error.reason
        assert back.details == error.details
    finally:
        await server.stop(None)
