"""Shared plumbing of the repository: sessions, dialect-specific inserts, secrets, row -> record conversion."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import hmac
import inspect
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from skymesh.core.clock import Clock, SystemClock
from skymesh.core.errors import Aborted
from skymesh.core.jobs import JobState
from skymesh.core.model import (
    CelestialTarget,
    GeoLocation,
    HorizonMask,
    SatelliteTarget,
    SpacecraftForecast,
    SpacecraftProfile,
    Station,
    StationKind,
    StationState,
    Target,
    TargetKind,
    ThermalParams,
    TimeWindow,
    Weather,
)
from skymesh.core.rotator import AxisLimits, RotatorModel
from skymesh.observability import tracing
from skymesh.observability.metrics import DB_LATENCY
from skymesh.server.db.models import (
    AuditRow,
    JobRow,
    StationRow,
    StationSessionRow,
    TargetAliasRow,
    TargetRow,
    TleRow,
)
from skymesh.server.db.records import JobRecord, StationRecord, TargetRecord
from skymesh.server.db.writegate import WriteGate

__all__ = [
    "RepoBase",
    "fenced",
    "forecast_from_json",
    "forecast_to_json",
    "hash_secret",
    "new_secret",
    "profile_from_json",
    "profile_to_json",
    "secrets_match",
]


def new_secret() -> str:
    """A fresh secret: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


def profile_to_json(p: SpacecraftProfile) -> dict[str, Any]:
    """A JSON object for the targets.spacecraft column (JSON has no infinity: unlimited storage is null)."""
    return {
        "battery_capacity_wh": p.battery_capacity_wh,
        "min_soc": p.min_soc,
        "charge_power_w": p.charge_power_w,
        "initial_soc": p.initial_soc,
        "activity_power_w": dict(p.activity_power_w),
        "storage_capacity_bytes": p.storage_capacity_bytes if p.storage_capacity_bytes != float("inf") else None,
        "initial_stored_bytes": p.initial_stored_bytes,
        "payload_data_rate_bytes_per_s": p.payload_data_rate_bytes_per_s,
        "downlink_rate_bytes_per_s": p.downlink_rate_bytes_per_s,
        "idle_activity": p.idle_activity,
        "thermal": dataclasses.asdict(p.thermal) if p.thermal is not None else None,
    }


def profile_from_json(name: str, value: dict[str, Any]) -> SpacecraftProfile:
    args = dict(value)
    if args.get("storage_capacity_bytes") is None:
        args["storage_capacity_bytes"] = float("inf")
    thermal = args.pop("thermal", None)
    return SpacecraftProfile(name=name, thermal=ThermalParams(**thermal) if thermal else None, **args)


def forecast_to_json(f: SpacecraftForecast) -> dict[str, Any]:
    out = dataclasses.asdict(f)
    out["state_of_charge_time"] = f.state_of_charge_time.isoformat()
    out["min_state_of_charge_time"] = f.min_state_of_charge_time.isoformat()
    return out


def forecast_from_json(value: dict[str, Any]) -> SpacecraftForecast:
    args = dict(value)
    for key in ("state_of_charge_time", "min_state_of_charge_time"):
        args[key] = datetime.fromisoformat(args[key])
    return SpacecraftForecast(**args)


_AXIS_FIELDS = ("min_deg", "max_deg", "rate_deg_s", "accel_deg_s2")


def _rotator_json(model: RotatorModel | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {
        name: {f: getattr(axis, f) for f in _AXIS_FIELDS}
        for name, axis in (("azimuth", model.azimuth), ("elevation", model.elevation))
    }


def _rotator_from_json(value: dict[str, Any] | None) -> RotatorModel | None:
    if not value:
        return None
    return RotatorModel(
        azimuth=AxisLimits(*(float(value["azimuth"][f]) for f in _AXIS_FIELDS)),
        elevation=AxisLimits(*(float(value["elevation"][f]) for f in _AXIS_FIELDS)),
    )


def _window_json(w: TimeWindow) -> list[str]:
    return [w.start.isoformat(), w.end.isoformat()]


def _window_from_json(value: Any) -> TimeWindow:
    return TimeWindow(datetime.fromisoformat(value[0]), datetime.fromisoformat(value[1]))


def fenced(station_id: str) -> Aborted:
    """The error of a write made with an epoch the station no longer has (a newer session took it, on this replica
    or another): the stream that made it must end; its agent is already talking to the newer one."""
    return Aborted(
        f"station {station_id!r} is held by a newer session (this stream's epoch was superseded)", reason="FENCED"
    )


# Ids per IN list: well inside every driver's bound-parameter limit (SQLite 32766, asyncpg 32767).
_IN_CHUNK = 500

# A target as the records are built from it: a mapped row, or the plain row of its columns (a list of hundreds of
# targets reads plain rows: building mapped instances cost more than the query).
TargetCols = TargetRow | Row[Any]

_IN_FLIGHT: set[asyncio.Task[Any]] = set()


class _Tle(NamedTuple):
    line1: str
    line2: str
    source: str
    epoch: datetime


def _settle(task: asyncio.Task[Any]) -> None:
    _IN_FLIGHT.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a caller that was cancelled no longer wants it


def _shielded(fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Run the operation in its own task, shielded: a cancelled caller (a stream that ends, a client that hangs up)
    never interrupts a transaction half way, which on SQLite could leave the database locked."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.ensure_future(fn(*args, **kwargs))
        _IN_FLIGHT.add(task)
        task.add_done_callback(_settle)
        return await asyncio.shield(task)

    return wrapper


class RepoBase:
    """Owns the session factory; every public method runs in one transaction of its own, shielded from
    cancellation of its caller."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(value):
                setattr(cls, name, _shielded(value))

    @staticmethod
    async def wait_idle() -> None:
        """Wait for operations whose callers were cancelled (before closing the engine)."""
        if _IN_FLIGHT:
            await asyncio.wait(list(_IN_FLIGHT))

    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.dialect = engine.dialect.name
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite's one writer: urgent commands before the next group commit (skymesh.server.db.writegate).
        self.write_gate = WriteGate(enabled=self.dialect == "sqlite")

    @asynccontextmanager
    async def _tx(self, operation: str) -> AsyncIterator[AsyncSession]:
        with (
            tracing.span(f"db {operation}", attributes={"db.system": self.dialect, "db.operation": operation}),
            DB_LATENCY.labels(operation).time(),
        ):
            async with self._sessions.begin() as session:
                yield session

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    @staticmethod
    async def _fence(session: AsyncSession, station_id: str, epoch: int | None) -> None:
        """Raise `fenced` unless `epoch` is the station's current one; None: an unfenced write (a station without
        an agent stream, tests). The row is read FOR SHARE: a Hello taking the next epoch waits until this
        transaction ends, so the newer session's resume cursors include whatever this one commits."""
        if epoch is None:
            return
        current = await session.scalar(
            select(StationSessionRow.epoch).where(StationSessionRow.station_id == station_id).with_for_update(read=True)
        )
        if current != epoch:
            raise fenced(station_id)

    def _now(self) -> datetime:
        return self.clock.now().astimezone(UTC)

    @staticmethod
    def _audit(session: AsyncSession, at: datetime, actor: str, action: str, subject: str, **detail: Any) -> None:
        session.add(AuditRow(at=at, actor=actor, action=action, subject=subject, detail=detail))

    # ------------------------------------------------------------------------------------------ row -> record

    @staticmethod
    def _station(row: StationRow) -> StationRecord:
        station = Station(
            station_id=row.station_id,
            name=row.name,
            kind=StationKind(row.kind),
            location=GeoLocation(row.latitude_deg, row.longitude_deg, row.altitude_m),
            min_elevation_deg=row.min_elevation_deg,
            horizon_mask=HorizonMask(tuple(row.horizon_azimuth_deg), tuple(row.horizon_min_elevation_deg)),
            bands=tuple(row.bands),
            slew_rate_deg_s=row.slew_rate_deg_s,
            aperture_m=row.aperture_m,
            filters=tuple(row.filters),
            limiting_magnitude=row.limiting_magnitude,
            fov_deg=row.fov_deg,
            state=StationState(row.state),
            unavailable=tuple(_window_from_json(w) for w in row.unavailable),
            weather=Weather(row.weather or 0),
            rotator=_rotator_from_json(row.rotator),
        )
        return StationRecord(station, row.last_seen, row.clock_offset_s, row.agent_version, row.state_changed_at)

    @staticmethod
    def _station_row_values(station: Station) -> dict[str, Any]:
        return {
            "name": station.name,
            "kind": int(station.kind),
            "latitude_deg": station.location.latitude_deg,
            "longitude_deg": station.location.longitude_deg,
            "altitude_m": station.location.altitude_m,
            "min_elevation_deg": station.min_elevation_deg,
            "horizon_azimuth_deg": list(station.horizon_mask.azimuth_deg),
            "horizon_min_elevation_deg": list(station.horizon_mask.min_elevation_deg),
            "bands": list(station.bands),
            "slew_rate_deg_s": station.slew_rate_deg_s,
            "aperture_m": station.aperture_m,
            "filters": list(station.filters),
            "limiting_magnitude": station.limiting_magnitude,
            "fov_deg": station.fov_deg,
            "unavailable": [_window_json(w) for w in station.unavailable],
            "weather": int(station.weather),
            "rotator": _rotator_json(station.rotator),
        }

    @staticmethod
    def _job(row: JobRow | Row[Any]) -> JobRecord:
        """From a mapped job, or a plain row of its columns (`created_at` not needed)."""
        return JobRecord(
            job_id=row.job_id,
            station_id=row.station_id,
            target_id=row.target_id,
            window=TimeWindow(row.start, row.end),
            state=JobState(row.state),
            cause=row.cause,
            detail=row.detail,
            schedule_version=row.schedule_version,
            updated_at=row.updated_at,
            tca=row.tca,
            max_elevation_deg=row.max_elevation_deg,
            filter=row.filter,
            exposure_s=row.exposure_s,
            exposure_count=row.exposure_count,
            priority=row.priority,
            score=row.score,
        )

    async def _target_record(self, session: AsyncSession, row: TargetRow) -> TargetRecord:
        return (await self._target_records(session, [row]))[0]

    async def _target_records(
        self, session: AsyncSession, rows: Sequence[TargetCols], ids: Select[Any] | None = None
    ) -> list[TargetRecord]:
        """Records for `rows` with two more queries in all (current element sets, aliases), not two per target: a
        list of 700 targets was 700 round trips to PostgreSQL, most of a ranked-list request's time.

        `ids`, the query that selected `rows` reduced to their target ids, filters those two queries as a subquery
        instead of a list of hundreds of bound ids (whose rendering cost more than the queries did)."""
        if ids is not None and rows:
            return await self._target_records_of(session, rows, ids)
        sat_ids = [r.target_id for r in rows if r.kind == TargetKind.SATELLITE]
        other_ids = [r.target_id for r in rows if r.kind != TargetKind.SATELLITE]
        tles: dict[str, _Tle] = {}
        aliases: dict[str, list[str]] = {}
        for i in range(0, len(sat_ids), _IN_CHUNK):
            newest = (
                select(func.max(TleRow.id))
                .where(TleRow.target_id.in_(sat_ids[i : i + _IN_CHUNK]))
                .group_by(TleRow.target_id)
            )
            # Plain rows, not ORM objects: building 500 mapped instances cost more than the query.
            current = select(TleRow.target_id, TleRow.line1, TleRow.line2, TleRow.source, TleRow.epoch)
            for target_id, line1, line2, source, epoch in await session.execute(current.where(TleRow.id.in_(newest))):
                tles[target_id] = _Tle(line1, line2, source, epoch)
        for i in range(0, len(other_ids), _IN_CHUNK):
            query = (
                select(TargetAliasRow.target_id, TargetAliasRow.alias)
                .where(TargetAliasRow.target_id.in_(other_ids[i : i + _IN_CHUNK]))
                .order_by(TargetAliasRow.target_id, TargetAliasRow.alias)
            )
            for target_id, alias in (await session.execute(query)).all():
                aliases.setdefault(target_id, []).append(alias)
        return [self._target_from_row(r, tles.get(r.target_id), aliases.get(r.target_id, ())) for r in rows]

    async def _target_records_of(
        self, session: AsyncSession, rows: Sequence[TargetCols], ids: Select[Any]
    ) -> list[TargetRecord]:
        wanted = ids.subquery()
        newest = select(func.max(TleRow.id)).where(TleRow.target_id.in_(select(wanted.c[0]))).group_by(TleRow.target_id)
        current = select(TleRow.target_id, TleRow.line1, TleRow.line2, TleRow.source, TleRow.epoch)
        tles = {
            target_id: _Tle(line1, line2, source, epoch)
            for target_id, line1, line2, source, epoch in await session.execute(current.where(TleRow.id.in_(newest)))
        }
        aliases: dict[str, list[str]] = {}
        query = (
            select(TargetAliasRow.target_id, TargetAliasRow.alias)
            .where(TargetAliasRow.target_id.in_(select(wanted.c[0])))
            .order_by(TargetAliasRow.target_id, TargetAliasRow.alias)
        )
        for target_id, alias in (await session.execute(query)).all():
            aliases.setdefault(target_id, []).append(alias)
        return [self._target_from_row(r, tles.get(r.target_id), aliases.get(r.target_id, ())) for r in rows]

    @staticmethod
    def _target_from_row(row: TargetCols, tle: _Tle | None, aliases: Sequence[str]) -> TargetRecord:
        target: Target
        source = ""
        epoch: datetime | None = None
        if row.kind == TargetKind.SATELLITE:
            target = SatelliteTarget(
                target_id=row.target_id,
                name=row.name,
                norad_id=row.norad_id or 0,
                tle_line1=tle.line1 if tle else "",
                tle_line2=tle.line2 if tle else "",
                band=row.band,
                downlink_frequency_hz=row.downlink_frequency_hz,
                priority=row.priority,
                min_elevation_deg=row.min_elevation_deg,
                spacecraft=profile_from_json(row.target_id, row.spacecraft) if row.spacecraft else None,
            )
            if tle is not None:
                source, epoch = tle.source, tle.epoch
        else:
            target = CelestialTarget(
                target_id=row.target_id,
                name=row.name,
                ra_deg=row.ra_deg or 0.0,
                dec_deg=row.dec_deg or 0.0,
                magnitude=row.magnitude if row.magnitude is not None else 10.0,
                priority=row.priority,
                filters=tuple(row.filters),
                exposure_s=row.exposure_s or 60.0,
                exposure_count=row.exposure_count or 1,
                max_airmass=row.max_airmass or 2.0,
                min_moon_separation_deg=row.min_moon_separation_deg or 0.0,
                cadence_s=row.cadence_s or 0.0,
                aliases=tuple(aliases),
                max_hour_angle_h=row.max_hour_angle_h or 0.0,
                max_moon_illumination=row.max_moon_illumination or 0.0,
            )
        forecast = forecast_from_json(row.spacecraft_forecast) if row.spacecraft_forecast else None
        return TargetRecord(target, row.campaign_id or "", source, epoch, row.updated_at, forecast)
