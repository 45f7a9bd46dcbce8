"""Telemetry kept for a bounded time: daily partitions on PostgreSQL, bounded deletes on SQLite (issue 8, part 1).

On PostgreSQL `telemetry` is range-partitioned on `at` (migration 0019), the batch's first sample time: a batch
re-sent days later carries the same `at`, so it falls in the same partition and the dedup key
(station, boot, seq, at) still sees it (the upstream cursor answers it as a duplicate before any insert anyway).
One partition per UTC day, named `telemetry_pYYYYMMDD`, covering [day, day + 1); `telemetry_default` takes whatever
has no partition (a batch from a clock far off, a replay older than the partitions made ahead), so an insert never
fails for lack of a partition. Daily, not hourly: ListTelemetry from the beginning of a station's history probes
every partition's (station_id, at, id) index, 30 probes at the 30-day default instead of 720, and one day is still
a bounded table (10,000 stations at one batch/s: 864 M rows, about 470 GB at the 545 bytes a batch measured in
benchmarks/results/telemetry_partitions.md). Hourly would only pay off if one day's table were too big to handle.

Maintenance (`skymesh.server.retention` runs it on every replica, hourly): `ensure_telemetry_partitions` makes today's
and the next days' partitions (rows of those days already in the default partition move into the new one in the
same transaction); `apply_telemetry_retention` detaches and drops the partitions whose whole day is older than the
bound (no DELETE, no vacuum), and deletes the default partition's (or, on SQLite, the table's) rows older than the
bound in bounded batches. A PostgreSQL advisory lock taken with try-lock makes concurrent replicas skip, not queue.
Nothing newer than the bound is ever removed.

The DDL helpers take a synchronous connection so migration 0019 makes partitions exactly as the server does.
Imports: SQLAlchemy, the models and the repository base only.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import TelemetryRow

__all__ = [
    "DEFAULT_PARTITION",
    "PARTITION_DAYS_AHEAD",
    "RetentionReport",
    "TelemetryRetentionRepo",
    "create_day_partitions",
    "include_name",
    "is_partition_name",
    "partition_name",
]

log = logging.getLogger(__name__)

DEFAULT_PARTITION = "telemetry_default"
# Partitions made ahead of today (UTC): a server down for a day still finds tomorrow's when it starts.
PARTITION_DAYS_AHEAD = 2
_NAME = re.compile(r"^telemetry_p(\d{8})$")
_COLUMNS = "id, station_id, boot_id, seq, at, samples, data"
# Taken (try-lock, transaction scope) by the maintenance on PostgreSQL: one replica at a time does it, the others skip.
_MAINTENANCE_LOCK = 0x736B796D_74656C6D  # "skymtelm"
# DDL on the parent waits at most this long for the transactions in flight (inserts queue behind a waiting DETACH,
# so this bounds how long the hot path can stall, once a day); a lock not had is tried again at the next round.
_LOCK_TIMEOUT = "1s"
# Rows deleted per transaction (SQLite, and PostgreSQL's default partition) and per call: a long backlog is worked
# through over several calls, never in one long write lock.
DELETE_BATCH_ROWS = 5000
DELETE_MAX_BATCHES = 40


def partition_name(day: date) -> str:
    return f"telemetry_p{day:%Y%m%d}"


def is_partition_name(name: str) -> bool:
    """Whether `name` is one of the tables the server makes under `telemetry` (schema comparisons skip them)."""
    return name == DEFAULT_PARTITION or _NAME.match(name) is not None


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Alembic's `include_name` hook: schema comparison and autogenerate skip the partitions (not in the models)."""
    return not (type_ == "table" and name is not None and is_partition_name(name))


def _day_of(name: str) -> date | None:
    match = _NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _bound(day: date) -> str:
    return f"'{datetime.combine(day, time(), UTC).isoformat()}'"


def _is_partitioned(conn: Connection) -> bool:
    """Whether `telemetry` is partitioned (a database left before 0019 by `migrate: false` is not: retention then
    deletes rows in batches, as on SQLite)."""
    query = "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('telemetry'))"
    return bool(conn.exec_driver_sql(query).scalar())


def _partitions(conn: Connection) -> list[str]:
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('telemetry')"
    ).all()
    return sorted(r[0] for r in rows)


def create_day_partitions(conn: Connection, days: Iterable[date]) -> list[str]:
    """Make the partitions of `days` that do not exist yet (PostgreSQL; `telemetry` partitioned); their names.

    A day with rows in the default partition: the new table is filled from it, then attached, in the caller's
    transaction (ATTACH checks the default partition holds nothing of that day any more). Made standalone and
    attached rather than CREATE ... PARTITION OF: ATTACH takes a weaker lock on `telemetry` (inserts go on)."""
    existing = set(_partitions(conn))
    made: list[str] = []
    for day in sorted(set(days)):
        name = partition_name(day)
        if name in existing:
            continue
        lo, hi = _bound(day), _bound(day + timedelta(days=1))
        conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE telemetry INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        if DEFAULT_PARTITION in existing:
            conn.exec_driver_sql(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE at >= {lo} AND at < {hi} RETURNING {_COLUMNS}) "
                f"INSERT INTO {name} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
            )
        conn.exec_driver_sql(f"ALTER TABLE telemetry ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")
        made.append(name)
    return made


def _drop_partitions_before(conn: Connection, cutoff: datetime) -> list[tuple[str, int]]:
    """Detach and drop every day partition whose day ends at or before `cutoff`: (name, estimated rows) each."""
    dropped: list[tuple[str, int]] = []
    for name in _partitions(conn):
        day = _day_of(name)
        if day is None or datetime.combine(day + timedelta(days=1), time(), UTC) > cutoff:
            continue
        # The planner's estimate, not count(*): counting a day of telemetry would read all of it.
        estimate = conn.exec_driver_sql(f"SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('{name}')")
        rows = int(estimate.scalar() or 0)
        conn.exec_driver_sql(f"ALTER TABLE telemetry DETACH PARTITION {name}")
        conn.exec_driver_sql(f"DROP TABLE {name}")
        dropped.append((name, max(rows, 0)))
    return dropped


@dataclass(frozen=True)
class RetentionReport:
    """What one retention pass removed: whole partitions (PostgreSQL, with the planner's row estimate) and rows
    deleted one batch at a time; `more`: the pass stopped at its batch budget with old rows left."""

    cutoff: datetime
    dropped_partitions: tuple[str, ...] = ()
    dropped_rows_estimate: int = 0
    deleted_rows: int = 0
    more: bool = False


class TelemetryRetentionRepo(RepoBase):
    async def ensure_telemetry_partitions(self, days_ahead: int = PARTITION_DAYS_AHEAD) -> list[str]:
        """Make today's (UTC, by the repository's clock) and the next `days_ahead` days' partitions where missing;
        the names made. Nothing on SQLite, or while another replica holds the maintenance lock."""
        if self.dialect != "postgresql":
            return []
        today = self._now().date()
        async with self.engine.begin() as conn:
            await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _MAINTENANCE_LOCK}):
                return []
            if not await conn.run_sync(_is_partitioned):
                return []
            return await conn.run_sync(
                create_day_partitions, [today + timedelta(days=i) for i in range(days_ahead + 1)]
            )

    async def apply_telemetry_retention(self, keep_days: int) -> RetentionReport:
        """Remove telemetry whose batch time is more than `keep_days` days before now; never a newer row."""
        cutoff = self._now() - timedelta(days=keep_days)
        dropped: list[tuple[str, int]] = []
        partitioned = False
        if self.dialect == "postgresql":
            async with self.engine.begin() as conn:
                await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
                if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _MAINTENANCE_LOCK}):
                    return RetentionReport(cutoff)
                partitioned = await conn.run_sync(_is_partitioned)
                if partitioned:
                    dropped = await conn.run_sync(_drop_partitions_before, cutoff)
        deleted, more = await self._delete_rows_before(cutoff, default_partition_only=partitioned)
        return RetentionReport(
            cutoff,
            tuple(name for name, _ in dropped),
            sum(rows for _, rows in dropped),
            deleted,
            more,
        )

    async def _delete_rows_before(self, cutoff: datetime, *, default_partition_only: bool) -> tuple[int, bool]:
        """Delete rows older than `cutoff` in batches of DELETE_BATCH_ROWS, each its own transaction: from the default
        partition only when `telemetry` is partitioned (day partitions go whole), else from `telemetry`."""
        statement: Executable
        if default_partition_only:
            statement = text(
                f"DELETE FROM {DEFAULT_PARTITION} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {DEFAULT_PARTITION} WHERE at < :cutoff LIMIT :batch))"
            )
            params: dict[str, object] = {"cutoff": cutoff, "batch": DELETE_BATCH_ROWS}
        else:
            old = select(TelemetryRow.id).where(TelemetryRow.at < cutoff).limit(DELETE_BATCH_ROWS)
            statement = delete(TelemetryRow).where(TelemetryRow.id.in_(old))
            params = {}
        deleted = 0
        for _ in range(DELETE_MAX_BATCHES):
            async with self.engine.begin() as conn:
                count = (await conn.execute(statement, params)).rowcount
            deleted += count
            if count < DELETE_BATCH_ROWS:
                return deleted, False
            await asyncio.sleep(0)  # let the streams' transactions in between batches
        return deleted, True
