"""Alembic: `upgrade head` on an empty database builds exactly the schema the models describe (both dialects)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from skymesh.server.db import create_engine, migrate
from skymesh.server.db.models import Base


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_head_on_empty_database_matches_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent: already at head
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert {
                "stations",
                "station_keys",
                "jobs",
                "commands",
                "telemetry",
                "observations",
                "tle_history",
            } <= tables
            assert "alembic_version" in tables
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
