"""station health events (telemetry anomaly detectors)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:45:00

One table: an event per detector firing on a station's telemetry, open until its channel is normal again, with the
evidence window (recent samples, baseline median and scale, peak z) as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "station_health_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("detector", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_z", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_station_health_events_station_id", "station_health_events", ["station_id"])


def downgrade() -> None:
    op.drop_index("ix_station_health_events_station_id", table_name="station_health_events")
    op.drop_table("station_health_events")
