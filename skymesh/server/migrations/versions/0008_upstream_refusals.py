"""upstream messages the server refused, so that acked means stored

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:30:00

One row per reliable upstream message refused for its content (docs/protocol.md rule 4): the (station, boot) cursor
moves past a refused message so the agent can go on with the next one, and this table is how the server tells a
refused seq from a stored one when the same seq comes again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upstream_refusals",
        sa.Column("station_id", sa.String(length=64), sa.ForeignKey("stations.station_id"), nullable=False),
        sa.Column("boot_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "boot_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("upstream_refusals")
