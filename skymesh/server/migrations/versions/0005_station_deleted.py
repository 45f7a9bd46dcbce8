"""stations can be deleted (retired)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:10:00

One nullable timestamp on `stations`, set by StationService.DeleteStation. The row stays (jobs, observations,
telemetry and the audit log keep pointing at it); a deleted station is invisible to the API and the planner, and its
id cannot be created again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stations", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("deleted_at")
