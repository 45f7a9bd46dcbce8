"""A process's HTTP endpoint for SREs: `/metrics` (its own registry), `/healthz` (alive) and `/readyz` (ready).

- `/metrics`: the registry in the Prometheus text format (OpenMetrics when the scraper asks for it).
- `/healthz`: 200 while the process's event loop still runs callbacks (a wedged loop fails it within 2 s), so a
  supervisor restarts a process that is up but stuck; 200 at once for a process without a loop.
- `/readyz`: 200 when every readiness check passes (the server: database and scheduler reachable), else 503 with
  one line per failing check, so a load balancer stops sending work to it.
- anything else: 404.

The endpoint runs in its own daemon thread (prometheus_client's collectors are thread-safe); checks run on the
process's event loop. Imports only the standard library and prometheus_client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["Endpoint", "ReadinessCheck", "start_endpoint"]

log = logging.getLogger(__name__)

# A readiness check returns None when fine, or a short reason why not.
ReadinessCheck = Callable[[], Awaitable[str | None]]

_CHECK_TIMEOUT_S = 2.0


@dataclass
class Endpoint:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port (blocks for at most one poll interval)."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_endpoint(
    registry: CollectorRegistry,
    *,
    port: int = 0,
    addr: str = "127.0.0.1",
    loop: asyncio.AbstractEventLoop | None = None,
    readiness: Mapping[str, ReadinessCheck] | None = None,
) -> Endpoint:
    """Serve `registry` and the health endpoints on `addr:port` (0 picks a free port) from a daemon thread.

    `loop` is the process's event loop (the running one if called from a coroutine); readiness checks run on it.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
    checks = dict(readiness or {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(registry), content_type)
            elif path == "/healthz":
                problem = _loop_alive(loop)
                self._reply(503 if problem else 200, (problem or "ok").encode() + b"\n")
            elif path == "/readyz":
                failures = _ready(loop, checks)
                body = "".join(f"{name}: {why}\n" for name, why in failures) or "ok\n"
                self._reply(503 if failures else 200, body.encode())
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="skymesh-metrics", daemon=True)
    thread.start()
    return Endpoint(server, thread)


def _loop_alive(loop: asyncio.AbstractEventLoop | None) -> str | None:
    if loop is None:
        return None
    if loop.is_closed():
        return "event loop closed"

    async def _ping() -> None:
        return None

    try:
        asyncio.run_coroutine_threadsafe(_ping(), loop).result(timeout=_CHECK_TIMEOUT_S)
    except (concurrent.futures.TimeoutError, TimeoutError):
        return f"event loop did not answer within {_CHECK_TIMEOUT_S:.0f} s"
    except RuntimeError as exc:
        return f"event loop: {exc}"
    return None


def _ready(loop: asyncio.AbstractEventLoop | None, checks: Mapping[str, ReadinessCheck]) -> list[tuple[str, str]]:
    if not checks:
        return []
    if loop is None or loop.is_closed():
        return [("process", "no event loop to run readiness checks on")]

    async def _all() -> list[tuple[str, str]]:
        async def one(name: str, check: ReadinessCheck) -> tuple[str, str] | None:
            try:
                async with asyncio.timeout(_CHECK_TIMEOUT_S):
                    why = await check()
            except TimeoutError:
                why = f"no answer within {_CHECK_TIMEOUT_S:.0f} s"
            except Exception as exc:  # a readiness check reports; it never takes the endpoint down
                why = f"{type(exc).__name__}: {exc}"
            return None if why is None else (name, why)

        results = await asyncio.gather(*(one(n, c) for n, c in checks.items()))
        return [r for r in results if r is not None]

    try:
        return asyncio.run_coroutine_threadsafe(_all(), loop).result(timeout=_CHECK_TIMEOUT_S + 1)
    except (concurrent.futures.TimeoutError, TimeoutError):
        return [("process", "event loop did not run the readiness checks in time")]
    except RuntimeError as exc:
        return [("process", f"event loop: {exc}")]
