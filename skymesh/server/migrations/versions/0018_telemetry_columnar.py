"""telemetry batches stored columnar

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 13:00:00

`telemetry.data` holds a batch as one blob: the sample times as an int64 array and one float64 array per channel
(layout in `skymesh.server.db.telemetry_blob`), written by the ingest instead of one JSON object per sample in
`telemetry.samples` (issue 8: less CPU per message on the agent-stream hot path, 8 bytes per value stored).
Existing rows keep their JSON and stay readable (ListTelemetry reads either form), so the upgrade rewrites nothing:
`samples` only becomes nullable. The downgrade writes each columnar batch back as JSON before dropping `data`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
        batch_op.alter_column("samples", existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    from skymesh.server.db.telemetry_blob import unpack

    telemetry = sa.table(
        "telemetry", sa.column("id", sa.BigInteger()), sa.column("data", sa.LargeBinary()), sa.column("samples", sa.JSON())
    )
    bind = op.get_bind()
    last = -1
    while True:  # in chunks: a long history does not have to fit in memory at once
        rows = bind.execute(
            sa.select(telemetry.c.id, telemetry.c.data)
            .where(telemetry.c.data.is_not(None), telemetry.c.id > last)
            .order_by(telemetry.c.id)
            .limit(1000)
        ).all()
        if not rows:
            break
        for row_id, data in rows:
            samples = [
                {"at": at.isoformat(), "values": values} for _, at, values in unpack(bytes(data)).samples()
            ]
            bind.execute(sa.update(telemetry).where(telemetry.c.id == row_id).values(samples=samples))
        last = rows[-1][0]
    with op.batch_alter_table("telemetry", schema=None) as batch_op:
        batch_op.alter_column("samples", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("data")
