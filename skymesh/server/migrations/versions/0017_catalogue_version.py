"""a version counter of the target catalogue, moved by triggers on every change

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 13:00:00

`catalogue_version` holds one row (id 1) whose `version` every committed change to `targets`, `target_aliases` or
`tle_history` increments: database triggers do it, so no writer (the repository, an alert, a campaign deletion, a
script with plain SQL, another replica) can forget it. A server keeps the target list it read with the version it
read just before, and reads the list again only when the version has moved (the ranked-list hot path read 500
targets and their element sets per request, for a catalogue that changes a few times a day).

On PostgreSQL the triggers are constraint triggers, deferred to commit: the counter's row lock is then the last lock
a transaction takes, so two transactions that change targets cannot deadlock on it, and a reader sees the new
version exactly when it can see the change. On SQLite (one writer at a time) plain row triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("targets", "target_aliases", "tle_history")
_BUMP = "UPDATE catalogue_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        "catalogue_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_version")),
    )
    op.execute("INSERT INTO catalogue_version (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_catalogue_version() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_BUMP}; RETURN NULL; END $$"
        )
        for table in _TABLES:
            op.execute(
                f"CREATE CONSTRAINT TRIGGER {table}_catalogue_version AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bump_catalogue_version()"
            )
        return
    for table in _TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_catalogue_version_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN {_BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER {table}_catalogue_version ON {table}")
        op.execute("DROP FUNCTION bump_catalogue_version()")
    else:
        for table in _TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_catalogue_version_{event}")
    op.drop_table("catalogue_version")
