"""`skymesh agent --config FILE`: run one station agent until SIGINT/SIGTERM.

Heavy imports (grpc, numpy, the agent) happen inside the handler so `skymesh --help` stays fast on a Raspberry Pi.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run a station agent (ground station or telescope)",
        description="Run a station agent: keeps the stream to the server, runs its schedule from its own clock.",
    )
    parser.add_argument("--config", required=True, help="agent YAML file (SKYMESH_AGENT_* variables override it)")
    parser.add_argument("--check", action="store_true", help="validate the configuration, print it and exit")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from skymesh.agent.config import load_config

    config = load_config(args.config)
    if args.check:
        print(f"station {config.station_id} ({config.kind.name.lower()}) -> {config.server_address}")
        print(f"state: {config.database_path}")
        for role in ("rotator", "radio", "mount", "camera"):
            print(f"{role}: {getattr(config.drivers, role).kind}")
        return 0
    return asyncio.run(_main(config))


async def _main(config: object) -> int:
    import asyncio
    import contextlib
    import logging
    import signal

    from skymesh.agent.config import AgentConfig
    from skymesh.agent.runtime import run_agent

    assert isinstance(config, AgentConfig)
    log = logging.getLogger("skymesh.agent")
    from skymesh.observability.tracing import configure_tracing

    configure_tracing("agent")  # only with OpenTelemetry installed and an OTLP endpoint set
    endpoint = None
    if config.metrics_port is not None:
        # prometheus_client (about 5 MB resident) only when metrics are exported (`skymesh.agent.metrics`).
        from skymesh.agent.gauges import StoreGauges
        from skymesh.observability.endpoint import start_endpoint
        from skymesh.observability.metrics import AgentMetrics

        # This process's own registry: only agent metrics, never the server's or the scheduler's.
        metrics = AgentMetrics.start()
        metrics.station_info.info({"station_id": config.station_id, "kind": config.kind.name.lower()})
        metrics.registry.register(StoreGauges(config.database_path))

        async def stream_up() -> str | None:
            up = metrics.registry.get_sample_value("skymesh_agent_connected")
            return None if up == 1 else "stream to the server is down"

        endpoint = start_endpoint(metrics.registry, port=config.metrics_port, readiness={"stream": stream_up})
        log.info("metrics on http://127.0.0.1:%d/metrics (health: /healthz, /readyz)", endpoint.port)
    task = asyncio.create_task(run_agent(config), name="agent")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("agent %s stopped", config.station_id)
        return 0
    finally:
        if endpoint is not None:
            endpoint.close()
    return 0
