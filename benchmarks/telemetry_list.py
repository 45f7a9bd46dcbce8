"""Reading stored telemetry back (StationService.ListTelemetry) on PostgreSQL, with and without the index
`ix_telemetry_station_at` (migration 0013).

    .venv/bin/python benchmarks/telemetry_list.py --stations 50 --batches 2000 --rounds 5

A real server (in this process, planning off) on a fresh PostgreSQL database: S stations, each with B batches of 10
one-second samples (channels "rotator.azimuth_deg" and "radio.snr_db" on each, "camera.temperature_c" on every 50th
sample), batches 10 s apart. Over real gRPC on loopback, `--rounds` times each (worst and best reported), with the
index and then after dropping it:

- the first page of 100 of one station (no filter);
- a page of 100 from 90 % of the way through (after = that time);
- a page of 1000 from 90 % of the way through;
- a rare channel (camera.temperature_c) over the whole history, followed to the end (tokens).

Prints Markdown; --out writes it to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from _common import create_database, drop_database

from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server import ServerConfig, serve
from skymesh.server.db.records import TelemetryIn

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SAMPLES = 10


def _batch(k: int) -> TelemetryIn:
    start = T0 + timedelta(seconds=10 * k)
    samples = []
    for i in range(SAMPLES):
        values = {"rotator.azimuth_deg": float(i), "radio.snr_db": 3.0}
        if (k * SAMPLES + i) % 50 == 0:
            values["camera.temperature_c"] = -10.0
        samples.append({"at": (start + timedelta(seconds=i)).isoformat(), "values": values})
    return TelemetryIn.from_samples(samples)


async def _fill(repo: Any, stations: int, batches: int) -> None:
    ids = [f"st-{i:03d}" for i in range(stations)]
    for sid in ids:
        await repo.create_station(Station(sid, sid, StationKind.GROUND_STATION, GeoLocation(10.0, 20.0, 0.0)))
    # Interleaved by time, as live stations write them.
    for start in range(0, batches, 100):
        items = [(sid, "boot", k + 1, _batch(k)) for k in range(start, min(batches, start + 100)) for sid in ids]
        await repo.ingest_telemetry_many(items)


async def _timed(rounds: int, call: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    times, count = [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        count = await call()
        times.append((time.perf_counter() - t) * 1000)
    return max(times), min(times), count


async def _measure(stub: Any, station: str, batches: int, rounds: int) -> list[tuple[str, float, float, int]]:
    late = timestamp_from_datetime(T0 + timedelta(seconds=10 * int(batches * 0.9)))

    async def page(size: int, **kw: Any) -> int:
        reply = await stub.ListTelemetry(stations_pb2.ListTelemetryRequest(station_id=station, page_size=size, **kw))
        return len(reply.samples)

    async def rare() -> int:
        n, token = 0, ""
        while True:
            reply = await stub.ListTelemetry(
                stations_pb2.ListTelemetryRequest(
                    station_id=station, channels=["camera.temperature_c"], page_size=1000, page_token=token
                )
            )
            n += len(reply.samples)
            token = reply.next_page_token
            if not token:
                return n

    out = []
    for label, call in (
        ("first page of 100", lambda: page(100)),
        ("page of 100 at 90 %", lambda: page(100, after=late)),
        ("page of 1000 at 90 %", lambda: page(1000, after=late)),
        ("rare channel, whole history", rare),
    ):
        worst, best, n = await _timed(rounds, call)
        out.append((label, worst, best, n))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--batches", type=int, default=2000, help="batches per station")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    db = await create_database()
    lines = [
        f"# ListTelemetry on PostgreSQL: {args.stations} stations x {args.batches} batches x {SAMPLES} samples "
        f"({args.stations * args.batches} rows)",
        "",
        f"`{' '.join(sys.argv)}` on {platform.node()} ({os.cpu_count()} CPUs); worst / best of {args.rounds}, ms.",
        "",
        "| call | index | worst ms | best ms | samples |",
        "|---|---|---|---|---|",
    ]
    try:
        with tempfile.TemporaryDirectory() as data:
            config = ServerConfig(
                listen="127.0.0.1:0",
                database_url=db.url,
                data_dir=data,
                planning_enabled=False,
                control_auth=False,
                reduction_workers=0,
            )
            server = await serve(config)
            try:
                t = time.perf_counter()
                await _fill(server.repo, args.stations, args.batches)
                fill_s = time.perf_counter() - t
                admin = await asyncpg.connect(db.dsn)
                try:
                    await admin.execute("ANALYZE telemetry")
                    async with grpc.aio.insecure_channel(server.address) as channel:
                        stub = stations_pb2_grpc.StationServiceStub(channel)
                        station = f"st-{args.stations // 2:03d}"
                        for label, worst, best, n in await _measure(stub, station, args.batches, args.rounds):
                            lines.append(f"| {label} | (station_id, at, id) | {worst:.1f} | {best:.1f} | {n} |")
                        await admin.execute("DROP INDEX ix_telemetry_station_at")
                        await admin.execute("ANALYZE telemetry")
                        for label, worst, best, n in await _measure(stub, station, args.batches, args.rounds):
                            lines.append(
                                f"| {label} | none (at; station, boot, seq) | {worst:.1f} | {best:.1f} | {n} |"
                            )
                finally:
                    await admin.close()
            finally:
                await server.stop(grace_s=0.1)
        lines += ["", f"Filling took {fill_s:.1f} s."]
    finally:
        await drop_database(db)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
