"""alerts: every alert packet as received, and what became of it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:30:00

One new table (`alerts`, skymesh.server.db.models.AlertRow): the raw packet, the normalised fields, the dedup key
(unique; NULL for rejected packets), the status and the target it made or updated, with its time-critical window.
Nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("dedup_key", sa.String(length=400), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("alert_type", sa.String(length=100), nullable=False),
        sa.Column("external_id", sa.String(length=250), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("event_name", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("retraction", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("created_target", sa.Boolean(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ra_deg", sa.Float(), nullable=True),
        sa.Column("dec_deg", sa.Float(), nullable=True),
        sa.Column("error_radius_deg", sa.Float(), nullable=True),
        sa.Column("magnitude_ab", sa.Float(), nullable=True),
        sa.Column("magnitude_error", sa.Float(), nullable=True),
        sa.Column("filter", sa.String(length=32), nullable=False),
        sa.Column("flux_erg_s_cm2", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.String(length=300), nullable=False),
        sa.Column("cutouts", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("target_priority_before", sa.Integer(), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_boost", sa.Float(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["targets.target_id"], name=op.f("fk_alerts_target_id_targets")),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_alerts_dedup_key")),
    )
    op.create_index(op.f("ix_alerts_target_id"), "alerts", ["target_id"], unique=False)
    op.create_index(op.f("ix_alerts_received_at"), "alerts", ["received_at"], unique=False)
    op.create_index("ix_alerts_source_external_id", "alerts", ["source", "external_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alerts_source_external_id", table_name="alerts")
    op.drop_index(op.f("ix_alerts_received_at"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_target_id"), table_name="alerts")
    op.drop_table("alerts")
