"""The one choke point every RPC of a SkyMesh gRPC server passes: request limits and error mapping.

`GuardInterceptor` goes first in a server's interceptor list. For every method whose requests are protobuf
messages it
- replaces the request deserializer with `skymesh.api.validation.parse`, so malformed bytes, invalid UTF-8,
  oversized messages and out-of-limits fields are refused before the servicer (and any database) sees them. A
  unary request that fails is answered at once; in a request stream the failure is raised where the servicer
  reads the message (`MessageRefused`), so a stream handler can name the refused message before it answers;
- wraps the behavior so that anything it raises leaves through `skymesh.api.errors.error_for_exception`: never
  UNKNOWN, never a traceback's text; a client that left before its answer is not an error.

Imports: grpc, protobuf, `skymesh.api.errors` and `skymesh.api.validation`; no database, no service code.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from skymesh.api.errors import Translator, abort_with, error_for_exception
from skymesh.api.validation import MessageRefused, parse
from skymesh.core.errors import SkyMeshError

__all__ = ["GuardInterceptor"]

_Context = grpc.aio.ServicerContext[Any, Any]


class _Refused:
    """What a unary request deserializes to when `parse` refuses it (the deserializer itself must not raise:
    grpc would answer UNKNOWN with the exception's text)."""

    def __init__(self, refused: MessageRefused) -> None:
        self.refused = refused


def _call_over(context: _Context) -> bool:
    try:
        return bool(context.done() or context.cancelled())
    except Exception:  # a context of a call torn down under us
        return True


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Validate requests and map errors for every method of the server it is installed in."""

    def __init__(self, translate: Translator | None = None, *, deferred: frozenset[str] = frozenset()) -> None:
        """`deferred`: repeated fields whose items the servicer checks where it converts them (`parse`)."""
        self._translate = translate
        self._deferred = deferred
        # The guarded handler of each method, built once for the handler `continuation` answered (the same object
        # on every call): a reconnect storm's thousands of Connects each paid for building it again.
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def _fail(self, exc: BaseException, context: _Context, method: str) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc  # the servicer already chose the status
        error: SkyMeshError | None
        if isinstance(exc, MessageRefused):
            error = exc.error
        else:
            error = error_for_exception(exc, method=method, translate=self._translate, call_over=_call_over(context))
        if error is None:
            return
        with contextlib.suppress(grpc.aio.UsageError, grpc.aio.InternalError):
            await abort_with(context, error)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        built = self._guarded.get(method)
        if built is not None and built[0] is handler:
            return built[1]
        guarded = self._guard(handler, method)
        self._guarded[method] = (handler, guarded)
        return guarded

    def _guard(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        cls = getattr(handler.request_deserializer, "__self__", None)
        message_cls: type[Message] | None = cls if isinstance(cls, type) and issubclass(cls, Message) else None
        streaming_in = handler.request_streaming
        deserializer: Callable[[bytes], Any] | None = handler.request_deserializer
        if message_cls is not None:
            deserializer = self._stream_parser(message_cls) if streaming_in else self._unary_parser(message_cls)
        behavior: Any = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        wrapped = self._wrap(behavior, method, check_refused=not streaming_in)
        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(streaming_in, handler.response_streaming)]
        return factory(  # type: ignore[operator,no-any-return]
            wrapped, request_deserializer=deserializer, response_serializer=handler.response_serializer
        )

    def _unary_parser(self, cls: type[Message]) -> Callable[[bytes], Any]:
        deferred = self._deferred

        def deserialize(raw: bytes) -> Any:
            try:
                return parse(cls, raw, deferred=deferred)
            except MessageRefused as refused:
                return _Refused(refused)

        return deserialize

    def _stream_parser(self, cls: type[Message]) -> Callable[[bytes], Any]:
        deferred = self._deferred

        def deserialize(raw: bytes) -> Any:
            return parse(cls, raw, deferred=deferred)  # raises MessageRefused into the servicer's read

        return deserialize

    def _wrap(self, behavior: Any, method: str, *, check_refused: bool) -> Any:
        if inspect.isasyncgenfunction(behavior):

            async def stream_out(request: Any, context: _Context) -> AsyncIterator[Any]:
                if check_refused and isinstance(request, _Refused):
                    await self._fail(request.refused, context, method)
                    return
                try:
                    async for item in behavior(request, context):
                        yield item
                except Exception as exc:
                    await self._fail(exc, context, method)

            return stream_out

        async def call(request: Any, context: _Context) -> Any:
            if check_refused and isinstance(request, _Refused):
                await self._fail(request.refused, context, method)
                return None
            try:
                return await behavior(request, context)
            except Exception as exc:
                await self._fail(exc, context, method)
                return None

        return call
