"""the targets an alert's sky map made (LVK tiles)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 08:10:00

`alert_targets` links one alert to the several targets its HEALPix sky map became (one per field-of-view tile of
the credible region, ranked by the probability each holds), so the time-critical window reaches all of them and a
retraction cancels all their jobs. A new table: existing rows need nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_targets",
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.alert_id"]),
        sa.ForeignKeyConstraint(["target_id"], ["targets.target_id"]),
        sa.PrimaryKeyConstraint("alert_id", "target_id"),
    )
    op.create_index("ix_alert_targets_target_id", "alert_targets", ["target_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_targets_target_id", table_name="alert_targets")
    op.drop_table("alert_targets")
