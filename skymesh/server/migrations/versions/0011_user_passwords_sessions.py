"""password hashes on users, expiry and labels on user tokens

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 16:30:00

`users.password_hash` (argon2id, PHC string; NULL: no password login) and, on `api_tokens`, `expires_at` (NULL:
a personal token that lasts until revoked; set: a login session) and `label` (what a personal token is for). All
nullable or defaulted, so existing rows stay valid on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.String(length=200), nullable=True))
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_tokens", sa.Column("label", sa.String(length=100), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("label")
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_hash")
