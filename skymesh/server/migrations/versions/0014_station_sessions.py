"""which replica holds each station's stream, fenced by an epoch

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 08:00:00

One new table, `station_sessions` (station id, epoch, holding replica, session id, claimed at): each Hello takes the
next epoch of its station, and every write made as the station is conditioned on it, so a server replica that lost
a station to a newer session on another replica cannot write as it (issue 8, replicas). Empty at first: a station
without a row has never connected since the upgrade, and its first Hello creates the row with epoch 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "station_sessions",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("replica", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.station_id"], name=op.f("fk_station_sessions_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_station_sessions")),
    )


def downgrade() -> None:
    op.drop_table("station_sessions")
