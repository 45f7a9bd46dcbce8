"""hour-angle and Moon-illumination limits on celestial targets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 06:20:00

Two nullable float columns on `targets`: `max_hour_angle_h` and `max_moon_illumination` (NULL or 0: no limit).
Nullable additions only, so existing rows stay valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("targets", sa.Column("max_hour_angle_h", sa.Float(), nullable=True))
    op.add_column("targets", sa.Column("max_moon_illumination", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("targets") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("max_moon_illumination")
        batch.drop_column("max_hour_angle_h")
