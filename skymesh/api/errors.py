"""Translation of SkyMeshError into gRPC status and back: the one choke point for every gRPC service and client.

On the server, `grpc_errors` wraps a servicer method so a SkyMeshError becomes the mapped status code with a
message of the form "<field>: <message> [<REASON>]", and the reason travels in trailing metadata
("skymesh-error-reason", "skymesh-error-field"). On the client, `error_from_rpc` turns an AioRpcError back into
the matching SkyMeshError.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from skymesh.core import errors as E

__all__ = ["error_from_rpc", "grpc_code_for", "grpc_errors"]

_T = TypeVar("_T")

_BY_CODE: dict[grpc.StatusCode, type[E.SkyMeshError]] = {
    grpc.StatusCode[mapping.grpc_code_name]: cls for cls, mapping in reversed(list(E.STATUS_TABLE.items()))
}


def grpc_code_for(error: E.SkyMeshError) -> grpc.StatusCode:
    return grpc.StatusCode[E.status_for(error).grpc_code_name]


def _details(error: E.SkyMeshError) -> str:
    return f"{error} [{error.reason}]"


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: E.SkyMeshError) -> None:
    context.set_trailing_metadata(
        (
            ("skymesh-error-reason", error.reason),
            ("skymesh-error-field", error.field or ""),
            *((f"skymesh-error-{key}", value) for key, value in sorted(error.details.items())),
        )
    )
    await context.abort(grpc_code_for(error), _details(error))


def grpc_errors(
    method: Callable[..., Awaitable[_T]],
) -> Callable[..., Awaitable[_T]]:
    """Decorate a unary grpc.aio servicer method: SkyMeshError -> mapped status with field and reason."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> _T:
        try:
            return await method(self, request, context)
        except E.SkyMeshError as exc:
            await abort_with(context, exc)
            raise AssertionError("unreachable: abort raises") from exc

    return wrapper


def error_from_rpc(exc: grpc.aio.AioRpcError) -> E.SkyMeshError:
    cls = _BY_CODE.get(exc.code(), E.SkyMeshError)
    meta: dict[str, str] = {}
    items: Any = exc.trailing_metadata() or ()
    for key, value in items:  # grpc.aio.Metadata yields (key, value) pairs
        if isinstance(value, str):
            meta[str(key)] = value
    details = {
        k.removeprefix("skymesh-error-"): v
        for k, v in meta.items()
        if k.startswith("skymesh-error-") and k not in ("skymesh-error-reason", "skymesh-error-field")
    }
    return cls(
        exc.details() or exc.code().name,
        details=details,
        reason=meta.get("skymesh-error-reason"),
        field=meta.get("skymesh-error-field") or None,
    )
