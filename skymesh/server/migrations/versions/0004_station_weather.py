"""weather state on stations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:25:00

One integer column on `stations` (skymesh.core.model.Weather; 0 = unspecified), defaulting to 0 so existing rows
stay valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stations", sa.Column("weather", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("weather")
