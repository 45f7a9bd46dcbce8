"""Client channels to the SkyMesh server's control API: a user token on every call, TLS when asked for.

`control_channel(address, token=..., tls=...)` returns a `grpc.aio.Channel` whose calls all carry
`authorization: Bearer <token>` (unary and streaming alike, server reflection included), over TLS verified against
the given roots (or the system's) when `tls` is set. Used by the `skymesh` client commands, the demo and tests; the
web gateway can build its per-user channels the same way.

Imports grpc only; never the server, scheduler or agent packages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["TlsOptions", "control_channel"]


@dataclass(frozen=True)
class TlsOptions:
    """TLS for a client channel. `root_certificates` None: the system's roots. `server_name`: the name the server's
    certificate must carry when it differs from the address's host (an IP address, a tunnel)."""

    root_certificates: bytes | None = None
    server_name: str | None = None
    # A client certificate (PEM) and its key, for a server that requires mutual TLS (`tls_client_ca_file`).
    certificate_chain: bytes | None = None
    private_key: bytes | None = None


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(tuple(details.metadata) if details.metadata else ()))
    if "authorization" not in metadata:  # a caller's own credentials win
        metadata.add("authorization", f"Bearer {token}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# grpc.aio files an interceptor under the first of the four kinds it is an instance of, so each kind needs its own.
class _UnaryUnaryToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


class _UnaryStreamToken(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


class _StreamUnaryToken(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(_with_token(details, self._token), requests)


class _StreamStreamToken(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(_with_token(details, self._token), requests)


def control_channel(
    address: str,
    *,
    token: str | None = None,
    tls: TlsOptions | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> grpc.aio.Channel:
    """A channel to `address` ("host:port") sending `token` on every call; TLS if `tls` is given."""
    interceptors: Any = (
        [kind(token) for kind in (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken, _StreamStreamToken)]
        if token
        else None
    )
    opts = list(options or [])
    if tls is None:
        return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)
    if tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )
    return grpc.aio.secure_channel(address, credentials, options=opts, interceptors=interceptors)
