"""Cost of tracing on the agent stream's hot path: upstream messages/s through a real server, tracing off, sampled
at 1 %, and at 100 %.

A real `skymesh server` (in-process, SQLite, real gRPC on loopback) and one raw agent stream sending telemetry
batches (the reliable upstream path: receive, dedup, commit, ack) with up to `max_unacked` in flight. Tracing on
means the process's tracer provider is installed as `configure_tracing` does for OTLP (parent-based ratio sampler,
batch processor), with an exporter that drops spans, so export I/O is not measured, only the spans' cost. Metrics
stay on in every mode (they are always on). Each mode runs in its own process (one tracer provider per process),
modes interleaved over `--rounds`, and the ratios are taken against the tracing-off median of the same run:

    .venv/bin/python benchmarks/tracing.py                  # all modes, writes benchmarks/results/tracing.md
    .venv/bin/python benchmarks/tracing.py --mode 0.01      # one mode, prints JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODES = ("off", "0.01", "1.0")


async def _measure(mode: str, messages: int) -> dict[str, Any]:
    import grpc

    from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.convert import timestamp_from_datetime
    from skymesh.core.model import GeoLocation, Station, StationKind
    from skymesh.observability import tracing
    from skymesh.server import ServerConfig, serve

    if mode != "off":
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        tracing.configure_tracing("bench", env={}, exporter=Drop(), sample_ratio=float(mode), batch=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(
            listen="127.0.0.1:0",
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.sqlite3",
            data_dir=tmp,
            planning_enabled=False,
            control_auth=False,
            heartbeat_interval_s=30.0,
            shutdown_grace_s=0.2,
        )
        server = await serve(config)
        try:
            await server.repo.create_station(
                Station("gs-bench", "Bench", StationKind.GROUND_STATION, GeoLocation(52.0, 4.4, 10.0), bands=("UHF",))
            )
            key = (await server.repo.issue_station_key("gs-bench")).api_key
            boot = str(uuid.uuid4())
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = agent_pb2_grpc.AgentServiceStub(channel).Connect(metadata=(("authorization", f"Bearer {key}"),))
                await call.write(
                    agent_pb2.ConnectRequest(
                        hello=agent_pb2.Hello(
                            station_id="gs-bench",
                            agent_version="bench",
                            protocol_version=1,
                            boot_id=boot,
                            upstream_next_seq=1,
                            agent_time=timestamp_from_datetime(datetime.now(UTC)),
                            capabilities=agent_pb2.Capabilities(kind=common_pb2.STATION_KIND_GROUND_STATION),
                        )
                    )
                )
                welcome = await call.read()
                window = max(1, welcome.welcome.max_unacked)
                acked = 0
                sent = 0
                started = time.perf_counter()

                def batch(seq: int) -> Any:
                    sample = agent_pb2.TelemetrySample(
                        at=timestamp_from_datetime(datetime.now(UTC)), values={"radio.snr_db": 10.0 + seq % 7}
                    )
                    return agent_pb2.ConnectRequest(
                        boot_id=boot, seq=seq, telemetry=agent_pb2.TelemetryBatch(boot_id=boot, samples=[sample])
                    )

                while acked < messages:
                    while sent < messages and sent - acked < window:
                        sent += 1
                        await call.write(batch(sent))
                    reply = await call.read()
                    if reply.WhichOneof("body") == "upstream_ack":
                        acked = max(acked, reply.upstream_ack.committed_seq)
                elapsed = time.perf_counter() - started
                await call.done_writing()  # the server ends the stream cleanly on our half-close
                while await call.read() is not grpc.aio.EOF:  # type: ignore[attr-defined]
                    pass
        finally:
            await server.stop(grace_s=0.1)
    return {"mode": mode, "messages": messages, "seconds": elapsed, "messages_per_s": messages / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tracing.md"))
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(asyncio.run(_measure(args.mode, args.messages))))
        return
    runs: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--mode", mode, "--messages", str(args.messages)],
                check=True,
                capture_output=True,
                text=True,
            )
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1])["messages_per_s"])
    base = statistics.median(runs["off"])
    lines = [
        "# Tracing cost on the stream hot path (issue 10)",
        "",
        "Command: `.venv/bin/python benchmarks/tracing.py` (see its docstring for the setup).",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} ({platform.python_version()}), "
        f"{args.messages} telemetry batches per run, {args.rounds} rounds, modes interleaved; the machine's 2 "
        "cores were shared with other work, so compare ratios within this run, not absolute rates across runs.",
        "",
        "| tracing | median messages/s | runs | ratio to off |",
        "|---|---|---|---|",
    ]
    for mode in MODES:
        label = {"off": "off", "0.01": "sampled 1 %", "1.0": "sampled 100 %"}[mode]
        med = statistics.median(runs[mode])
        lines.append(f"| {label} | {med:.0f} | {', '.join(f'{r:.0f}' for r in runs[mode])} | {med / base:.3f} |")
    lines += [
        "",
        "Read the runs column before the ratios: on a shared machine the run-to-run spread is wide, and a difference "
        "smaller than it (e.g. 1 % sampling against off) is noise, not a cost or a gain.",
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
