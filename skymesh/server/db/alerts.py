"""Repository part for alerts: every packet kept as received, deduplicated by (source, external id, revision), and in
the same transaction what it does to the targets and jobs: a test alert is only stored; a retraction retracts the
earlier revisions, cancels their target's unstarted jobs with cause ALERT_RETRACTED and deletes a target the event
created; an accepted alert creates or updates a sidereal target (matched by name, alias or cone) with the rule's
priority and time-critical window. An alert with a sky map (LVK) is stored first and gets its targets afterwards,
once the worker pool has tiled the map (`attach_skymap_targets`), linked through `alert_targets`. Imports
SQLAlchemy and the pure alert model; no grpc or protobuf.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from skymesh.core.errors import NotFound
from skymesh.core.jobs import JobState
from skymesh.core.model import StationKind, TargetKind, TimeWindow
from skymesh.server.alerts.config import AlertRule
from skymesh.server.alerts.model import Alert, AlertRole, AlertStatus
from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import AlertRow, AlertTargetRow, JobRow, StationRow, TargetAliasRow, TargetRow
from skymesh.server.db.records import JobRecord

__all__ = ["CAUSE_ALERT_RETRACTED", "AlertOutcome", "AlertRecord", "AlertRepo", "SkyTile", "target_id_for"]

CAUSE_ALERT_RETRACTED = 13  # common.v1.CauseCode
CAUSE_SUPERSEDED = 6
_UNSTARTED = (JobState.PENDING, JobState.SCHEDULED, JobState.DISPATCHED, JobState.RECEIVED)
_IN_AGENT_HANDS = (JobState.DISPATCHED, JobState.RECEIVED)
_TARGET_ID = re.compile(r"[^a-z0-9]+")


def target_id_for(event_name: str) -> str:
    """The id grammar's form of an event name: "GRB 261130A" -> "grb-261130a" (lowercase, digits, hyphens, <= 64)."""
    slug = _TARGET_ID.sub("-", event_name.lower()).strip("-")[:64].strip("-")
    return slug or "alert"


@dataclass(frozen=True)
class AlertRecord:
    alert_id: str
    dedup_key: str | None
    source: str
    alert_type: str
    external_id: str
    revision: int
    event_name: str
    format: str
    role: str
    retraction: bool
    status: AlertStatus
    target_id: str | None
    created_target: bool
    event_time: datetime | None
    received_at: datetime
    ra_deg: float | None
    dec_deg: float | None
    error_radius_deg: float | None
    magnitude_ab: float | None
    magnitude_error: float | None
    filter: str
    flux_erg_s_cm2: float | None
    detail: str
    origin: str
    error: str
    schema_version: str
    cutouts: tuple[str, ...]
    priority: int
    window: TimeWindow | None
    window_boost: float
    raw_size_bytes: int


@dataclass(frozen=True)
class AlertOutcome:
    """What storing one alert did. `duplicate`: it was already stored (the record is the stored one)."""

    record: AlertRecord
    duplicate: bool = False
    replan: bool = False
    running_jobs: tuple[JobRecord, ...] = ()  # retracted but running: the caller sends AbortJob
    bumped_stations: tuple[str, ...] = ()  # their schedule changed: the caller pushes it


@dataclass(frozen=True)
class SkyTile:
    """One field of view over a sky map's credible region (ICRS degrees) and the share of the map inside it."""

    ra_deg: float
    dec_deg: float
    probability: float


def tile_priority(top: int, probability: float, best: float) -> int:
    """The most probable tile gets the rule's priority, and each halving of probability below it one step less
    (never below 1): the planner spends the first night on the tiles most likely to hold the counterpart."""
    if probability <= 0 or best <= 0:
        return 1
    return max(1, top - round(math.log2(best / probability)))


def _record(row: AlertRow) -> AlertRecord:
    window = (
        TimeWindow(row.window_start, row.window_end)
        if row.window_start is not None and row.window_end is not None
        else None
    )
    return AlertRecord(
        alert_id=row.alert_id,
        dedup_key=row.dedup_key,
        source=row.source,
        alert_type=row.alert_type,
        external_id=row.external_id,
        revision=row.revision,
        event_name=row.event_name,
        format=row.format,
        role=row.role,
        retraction=row.retraction,
        status=AlertStatus(row.status),
        target_id=row.target_id,
        created_target=row.created_target,
        event_time=row.event_time,
        received_at=row.received_at,
        ra_deg=row.ra_deg,
        dec_deg=row.dec_deg,
        error_radius_deg=row.error_radius_deg,
        magnitude_ab=row.magnitude_ab,
        magnitude_error=row.magnitude_error,
        filter=row.filter,
        flux_erg_s_cm2=row.flux_erg_s_cm2,
        detail=row.detail,
        origin=row.origin,
        error=row.error,
        schema_version=row.schema_version,
        cutouts=tuple(row.cutouts),
        priority=row.priority,
        window=window,
        window_boost=row.window_boost,
        raw_size_bytes=len(row.raw),
    )


def _observe_as_rule_says(target: TargetRow, rule: AlertRule) -> None:
    """A target an alert creates is sidereal and observed as its follow-up rule says (filters, exposures, airmass),
    with the default Moon distance and no cadence, hour-angle or Moon-phase limit."""
    target.kind = int(TargetKind.SIDEREAL)
    target.filters = list(rule.filters)
    target.exposure_s = rule.exposure_s
    target.exposure_count = rule.exposure_count
    target.max_airmass = rule.max_airmass
    target.min_moon_separation_deg = 20.0
    target.cadence_s = 0.0
    target.max_hour_angle_h = 0.0
    target.max_moon_illumination = 0.0


def _separation_deg(ra1: float, dec1: float, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Great-circle distance (haversine: stable at arcsecond separations)."""
    r1, d1, r2, d2 = np.radians(ra1), np.radians(dec1), np.radians(ra2), np.radians(dec2)
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))  # type: ignore[no-any-return]


class AlertRepo(RepoBase):
    async def store_rejected_alert(self, raw: bytes, error: str, *, origin: str) -> AlertRecord:
        """Keep a packet that did not parse, with the reason; nothing else is written."""
        now = self._now()
        row = self._row(None, raw, origin=origin, now=now, status=AlertStatus.REJECTED)
        row.error = error[:2000]
        async with self._tx("store_rejected_alert") as s:
            s.add(row)
            self._audit(s, now, origin, "reject_alert", row.alert_id, error=error[:200])
        return _record(row)

    async def store_alert(
        self,
        alert: Alert,
        raw: bytes,
        *,
        origin: str,
        rule: AlertRule,
        match_radius_deg: float,
        actor: str = "system",
    ) -> AlertOutcome:
        """Store one parsed alert and apply it (see the module docstring), all in one transaction."""
        now = self._now()
        try:
            async with self._tx("store_alert") as s:
                existing = await s.scalar(select(AlertRow).where(AlertRow.dedup_key == alert.dedup_key))
                if existing is not None:
                    return AlertOutcome(_record(existing), duplicate=True)
                if alert.retraction:
                    return await self._retract(s, alert, raw, origin=origin, now=now, actor=actor)
                row = self._row(alert, raw, origin=origin, now=now, status=AlertStatus.STORED)
                s.add(row)
                if alert.role != AlertRole.OBSERVATION:
                    row.status = int(AlertStatus.TEST if alert.role == AlertRole.TEST else AlertStatus.UTILITY)
                    return AlertOutcome(_record(row))
                retracted = await s.scalar(
                    select(AlertRow.alert_id).where(
                        AlertRow.source == alert.source,
                        AlertRow.external_id == alert.external_id,
                        AlertRow.retraction.is_(True),
                        AlertRow.revision > alert.revision,
                    )
                )
                if retracted is not None:  # arrived after its own retraction
                    row.status = int(AlertStatus.RETRACTED)
                    row.detail = f"{row.detail} (retracted by {retracted})".strip()
                    return AlertOutcome(_record(row))
                if not self._targetable(alert, rule):
                    return AlertOutcome(_record(row))
                target_id, created, before = await self._upsert_target(s, alert, rule, match_radius_deg, now)
                row.status = int(AlertStatus.ACCEPTED)
                row.target_id = target_id
                row.created_target = created
                row.target_priority_before = None if created else before
                row.priority = rule.priority
                row.window_start = now
                row.window_end = now + timedelta(seconds=rule.window_s)
                row.window_boost = rule.boost
                self._audit(s, now, actor, "accept_alert", target_id, alert=alert.dedup_key, created=created)
                await s.flush()
                return AlertOutcome(_record(row), replan=True)
        except IntegrityError:
            # Another replica stored the same (source, external id, revision) first.
            async with self._tx("store_alert_duplicate") as s:
                stored = await s.scalar(select(AlertRow).where(AlertRow.dedup_key == alert.dedup_key))
                if stored is None:
                    raise
                return AlertOutcome(_record(stored), duplicate=True)

    async def widest_telescope_fov_deg(self) -> float:
        """The widest field of view among the telescopes (0 when none says): a sky map is tiled with it."""
        async with self._tx("widest_telescope_fov") as s:
            widest = await s.scalar(
                select(func.max(StationRow.fov_deg)).where(
                    StationRow.kind == int(StationKind.TELESCOPE), StationRow.deleted_at.is_(None)
                )
            )
        return float(widest or 0.0)

    async def note_alert_error(self, alert_id: str, error: str) -> AlertRecord:
        """Say on a stored alert why its sky map made no targets (the alert stays STORED)."""
        async with self._tx("note_alert_error") as s:
            row = await s.get(AlertRow, alert_id)
            if row is None:
                raise NotFound(f"no alert {alert_id!r}", field="alert_id")
            row.error = error[:2000]
            return _record(row)

    async def attach_skymap_targets(
        self, alert_id: str, tiles: Sequence[SkyTile], *, rule: AlertRule, fov_deg: float, actor: str = "system"
    ) -> AlertOutcome:
        """Turn a stored sky-map alert's tiles (most probable first) into targets `<event>-tNN`, each with the rule's
        observing settings, a priority by rank (`tile_priority`) and the alert's time-critical window, all in one
        transaction. Nothing happens when the alert is no longer STORED (retracted meanwhile) or there are no
        tiles. A later revision of the same event takes over the tiles it shares by id, with its new positions."""
        now = self._now()
        async with self._tx("attach_skymap_targets") as s:
            row = await s.get(AlertRow, alert_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no alert {alert_id!r}", field="alert_id")
            if row.status != int(AlertStatus.STORED) or not tiles:
                return AlertOutcome(_record(row))
            base = target_id_for(row.event_name)[:58].strip("-")
            best = tiles[0].probability
            for rank, tile in enumerate(tiles, 1):
                target_id = f"{base}-t{rank:02d}"
                target = await s.get(TargetRow, target_id)
                if (
                    target is not None
                    and target.deleted_at is None
                    and not await self._made_by_event(s, row, target_id)
                ):
                    continue  # someone's own target has this id: never take it over
                if target is None:
                    target = TargetRow(target_id=target_id, created_at=now, filters=[])
                    s.add(target)
                elif target.deleted_at is not None:
                    target.deleted_at = None
                    target.created_at = now
                target.name = f"{row.event_name} tile {rank}"[:200]
                target.priority = tile_priority(rule.priority, tile.probability, best)
                target.ra_deg, target.dec_deg = tile.ra_deg % 360.0, tile.dec_deg
                target.magnitude = 10.0  # unknown: the counterpart's brightness is what the follow-up measures
                _observe_as_rule_says(target, rule)
                target.updated_at = now
                await s.flush()
                s.add(AlertTargetRow(alert_id=alert_id, target_id=target_id, rank=rank, probability=tile.probability))
            row.status = int(AlertStatus.ACCEPTED)
            linked = await s.scalar(
                select(AlertTargetRow.target_id)
                .where(AlertTargetRow.alert_id == alert_id)
                .order_by(AlertTargetRow.rank)
                .limit(1)
            )
            if linked is None:
                return AlertOutcome(_record(row))
            bumped = await self._drop_superseded_tiles(s, row, now)
            row.target_id = linked
            row.created_target = True
            row.priority = rule.priority
            row.window_start = now
            row.window_end = now + timedelta(seconds=rule.window_s)
            row.window_boost = rule.boost
            row.error = ""
            total = sum(t.probability for t in tiles)
            row.detail = f"{row.detail}; {len(tiles)} tiles of {fov_deg:.2f} deg hold {total:.1%}"[:2000]
            self._audit(s, now, actor, "accept_alert", row.target_id, alert=row.dedup_key, tiles=len(tiles))
            await s.flush()
            return AlertOutcome(_record(row), replan=True, bumped_stations=bumped)

    async def _drop_superseded_tiles(self, s: AsyncSession, row: AlertRow, now: datetime) -> tuple[str, ...]:
        """Tiles of earlier revisions of this event that the new map no longer has: their unstarted jobs are
        CANCELLED (cause SUPERSEDED) and the targets deleted; running jobs finish. Returns the stations whose
        schedule changed."""
        current = select(AlertTargetRow.target_id).where(AlertTargetRow.alert_id == row.alert_id)
        stale = (
            await s.scalars(
                select(AlertTargetRow.target_id)
                .join(AlertRow, AlertRow.alert_id == AlertTargetRow.alert_id)
                .where(
                    AlertRow.source == row.source,
                    AlertRow.external_id == row.external_id,
                    AlertRow.alert_id != row.alert_id,
                    AlertTargetRow.target_id.not_in(current),
                )
                .distinct()
                .order_by(AlertTargetRow.target_id)
            )
        ).all()
        bumped: set[str] = set()
        for target_id in stale:
            jobs = (
                await s.scalars(
                    select(JobRow)
                    .where(JobRow.target_id == target_id, JobRow.state.in_([int(j) for j in _UNSTARTED]))
                    .with_for_update()
                )
            ).all()
            for job in jobs:
                if JobState(job.state) in _IN_AGENT_HANDS:
                    bumped.add(job.station_id)
                job.state = int(JobState.CANCELLED)
                job.cause = CAUSE_SUPERSEDED
                job.detail = f"sky map tile superseded by {row.dedup_key}"[:2000]
                job.updated_at = now
            target = await s.get(TargetRow, target_id)
            if target is not None and target.deleted_at is None:
                target.deleted_at = now
                target.updated_at = now
            self._audit(s, now, "system", "supersede_tile", target_id, alert=row.dedup_key)
        for station_id in sorted(bumped):
            await self._bump_schedule(s, station_id, now)  # type: ignore[attr-defined]
        return tuple(sorted(bumped))

    @staticmethod
    async def _made_by_event(s: AsyncSession, row: AlertRow, target_id: str) -> bool:
        made = await s.scalar(
            select(AlertTargetRow.target_id)
            .join(AlertRow, AlertRow.alert_id == AlertTargetRow.alert_id)
            .where(
                AlertTargetRow.target_id == target_id,
                AlertRow.source == row.source,
                AlertRow.external_id == row.external_id,
            )
            .limit(1)
        )
        return made is not None

    async def alert_tiles(self, alert_id: str) -> list[tuple[str, int, float]]:
        """(target id, rank, probability) of the targets an alert's sky map made, by rank."""
        async with self._tx("alert_tiles") as s:
            rows = await s.execute(
                select(AlertTargetRow.target_id, AlertTargetRow.rank, AlertTargetRow.probability)
                .where(AlertTargetRow.alert_id == alert_id)
                .order_by(AlertTargetRow.rank)
            )
            return [(r.target_id, r.rank, r.probability) for r in rows.all()]

    async def get_alert(self, alert_id: str) -> tuple[AlertRecord, bytes]:
        async with self._tx("get_alert") as s:
            row = await s.get(AlertRow, alert_id)
            if row is None:
                raise NotFound(f"no alert {alert_id!r}", field="alert_id")
            return _record(row), row.raw

    async def list_alerts(
        self,
        *,
        source: str = "",
        status: AlertStatus | None = None,
        target_id: str = "",
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """Newest first by received_at, then alert_id; `after` pages them (the last row of the previous page)."""
        query = select(AlertRow).order_by(AlertRow.received_at.desc(), AlertRow.alert_id).limit(limit)
        if after is not None:
            query = query.where(
                AlertRow.received_at <= after[0],  # an index range, as for jobs
                or_(
                    AlertRow.received_at < after[0],
                    and_(AlertRow.received_at == after[0], AlertRow.alert_id > after[1]),
                ),
            )
        if source:
            query = query.where(AlertRow.source == source)
        if status is not None:
            query = query.where(AlertRow.status == int(status))
        if target_id:
            query = query.where(AlertRow.target_id == target_id)
        async with self._tx("list_alerts") as s:
            return [_record(r) for r in (await s.scalars(query)).all()]

    async def alert_windows(self, now: datetime) -> dict[str, tuple[list[TimeWindow], float]]:
        """Time-critical windows (not yet over) of accepted alerts, by target, with the largest boost."""
        query = select(AlertRow.target_id, AlertRow.window_start, AlertRow.window_end, AlertRow.window_boost).where(
            AlertRow.status == int(AlertStatus.ACCEPTED),
            AlertRow.target_id.is_not(None),
            AlertRow.window_end > now,
        )
        tiles = (
            select(AlertTargetRow.target_id, AlertRow.window_start, AlertRow.window_end, AlertRow.window_boost)
            .join(AlertRow, AlertRow.alert_id == AlertTargetRow.alert_id)
            .where(AlertRow.status == int(AlertStatus.ACCEPTED), AlertRow.window_end > now)
        )
        out: dict[str, tuple[list[TimeWindow], float]] = {}
        async with self._tx("alert_windows") as s:
            rows = [*(await s.execute(query)).all(), *(await s.execute(tiles)).all()]
            for target_id, start, end, boost in rows:
                if target_id is None or start is None or end is None:
                    continue
                windows, best = out.get(target_id, ([], 0.0))
                windows.append(TimeWindow(start, end))
                out[target_id] = (windows, max(best, boost))
        return out

    # ------------------------------------------------------------------------------------------------ internals

    @staticmethod
    def _row(alert: Alert | None, raw: bytes, *, origin: str, now: datetime, status: AlertStatus) -> AlertRow:
        return AlertRow(
            alert_id=str(uuid.uuid4()),
            dedup_key=alert.dedup_key if alert else None,
            source=alert.source if alert else "",
            alert_type=alert.alert_type if alert else "",
            external_id=alert.external_id if alert else "",
            revision=alert.revision if alert else 0,
            event_name=alert.event_name if alert else "",
            format=alert.format.value if alert else "",
            role=alert.role.value if alert else "",
            retraction=alert.retraction if alert else False,
            status=int(status),
            target_id=None,
            created_target=False,
            event_time=alert.event_time if alert else None,
            received_at=now,
            ra_deg=alert.ra_deg if alert else None,
            dec_deg=alert.dec_deg if alert else None,
            error_radius_deg=alert.error_radius_deg if alert else None,
            magnitude_ab=alert.magnitude_ab if alert else None,
            magnitude_error=alert.magnitude_error if alert else None,
            filter=alert.filter if alert else "",
            flux_erg_s_cm2=alert.flux_erg_s_cm2 if alert else None,
            detail=alert.detail[:2000] if alert else "",
            origin=origin[:300],
            error="",
            schema_version=alert.schema_version[:300] if alert else "",
            cutouts=[c.name for c in alert.cutouts] if alert else [],
            priority=0,
            target_priority_before=None,
            window_start=None,
            window_end=None,
            window_boost=0.0,
            raw=raw,
            raw_sha256=hashlib.sha256(raw).hexdigest(),
        )

    @staticmethod
    def _targetable(alert: Alert, rule: AlertRule) -> bool:
        if rule.action != "target" or alert.ra_deg is None:
            return False
        return alert.error_radius_deg is None or alert.error_radius_deg <= rule.max_error_radius_deg

    async def _match(
        self, s: AsyncSession, alert: Alert, radius_deg: float
    ) -> tuple[TargetRow | None, TargetRow | None]:
        """(a live target matching by name, alias or cone; else a deleted one with the event's id, to revive)."""
        names = list(dict.fromkeys((alert.event_name, *alert.aliases)))
        row = await s.scalar(
            select(TargetRow).where(TargetRow.name.in_(names), TargetRow.deleted_at.is_(None)).limit(1)
        )
        if row is None:
            row = await s.scalar(
                select(TargetRow)
                .join(TargetAliasRow, TargetAliasRow.target_id == TargetRow.target_id)
                .where(TargetAliasRow.alias.in_(names), TargetRow.deleted_at.is_(None))
                .limit(1)
            )
        slug = await s.get(TargetRow, target_id_for(alert.event_name))
        if row is None and slug is not None and slug.deleted_at is None:
            row = slug
        if row is None and radius_deg > 0 and alert.ra_deg is not None and alert.dec_deg is not None:
            rows = (
                await s.execute(
                    select(TargetRow.target_id, TargetRow.ra_deg, TargetRow.dec_deg).where(
                        TargetRow.kind == int(TargetKind.SIDEREAL), TargetRow.deleted_at.is_(None)
                    )
                )
            ).all()
            if rows:
                sep = _separation_deg(
                    alert.ra_deg,
                    alert.dec_deg,
                    np.array([r.ra_deg or 0.0 for r in rows]),
                    np.array([r.dec_deg or 0.0 for r in rows]),
                )
                best = int(np.argmin(sep))
                if sep[best] <= radius_deg:
                    row = await s.get(TargetRow, rows[best].target_id)
        return row, (slug if slug is not None and slug.deleted_at is not None else None)

    async def _upsert_target(
        self, s: AsyncSession, alert: Alert, rule: AlertRule, radius_deg: float, now: datetime
    ) -> tuple[str, bool, int]:
        """(target id, whether this event owns the target, the target's priority before this alert)."""
        assert alert.ra_deg is not None and alert.dec_deg is not None
        row, revivable = await self._match(s, alert, radius_deg)
        created = False
        before = row.priority if row is not None else rule.priority
        if row is None:
            created = True
            if revivable is not None:
                row = revivable
                row.deleted_at = None
                row.created_at = now
            else:
                row = TargetRow(target_id=target_id_for(alert.event_name), created_at=now, filters=[])
                s.add(row)
            row.name = alert.event_name[:200]
            row.priority = rule.priority
            row.magnitude = alert.magnitude_ab if alert.magnitude_ab is not None else 10.0
            _observe_as_rule_says(row, rule)
        else:
            if row.kind != int(TargetKind.SIDEREAL):
                created = False
            row.priority = max(row.priority, rule.priority)
        from_this_event = created or await s.scalar(
            select(AlertRow.alert_id).where(
                AlertRow.target_id == row.target_id,
                AlertRow.source == alert.source,
                AlertRow.external_id == alert.external_id,
                AlertRow.created_target.is_(True),
            )
        )
        if from_this_event and row.kind == int(TargetKind.SIDEREAL):
            # A later revision refines the position of a target this event made; a catalogue target keeps its own.
            row.ra_deg, row.dec_deg = alert.ra_deg, alert.dec_deg
            if alert.magnitude_ab is not None:
                row.magnitude = alert.magnitude_ab
            created = True  # the event owns this target: a retraction deletes it
        row.updated_at = now
        await s.flush()
        for alias in dict.fromkeys((alert.event_name, *alert.aliases)):
            alias = alias[:200]
            if alias and alias != row.name and await s.get(TargetAliasRow, alias) is None:
                s.add(TargetAliasRow(alias=alias, target_id=row.target_id))
        return row.target_id, created, before

    async def _retract(
        self, s: AsyncSession, alert: Alert, raw: bytes, *, origin: str, now: datetime, actor: str
    ) -> AlertOutcome:
        row = self._row(alert, raw, origin=origin, now=now, status=AlertStatus.RETRACTION)
        s.add(row)
        if alert.role != AlertRole.OBSERVATION:  # a test retraction retracts nothing
            row.status = int(AlertStatus.TEST if alert.role == AlertRole.TEST else AlertStatus.UTILITY)
            return AlertOutcome(_record(row))
        earlier: Sequence[AlertRow] = (
            await s.scalars(
                select(AlertRow).where(
                    AlertRow.source == alert.source,
                    AlertRow.external_id == alert.external_id,
                    AlertRow.retraction.is_(False),
                    AlertRow.status.in_([int(AlertStatus.ACCEPTED), int(AlertStatus.STORED)]),
                )
            )
        ).all()
        owned: dict[str, bool] = {}
        restore: dict[str, int] = {}  # catalogue targets: their priority before this event's first alert
        for e in sorted(earlier, key=lambda e: (e.received_at, e.revision)):
            e.status = int(AlertStatus.RETRACTED)
            if e.target_id is not None:
                owned[e.target_id] = owned.get(e.target_id, False) or e.created_target
                if e.target_priority_before is not None:
                    restore.setdefault(e.target_id, e.target_priority_before)
        if earlier:  # sky-map tiles: the event made each of them
            tiles = await s.scalars(
                select(AlertTargetRow.target_id)
                .where(AlertTargetRow.alert_id.in_([e.alert_id for e in earlier]))
                .order_by(AlertTargetRow.target_id)
            )
            for target_id in tiles.all():
                owned[target_id] = True
        running: list[JobRecord] = []
        bumped: set[str] = set()
        for target_id, created in owned.items():
            jobs = (
                await s.scalars(
                    select(JobRow)
                    .where(
                        JobRow.target_id == target_id,
                        JobRow.state.in_([int(j) for j in (*_UNSTARTED, JobState.RUNNING)]),
                    )
                    .with_for_update()
                )
            ).all()
            for job in jobs:
                if job.state == int(JobState.RUNNING):
                    running.append(self._job(job))
                    continue
                if JobState(job.state) in _IN_AGENT_HANDS:
                    bumped.add(job.station_id)
                job.state = int(JobState.CANCELLED)
                job.cause = CAUSE_ALERT_RETRACTED
                job.detail = f"alert retracted: {alert.dedup_key}"[:2000]
                job.updated_at = now
            target = await s.get(TargetRow, target_id)
            if created and target is not None and target.deleted_at is None:
                target.deleted_at = now
                target.updated_at = now
            elif target is not None and target_id in restore:
                others = await s.scalar(
                    select(AlertRow.alert_id).where(
                        AlertRow.target_id == target_id, AlertRow.status == int(AlertStatus.ACCEPTED)
                    )
                )
                if others is None:  # no live alert still wants it raised
                    target.priority = restore[target_id]
                    target.updated_at = now
            self._audit(s, now, actor, "retract_alert", target_id, alert=alert.dedup_key, deleted=created)
        for station_id in sorted(bumped):
            await self._bump_schedule(s, station_id, now)  # type: ignore[attr-defined]
        row.target_id = next(iter(owned), None)
        await s.flush()
        return AlertOutcome(
            _record(row), replan=bool(owned), running_jobs=tuple(running), bumped_stations=tuple(sorted(bumped))
        )
