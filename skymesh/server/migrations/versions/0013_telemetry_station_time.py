"""an index for reading one station's telemetry in time order

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:10:00

`ix_telemetry_station_at` on telemetry (station_id, at, id): StationService.ListTelemetry reads one station's
batches in (at, id) order from a time, which the existing indexes (at alone; station, boot, seq) cannot serve
without reading every station's rows in the range.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.create_index("ix_telemetry_station_at", ["station_id", "at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_station_at")
