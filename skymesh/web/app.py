"""Assembling and running the gateway: `create_app(config)` builds the FastAPI application (JSON API under
`/api/v1`, OpenAPI at `/docs`, live events, the dashboard's static files at `/`), and `serve(config)` runs it with
uvicorn. The gateway is a gRPC client of the server like any other: it never imports `skymesh.server` and never
opens the database."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skymesh.observability.metrics import WebMetrics
from skymesh.web import api, live, people
from skymesh.web.client import ControlClient
from skymesh.web.config import WebConfig
from skymesh.web.errors import error_body, install_error_handlers

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


class BodyLimit:
    """413 for a body over `limit` bytes: refused on its Content-Length before the handler runs, or cut off while it
    streams in (chunked uploads), so a huge body is never buffered."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self._refuse(scope, receive, send, close=False)
                    # Read (and drop) a bounded rest so the client sees the answer rather than a reset connection.
                    while message.get("more_body") and seen < 16 * self.limit:
                        message = await receive()
                        seen += len(message.get("body", b""))
                    return {"type": "http.disconnect"}  # the handler stops reading; its answer is dropped
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        with contextlib.suppress(ClientDisconnect):
            await self.app(scope, limited, guarded)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, close: bool = True) -> None:
        body = error_body("PAYLOAD_TOO_LARGE", f"request body is larger than {self.limit} bytes", "body")
        headers = {"connection": "close"} if close else {}
        await JSONResponse(body, status_code=413, headers=headers)(scope, receive, send)


def create_app(config: WebConfig) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = ControlClient(config)
        try:
            yield
        finally:
            await app.state.client.close()

    app = FastAPI(
        title="SkyMesh gateway",
        version="1",
        description="JSON API for people and scripts: the DATAS backbone's endpoints plus what the dashboard needs. "
        "Log in with POST /api/v1/login (cookie + X-CSRF-Token on changes) or send "
        "'Authorization: Bearer <personal token>'. Errors are {code, message, field}.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.metrics = metrics = WebMetrics.start()
    install_error_handlers(app)
    app.include_router(people.router)
    app.include_router(api.router)
    app.include_router(live.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready: the control server answers its health check (the gateway is useless without it)."""
        try:
            await app.state.client.server_health()
        except Exception as exc:  # any failure to reach it is "not ready", with what failed
            return JSONResponse({"status": "not ready", "server": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        """This gateway's own registry only (Prometheus text format)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    @app.get("/globe", include_in_schema=False)
    async def globe() -> FileResponse:
        """The opt-in 3D view: CesiumJS compiles WebAssembly, allowed on this page only."""
        return FileResponse(
            STATIC_DIR / "globe.html", headers={"cache-control": "no-cache", "content-security-policy": _GLOBE_CSP}
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(_SecurityHeaders)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(_RequestMetrics, metrics=metrics)
    return app


class _RequestMetrics:
    """Counts and times every HTTP request under its route template (unmatched paths count as "other")."""

    def __init__(self, app: ASGIApp, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                route = _route_of(scope)
                self.metrics.request_duration.labels(route).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_of(scope)
            self.metrics.requests.labels(scope.get("method", ""), route, f"{status[0] // 100}xx").inc()


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/static" if str(scope.get("path", "")).startswith("/static/") else "other"


# The 3D page's policy: the dashboard's, plus WebAssembly compilation (CesiumJS's decoders) and blob: images, workers
# and worker scripts, which Cesium builds from its own code and from what it fetched from this origin. Still nothing
# from any other origin, and no string evaluated as JavaScript.
_GLOBE_CSP = ("default-src 'self'; script-src 'self' blob: 'wasm-unsafe-eval'; worker-src 'self' blob:; "
              "img-src 'self' data: blob:; connect-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")  # fmt: skip


class _SecurityHeaders:
    """Everything the page needs ships with it: forbid other origins, framing and sniffing. A response that sets its
    own Content-Security-Policy (the 3D page) keeps it."""

    _CSP = (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")  # fmt: skip
    _HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                own_csp = any(k.lower() == self._CSP[0] for k, _v in headers)
                message["headers"] = [*headers, *self._HEADERS, *([] if own_csp else [self._CSP])]
            await send(message)

        await self.app(scope, receive, with_headers)


async def serve(config: WebConfig, **uvicorn_options: Any) -> None:
    """Run the gateway until cancelled (or SIGINT/SIGTERM)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            log_level="info",
            proxy_headers=True,
            timeout_graceful_shutdown=3,
            ssl_certfile=config.tls_cert_file or None,
            ssl_keyfile=config.tls_key_file or None,
            **uvicorn_options,
        )
    )
    scheme = "https" if config.tls_cert_file else "http"
    log.info("skymesh web on %s://%s (server %s)", scheme, config.listen, config.server_address)
    await server.serve()
