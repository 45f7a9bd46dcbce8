"""Alembic: `upgrade head` on an empty database builds exactly the schema the models describe (both dialects); 0018
keeps telemetry stored as JSON readable and its downgrade turns columnar rows back into JSON."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server.db import Repository, create_engine, migrate
from skymesh.server.db.engine import migrations_dir
from skymesh.server.db.models import Base, TelemetryRow
from skymesh.server.db.records import TelemetryIn
from skymesh.server.db.telemetry_partitions import include_name


def _diff(connection: Connection) -> list[Any]:
    # The day partitions under `telemetry` (PostgreSQL) are the server's, not the models': compared without them.
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
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


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def test_0018_keeps_json_telemetry_readable_and_downgrades_columnar_rows_to_json(db_url: str) -> None:
    at = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    old = [
        {"at": at.isoformat(), "values": {"az": 1.25}},
        {"at": (at + timedelta(seconds=1)).isoformat(), "values": {}},  # no values: not listed
    ]
    new = [{"at": (at + timedelta(seconds=2)).isoformat(), "values": {"az": -2.5, "el": 7.0}}]
    telemetry = TelemetryRow.__table__

    async def read(repo: Repository) -> list[tuple[datetime, dict[str, float]]]:
        samples, _ = await repo.list_telemetry("gs1", limit=10)
        return [(s.at, s.values) for s in samples]

    engine = create_engine(db_url)
    try:
        await migrate(engine, "0015")
        repo = Repository(engine)
        await repo.create_station(Station("gs1", "gs1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        async with engine.begin() as conn:  # a batch stored as before 0018
            await conn.execute(telemetry.insert().values(station_id="gs1", boot_id="b", seq=1, at=at, samples=old))
        await migrate(engine)
        [result] = await repo.ingest_telemetry_many([("gs1", "b2", 1, TelemetryIn.from_samples(new))])
        assert not isinstance(result, Exception)
        both = [(at, {"az": 1.25}), (at + timedelta(seconds=2), {"az": -2.5, "el": 7.0})]
        assert await read(repo) == both
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0015")
            rows = (await conn.execute(select(telemetry.c.boot_id, telemetry.c.samples).order_by("id"))).all()
        assert [tuple(r) for r in rows] == [("b", old), ("b2", new)]
        await migrate(engine)
        assert await read(repo) == both
    finally:
        await engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_replicas_migrating_together_take_turns_and_leave_no_lock(db_url: str) -> None:
    """`migrate` holds a session advisory lock (Alembic commits each migration, so a transaction's lock would not
    last): three engines migrating a fresh database at once all succeed, and no session keeps the lock after."""
    engines = [create_engine(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(e) for e in engines))
        async with engines[0].connect() as conn:
            assert (
                await conn.scalar(text("SELECT version_num FROM alembic_version"))
                == ScriptDirectory.from_config(_config()).get_current_head()
            )
            held = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
            assert held == 0
    finally:
        for e in engines:
            await e.dispose()


def _config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg
