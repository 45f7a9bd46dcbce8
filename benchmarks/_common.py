"""What the benchmarks share: a fresh PostgreSQL database per run, created and dropped through the admin DSN.

    db = await create_database("skymesh_bench")
    try:
        ...  # a server on db.url (SQLAlchemy, asyncpg driver), or asyncpg.connect(db.dsn)
    finally:
        await drop_database(db)

Imported by the benchmark scripts as `_common` (a script's own folder is first on sys.path).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import asyncpg

__all__ = ["PG_DSN", "Database", "create_database", "drop_database"]

# Any database on the server: the admin connection only creates and drops the benchmark's own.
PG_DSN = os.environ.get("SKYMESH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True, slots=True)
class Database:
    name: str
    admin_dsn: str  # where it was created from (and is dropped from)

    @property
    def dsn(self) -> str:
        """A plain postgresql:// DSN to this database (asyncpg, psql)."""
        return f"{self.admin_dsn.rsplit('/', 1)[0]}/{self.name}"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of this database with the asyncpg driver (a server's `database_url`)."""
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def create_database(prefix: str = "skymesh_bench", admin_dsn: str = PG_DSN) -> Database:
    """A new, empty database named `prefix` plus a random suffix."""
    db = Database(f"{prefix}_{uuid.uuid4().hex[:10]}", admin_dsn)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{db.name}"')
    finally:
        await admin.close()
    return db


async def drop_database(db: Database) -> None:
    """Drop `db`, closing whatever connections are still open to it."""
    admin = await asyncpg.connect(db.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        await admin.close()
