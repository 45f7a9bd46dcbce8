"""Engine creation and schema migration for SQLite (file, WAL, foreign keys) and PostgreSQL (asyncpg).

SQLite transactions start with BEGIN IMMEDIATE so a read-then-write transaction never fails with SQLITE_BUSY half
way; `busy_timeout` makes concurrent writers (the server and `skymesh keys`) wait instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["create_engine", "migrate", "migrations_dir"]


def migrations_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "migrations"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An AsyncEngine for `url`; for SQLite creates the parent directory and sets the pragmas on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, emit BEGIN (see the `begin` hook below).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True)


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


# Held (session lock) while migrating on PostgreSQL: replicas starting together on a fresh database migrate one after
# the other (the later ones find it at head), instead of racing to create the same tables.
_MIGRATE_LOCK = 0x736B796D_6D696772  # "skymmigr"


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Run `alembic upgrade <revision>` on `engine` (inside the running event loop, on one connection).

    Alembic runs each migration in a transaction of its own (env.py: `transaction_per_migration`), so a migration
    may commit part way (0019 copies telemetry in batches, a transaction each): the connection is handed over with
    no transaction open, and the lock that keeps replicas apart is the session's, not a transaction's."""
    async with engine.connect() as conn:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            await conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATE_LOCK})")
            await conn.commit()
        try:
            await conn.run_sync(_upgrade, revision)
            await conn.commit()
        finally:
            if postgres:
                try:
                    await conn.rollback()
                    await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATE_LOCK})")
                    await conn.commit()
                except BaseException:
                    # Not back to the pool with the lock held: the lock goes with the closed session.
                    await conn.invalidate()
                    raise
