"""telemetry partitioned by day on PostgreSQL; the dedup key includes the batch time

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 16:00:00

PostgreSQL: `telemetry` becomes a table range-partitioned on `at` (one partition per UTC day, named
`telemetry_pYYYYMMDD`, and `telemetry_default` for anything else; `skymesh.server.db.telemetry_partitions`), so
retention drops a day whole instead of deleting rows (issue 8). A unique key on a partitioned table must contain the
partition key: the primary key becomes (id, at) and the dedup key (station_id, boot_id, seq, at). `at` is the
batch's first sample time, sent by the agent, so a re-sent batch has the same key whenever it arrives. The existing
rows are copied into the partitioned table (a partition for every day they cover, today's and the next days'), ids
and the id sequence kept. The downgrade copies them back into one plain table.

The copy is batched (`_copy`): the swap (rename, new table, partitions) commits first, then the rows go over day by
day, at most `_BATCH_ROWS` rows a statement in (at, id) order, each statement its own transaction (an Alembic
autocommit block), with progress logged; the old table is dropped in the migration's last transaction, with the
version stamp. So no transaction holds more than one batch, and new telemetry is written (to the new table) while
the history is still being copied; until the copy ends, reads of older telemetry see part of it. Interrupted, the
migration is simply run again: the swap is not redone when the old table is still there, and a batch copied before
is skipped (ON CONFLICT on the primary key, which both tables share the id of). The days to partition come from a
skip scan of the `at` index (one probe a day), not a scan of the table. Run inside a transaction of the caller's (a
connection handed to Alembic already in one), nothing can commit: the copy is then the same batches in that
transaction.

SQLite: the dedup key gains `at` too (one model for both dialects); the table is not partitioned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "id, station_id, boot_id, seq, at, samples, data"

log = logging.getLogger("alembic.runtime.migration")


def _create(name: str, *, partitioned: bool) -> str:
    key, dedup = ("id, at", "station_id, boot_id, seq, at") if partitioned else ("id", "station_id, boot_id, seq")
    uq = "uq_telemetry_station_boot_seq_at" if partitioned else "uq_telemetry_station_boot_seq"
    return f"""
CREATE TABLE {name} (
    id BIGINT NOT NULL DEFAULT nextval('telemetry_id_seq'::regclass),
    station_id VARCHAR(64) NOT NULL,
    boot_id VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    samples JSON,
    data BYTEA,
    CONSTRAINT pk_telemetry PRIMARY KEY ({key}),
    CONSTRAINT {uq} UNIQUE ({dedup}),
    CONSTRAINT fk_telemetry_station_id_stations FOREIGN KEY (station_id) REFERENCES stations (station_id)
){" PARTITION BY RANGE (at)" if partitioned else ""}"""


def _swap(partitioned: bool) -> None:
    """Rename the current table (and its names) out of the way, make the new one, copy every row, drop the old."""
    old = "telemetry_0018" if partitioned else "telemetry_0019"
    bind = op.get_bind()
    # Left by a run that stopped during the copy (its swap committed): only the copy is still to do.
    if bind.exec_driver_sql(f"SELECT to_regclass('{old}')").scalar() is None:
        _rename_and_create(old, partitioned)
    context = op.get_context()
    # Alembic asserts in `autocommit_block` when the connection came in a transaction of the caller's, which it
    # neither commits nor may: there the batches stay in that transaction.
    if getattr(context, "_in_external_transaction", False):
        _copy(old, partitioned, autocommit=False)
    else:
        with context.autocommit_block():
            _copy(old, partitioned, autocommit=True)
    op.execute(f"DROP TABLE {old}")


def _rename_and_create(old: str, partitioned: bool) -> None:
    old_uq = "uq_telemetry_station_boot_seq" if partitioned else "uq_telemetry_station_boot_seq_at"
    op.execute(f"ALTER TABLE telemetry RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_telemetry TO pk_{old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {old_uq} TO uq_{old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT fk_telemetry_station_id_stations TO fk_{old}")
    op.execute(f"ALTER INDEX ix_telemetry_at RENAME TO ix_{old}_at")
    op.execute(f"ALTER INDEX ix_telemetry_station_at RENAME TO ix_{old}_station_at")
    op.execute(_create("telemetry", partitioned=partitioned))
    op.execute("CREATE INDEX ix_telemetry_at ON telemetry (at)")
    op.execute("CREATE INDEX ix_telemetry_station_at ON telemetry (station_id, at, id)")
    # The sequence goes with the new table (owned by the old one, it would be dropped with it); ids are kept.
    op.execute("ALTER SEQUENCE telemetry_id_seq OWNED BY telemetry.id")
    if partitioned:
        from skymesh.server.db.telemetry_partitions import (
            DEFAULT_PARTITION,
            PARTITION_DAYS_AHEAD,
            create_day_partitions,
        )

        op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF telemetry DEFAULT")
        today = datetime.now(UTC).date()
        days = [today + timedelta(days=i) for i in range(PARTITION_DAYS_AHEAD + 1)]
        create_day_partitions(op.get_bind(), [*days, *_days(old)])


# Rows a copy statement moves at most (one transaction each outside a caller's transaction): at the 545 bytes a batch
# measured (benchmarks/results/telemetry_partitions.md) about 11 MB; 50,000 took 0.9-1.1 s at load 7 (with ON
# CONFLICT, 0.6 s without), so a batch holds its transaction for about half a second.
_BATCH_ROWS = 20_000


def _days(old: str) -> list[date]:
    """The UTC days with rows in `old`, by a skip scan of its `at` index: one probe a day, not a scan of every row."""
    day = "(at AT TIME ZONE 'UTC')::date"
    rows = op.get_bind().exec_driver_sql(
        f"WITH RECURSIVE d(day) AS (SELECT (SELECT {day} FROM {old} ORDER BY at LIMIT 1) "
        f"UNION ALL SELECT (SELECT {day} FROM {old} WHERE at >= ((d.day + 1)::timestamp AT TIME ZONE 'UTC') "
        f"ORDER BY at LIMIT 1) FROM d WHERE d.day IS NOT NULL) SELECT day FROM d WHERE day IS NOT NULL"
    )
    return list(rows.scalars())


def _copy(old: str, partitioned: bool, *, autocommit: bool) -> None:
    """Copy every row of `old` into `telemetry`, day by day, at most `_BATCH_ROWS` rows a statement ((at, id) order).

    A row already there is skipped: copied by an interrupted run (same id), or, going up, a batch the server stored
    again while the copy ran (same dedup key: the batch is there once). ON CONFLICT costs half again the time of a
    plain insert (50,000 rows: 0.9-1.1 s against 0.6 s), so a batch is first tried without it, and only a batch that
    hits a key is done again with it (in autocommit, the failed statement left nothing; in a caller's transaction,
    where a failed statement would abort it all, every batch takes the ON CONFLICT path). Going down, a dedup
    conflict still fails, as the one-statement copy did (the plain table's key has no `at`)."""
    bind = op.get_bind()
    config = op.get_context().config  # tests set a smaller batch through the Alembic config's attributes
    batch_rows = int(config.attributes.get("telemetry_copy_batch_rows", _BATCH_ROWS)) if config else _BATCH_ROWS
    total = bind.exec_driver_sql(f"SELECT reltuples::bigint FROM pg_class WHERE oid = '{old}'::regclass").scalar()
    t0, copied, statements, retried = time.monotonic(), 0, 0, 0
    log.info("0019: copying about %s rows from %s into telemetry, day by day", max(0, total or 0), old)

    def batch(conflict: str) -> Any:
        # One statement a batch: the next `batch_rows` rows after the cursor (at, id), inserted, and the batch's last
        # key (the next cursor). `at >= :after_at` repeats the row comparison's first half so that it bounds the scan
        # of the `at` index (a row comparison alone does not, the index being on `at` only).
        return text(
            f"WITH src AS MATERIALIZED (SELECT {_COLUMNS} FROM {old} WHERE at >= :after_at AND at < :hi "
            f"AND (at, id) > (:after_at, :after_id) ORDER BY at, id LIMIT :n), "
            f"ins AS (INSERT INTO telemetry ({_COLUMNS}) SELECT {_COLUMNS} FROM src {conflict} RETURNING 1), "
            f"last AS (SELECT at, id FROM src ORDER BY at DESC, id DESC LIMIT 1) "
            f"SELECT (SELECT count(*) FROM src) AS n, (SELECT count(*) FROM ins) AS inserted, last.at, last.id "
            f"FROM last"
        )

    plain = batch("")
    skipping = batch("ON CONFLICT DO NOTHING" if partitioned else "ON CONFLICT (id) DO NOTHING")
    for day in _days(old):
        lo = datetime.combine(day, datetime.min.time(), UTC)
        args: dict[str, object] = {"hi": lo + timedelta(days=1), "after_at": lo, "after_id": _MIN_ID, "n": batch_rows}
        day_rows = 0
        while True:
            statements += 1
            if autocommit:
                try:
                    row = bind.execute(plain, args).one_or_none()
                except IntegrityError:
                    retried += 1
                    row = bind.execute(skipping, args).one_or_none()
            else:
                row = bind.execute(skipping, args).one_or_none()
            if row is None:
                break
            day_rows += row.inserted
            if row.n < batch_rows:
                break
            args["after_at"], args["after_id"] = row.at, row.id
        copied += day_rows
        log.info(
            "0019: %s: %s rows copied (%s in all, %s statements, %s with rows already there, %.1f s)",
            day,
            day_rows,
            copied,
            statements,
            retried,
            time.monotonic() - t0,
        )


_MIN_ID = -(2**63)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _swap(partitioned=True)
        return
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.drop_constraint("uq_telemetry_station_boot_seq", type_="unique")
        batch_op.create_unique_constraint("uq_telemetry_station_boot_seq_at", ["station_id", "boot_id", "seq", "at"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _swap(partitioned=False)
        return
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.drop_constraint("uq_telemetry_station_boot_seq_at", type_="unique")
        batch_op.create_unique_constraint("uq_telemetry_station_boot_seq", ["station_id", "boot_id", "seq"])
