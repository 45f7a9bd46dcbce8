"""gRPC interceptors that carry W3C trace context in metadata on unary calls and open a span per call.

`TracingServerInterceptor` continues the caller's trace (or starts one) around each unary handler, named after
the method (`skymesh.api.control.v1.JobService/Replan`); long-lived streams get no span of their own (their
messages carry trace context instead, see `tracing`). `TracingClientInterceptor` opens a client span and sends its
context as `traceparent` metadata. Both are cheap no-ops while tracing is off. Imports grpc and `tracing` only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from skymesh.observability import tracing

__all__ = ["TracingClientInterceptor", "TracingServerInterceptor"]


def _attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


class TracingServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if not tracing.AVAILABLE or handler is None or handler.unary_unary is None:
            return handler
        method = str(handler_call_details.method)
        carrier = {str(k): str(v) for k, v in (handler_call_details.invocation_metadata or ())}
        behavior: Callable[[Any, Any], Awaitable[Any]] = handler.unary_unary

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with tracing.span(method.lstrip("/"), carrier, kind="server", attributes=_attributes(method)) as span:
                try:
                    return await behavior(request, context)
                finally:
                    code = context.code() if hasattr(context, "code") else None
                    if span is not None and code is not None and code != grpc.StatusCode.OK:
                        span.set_attribute("rpc.grpc.status_code", int(code.value[0]))

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class TracingClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if not tracing.AVAILABLE:
            return await continuation(client_call_details, request)
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        with tracing.span(name.lstrip("/"), kind="client", attributes=_attributes(name)):
            carrier: dict[str, str] = {}
            tracing.inject(carrier)
            metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()), *carrier.items())
            details = grpc.aio.ClientCallDetails(
                client_call_details.method,
                client_call_details.timeout,
                metadata,
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
            call = await continuation(details, request)
            await call  # the span covers the whole call, response included
            return call
