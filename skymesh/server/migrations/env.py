"""Alembic environment, async-aware: reuses a connection handed over by `skymesh.server.db.engine.migrate`, or
builds an async engine from `sqlalchemy.url` / SKYMESH_DATABASE_URL when run from the `alembic` command line."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from skymesh.server.db.models import Base
from skymesh.server.db.telemetry_partitions import include_name

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return os.environ.get("SKYMESH_DATABASE_URL") or config.get_main_option("sqlalchemy.url") or ""


def _do_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,  # autogenerate leaves telemetry's day partitions alone
        # One transaction a migration, not one for the whole run: a migration may commit part way (0019's batched
        # copy, in an autocommit block). A connection handed over inside a transaction keeps that one for all.
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    from skymesh.server.db.engine import create_engine

    engine = create_engine(_url())
    try:
        async with engine.connect() as conn:  # Alembic begins and commits each migration's transaction
            await conn.run_sync(_do_run)
            await conn.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _do_run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
