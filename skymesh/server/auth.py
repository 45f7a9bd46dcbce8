"""Who is calling: station API keys for the agent service, user tokens and roles for the control API.

Agents are authenticated at the start of each RPC (`authenticate_station`), because the stream handler needs the
station identity. Control calls go through `ControlAuthInterceptor`, which checks the token and the role a method
needs before the servicer runs, and makes the caller's name available to the servicer as `current_actor()` for the
audit log.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from skymesh.api.errors import abort_with
from skymesh.core.errors import PermissionDenied, SkyMeshError, Unauthenticated
from skymesh.server.db import Repository
from skymesh.server.db.records import Role

__all__ = ["ControlAuthInterceptor", "authenticate_station", "bearer_token", "current_actor", "required_role"]

_ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("skymesh_actor", default="system")
_CONTROL_PREFIX = "/skymesh.api.control."
_ADMIN_METHODS = frozenset({"CreateStation", "IssueStationKey", "RevokeStationKey", "SetPassword", "ListAuditEntries"})
# Callable without a token: the password is the credential.
_PUBLIC_METHODS = frozenset({"/skymesh.api.control.v1.AuthService/Login"})
# Any signed-in user, whatever the name suggests.
_OBSERVER_METHODS = frozenset({"Watch", "WhoAmI", "Logout", "CreatePersonalToken"})


def current_actor() -> str:
    """The authenticated caller of the control RPC being served ("user:<id>", or "local" without control auth)."""
    return _ACTOR.get()


def bearer_token(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise Unauthenticated("missing credentials: send metadata 'authorization: Bearer <key>'")


async def authenticate_station(repo: Repository, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, str]:
    """(station_id, key_id) of the calling agent; raises Unauthenticated."""
    return await repo.authenticate_station(bearer_token(context))


def required_role(method: str) -> Role:
    name = method.rsplit("/", 1)[-1]
    if name in _ADMIN_METHODS:
        return Role.ADMIN
    if name.startswith(("Get", "List")) or name in _OBSERVER_METHODS:
        return Role.OBSERVER
    return Role.OPERATOR


class ControlAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Checks user tokens and roles on `skymesh.api.control.*` methods; leaves every other service alone."""

    def __init__(self, repo: Repository, *, required: bool) -> None:
        self._repo = repo
        self._required = required

    async def _authorize(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> str:
        if not self._required:
            return "local"
        user = await self._repo.authenticate_user(bearer_token(context))
        need = required_role(method)
        if user.role < need:
            raise PermissionDenied(f"{method.rsplit('/', 1)[-1]} needs role {need.name.lower()}")
        return f"user:{user.user_id}"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(_CONTROL_PREFIX) or method in _PUBLIC_METHODS:
            return handler
        if handler.unary_stream is not None:
            return self._guard_stream(handler, method)
        if handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                actor = await self._authorize(context, method)
            except SkyMeshError as exc:
                await abort_with(context, exc)
                raise AssertionError("unreachable: abort raises") from exc
            token = _ACTOR.set(actor)
            try:
                return await behavior(request, context)  # type: ignore[arg-type,misc]
            finally:
                _ACTOR.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _guard_stream(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        """The same check for server-streaming methods (EventService.Watch), before the first message."""
        stream = handler.unary_stream
        assert stream is not None

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                actor = await self._authorize(context, method)
            except SkyMeshError as exc:
                await abort_with(context, exc)
                raise AssertionError("unreachable: abort raises") from exc
            # No reset: a cancelled stream is finalised in another context, and each RPC runs in its own task (its
            # own copy of the context), so the value cannot leak to another call.
            _ACTOR.set(actor)
            async for item in stream(request, context):  # type: ignore[arg-type,attr-defined]
                yield item

        return grpc.unary_stream_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
