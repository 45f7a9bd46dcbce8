"""spacecraft profiles and forecasts on targets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:45:00

Two nullable JSON columns on `targets`: `spacecraft` (the satellite's SpacecraftProfile) and `spacecraft_forecast`
(the latest plan's SpacecraftForecast). Nullable additions only, so existing rows stay valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("targets", sa.Column("spacecraft", sa.JSON(), nullable=True))
    op.add_column("targets", sa.Column("spacecraft_forecast", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("targets") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("spacecraft_forecast")
        batch.drop_column("spacecraft")
