"""Benchmark: does one station sending the largest batches the contract allows slow the other stations down?

A real server (SQLite in a temporary directory, or PostgreSQL with --pg URL) and raw agents generated from proto:
`--quiet` stations each send one small telemetry batch and wait for its ack, over and over; one station sends
batches of the largest size `Welcome.max_message_bytes` allows (about 13,000 values) as fast as its credit and the
server's pacing let it. Reports the quiet stations' ack latency (p50, p99, max) with and without the heavy sender,
and what the heavy sender got through. Issue 7 measured, before the limits: ack p50 0.03 s -> 2.4 s, max 5.2 s.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/stream_load.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import grpc

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.validation import AGENT_MAX_MESSAGE_BYTES
from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server import ServerConfig, serve


def _hello(station_id: str, boot_id: str) -> agent_pb2.ConnectRequest:
    return agent_pb2.ConnectRequest(
        hello=agent_pb2.Hello(station_id=station_id, agent_version="bench", protocol_version=1, boot_id=boot_id)
    )


def _batch(seq: int, boot_id: str, channels: int, samples: int) -> agent_pb2.ConnectRequest:
    request = agent_pb2.ConnectRequest(seq=seq, boot_id=boot_id)
    for i in range(samples):
        sample = request.telemetry.samples.add(values={f"c{j:02d}.value": float(i + j) for j in range(channels)})
        sample.at.FromSeconds(1_790_000_000 + i)
    return request


def _largest(boot_id: str) -> tuple[int, int]:
    """(channels, samples) of about the largest telemetry batch within the advertised size."""
    for channels in range(64, 0, -1):
        if _batch(1, boot_id, channels, 1000).ByteSize() <= AGENT_MAX_MESSAGE_BYTES - 64:
            return channels, 1000
    return 1, 1000


async def _station(address: str, key: str, station_id: str, stop: asyncio.Event, heavy: bool) -> list[float]:
    boot = str(uuid.uuid4())
    channels, samples = _largest(boot) if heavy else (3, 1)
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).Connect(metadata=(("authorization", f"Bearer {key}"),))
        await call.write(_hello(station_id, boot))
        await call.read()  # Welcome
        seq = 0
        while not stop.is_set():
            seq += 1
            message = _batch(seq, boot, channels, samples)
            started = time.perf_counter()
            await call.write(message)
            while True:
                response = await call.read()
                if response.WhichOneof("body") == "upstream_ack":
                    break
            latencies.append(time.perf_counter() - started)
        call.cancel()
    return latencies


async def _run(seconds: float, quiet: int, with_heavy: bool, database_url: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(
            listen="127.0.0.1:0",
            database_url=database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}",
            data_dir=tmp,
            planning_enabled=False,
            scheduler_address="127.0.0.1:9",
            upstream_rate_per_s=1000.0,
            upstream_burst=1000,
        )
        server = await serve(config)
        try:
            keys = {}
            for i in range(quiet + 1):
                sid = f"bench-{uuid.uuid4().hex[:8]}-{i}"
                await server.repo.create_station(
                    Station(sid, sid, StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0))
                )
                keys[sid] = (await server.repo.issue_station_key(sid)).api_key
            ids = list(keys)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_station(server.address, keys[s], s, stop, False)) for s in ids[:quiet]]
            heavy = (
                asyncio.create_task(_station(server.address, keys[ids[-1]], ids[-1], stop, True))
                if with_heavy
                else None
            )
            await asyncio.sleep(seconds)
            stop.set()
            quiet_latencies = [x for lat in await asyncio.gather(*tasks) for x in lat]
            heavy_latencies = await heavy if heavy is not None else []
        finally:
            await server.stop(grace_s=0.5)
    quiet_latencies.sort()
    return {
        "heavy_sender": with_heavy,
        "quiet_acks": len(quiet_latencies),
        "quiet_ack_p50_s": round(statistics.median(quiet_latencies), 4),
        "quiet_ack_p99_s": round(quiet_latencies[int(0.99 * (len(quiet_latencies) - 1))], 4),
        "quiet_ack_max_s": round(quiet_latencies[-1], 4),
        "heavy_batches": len(heavy_latencies),
        "heavy_ack_p50_s": round(statistics.median(heavy_latencies), 4) if heavy_latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quiet", type=int, default=4, help="stations sending small batches")
    parser.add_argument("--pg", default="", help="a PostgreSQL asyncpg URL of an empty database (default SQLite)")
    args = parser.parse_args()
    for with_heavy in (False, True):
        print(json.dumps(asyncio.run(_run(args.seconds, args.quiet, with_heavy, args.pg))))


if __name__ == "__main__":
    main()
