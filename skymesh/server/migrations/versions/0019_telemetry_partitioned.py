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

SQLite: the dedup key gains `at` too (one model for both dialects); the table is not partitioned.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = "id, station_id, boot_id, seq, at, samples, data"


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
    bind = op.get_bind()
    if partitioned:
        from skymesh.server.db.telemetry_partitions import (
            DEFAULT_PARTITION,
            PARTITION_DAYS_AHEAD,
            create_day_partitions,
        )

        op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF telemetry DEFAULT")
        today = datetime.now(UTC).date()
        days = [today + timedelta(days=i) for i in range(PARTITION_DAYS_AHEAD + 1)]
        stored = bind.exec_driver_sql(f"SELECT DISTINCT (at AT TIME ZONE 'UTC')::date FROM {old}").scalars().all()
        create_day_partitions(bind, [*days, *stored])
    op.execute(f"INSERT INTO telemetry ({_COLUMNS}) SELECT {_COLUMNS} FROM {old}")
    op.execute(f"DROP TABLE {old}")


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
