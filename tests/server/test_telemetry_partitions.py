"""Telemetry partitioned by day (PostgreSQL) and retention (both dialects): where batches land, that a resend stays
a duplicate across days, that retention removes exactly what is older than its bound, and migration 0019 with rows.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from skymesh.core.clock import ManualClock
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server.config import ServerConfig, load_config
from skymesh.server.db import Repository, create_engine, migrate
from skymesh.server.db import telemetry_partitions as partitions
from skymesh.server.db.engine import migrations_dir
from skymesh.server.db.models import TelemetryRow
from skymesh.server.db.records import TelemetryIn, UpstreamResult
from skymesh.server.retention import TelemetryMaintenance

DAY0 = datetime(2027, 1, 10, tzinfo=UTC)
ON_PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


def p(n: int) -> str:
    return partitions.partition_name(day(n).date())


def batch(at: datetime, value: float = 1.0) -> TelemetryIn:
    return TelemetryIn.from_samples([{"at": at.isoformat(), "values": {"az": value}}])


async def ingest(repo: Repository, *ats: datetime, boot: str = "b", first_seq: int = 1) -> None:
    items = [("gs1", boot, first_seq + i, batch(at, float(first_seq + i))) for i, at in enumerate(ats)]
    for result in await repo.ingest_telemetry_many(items):
        assert isinstance(result, UpstreamResult) and not result.duplicate


async def insert_again(repo: Repository, boot: str, seq: int, at: datetime) -> int:
    """Rows a raw insert of (gs1, boot, seq, at) adds, bypassing the cursor: 0 when the database's key has it."""
    async with repo.engine.begin() as conn:
        inserted = await conn.execute(
            text(
                "INSERT INTO telemetry (station_id, boot_id, seq, at, data) VALUES ('gs1', :boot, :seq, :at, '') "
                "ON CONFLICT DO NOTHING"
            ),
            {"boot": boot, "seq": seq, "at": at},
        )
        return inserted.rowcount


async def where(engine: AsyncEngine) -> dict[str, int]:
    """Rows per partition (PostgreSQL)."""
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql("SELECT tableoid::regclass::text, count(*) FROM telemetry GROUP BY 1")
        return {name: count for name, count in rows.all()}


async def partition_names(engine: AsyncEngine) -> list[str]:
    """The day partitions attached to `telemetry` (PostgreSQL)."""
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'telemetry'::regclass AND c.relname <> 'telemetry_default' ORDER BY 1"
        )
        return list(rows.scalars())


async def sample_times(repo: Repository, limit: int = 100) -> list[datetime]:
    samples, _ = await repo.list_telemetry("gs1", limit=limit)
    return [s.at for s in samples]


@pytest.fixture
async def repo(db_url: str) -> AsyncIterator[Repository]:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        repo = Repository(engine, ManualClock(DAY0 + timedelta(hours=10)))
        await repo.create_station(Station("gs1", "gs1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        yield repo
    finally:
        await engine.dispose()


def clock(repo: Repository) -> ManualClock:
    assert isinstance(repo.clock, ManualClock)
    return repo.clock


@ON_PG
async def test_three_days_land_in_three_partitions_and_a_resend_days_later_is_a_duplicate(repo: Repository) -> None:
    assert await repo.ensure_telemetry_partitions(days_ahead=2) == [p(0), p(1), p(2)]
    assert await repo.ensure_telemetry_partitions(days_ahead=2) == []  # idempotent
    last_of_day0 = day(1) - timedelta(microseconds=1)
    await ingest(repo, last_of_day0, day(1), day(2) + timedelta(hours=12))
    assert await where(repo.engine) == {p(0): 1, p(1): 1, p(2): 1}

    clock(repo).advance(3 * 86400)  # the batch is re-sent days after its own partition's day
    [again] = await repo.ingest_telemetry_many([("gs1", "b", 1, batch(last_of_day0, 1.0))])
    assert again == UpstreamResult(3, duplicate=True)
    # The database's own key says the same, without the cursor: (station, boot, seq, at) is there already.
    assert await insert_again(repo, "b", 1, last_of_day0) == 0
    assert await where(repo.engine) == {p(0): 1, p(1): 1, p(2): 1}

    # Read across the partitions, and paged one sample at a time across their boundaries.
    expected = [last_of_day0, day(1), day(2) + timedelta(hours=12)]
    assert await sample_times(repo) == expected
    paged, key = [], None
    while True:
        samples, key = await repo.list_telemetry("gs1", limit=1, after_key=key)
        paged += [s.at for s in samples]
        if key is None:
            break
    assert paged == expected
    samples, _ = await repo.list_telemetry("gs1", after=day(1), before=day(2) + timedelta(hours=12))
    assert [s.at for s in samples] == [day(1)]


@ON_PG
async def test_a_batch_of_a_day_without_partition_lands_in_default_and_moves_when_its_day_is_made(
    repo: Repository,
) -> None:
    await repo.ensure_telemetry_partitions(days_ahead=0)
    await ingest(repo, day(0) + timedelta(hours=1), day(10) + timedelta(hours=5))
    assert await where(repo.engine) == {p(0): 1, partitions.DEFAULT_PARTITION: 1}
    assert await sample_times(repo) == [day(0) + timedelta(hours=1), day(10) + timedelta(hours=5)]

    clock(repo).advance(10 * 86400)
    assert await repo.ensure_telemetry_partitions(days_ahead=1) == [p(10), p(11)]
    assert await where(repo.engine) == {p(0): 1, p(10): 1}  # moved out of the default partition, not copied
    [again] = await repo.ingest_telemetry_many([("gs1", "b", 2, batch(day(10) + timedelta(hours=5), 2.0))])
    assert again == UpstreamResult(2, duplicate=True)
    assert await insert_again(repo, "b", 2, day(10) + timedelta(hours=5)) == 0  # the key holds in the new partition
    await ingest(repo, day(10) + timedelta(hours=6), first_seq=3)
    assert await where(repo.engine) == {p(0): 1, p(10): 2}
    assert await sample_times(repo) == [
        day(0) + timedelta(hours=1),
        day(10) + timedelta(hours=5),
        day(10) + timedelta(hours=6),
    ]


@ON_PG
async def test_retention_drops_exactly_the_partitions_older_than_the_bound(
    repo: Repository, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    made_by_migration = await partition_names(repo.engine)  # today's and the next days', by the wall clock
    assert all(name < p(0) for name in made_by_migration)
    await repo.ensure_telemetry_partitions(days_ahead=4)
    noon = timedelta(hours=12)
    await ingest(repo, *(day(n) + noon for n in range(5)))
    clock(repo).advance(4 * 86400 + 2 * 3600)  # day 4, 12:00: keeping 2 days, the bound is day 2, 12:00
    bound = day(2) + noon
    # In the default partition (days without a partition): two older than the bound (deleted), one in the future.
    # In day 2's partition: one more row just older than the bound (kept: retention never goes row by row in a day
    # partition, and day 2 ends after the bound).
    await ingest(repo, day(-5), day(-4), day(20), bound - timedelta(microseconds=1), first_seq=6)
    before = await where(repo.engine)
    assert before == {p(0): 1, p(1): 1, p(2): 2, p(3): 1, p(4): 1, partitions.DEFAULT_PARTITION: 3}

    maintenance = TelemetryMaintenance(repo, ServerConfig(database_url=db_url, telemetry_retention_days=2), repo.clock)
    with caplog.at_level(logging.INFO, logger="skymesh.server.retention"):
        report = await maintenance.run_once()
    assert report is not None
    assert report.cutoff == bound
    # Day 1 ends at day 2, 00:00, before the bound: dropped with day 0 (and the empty ones the migration made, days
    # before). Day 2 ends after it: kept whole.
    assert report.dropped_partitions == (*made_by_migration, p(0), p(1))
    assert report.deleted_rows == 2
    assert not report.more
    assert f"{p(0)}, {p(1)}] (~" in caplog.text and "deleted 2 rows" in caplog.text
    after = await where(repo.engine)
    assert after == {p(2): 2, p(3): 1, p(4): 1, partitions.DEFAULT_PARTITION: 1}
    assert await sample_times(repo) == [bound - timedelta(microseconds=1), bound, day(3) + noon, day(4) + noon, day(20)]
    assert await partition_names(repo.engine) == [p(n) for n in range(2, 7)]
    async with repo.engine.connect() as conn:
        tables = set((await conn.exec_driver_sql("SELECT tablename FROM pg_tables")).scalars())
    assert p(0) not in tables and p(1) not in tables  # dropped, not only detached

    again = await maintenance.run_once()
    assert again is not None and again.dropped_partitions == () and again.deleted_rows == 0


@ON_SQLITE
async def test_sqlite_retention_deletes_old_rows_in_bounded_batches(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partitions, "DELETE_BATCH_ROWS", 2)
    monkeypatch.setattr(partitions, "DELETE_MAX_BATCHES", 2)
    clock(repo).advance(14 * 3600)  # day 1, 00:00
    await ingest(repo, *(day(1) - timedelta(days=k) for k in range(10)))
    first = await repo.apply_telemetry_retention(3)  # bound: day -2, 00:00; 6 rows are older
    assert first.cutoff == day(-2)
    assert (first.deleted_rows, first.more) == (4, True)  # the call's budget: 2 batches of 2
    second = await repo.apply_telemetry_retention(3)
    assert (second.deleted_rows, second.more) == (2, False)
    assert await sample_times(repo) == [day(1) - timedelta(days=k) for k in (3, 2, 1, 0)]  # the bound itself stays
    assert await repo.ensure_telemetry_partitions() == []  # nothing to make on SQLite


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def test_0019_copies_rows_into_day_partitions_and_back(db_url: str) -> None:
    engine = create_engine(db_url)
    telemetry = TelemetryRow.__table__
    try:
        await migrate(engine, "0018")
        repo = Repository(engine, ManualClock(DAY0))
        await repo.create_station(Station("gs1", "gs1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        ats = [day(-3) + timedelta(hours=1), day(-2) + timedelta(hours=2), day(-1) + timedelta(hours=3)]
        await ingest(repo, *ats)
        async with engine.connect() as conn:
            ids = list((await conn.execute(select(telemetry.c.id).order_by(telemetry.c.id))).scalars())

        await migrate(engine)
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            found = await where(engine)
            assert found == {p(-3): 1, p(-2): 1, p(-1): 1}
        assert await sample_times(repo) == ats
        async with engine.connect() as conn:
            assert list((await conn.execute(select(telemetry.c.id).order_by(telemetry.c.id))).scalars()) == ids
        await ingest(repo, day(-1) + timedelta(hours=4), first_seq=4)  # the id sequence goes on past the copied ids
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.max(telemetry.c.id))) == ids[-1] + 1

        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0018")
        if postgres:
            assert await where(engine) == {"telemetry": 4}
        await ingest(repo, day(-1) + timedelta(hours=5), first_seq=5)
        assert await sample_times(repo) == [*ats, *(day(-1) + timedelta(hours=h) for h in (4, 5))]
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.max(telemetry.c.id))) == ids[-1] + 2
    finally:
        await engine.dispose()


@ON_PG
async def test_retention_on_a_database_left_before_0019_deletes_rows_and_makes_no_partition(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine, "0018")  # a server run with `migrate: false` on an older database
        repo = Repository(engine, ManualClock(DAY0))
        await repo.create_station(Station("gs1", "gs1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        await ingest(repo, day(-40), day(-31), day(-29), day(0))
        assert await repo.ensure_telemetry_partitions() == []
        report = await repo.apply_telemetry_retention(30)
        assert (report.dropped_partitions, report.deleted_rows, report.more) == ((), 2, False)
        assert await sample_times(repo) == [day(-29), day(0)]
    finally:
        await engine.dispose()


def test_retention_settings_are_checked_and_read_from_the_environment() -> None:
    assert ServerConfig().telemetry_retention_days == 30
    assert load_config(env={"SKYMESH_TELEMETRY_RETENTION_DAYS": "7"}).telemetry_retention_days == 7
    with pytest.raises(InvalidArgument) as refused:
        ServerConfig(telemetry_retention_days=-1)
    assert refused.value.field == "telemetry_retention_days"
    with pytest.raises(InvalidArgument):
        ServerConfig(telemetry_maintenance_interval_s=0)


def _alembic(connection: Connection, verb: str, revision: str, batch_rows: int) -> None:
    """`alembic upgrade|downgrade` on `connection` (no transaction open: Alembic's own, one a migration), with 0019's
    copy batches of `batch_rows` rows."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    cfg.attributes["telemetry_copy_batch_rows"] = batch_rows
    getattr(command, verb)(cfg, revision)


# 500 batches 37 min apart over 13 days, then a day's last microsecond and next midnight, and 10 batches with the same
# `at` (a batch boundary falls among them: the copy's keyset is (at, id)).
_FILL = """
INSERT INTO telemetry (station_id, boot_id, seq, at, samples, data)
SELECT 'gs1', 'b' || (g % 3), g, timestamptz '2026-11-20 00:00+00' + g * interval '37 minutes', NULL,
       decode(md5(g::text), 'hex') FROM generate_series(1, 500) g
UNION ALL SELECT 'gs1', 'edge', 1, timestamptz '2026-11-24 23:59:59.999999+00', '[]'::json, NULL
UNION ALL SELECT 'gs1', 'edge', 2, timestamptz '2026-11-25 00:00+00', NULL, ''::bytea
UNION ALL SELECT 'gs1', 'tie', g, timestamptz '2026-11-26 12:00+00', NULL, int8send(g) FROM generate_series(1, 10) g
"""
_ROWS = "SELECT id, station_id, boot_id, seq, at, samples::text, data FROM telemetry ORDER BY id"


async def _filled_at_0018(engine: AsyncEngine) -> tuple[Repository, list[Any]]:
    """The database at 0018 with station gs1 and the `_FILL` rows; the rows (`_ROWS`)."""
    await migrate(engine, "0018")
    repo = Repository(engine, ManualClock(DAY0))
    await repo.create_station(Station("gs1", "gs1", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
    async with engine.begin() as conn:
        await conn.exec_driver_sql(_FILL)
        return repo, list((await conn.exec_driver_sql(_ROWS)).all())


@ON_PG
async def test_0019_copies_in_bounded_batches_each_its_own_transaction_and_every_row_once(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    batch_rows = 7
    engine = create_engine(db_url)
    try:
        _, before = await _filled_at_0018(engine)
        async with engine.connect() as conn:
            by_day = "SELECT (at AT TIME ZONE 'UTC')::date, count(*) FROM telemetry GROUP BY 1"
            per_day = {d: n for d, n in (await conn.exec_driver_sql(by_day)).all()}
        assert len(before) == 512 and len(per_day) == 13

        async def rows_and_transactions() -> tuple[list[Any], int]:
            async with engine.connect() as conn:
                rows = (await conn.exec_driver_sql(_ROWS)).all()
                xids = await conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM telemetry"))
                return rows, int(xids or 0)

        with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
            async with engine.connect() as conn:
                await conn.run_sync(_alembic, "upgrade", "0019", batch_rows)
        rows, xids = await rows_and_transactions()
        assert rows == before  # every row once, ids and contents kept
        # One committed transaction per batch: a day of n rows is ceil(n / 7) batches.
        assert xids == sum(-(-n // batch_rows) for n in per_day.values())
        found = await where(engine)
        assert found == {partitions.partition_name(d): n for d, n in per_day.items()}
        progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("0019: 2026-")]
        assert len(progress) == 13 and progress[-1].split("(")[1].startswith("512 in all")

        async with engine.connect() as conn:
            await conn.run_sync(_alembic, "downgrade", "0018", batch_rows)
        rows, xids = await rows_and_transactions()
        assert rows == before and xids > 13
        assert await where(engine) == {"telemetry": 512}
        async with engine.connect() as conn:
            await conn.run_sync(_alembic, "upgrade", "0019", 1000)
        rows, xids = await rows_and_transactions()
        assert rows == before and xids == 13  # one batch a day
    finally:
        await engine.dispose()


@ON_PG
async def test_0019_interrupted_during_the_copy_completes_when_run_again(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(db_url)
    try:
        repo, before = await _filled_at_0018(engine)

        class Interrupted(Exception):
            pass

        def stop_after_third_day(record: logging.LogRecord) -> bool:
            if record.getMessage().startswith("0019: 2026-11-22"):
                raise Interrupted
            return True

        migration_log = logging.getLogger("alembic.runtime.migration")
        migration_log.addFilter(stop_after_third_day)
        try:
            with pytest.raises(Interrupted), caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
                async with engine.connect() as conn:
                    await conn.run_sync(_alembic, "upgrade", "0019", 5)
        finally:
            migration_log.removeFilter(stop_after_third_day)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0018"
            copied = await conn.scalar(text("SELECT count(*) FROM telemetry"))
            left = await conn.scalar(text("SELECT count(*) FROM telemetry_0018"))
        assert 0 < copied < left == len(before)  # the swap and three days committed, the old table untouched

        caplog.clear()
        with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
            await migrate(engine)  # run again: the copy goes on, what was copied is not copied twice
        # The first three days' batches met their rows already copied: each was done again with ON CONFLICT.
        last = [r.getMessage() for r in caplog.records if r.getMessage().startswith("0019: 2026-")][-1]
        assert ", 0 with rows already there" not in last
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql(_ROWS)).all() == before
            assert await conn.scalar(text("SELECT to_regclass('telemetry_0018')")) is None
        await ingest(repo, DAY0 + timedelta(hours=1), boot="new")  # the id sequence still goes with telemetry
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.max(TelemetryRow.__table__.c.id))) == before[-1][0] + 1
    finally:
        await engine.dispose()


@ON_PG
async def test_0019_a_batch_stored_again_during_the_copy_is_there_once(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server writes to the new table while the copy runs: an agent re-sending a batch that is still in the old
    table (same station, boot, seq, at; a new id) makes that batch's copy meet the dedup key, and the copy skips it."""
    engine = create_engine(db_url)
    try:
        _, before = await _filled_at_0018(engine)
        resent = next(r for r in before if r.boot_id == "tie")  # 2026-11-26, copied after the first day

        def resend_after_first_day(record: logging.LogRecord) -> bool:
            if record.getMessage().startswith("0019: 2026-11-20"):
                from alembic import op

                # On the migration's own connection (autocommit here): as the server's insert would land.
                op.get_bind().exec_driver_sql(
                    "INSERT INTO telemetry (station_id, boot_id, seq, at, data) "
                    f"VALUES ('gs1', 'tie', {resent.seq}, '{resent.at.isoformat()}', '')"
                )
            return True

        migration_log = logging.getLogger("alembic.runtime.migration")
        migration_log.addFilter(resend_after_first_day)
        try:
            with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
                async with engine.connect() as conn:
                    await conn.run_sync(_alembic, "upgrade", "0019", 7)
        finally:
            migration_log.removeFilter(resend_after_first_day)
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql(_ROWS)).all()
        new = [r for r in rows if r.id > before[-1].id]
        assert [(r.boot_id, r.seq, r.at) for r in new] == [(resent.boot_id, resent.seq, resent.at)]
        assert [r for r in rows if r.id <= before[-1].id] == [r for r in before if r.id != resent.id]
    finally:
        await engine.dispose()
