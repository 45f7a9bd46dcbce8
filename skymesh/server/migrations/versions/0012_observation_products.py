"""why an observation's uploads could not be reduced, and where its pass waterfall is

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 19:20:00

`observations.reduction_error` (the distinct errors of its uploads that could not be reduced, joined by "; ") and
`observations.waterfall_path` (the best IQ recording's waterfall PNG, relative to the server's data directory), both
text defaulting to "", so existing rows stay valid on SQLite and PostgreSQL. Existing rows are filled from
`frame_reductions` and `pass_reductions`, as the server would have written them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MAX_ERROR_CHARS = 2000


def upgrade() -> None:
    op.add_column("observations", sa.Column("reduction_error", sa.Text(), nullable=False, server_default=""))
    op.add_column("observations", sa.Column("waterfall_path", sa.Text(), nullable=False, server_default=""))
    bind = op.get_bind()
    errors: dict[str, list[str]] = {}
    for table in ("frame_reductions", "pass_reductions"):
        rows = bind.execute(
            sa.text(f"SELECT observation_id, error FROM {table} WHERE error <> '' ORDER BY reduced_at")  # noqa: S608
        )
        for observation_id, error in rows:
            seen = errors.setdefault(observation_id, [])
            if error not in seen:
                seen.append(error)
    for observation_id, messages in errors.items():
        bind.execute(
            sa.text("UPDATE observations SET reduction_error = :e WHERE observation_id = :o"),
            {"e": "; ".join(messages)[:_MAX_ERROR_CHARS], "o": observation_id},
        )
    # The waterfall of the best recording (as the server picks it), relative to the data directory.
    best: dict[str, tuple[float, str]] = {}
    rows = bind.execute(
        sa.text("SELECT observation_id, quality_score, waterfall_path FROM pass_reductions WHERE waterfall_path <> ''")
    )
    for observation_id, score, path in rows:
        if observation_id not in best or (score or 0.0) > best[observation_id][0]:
            best[observation_id] = (score or 0.0, path)
    for observation_id, (_score, path) in best.items():
        marker = path.rfind("/uploads/")
        bind.execute(
            sa.text("UPDATE observations SET waterfall_path = :p WHERE observation_id = :o"),
            {"p": path[marker + 1 :] if marker >= 0 else path, "o": observation_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("waterfall_path")
        batch.drop_column("reduction_error")
