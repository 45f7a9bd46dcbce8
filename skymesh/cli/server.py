"""`skymesh server`: run the control plane (gRPC API, database migrations at start, planner, liveness, metrics).

    skymesh server [--config FILE] [--listen ADDR] [--db URL] [--data-dir DIR] [--scheduler ADDR] [--metrics-port N]

Settings come from the YAML file, then SKYMESH_* environment variables (SKYMESH_DATABASE_URL, SKYMESH_LISTEN, ...),
then these flags. SIGINT/SIGTERM drain connected agents and stop gracefully.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "server",
        help="run the control-plane server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file with server settings (top level or under 'server:')")
    parser.add_argument("--listen", help="gRPC listen address (default 127.0.0.1:50051)")
    parser.add_argument(
        "--db", dest="database_url", help="database URL (sqlite+aiosqlite:///... or postgresql+asyncpg://...)"
    )
    parser.add_argument("--data-dir", help="directory for the default SQLite file and uploads (default ./var)")
    parser.add_argument("--scheduler", dest="scheduler_address", help="scheduler service address")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port (0: any free port)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from skymesh.server import load_config

    config = load_config(
        args.config,
        overrides={
            "listen": args.listen,
            "database_url": args.database_url,
            "data_dir": args.data_dir,
            "scheduler_address": args.scheduler_address,
            "metrics_port": args.metrics_port,
        },
    )
    from skymesh.observability.tracing import configure_tracing

    configure_tracing("server")  # OTLP when SKYMESH_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT is set
    from skymesh.server.runloop import run

    run(_serve(config))  # on uvloop when installed
    return 0


async def _serve(config: Any) -> None:
    import asyncio
    import signal

    from skymesh.server import serve
    from skymesh.server.looplag import settle_gc

    running = await serve(config)
    settle_gc()  # full garbage collections held the event loop 0.4 s during plans (issue 8)
    print(f"skymesh server listening on {running.address}", flush=True)
    if running.metrics_port is not None:
        print(f"metrics on http://{config.metrics_addr}:{running.metrics_port}/metrics", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()
