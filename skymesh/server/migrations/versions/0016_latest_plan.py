"""the latest plan, for PlanService.GetLatestPlan on every replica

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 13:10:00

One new table, `latest_plan`, with at most one row (id 1): when the last plan was applied and its
GetLatestPlanResponse (reason, assignments, why targets were not scheduled), written by the planner after each
plan. Any server replica answers GetLatestPlan from it, not only the one that planned (issue 8, replicas). Empty at
first: no plan since the upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "latest_plan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_latest_plan")),
    )


def downgrade() -> None:
    op.drop_table("latest_plan")
