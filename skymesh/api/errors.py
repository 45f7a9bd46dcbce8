"""Translation of SkyMeshError into gRPC status and back: the one choke point for every gRPC service and client.

On the server, `grpc_errors` wraps a servicer method so a SkyMeshError becomes the mapped status code with a
message of the form "<field>: <message> [<REASON>]", and the reason travels in trailing metadata
("skymesh-error-reason", "skymesh-error-field"). On the client, `error_from_rpc` turns an AioRpcError back into
the matching SkyMeshError.

`error_for_exception` is the one mapping from anything a servicer can raise to what the client is told (used by
`skymesh.api.guard.GuardInterceptor` for every RPC): a SkyMeshError as itself; a foreign error the service knows
(its `translate` hook: the server maps an unreachable or locked database to UNAVAILABLE with a retry delay); a
transport error on a call that is already over to nothing at all (the client has gone); anything else to INTERNAL
with an error id, logged here with its traceback. No RPC ever answers UNKNOWN, and no internals reach the client.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from skymesh.core import errors as E

__all__ = [
    "Translator",
    "abort_with",
    "error_for_exception",
    "error_from_rpc",
    "grpc_code_for",
    "grpc_errors",
    "is_transport_error",
    "leaf_error",
]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

# A service's hook for foreign errors it knows (a database driver's): the SkyMeshError to answer with, or None.
Translator = Callable[[BaseException], E.SkyMeshError | None]

_BY_CODE: dict[grpc.StatusCode, type[E.SkyMeshError]] = {
    grpc.StatusCode[mapping.grpc_code_name]: cls for cls, mapping in reversed(list(E.STATUS_TABLE.items()))
}


def grpc_code_for(error: E.SkyMeshError) -> grpc.StatusCode:
    return grpc.StatusCode[E.status_for(error).grpc_code_name]


def _details(error: E.SkyMeshError) -> str:
    return f"{error} [{error.reason}]"


def metadata_value(value: str) -> str:
    """`value` as gRPC can carry it in metadata (printable ASCII): anything else percent-encoded, as in a URL.

    A value gRPC refuses would turn the whole answer into INTERNAL "Invalid metadata"."""
    if all(" " <= c <= "~" and c != "%" for c in value):
        return value
    return "".join(c if " " <= c <= "~" and c != "%" else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: E.SkyMeshError) -> None:
    context.set_trailing_metadata(
        (
            ("skymesh-error-reason", metadata_value(error.reason)),
            ("skymesh-error-field", metadata_value(error.field or "")),
            *((f"skymesh-error-{key}", metadata_value(value)) for key, value in sorted(error.details.items())),
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


def leaf_error(exc: BaseException) -> BaseException:
    """The exception that matters in `exc`: for an exception group (a TaskGroup's), its first SkyMeshError leaf,
    else its first leaf that is not a cancellation."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []

    def walk(group: BaseExceptionGroup[BaseException]) -> None:
        for inner in group.exceptions:
            if isinstance(inner, BaseExceptionGroup):
                walk(inner)
            else:
                leaves.append(inner)

    walk(exc)
    for leaf in leaves:
        if isinstance(leaf, E.SkyMeshError):
            return leaf
    for leaf in leaves:
        if not isinstance(leaf, asyncio.CancelledError):
            return leaf
    return leaves[0] if leaves else exc


def is_transport_error(exc: BaseException) -> bool:
    """Raised by grpc.aio when writing to or reading from a call the peer has already left."""
    return isinstance(exc, grpc.aio.UsageError | grpc.aio.InternalError | asyncio.InvalidStateError)


def error_for_exception(
    exc: BaseException, *, method: str, translate: Translator | None = None, call_over: bool = False
) -> E.SkyMeshError | None:
    """What to answer for `exc` raised while serving `method`; None when there is nobody left to answer."""
    leaf = leaf_error(exc)
    if isinstance(leaf, E.SkyMeshError):
        return leaf
    if translate is not None:
        translated = translate(leaf)
        if translated is not None:
            # The driver's own words stay in the log (a pool timeout reads differently from a refused connection).
            _log.warning("%s: %s (%s: %.300s)", method, translated, type(leaf).__name__, leaf)
            return translated
    if call_over and is_transport_error(leaf):
        _log.info("%s: the client left before the answer (%s)", method, type(leaf).__name__)
        return None
    error_id = uuid.uuid4().hex[:16]
    _log.error("%s: internal error %s", method, error_id, exc_info=leaf)
    return E.SkyMeshError(
        f"internal error (error id {error_id}); the server logged the details",
        reason="INTERNAL",
        details={"id": error_id},
    )
