"""`skymesh scheduler`: run the scheduler gRPC service (planning, ranked lists, explanations)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "scheduler", help="run the scheduler service (greedy + CP-SAT planning over gRPC)"
    )
    p.add_argument("--listen", default="127.0.0.1:50052", help="host:port to serve gRPC on (default %(default)s)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    p.add_argument(
        "--max-concurrent", type=int, default=1, help="plans computed at once (each is CPU-bound; default 1)"
    )
    p.add_argument(
        "--visibility-cache-mb",
        type=float,
        default=512.0,
        help="memory for satellite passes reused by the next plans (0: none; default %(default)s)",
    )
    p.add_argument(
        "--no-isolate", action="store_true", help="run CP-SAT in-process (no child process, memory cap or watchdog)"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from skymesh.observability.tracing import configure_tracing
    from skymesh.scheduler.service import serve

    configure_tracing("scheduler")  # OTLP when SKYMESH_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT is set
    asyncio.run(
        serve(
            args.listen,
            metrics_port=args.metrics_port,
            isolate=not args.no_isolate,
            max_concurrent=max(1, args.max_concurrent),
            visibility_cache_mb=args.visibility_cache_mb,
        )
    )
    return 0
