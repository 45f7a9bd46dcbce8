"""Benchmark: how long the server's planning database steps hold its event loop, in one process, no scheduler.

A fresh database (PostgreSQL with --pg URL of an empty database, else SQLite in a temporary directory) gets N stations
and M satellites of the seeded TALOS workload through the repository, then, as a plan of J jobs spread over the
stations would: `apply_plan` (first plan: all new), the push's reads and marks (`schedule_snapshots` and
`mark_dispatched_many` per 20-station slice, each snapshot built into its schedule message), then a steady `apply_plan`
(a twentieth of the jobs moved by a minute, a twentieth replaced). A `LoopLagMonitor` waking every 5 ms measures the
worst lateness of the loop during each step (the longest stretch a step held the loop, within 5 ms) and the part
of it the loop thread's CPU accounts for (`busy`), next to its wall time and its process CPU time. `--stacks`
samples where the loop thread is while it is held; `--profile STEP` profiles a step. The collector is set up as the
server's (`settle_gc`) unless `--python-gc`.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/planning_stalls.py --pg postgresql+asyncpg://postgres@127.0.0.1/x

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import os
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from skymesh.core.model import SatelliteTarget, TimeWindow
from skymesh.server.db import Repository, create_engine, migrate
from skymesh.server.db.records import PlannedJob
from skymesh.server.looplag import LoopLagMonitor, settle_gc
from skymesh.server.runloop import run as run_loop
from skymesh.server.wire import schedule_message

T = TypeVar("T")


class _Monitor(LoopLagMonitor):
    last_wake = time.monotonic()

    def record(self, late_s: float, cpu_s: float) -> None:
        self.last_wake = time.monotonic()
        super().record(late_s, cpu_s)


class StallSampler(threading.Thread):
    """--stacks: a thread that, while the loop monitor has not woken for over 50 ms, samples the loop thread's stack
    every 10 ms and counts the innermost frames of this project and SQLAlchemy (where the stalls are)."""

    def __init__(self, monitor: _Monitor) -> None:
        super().__init__(daemon=True)
        self.monitor = monitor
        self.loop_thread = threading.get_ident()
        self.counts: collections.Counter[str] = collections.Counter()

    def run(self) -> None:
        while True:
            time.sleep(0.01)
            if time.monotonic() - self.monitor.last_wake > 0.05:
                frame = sys._current_frames().get(self.loop_thread)
                where = []
                while frame is not None and len(where) < 4:
                    name = frame.f_code.co_filename
                    if "skymesh" in name or "sqlalchemy" in name or "asyncpg" in name:
                        where.append(f"{Path(name).name}:{frame.f_lineno}:{frame.f_code.co_name}")
                    frame = frame.f_back
                self.counts[" < ".join(where)] += 1


PROFILE: set[str] = set()  # steps to profile (--profile): their cProfile, summed, goes to stderr at the end
_PROFILER = cProfile.Profile()


async def _timed(out: dict[str, Any], name: str, monitor: LoopLagMonitor, step: Callable[[], Awaitable[T]]) -> T:
    mark = monitor.mark()
    wall, cpu = time.perf_counter(), time.process_time()
    if name in PROFILE:
        _PROFILER.enable()
    value = await step()
    _PROFILER.disable()
    await asyncio.sleep(monitor.interval_s * 2)  # the monitor's wake-up after the step's last slice
    entry = out.setdefault(
        name, {"wall_s": 0.0, "cpu_s": 0.0, "worst_lag_s": 0.0, "worst_busy_s": 0.0, "worst_gc_s": 0.0}
    )
    entry["wall_s"] = round(entry["wall_s"] + time.perf_counter() - wall, 3)
    entry["cpu_s"] = round(entry["cpu_s"] + time.process_time() - cpu, 3)
    worst = monitor.worst_since(mark)
    entry["worst_lag_s"] = round(max(entry["worst_lag_s"], worst.late_s), 3)
    entry["worst_busy_s"] = round(max(entry["worst_busy_s"], worst.busy_s), 3)
    entry["worst_gc_s"] = round(max(entry["worst_gc_s"], worst.gc_s), 3)
    return value


async def run(
    stations: int, satellites: int, jobs: int, database_url: str, *, stacks: bool = False, server_gc: bool = True
) -> dict[str, Any]:
    from skymesh.scheduler.scenario import generate_talos

    req = generate_talos(stations=stations, satellites=satellites, hours=24, seed=1)
    sats = [t.target for t in req.targets if isinstance(t.target, SatelliteTarget)]
    engine = create_engine(database_url)
    await migrate(engine)
    repo = Repository(engine)
    if server_gc:
        settle_gc()  # as `skymesh server` does after start
    monitor = _Monitor(interval_s=0.005)
    lag_task = asyncio.create_task(monitor.run())
    sampler = StallSampler(monitor)
    if stacks:
        sampler.start()
    out: dict[str, Any] = {"stations": stations, "satellites": satellites, "jobs": jobs}
    try:
        for st in req.stations:
            await _timed(out, "create_station", monitor, lambda st=st: repo.create_station(st))
        for sat in sats:
            await _timed(out, "create_target", monitor, lambda sat=sat: repo.create_target(sat))
        ids = [s.station_id for s in req.stations]
        now = repo.clock.now()
        per_station = max(1, jobs // len(ids))
        planned = []
        for n, sid in enumerate(ids):
            for k in range(per_station):
                start = now + timedelta(minutes=20 * k + n % 10 + 10)
                planned.append(
                    PlannedJob(
                        sid,
                        sats[(n * 7 + k * 13) % len(sats)].target_id,
                        TimeWindow(start, start + timedelta(minutes=8)),
                    )
                )
        outcome = await _timed(out, "apply_plan first", monitor, lambda: repo.apply_plan(ids, planned))
        out["first"] = {"created": outcome.created, "kept": outcome.kept, "cancelled": outcome.cancelled}

        async def push() -> None:
            targets: dict[str, Any] = {}
            for i in range(0, len(ids), 20):
                snaps = await _timed(
                    out,
                    "schedule_snapshots",
                    monitor,
                    lambda i=i: repo.schedule_snapshots(ids[i : i + 20], targets=targets),
                )
                await _timed(
                    out,
                    "mark_dispatched_many",
                    monitor,
                    lambda snaps=snaps: repo.mark_dispatched_many(
                        {s.station_id: [job.job_id for job, _t in s.jobs] for s in snaps}
                    ),
                )

                async def build(snaps: Any = snaps) -> None:
                    for s in snaps:
                        schedule_message(s)

                await _timed(out, "schedule_message", monitor, build)

        await push()
        steady = []
        for n, p in enumerate(planned):
            if n % 20 == 0:
                p = PlannedJob(
                    p.station_id, p.target_id, TimeWindow(p.window.start + timedelta(minutes=1), p.window.end)
                )
            elif n % 20 == 1:
                p = PlannedJob(
                    p.station_id,
                    sats[(n * 3) % len(sats)].target_id,
                    TimeWindow(p.window.start + timedelta(hours=30), p.window.end + timedelta(hours=30)),
                )
            steady.append(p)
        outcome = await _timed(out, "apply_plan steady", monitor, lambda: repo.apply_plan(ids, steady))
        out["steady"] = {"created": outcome.created, "kept": outcome.kept, "cancelled": outcome.cancelled}
    finally:
        lag_task.cancel()
        await repo.wait_idle()
        await engine.dispose()
    out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    if stacks:
        out["stalled_at"] = {where: n * 0.01 for where, n in sampler.counts.most_common(15)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="200x1000", help="STATIONSxSATELLITES")
    parser.add_argument("--jobs", type=int, default=12_000)
    parser.add_argument(
        "--python-gc", action="store_true", help="keep Python's default collector (not the server's settle_gc)"
    )
    parser.add_argument("--stacks", action="store_true", help="sample where the loop is held (seconds per place)")
    parser.add_argument("--profile", action="append", default=[], help="a step to profile (repeatable)")
    parser.add_argument("--pg", default="", help="a PostgreSQL asyncpg URL of an empty database (default SQLite)")
    args = parser.parse_args()
    n, m = (int(x) for x in args.size.lower().split("x"))
    PROFILE.update(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.pg or f"sqlite+aiosqlite:///{Path(tmp) / 'stalls.sqlite3'}"
        print(
            json.dumps(run_loop(run(n, m, args.jobs, url, stacks=args.stacks, server_gc=not args.python_gc))),
            flush=True,
        )  # the server's loop (uvloop)
    if PROFILE:
        pstats.Stats(_PROFILER, stream=sys.stderr).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
