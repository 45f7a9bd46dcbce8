"""per-axis rotator limits on stations

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 17:15:00

One nullable JSON column on `stations`: the rotator's travel, rate and acceleration per axis (skymesh.core.rotator,
common.v1.Station.rotator), which the server passes to the scheduler for its per-axis slews. Null (every existing
row) means none given: the scheduler then moves both axes at `slew_rate_deg_s`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stations", sa.Column("rotator", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("rotator")
