"""Migration 0019 on a large telemetry table: how long the upgrade takes, its longest transaction, and how long a
telemetry write waits while it runs.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/telemetry_migration.py --rows 1000000 --days 5 --runs 2 \\
        --tree /work/main --tree $PWD

A database at revision 0018 is filled once with N batches of one station spread evenly over D days (a 336-byte blob
each, one INSERT ... SELECT), then copied (CREATE DATABASE ... TEMPLATE) for every run. Each run upgrades its copy
to head in a child process whose PYTHONPATH is the `--tree` given (so the before and after migration, env.py and
`migrate()` are each tree's own), the trees alternating. Meanwhile, on other connections of this process:

- a writer inserts one new batch (today's `at`) into `telemetry` every 50 ms and records how long each insert took:
  its longest wait is what the migration's locks cost the hot path;
- a sampler reads `pg_stat_activity` every 100 ms: the age of the oldest open transaction of the child (the
  migration's longest transaction, as seen to within 0.1 s).

Last, every row must be there once: N + the writer's rows, no duplicate id. Wall seconds; load average at start and
end of each run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime

import asyncpg
from _common import PG_DSN, create_database, drop_database

from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server.db import Repository, create_engine, migrate

_UPGRADE = (
    "import asyncio, logging, sys; import skymesh; from skymesh.server.db import create_engine, migrate\n"
    "logging.basicConfig(level=logging.INFO, format='#   %(message)s')\n"
    "print('# upgrading with', skymesh.__file__, file=sys.stderr)\n"
    "async def main():\n"
    "    e = create_engine(sys.argv[1])\n"
    "    try:\n"
    "        await migrate(e)\n"
    "    finally:\n"
    "        await e.dispose()\n"
    "asyncio.run(main())\n"
)
BASE = datetime(2026, 11, 1, tzinfo=UTC)


async def _fill(url: str, dsn: str, rows: int, days: int) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine, "0018")
        repo = Repository(engine)
        await repo.create_station(Station("gs1", "gs1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(dsn)
    try:
        step_us = days * 86_400_000_000 // rows
        await conn.execute(
            "INSERT INTO telemetry (station_id, boot_id, seq, at, data) "
            "SELECT 'gs1', 'b', g, $1::timestamptz + g * $2::bigint * interval '1 microsecond', "
            "decode(repeat(md5(g::text), 21), 'hex') FROM generate_series(0, $3::bigint - 1) g",
            BASE,
            step_us,
            rows,
        )
        await conn.execute("ANALYZE telemetry")
    finally:
        await conn.close()


async def _run(dsn: str, url: str, tree: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree}
    # cwd too: `python -c` puts the working directory first on sys.path.
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", _UPGRADE, url, env=env, cwd=tree)
    writer = await asyncpg.connect(dsn)
    sampler = await asyncpg.connect(dsn)
    waits: list[float] = []
    oldest = 0.0
    done = asyncio.Event()

    async def write() -> None:
        seq = 0
        while not done.is_set():
            seq += 1
            t = time.perf_counter()
            await writer.execute(
                "INSERT INTO telemetry (station_id, boot_id, seq, at, data) VALUES ('gs1', 'probe', $1, now(), '')", seq
            )
            waits.append(time.perf_counter() - t)
            await asyncio.sleep(0.05)

    async def sample() -> None:
        nonlocal oldest
        while not done.is_set():
            age = await sampler.fetchval(
                "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid NOT IN ($1, $2) AND xact_start IS NOT NULL",
                sampler.get_server_pid(),
                writer.get_server_pid(),
            )
            oldest = max(oldest, float(age))
            await asyncio.sleep(0.1)

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(write()), asyncio.create_task(sample())]
    rc = await child.wait()
    wall = time.perf_counter() - t0
    done.set()
    await asyncio.gather(*tasks)
    assert rc == 0, f"upgrade failed ({rc})"
    count, distinct = await sampler.fetchrow("SELECT count(*), count(DISTINCT id) FROM telemetry")
    await writer.close()
    await sampler.close()
    return {
        "wall": wall,
        "oldest_xact": oldest,
        "max_wait": max(waits, default=0.0),
        "writes": len(waits),
        "count": count,
        "distinct": distinct,
    }


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--tree", action="append", required=True, help="a source tree (PYTHONPATH); give two to alternate")
    args = p.parse_args()
    filled = await create_database("debt_mig0019_fill")
    t = time.perf_counter()
    await _fill(filled.url, filled.dsn, args.rows, args.days)
    print(f"# filled {args.rows:,} rows over {args.days} days in {time.perf_counter() - t:.1f} s", flush=True)
    admin = await asyncpg.connect(PG_DSN)
    print("| tree | run | rows | upgrade s | longest transaction s | longest write wait s | writes | load start-end |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for run in range(1, args.runs + 1):
            for tree in args.tree:
                name = f"debt_mig0019_run_{os.getpid()}"
                await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{filled.name}"')
                try:
                    dsn = filled.dsn.rsplit("/", 1)[0] + "/" + name
                    url = filled.url.rsplit("/", 1)[0] + "/" + name
                    load0 = os.getloadavg()[0]
                    r = await _run(dsn, url, tree)
                    load1 = os.getloadavg()[0]
                    assert r["count"] == r["distinct"] == args.rows + r["writes"], r
                    print(
                        f"| {tree} | {run} | {args.rows:,} | {r['wall']:.1f} | {r['oldest_xact']:.1f} | "
                        f"{r['max_wait']:.2f} | {r['writes']:.0f} | {load0:.1f}-{load1:.1f} |",
                        flush=True,
                    )
                finally:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
        await drop_database(filled)


if __name__ == "__main__":
    asyncio.run(main())
