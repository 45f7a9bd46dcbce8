"""Paging the control API's listings on PostgreSQL: keyset pages (page_size + page_token) against the ways a client
had before, at two sizes of the jobs table.

    .venv/bin/python benchmarks/paging.py --jobs 10000 50000 --rounds 5

A real server (in this process, planning off) on a fresh PostgreSQL database with N jobs over 100 stations, called
over real gRPC on loopback. For each N it measures, `--rounds` times (worst and best reported):

- the whole list by following keyset pages of 1000 (what `skymesh jobs list` does);
- the whole list in one unpaged ListJobs (the only way before paging; refused above 10,000 rows now, silently cut
  to 10,000 before);
- one page of 100 from the start and from 90 % of the way through, by keyset (page_token);
- one page of 100 the way a gateway made pages before (fetch the whole unpaged list, slice it at an offset): its cost
  is the whole list's, whichever page.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from _common import create_database, drop_database

from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, TimeWindow
from skymesh.server import ServerConfig, serve
from skymesh.server.db.records import PlannedJob

STATIONS = 100


async def _fill(repo: object, jobs: int) -> None:
    now = datetime.now(UTC)
    ids = [f"st-{i:03d}" for i in range(STATIONS)]
    for sid in ids:
        await repo.create_station(  # type: ignore[attr-defined]
            Station(sid, sid, StationKind.TELESCOPE, GeoLocation(10.0, 20.0, 0.0), filters=("V",))
        )
    await repo.create_target(CelestialTarget("star", "Star", 10.0, 20.0))  # type: ignore[attr-defined]
    per_station = jobs // STATIONS
    for chunk in range(0, STATIONS, 10):
        batch = ids[chunk : chunk + 10]
        planned = [
            PlannedJob(s, "star", TimeWindow(now + timedelta(minutes=10 * j), now + timedelta(minutes=10 * j + 5)))
            for s in batch
            for j in range(per_station)
        ]
        await repo.apply_plan(batch, planned)  # type: ignore[attr-defined]


async def _timed(coro: object) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = await coro  # type: ignore[misc]
    return time.perf_counter() - t0, result


async def _follow(stub: observations_pb2_grpc.JobServiceStub, size: int) -> int:
    request = observations_pb2.ListJobsRequest(page_size=size)
    count = 0
    while True:
        reply = await stub.ListJobs(request, timeout=600)
        count += len(reply.jobs)
        if not reply.next_page_token:
            return count
        request.page_token = reply.next_page_token


async def _deep_token(stub: observations_pb2_grpc.JobServiceStub, jobs: int) -> str:
    """A token pointing 90 % of the way through the list."""
    request = observations_pb2.ListJobsRequest(page_size=1000)
    seen = 0
    while seen < jobs * 0.9 - 1000:
        reply = await stub.ListJobs(request, timeout=600)
        seen += len(reply.jobs)
        request.page_token = reply.next_page_token
    reply = await stub.ListJobs(request, timeout=600)
    return reply.next_page_token


def _span(values: list[float]) -> str:
    return f"{max(values):.3f} / {min(values):.3f}"


async def _measure(jobs: int, rounds: int) -> dict[str, str]:
    db = await create_database()
    data = Path(tempfile.mkdtemp(prefix="skymesh-paging-"))
    config = ServerConfig(
        listen="127.0.0.1:0",
        database_url=db.url,
        data_dir=str(data),
        planning_enabled=False,
        control_auth=False,
        reduction_workers=0,
        scheduler_address="127.0.0.1:9",
    )
    server = await serve(config)
    try:
        t0 = time.perf_counter()
        await _fill(server.repo, jobs)
        fill_s = time.perf_counter() - t0
        options = [("grpc.max_receive_message_length", 256 << 20)]
        async with grpc.aio.insecure_channel(server.address, options=options) as channel:
            stub = observations_pb2_grpc.JobServiceStub(channel)
            deep = await _deep_token(stub, jobs)
            keyset_all: list[float] = []
            unpaged_all: list[float] = []
            first_page: list[float] = []
            deep_page: list[float] = []
            offset_page: list[float] = []
            unpaged_note = ""
            for _ in range(rounds):  # the variants interleaved, so the machine's load falls on all alike
                seconds, count = await _timed(_follow(stub, 1000))
                assert count == jobs, (count, jobs)
                keyset_all.append(seconds)
                seconds, _reply = await _timed(stub.ListJobs(observations_pb2.ListJobsRequest(page_size=100)))
                first_page.append(seconds)
                request = observations_pb2.ListJobsRequest(page_size=100, page_token=deep)
                seconds, _reply = await _timed(stub.ListJobs(request))
                deep_page.append(seconds)
                try:
                    seconds, reply = await _timed(stub.ListJobs(observations_pb2.ListJobsRequest(), timeout=600))
                except grpc.aio.AioRpcError as exc:
                    unpaged_note = f"refused: {exc.code().name} ({exc.details()[:40]}...)"
                    continue
                assert len(reply.jobs) == jobs  # type: ignore[attr-defined]
                unpaged_all.append(seconds)
                # The former gateway's page: the whole list, then a slice at the page's offset.
                t0 = time.perf_counter()
                whole = await stub.ListJobs(observations_pb2.ListJobsRequest(), timeout=600)
                _page = list(whole.jobs[int(jobs * 0.9) : int(jobs * 0.9) + 100])
                offset_page.append(time.perf_counter() - t0)
        return {
            "jobs": f"{jobs:,}",
            "fill_s": f"{fill_s:.0f}",
            "keyset_all": _span(keyset_all),
            "unpaged_all": _span(unpaged_all) if unpaged_all else unpaged_note,
            "ratio_all": f"{min(unpaged_all) / min(keyset_all):.2f}" if unpaged_all else "-",
            "first_page": _span(first_page),
            "deep_page": _span(deep_page),
            "offset_page": _span(offset_page) if offset_page else "not possible (see unpaged)",
            "ratio_page": f"{min(offset_page) / min(deep_page):.0f}x" if offset_page else "-",
        }
    finally:
        await server.stop(grace_s=0.1)
        await drop_database(db)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [await _measure(n, args.rounds) for n in args.jobs]
    load = os.getloadavg()
    lines = [
        "# Paging the control API (ListJobs on PostgreSQL)",
        "",
        f"Command: `.venv/bin/python benchmarks/paging.py --jobs {' '.join(map(str, args.jobs))} "
        f"--rounds {args.rounds}`",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} (Python {platform.python_version()}),"
        f" {STATIONS} stations, real gRPC over loopback, server in the benchmark's process; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (2 cores shared with other work). Seconds, worst / best of "
        f"{args.rounds} rounds.",
        "",
        "| jobs | whole list, keyset pages of 1000 | whole list, one unpaged call | unpaged / keyset (best) "
        "| page of 100, first (keyset) | page of 100 at 90 % (keyset) | page of 100 at 90 %, whole list sliced "
        "by offset | sliced / keyset (best) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['jobs']} | {r['keyset_all']} | {r['unpaged_all']} | {r['ratio_all']} | {r['first_page']} "
            f"| {r['deep_page']} | {r['offset_page']} | {r['ratio_page']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
