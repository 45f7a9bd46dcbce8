"""What telemetry retention costs on PostgreSQL: dropping a day partition of N rows (migration 0019) against deleting
the same N rows from one unpartitioned table (what retention would be without partitions).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/telemetry_retention.py --rows 100000 1000000

For each N, on a fresh database at head: one station's N batches (a realistic 3 channels x 10 samples blob each)
are written into one old day's partition with one INSERT ... SELECT, ANALYZEd, then `apply_telemetry_retention`
(the server's call: DETACH + DROP of the expired partition) is timed. The same N rows are then put in a plain table
with the same indexes, and `DELETE ... WHERE at < bound` (one statement; the server would do it in batches, which
only adds round trips) plus the VACUUM that must follow it to reuse the space are timed. Last, a database at
revision 0018 with the same N rows is upgraded to head (migration 0019 copies them into the partitioned table).
Wall seconds; the machine's load average is printed with each row.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/telemetry_retention.py --insert --groups 5000 --per-group 4

`--insert`: what partitioning adds to the hot path inside PostgreSQL (the stream benchmark's server CPU leaves the
database out): the group commit's insert statement (arrays through unnest, one transaction per group of 4 batches,
the stream benchmark's mean group at K = 100) on a fresh table at revision 0018 and at head, the backend's own CPU
read from /proc (the database runs on this machine), alternating, `--runs` times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from _common import create_database, drop_database

from skymesh.core.clock import ManualClock
from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server.db import Repository, create_engine, migrate
from skymesh.server.db.records import TelemetryIn

OLD_DAY = datetime(2026, 10, 1, tzinfo=UTC)
NOW = OLD_DAY + timedelta(days=40)


def _blob() -> bytes:
    samples = [
        {"at": (OLD_DAY + timedelta(seconds=i)).isoformat(), "values": {"az": 1.0 * i, "el": 2.0, "snr": 3.0}}
        for i in range(10)
    ]
    return TelemetryIn.from_samples(samples).data


_FILL = """
INSERT INTO {table} (station_id, boot_id, seq, at, data)
SELECT 'st-1', 'b', g, $1::timestamptz + (g * interval '1 millisecond') * (86399000.0 / $2), $3
FROM generate_series(1, $2) AS g"""


async def _one(rows: int) -> dict[str, float]:
    db = await create_database("skymesh_bench_retention")
    engine = create_engine(db.url)
    try:
        await migrate(engine)
        repo = Repository(engine, ManualClock(OLD_DAY))
        await repo.create_station(Station("st-1", "st-1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        await repo.ensure_telemetry_partitions(days_ahead=0)  # the old day's partition
        conn = await asyncpg.connect(db.dsn)
        try:
            blob = _blob()
            t = time.perf_counter()
            await conn.execute(_FILL.format(table="telemetry"), OLD_DAY, rows, blob)
            fill_s = time.perf_counter() - t
            await conn.execute("ANALYZE telemetry")
            size = await conn.fetchval("SELECT pg_total_relation_size('telemetry_p20261001')")
            repo.clock = ManualClock(NOW)
            t = time.perf_counter()
            report = await repo.apply_telemetry_retention(30)
            drop_s = time.perf_counter() - t
            assert report.dropped_partitions[-1] == "telemetry_p20261001", report
            assert await conn.fetchval("SELECT count(*) FROM telemetry") == 0

            await conn.execute("CREATE TABLE plain (LIKE telemetry INCLUDING ALL)")
            await conn.execute("CREATE UNIQUE INDEX plain_uq ON plain (station_id, boot_id, seq)")
            await conn.execute(_FILL.format(table="plain"), OLD_DAY, rows, blob)
            await conn.execute("ANALYZE plain")
            t = time.perf_counter()
            await conn.execute("DELETE FROM plain WHERE at < $1", NOW - timedelta(days=30))
            delete_s = time.perf_counter() - t
            t = time.perf_counter()
            await conn.execute("VACUUM plain")
            vacuum_s = time.perf_counter() - t
        finally:
            await conn.close()
        return {
            "rows": rows,
            "mb": size / 2**20,
            "fill_s": fill_s,
            "drop_s": drop_s,
            "delete_s": delete_s,
            "vacuum_s": vacuum_s,
        }
    finally:
        await engine.dispose()
        await drop_database(db)


async def _upgrade(rows: int) -> float:
    """Seconds migration 0019 takes to copy N rows of one day into the partitioned table."""
    db = await create_database("skymesh_bench_retention")
    engine = create_engine(db.url)
    try:
        await migrate(engine, "0018")
        repo = Repository(engine, ManualClock(OLD_DAY))
        await repo.create_station(Station("st-1", "st-1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        conn = await asyncpg.connect(db.dsn)
        try:
            await conn.execute(_FILL.format(table="telemetry"), OLD_DAY, rows, _blob())
            await conn.execute("ANALYZE telemetry")
        finally:
            await conn.close()
        t = time.perf_counter()
        await migrate(engine)
        return time.perf_counter() - t
    finally:
        await engine.dispose()
        await drop_database(db)


_INSERT = """
INSERT INTO telemetry (station_id, boot_id, seq, at, data)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::bytea[])
ON CONFLICT DO NOTHING"""


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _insert_cost(revision: str, groups: int, per_group: int) -> tuple[float, float]:
    """PostgreSQL backend CPU-us and wall-us per batch of the group commit's insert (one transaction per group of
    `per_group` batches from as many stations), at `revision` ("0018": one table; "head": partitioned)."""
    db = await create_database("skymesh_bench_insert")
    engine = create_engine(db.url)
    try:
        await migrate(engine, revision)
        repo = Repository(engine, ManualClock(OLD_DAY))
        for i in range(per_group):
            sid = f"st-{i}"
            await repo.create_station(Station(sid, sid, StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        await repo.ensure_telemetry_partitions(days_ahead=0)  # nothing at 0018 (not partitioned)
        conn = await asyncpg.connect(db.dsn)
        try:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            blob = _blob()
            stations = [f"st-{i}" for i in range(per_group)]
            boots = ["b"] * per_group
            blobs = [blob] * per_group
            t0 = OLD_DAY + timedelta(hours=1)
            cpu, wall = _cpu_s(pid), time.perf_counter()
            for g in range(1, groups + 1):
                async with conn.transaction():
                    await conn.execute(
                        _INSERT, stations, boots, [g] * per_group, [t0 + timedelta(seconds=g)] * per_group, blobs
                    )
            wall, cpu = time.perf_counter() - wall, _cpu_s(pid) - cpu
        finally:
            await conn.close()
        n = groups * per_group
        return cpu / n * 1e6, wall / n * 1e6
    finally:
        await engine.dispose()
        await drop_database(db)


async def _main_insert(groups: int, per_group: int, runs: int) -> None:
    print(f"{groups} groups of {per_group} batches, one transaction each:")
    print("| table | run | PostgreSQL backend CPU-us / batch | wall-us / batch | load |")
    print("|---|---|---|---|---|")
    for run in range(1, runs + 1):
        for label, revision in (("one table (0018)", "0018"), ("day partitions (0019)", "head")):
            cpu_us, wall_us = await _insert_cost(revision, groups, per_group)
            print(f"| {label} | {run} | {cpu_us:.1f} | {wall_us:.1f} | {os.getloadavg()[0]:.1f} |", flush=True)


async def _main(sizes: list[int]) -> None:
    print("| rows N | partition MB | retention: DETACH + DROP s | plain: DELETE s | + VACUUM s | 0019 copy s | load |")
    print("|---|---|---|---|---|---|---|")
    for rows in sizes:
        r = await _one(rows)
        r["upgrade_s"] = await _upgrade(rows)
        load = os.getloadavg()[0]
        cells = [f"{rows:,}", f"{r['mb']:.0f}", f"{r['drop_s']:.3f}", f"{r['delete_s']:.2f}", f"{r['vacuum_s']:.2f}"]
        cells.append(f"{r['upgrade_s']:.2f}")
        print(f"| {' | '.join(cells)} | {load:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--insert", action="store_true", help="measure the group insert's cost in PostgreSQL instead")
    parser.add_argument("--groups", type=int, default=5000)
    parser.add_argument("--per-group", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if args.insert:
        asyncio.run(_main_insert(args.groups, args.per_group, args.runs))
    else:
        asyncio.run(_main(args.rows))


if __name__ == "__main__":
    main()
