"""Repository part for what agents send: upstream cursors and the one-transaction write of a reliable message
(telemetry, observation, job update) with its cursor; station liveness and Hello facts; observations and light
curves for the control API; upload bookkeeping."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from skymesh.core.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, SkyMeshError
from skymesh.core.jobs import JobState, can_advance
from skymesh.core.model import StationState, TimeWindow
from skymesh.observability import tracing
from skymesh.observability.metrics import DB_LATENCY
from skymesh.server.db.base import RepoBase, fenced
from skymesh.server.db.models import (
    ArtifactRow,
    AuditRow,
    CommandRow,
    JobRow,
    ObservationRow,
    ScheduleRow,
    StationRow,
    StationSessionRow,
    TargetRow,
    TelemetryRow,
    UpstreamCursorRow,
    UpstreamRefusalRow,
)
from skymesh.server.db.records import (
    OPEN_COMMAND_STATES,
    ArtifactRecord,
    HelloClaim,
    HelloIn,
    JobChange,
    JobUpdateIn,
    LightCurvePointRecord,
    ObservationIn,
    ObservationReduction,
    StoredObservation,
    TelemetryIn,
    UpstreamResult,
)

__all__ = ["IngestRepo"]

log = logging.getLogger(__name__)

UpstreamItem = JobUpdateIn | TelemetryIn | ObservationIn

_KNOWN_CURSORS_MAX = 200_000


def _table(row: Any) -> Table:
    table = row.__table__
    assert isinstance(table, Table)
    return table


_REFUSAL_CLASSES: dict[str, type[SkyMeshError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": NotFound,
    "FAILED_PRECONDITION": FailedPrecondition,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
}


def _gap(boot_id: str, expected: int, seq: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"expected seq {expected} of boot {boot_id!r}, got {seq}: upstream sequences have no gaps",
        field="seq",
        reason="UPSTREAM_SEQ_GAP",
        details={"expected-seq": str(expected)},
    )


class _Group:
    """The decisions of one group commit, made on its locked cursors (both dialects): each item's answer, as
    `ingest_upstream` would give it alone and in order (a result, or the error that refuses it), which items are
    stored, and where each (station, boot) cursor moves."""

    def __init__(
        self,
        items: Sequence[tuple[str, str, int, TelemetryIn]],
        epochs: Sequence[int | None] | None,
        locked: Iterable[Sequence[Any]],  # (station, boot, committed seq, station's session epoch or None)
    ) -> None:
        self.start: dict[tuple[str, str], int] = {}
        held: dict[str, int | None] = {}
        for station, boot, seq, epoch_now in locked:
            self.start[(station, boot)] = seq
            held[station] = epoch_now
        self.cursor = dict(self.start)
        self.out: list[UpstreamResult | SkyMeshError] = []
        self.stored: list[int] = []  # indexes of the items to insert
        self.resent: list[int] = []  # at or below the cursor: duplicates, unless refused before
        for index, (station, boot, seq, _) in enumerate(items):
            committed = self.cursor[(station, boot)]
            epoch = epochs[index] if epochs is not None else None
            if epoch is not None and held.get(station) != epoch:
                self.out.append(fenced(station))
            elif seq <= committed:
                self.resent.append(index)
                self.out.append(UpstreamResult(committed, duplicate=True))
            elif seq != committed + 1:
                self.out.append(_gap(boot, committed + 1, seq))
            else:
                self.cursor[(station, boot)] = seq
                self.stored.append(index)
                self.out.append(UpstreamResult(seq, duplicate=False))

    def refused_before(self, index: int, refusal: Sequence[Any] | None) -> None:
        """The refusal row (code, error) found for a resent item, if any: it is answered with that refusal again."""
        if refusal is not None:
            code, error = refusal[0], refusal[1]
            self.out[index] = _REFUSAL_CLASSES.get(code, InvalidArgument)(
                f"refused before: {error}", reason="UPSTREAM_REFUSED_BEFORE"
            )

    def moved(self) -> list[tuple[tuple[str, str], int]]:
        """The cursors that move, with their new seq."""
        return [(key, seq) for key, seq in self.cursor.items() if seq != self.start[key]]


# The group commit's statements on PostgreSQL (IngestRepo._telemetry_group_pg): arrays in, one prepared statement each.
# The cursor decides what is a resend; the insert's ON CONFLICT backs it with the dedup key (station, boot, seq, at),
# which holds on a day-partitioned table because `at` is the batch's own time (migration 0019).
_PG_NEW_CURSORS = """
INSERT INTO upstream_cursors (station_id, boot_id, committed_seq, updated_at)
SELECT k.station_id, k.boot_id, 0, $3 FROM unnest($1::text[], $2::text[]) AS k(station_id, boot_id)
ON CONFLICT DO NOTHING"""
_PG_LOCK = """
SELECT c.station_id, c.boot_id, c.committed_seq, s.epoch
FROM upstream_cursors AS c LEFT OUTER JOIN station_sessions AS s ON s.station_id = c.station_id
WHERE (c.station_id, c.boot_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY c.station_id, c.boot_id
FOR UPDATE OF c"""
_PG_REFUSAL = "SELECT code, error FROM upstream_refusals WHERE station_id = $1 AND boot_id = $2 AND seq = $3"
_PG_WRITE = """
WITH stored AS (
    INSERT INTO telemetry (station_id, boot_id, seq, at, data)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::bytea[])
    ON CONFLICT DO NOTHING
)
UPDATE upstream_cursors AS c SET committed_seq = m.seq, updated_at = $9
FROM unnest($6::text[], $7::text[], $8::bigint[]) AS m(station_id, boot_id, seq)
WHERE c.station_id = m.station_id AND c.boot_id = m.boot_id"""


# The Hello group on PostgreSQL (`_record_hellos_pg`): the station rows in key order, FOR NO KEY UPDATE (see
# `_record_hellos` for why not FOR UPDATE); each statement one prepared statement for any group size.
_PG_HELLO_LOCK = """
SELECT station_id, state, state_changed_at FROM stations WHERE station_id = ANY($1::text[])
ORDER BY station_id FOR NO KEY UPDATE"""
_PG_HELLO_FACTS = """
UPDATE stations AS s SET agent_version = u.agent_version, capabilities = u.capabilities::json,
    clock_offset_s = u.clock_offset_s, last_seen = $7, state = u.state, state_changed_at = u.state_changed_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int[], $6::timestamptz[])
    AS u(station_id, agent_version, capabilities, clock_offset_s, state, state_changed_at)
WHERE s.station_id = u.station_id"""
_PG_HELLO_AUDIT = """
INSERT INTO audit_log (at, actor, action, subject, detail)
SELECT $3, 'station:' || u.station_id, 'connect', u.station_id, u.detail::json
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(station_id, detail, n) ORDER BY u.n"""
_PG_HELLO_CLAIM = """
INSERT INTO station_sessions AS t (station_id, epoch, replica, session_id, claimed_at)
SELECT u.station_id, 1, u.replica, u.session_id, $4
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(station_id, replica, session_id, n) ORDER BY u.n
ON CONFLICT (station_id) DO UPDATE SET epoch = t.epoch + 1, replica = excluded.replica,
    session_id = excluded.session_id, claimed_at = excluded.claimed_at
RETURNING station_id, epoch"""
_PG_HELLO_CURSORS = """
SELECT station_id, boot_id, committed_seq FROM upstream_cursors
WHERE (station_id, boot_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"""
_PG_HELLO_SCHEDULES = "SELECT station_id, version FROM schedules WHERE station_id = ANY($1::text[])"
_PG_HELLO_HEADS = """
SELECT station_id, max(seq) FROM commands WHERE station_id = ANY($1::text[]) AND state = ANY($2::int[])
GROUP BY station_id"""


def _reduction(row: ObservationRow) -> ObservationReduction | None:
    if not row.reduction_state:
        return None
    return ObservationReduction(
        state=row.reduction_state,
        filter=row.reduced_filter or "",
        magnitude=row.reduced_magnitude,
        magnitude_error=row.reduced_magnitude_error,
        zero_point_mag=row.zero_point_mag,
        zero_point_error_mag=row.zero_point_error_mag,
        airmass=row.reduced_airmass,
        fwhm_arcsec=row.fwhm_arcsec,
        wcs_rms_arcsec=row.wcs_rms_arcsec,
        quality_flags=tuple(row.reduction_flags or ()),
        reduced_at=row.reduced_at,
        pass_quality_score=row.pass_quality_score,
        doppler_offset_hz=row.doppler_offset_hz,
        peak_snr_db=row.peak_snr_db,
        error=row.reduction_error or "",
        waterfall_path=row.waterfall_path or "",
    )


def _artifact(row: ArtifactRow) -> ArtifactRecord:
    return ArtifactRecord(
        resource_name=row.resource_name,
        observation_id=row.observation_id,
        artifact_id=row.artifact_id,
        station_id=row.station_id,
        path=row.path,
        committed_size_bytes=row.committed_size_bytes,
        total_size_bytes=row.total_size_bytes,
        sha256=row.sha256,
        complete=row.complete,
        kind=row.kind,
    )


class IngestRepo(RepoBase):
    def _known_cursors(self) -> set[tuple[str, str]]:
        """(station, boot) pairs whose cursor row this process has committed or seen (bounded by the boots it serves;
        cleared when it grows past `_KNOWN_CURSORS_MAX`)."""
        known: set[tuple[str, str]] | None = self.__dict__.get("_known_cursor_keys")
        if known is None or len(known) > _KNOWN_CURSORS_MAX:
            known = set()
            self.__dict__["_known_cursor_keys"] = known
        return known

    # ---------------------------------------------------------------------------------------------- cursors

    async def get_cursors(self, station_id: str, boot_ids: Iterable[str]) -> dict[str, int]:
        """Committed upstream seq per boot id (0 for boots never seen)."""
        ids = [b for b in dict.fromkeys(boot_ids) if b]
        async with self._tx("get_cursors") as s:
            rows = (
                await s.scalars(
                    select(UpstreamCursorRow).where(
                        UpstreamCursorRow.station_id == station_id, UpstreamCursorRow.boot_id.in_(ids)
                    )
                )
            ).all()
        found = {r.boot_id: r.committed_seq for r in rows}
        return {b: found.get(b, 0) for b in ids}

    async def _lock_cursor(self, s: AsyncSession, station_id: str, boot_id: str, now: datetime) -> UpstreamCursorRow:
        # Make sure the cursor row exists, then lock it: concurrent sessions of one station serialize here.
        await s.execute(
            self._insert(UpstreamCursorRow)
            .values(station_id=station_id, boot_id=boot_id, committed_seq=0, updated_at=now)
            .on_conflict_do_nothing()
        )
        cursor = await s.scalar(
            select(UpstreamCursorRow)
            .where(UpstreamCursorRow.station_id == station_id, UpstreamCursorRow.boot_id == boot_id)
            .with_for_update()
        )
        assert cursor is not None
        return cursor

    async def ingest_upstream(
        self, station_id: str, boot_id: str, seq: int, item: UpstreamItem, *, epoch: int | None = None
    ) -> UpstreamResult:
        """Write one reliable upstream message and advance the (station, boot) cursor in one transaction.

        Acked means stored (docs/protocol.md rule 4): only the next seq (cursor + 1) advances the cursor; a seq above
        it raises FailedPrecondition (reason UPSTREAM_SEQ_GAP) naming the expected seq. A seq at or below the cursor
        is a resend: refused again if it was refused (`refuse_upstream`), else a duplicate (it was stored: cursors
        only move over stored or refused messages). Bad references (unknown job or
        target) raise InvalidArgument or NotFound naming the field; the transaction is rolled back: nothing is
        written. With `epoch`, a station held by a newer session raises Aborted (reason FENCED) and writes nothing.
        """
        now = self._now()
        change: JobChange | None = None
        async with self._tx("ingest_upstream") as s:
            await self._fence(s, station_id, epoch)
            cursor = await self._lock_cursor(s, station_id, boot_id, now)
            if seq <= cursor.committed_seq:
                # Every seq at or below the cursor was stored or refused: the server never lets a gap in.
                refusal = await s.get(UpstreamRefusalRow, (station_id, boot_id, seq))
                if refusal is not None:
                    cls = _REFUSAL_CLASSES.get(refusal.code, InvalidArgument)
                    raise cls(f"refused before: {refusal.error}", reason="UPSTREAM_REFUSED_BEFORE")
                return UpstreamResult(cursor.committed_seq, duplicate=True)
            if seq != cursor.committed_seq + 1:
                raise _gap(boot_id, cursor.committed_seq + 1, seq)
            if isinstance(item, TelemetryIn):
                await s.execute(
                    self._insert(TelemetryRow)
                    .values(station_id=station_id, boot_id=boot_id, seq=seq, at=item.at, data=item.data)
                    .on_conflict_do_nothing()
                )
            elif isinstance(item, ObservationIn):
                await self._insert_observation(s, station_id, boot_id, seq, item, now)
            else:
                change = await self._apply_job_update(s, station_id, item, now)
            cursor.committed_seq = seq
            cursor.updated_at = now
        return UpstreamResult(seq, duplicate=False, job_change=change)

    async def ingest_telemetry_many(
        self, items: Sequence[tuple[str, str, int, TelemetryIn]], epochs: Sequence[int | None] | None = None
    ) -> list[UpstreamResult | SkyMeshError]:
        """Group commit: many telemetry batches (station, boot, seq, batch), from any streams, in ONE transaction.

        Each item gets the answer `ingest_upstream` would have given it alone, in order (so consecutive seqs of one
        boot in the same group are fine): a result, or the error that refuses it (gap, refused before). A refused
        item writes nothing and does not hold back the others. Statements are bulk (a few per group, whatever its
        size; on PostgreSQL arrays through asyncpg, the insert and the cursor moves in one statement), not one ORM
        round trip per message: this is the agent-stream hot path (issue 8).

        `epochs` (one per item, None: unfenced) fences each item as `ingest_upstream` does: an item whose station is
        held by a newer session is answered with the FENCED error and writes nothing."""
        now = self._now()
        keys = sorted({(station, boot) for station, boot, _, _ in items})
        known = self._known_cursors()
        with (
            tracing.span(
                "db ingest_telemetry_many",
                attributes={"db.system": self.dialect, "db.operation": "ingest_telemetry_many"},
            ),
            DB_LATENCY.labels("ingest_telemetry_many").time(),
        ):
            if self.dialect == "postgresql":
                out = await self._telemetry_group_pg(items, epochs, keys, [k for k in keys if k not in known], now)
            else:
                out = await self._telemetry_group_core(items, epochs, keys, [k for k in keys if k not in known], now)
        known.update(keys)  # committed: these cursor rows exist
        return out

    async def _telemetry_group_core(
        self,
        items: Sequence[tuple[str, str, int, TelemetryIn]],
        epochs: Sequence[int | None] | None,
        keys: list[tuple[str, str]],
        new_keys: list[tuple[str, str]],
        now: datetime,
    ) -> list[UpstreamResult | SkyMeshError]:
        """The group's transaction in SQLAlchemy Core (SQLite), on one connection: no ORM identity map or flush."""
        table = UpstreamCursorRow.__table__
        assert isinstance(table, Table)
        sessions = StationSessionRow.__table__
        assert isinstance(sessions, Table)
        async with self.engine.begin() as conn:
            # A cursor row this process has already seen exists (cursors are never deleted while their station
            # lives): the insert is a round trip only for the first message of a (station, boot).
            if new_keys:
                await conn.execute(
                    self._insert(table).on_conflict_do_nothing(),
                    [{"station_id": st, "boot_id": b, "committed_seq": 0, "updated_at": now} for st, b in new_keys],
                )
            # Lock every cursor of the group in one statement, in key order (concurrent sessions of a station and
            # concurrent groups serialize here without deadlocking), reading each station's session epoch with it:
            # the fence costs no extra round trip on the hot path. A write that races a Hello elsewhere is still
            # stored once: the cursor row decides, and the newer session resends it as a duplicate at worst.
            query = (
                select(table.c.station_id, table.c.boot_id, table.c.committed_seq, sessions.c.epoch)
                .select_from(table.outerjoin(sessions, sessions.c.station_id == table.c.station_id))
                .where(tuple_(table.c.station_id, table.c.boot_id).in_(keys))
                .order_by(table.c.station_id, table.c.boot_id)
                .with_for_update(of=table)
            )
            locked = (await conn.execute(query)).all()
            if len(locked) != len(keys):
                # A cursor believed to exist is gone (its station was deleted and made again): create and lock.
                await conn.execute(
                    self._insert(table).on_conflict_do_nothing(),
                    [{"station_id": st, "boot_id": b, "committed_seq": 0, "updated_at": now} for st, b in keys],
                )
                locked = (await conn.execute(query)).all()
            group = _Group(items, epochs, locked)
            refusals = UpstreamRefusalRow.__table__
            assert isinstance(refusals, Table)
            for index in group.resent:  # rare: a resend at or below the cursor answers as before if refused then
                station, boot, seq, _ = items[index]
                refusal = (
                    await conn.execute(
                        select(refusals.c.code, refusals.c.error).where(
                            refusals.c.station_id == station, refusals.c.boot_id == boot, refusals.c.seq == seq
                        )
                    )
                ).first()
                group.refused_before(index, refusal)
            if group.stored:
                await conn.execute(
                    self._insert(TelemetryRow.__table__).on_conflict_do_nothing(),
                    [
                        {"station_id": st, "boot_id": b, "seq": seq, "at": item.at, "data": item.data}
                        for st, b, seq, item in (items[i] for i in group.stored)
                    ],
                )
                await conn.execute(
                    update(table)
                    .where(table.c.station_id == bindparam("k_station"), table.c.boot_id == bindparam("k_boot"))
                    .values(committed_seq=bindparam("seq"), updated_at=bindparam("now")),
                    [{"k_station": st, "k_boot": b, "seq": seq, "now": now} for (st, b), seq in group.moved()],
                )
        return group.out

    async def _telemetry_group_pg(
        self,
        items: Sequence[tuple[str, str, int, TelemetryIn]],
        epochs: Sequence[int | None] | None,
        keys: list[tuple[str, str]],
        new_keys: list[tuple[str, str]],
        now: datetime,
    ) -> list[UpstreamResult | SkyMeshError]:
        """The group's transaction on PostgreSQL, straight on the asyncpg connection: the same statements as the
        Core path, each one prepared statement whatever the group's size (arrays through unnest, no per-size SQL
        to compile or cache), and the telemetry insert and the cursor moves in ONE statement: BEGIN, lock, write,
        COMMIT are the round trips of a group (plus the cursor insert for a boot's first message)."""
        async with self.engine.connect() as conn:
            pg = (await conn.get_raw_connection()).driver_connection
            assert pg is not None
            async with pg.transaction():
                if new_keys:
                    await pg.execute(_PG_NEW_CURSORS, [k[0] for k in new_keys], [k[1] for k in new_keys], now)
                stations, boots = [k[0] for k in keys], [k[1] for k in keys]
                locked = await pg.fetch(_PG_LOCK, stations, boots)
                if len(locked) != len(keys):  # a cursor believed to exist is gone: create and lock (as above)
                    await pg.execute(_PG_NEW_CURSORS, stations, boots, now)
                    locked = await pg.fetch(_PG_LOCK, stations, boots)
                group = _Group(items, epochs, [tuple(r) for r in locked])
                for index in group.resent:
                    station, boot, seq, _ = items[index]
                    group.refused_before(index, await pg.fetchrow(_PG_REFUSAL, station, boot, seq))
                if group.stored:
                    rows = [items[i] for i in group.stored]
                    moved = group.moved()
                    await pg.execute(
                        _PG_WRITE,
                        [r[0] for r in rows],
                        [r[1] for r in rows],
                        [r[2] for r in rows],
                        [r[3].at for r in rows],
                        [r[3].data for r in rows],
                        [k[0] for k, _ in moved],
                        [k[1] for k, _ in moved],
                        [seq for _, seq in moved],
                        now,
                    )
        return group.out

    async def refuse_upstream(
        self, station_id: str, boot_id: str, seq: int, code: str, error: str, *, epoch: int | None = None
    ) -> int:
        """Record that the next upstream message of (station, boot) was refused for its content (or abandoned by
        the agent), and move the cursor past it, so the agent can set it aside and go on. A seq beyond the next one
        raises the gap error instead; one at or below the cursor was already decided and changes nothing.
        Returns the cursor."""
        now = self._now()
        async with self._tx("refuse_upstream") as s:
            await self._fence(s, station_id, epoch)
            cursor = await self._lock_cursor(s, station_id, boot_id, now)
            if seq <= cursor.committed_seq:
                return cursor.committed_seq
            if seq != cursor.committed_seq + 1:
                raise _gap(boot_id, cursor.committed_seq + 1, seq)
            s.add(
                UpstreamRefusalRow(
                    station_id=station_id, boot_id=boot_id, seq=seq, code=code, error=error[:4096], refused_at=now
                )
            )
            cursor.committed_seq = seq
            cursor.updated_at = now
        return seq

    async def _insert_observation(
        self, s: AsyncSession, station_id: str, boot_id: str, seq: int, obs: ObservationIn, now: datetime
    ) -> None:
        if obs.job_id:
            job = await s.get(JobRow, obs.job_id)
            if job is None or job.station_id != station_id:
                raise InvalidArgument(f"no job {obs.job_id!r} for this station", field="observation.job_id")
        if obs.target_id and await s.get(TargetRow, obs.target_id) is None:
            raise InvalidArgument(f"no target {obs.target_id!r}", field="observation.target_id")
        target_id = obs.target_id
        if not target_id and obs.job_id:
            job = await s.get(JobRow, obs.job_id)
            target_id = job.target_id if job is not None else None
        await s.execute(
            self._insert(ObservationRow)
            .values(
                observation_id=obs.observation_id,
                station_id=station_id,
                job_id=obs.job_id or None,
                target_id=target_id or None,
                start=obs.start,
                end=obs.end,
                exposure_s=obs.exposure_s,
                airmass=obs.airmass,
                seeing_arcsec=obs.seeing_arcsec,
                filter=obs.filter,
                magnitude=obs.magnitude,
                magnitude_error=obs.magnitude_error,
                flux=obs.flux,
                ra_deg=obs.ra_deg,
                dec_deg=obs.dec_deg,
                astrometry_rms_arcsec=obs.astrometry_rms_arcsec,
                quality_flags=list(obs.quality_flags),
                headers=dict(obs.headers),
                raw=obs.raw,
                boot_id=boot_id,
                seq=seq,
                received_at=now,
            )
            .on_conflict_do_nothing()
        )

    async def _apply_job_update(self, s: AsyncSession, station_id: str, upd: JobUpdateIn, now: datetime) -> JobChange:
        row = await s.get(JobRow, upd.job_id, with_for_update=True)
        if row is None or row.station_id != station_id:
            raise NotFound(f"no job {upd.job_id!r} for this station", field="job_update.job_id")
        old = JobState(row.state)
        if old == upd.state or not can_advance(old, upd.state):
            if old != upd.state:
                log.info("job %s: ignoring illegal move %s -> %s", row.job_id, old.name, upd.state.name)
            return JobChange(row.job_id, station_id, old, upd.state, applied=False)
        row.state = int(upd.state)
        row.cause = upd.cause
        row.detail = upd.detail
        row.updated_at = now
        return JobChange(row.job_id, station_id, old, upd.state, applied=True)

    # ---------------------------------------------------------------------------------------------- liveness

    async def set_station_state(
        self, station_id: str, state: StationState, *, last_seen: datetime | None, epoch: int | None = None
    ) -> bool:
        """Write a liveness transition. With `epoch`, only while the station is still held at that epoch (a replica
        that lost the station does not fight the holder over its state): returns False, writing nothing, when not."""
        [written] = await self._set_station_states([(station_id, state, last_seen, epoch)])
        return written

    async def set_station_states(
        self, items: Sequence[tuple[str, StationState, datetime | None, int | None]]
    ) -> list[bool]:
        """`set_station_state` for many stations (station, state, last_seen, epoch) in ONE transaction: the liveness
        monitor writes every transition of a tick together (a reconnect storm ends thousands of streams at once)."""
        return await self._set_station_states(items)

    async def _set_station_states(
        self, items: Sequence[tuple[str, StationState, datetime | None, int | None]]
    ) -> list[bool]:
        now = self._now()
        stations = _table(StationRow)
        sessions = _table(StationSessionRow)
        ids = sorted({station for station, *_ in items})
        with (
            tracing.span(
                "db set_station_states", attributes={"db.system": self.dialect, "db.operation": "set_station_states"}
            ),
            DB_LATENCY.labels("set_station_states").time(),
        ):
            async with self.engine.begin() as conn:
                # The station rows first (in key order, FOR NO KEY UPDATE as in a Hello), then the session rows.
                rows = {
                    sid: (StationState(st), at)
                    for sid, st, at in (
                        await conn.execute(
                            select(stations.c.station_id, stations.c.state, stations.c.state_changed_at)
                            .where(stations.c.station_id.in_(ids))
                            .order_by(stations.c.station_id)
                            .with_for_update(key_share=True)
                        )
                    ).all()
                }
                fenced_ids = sorted(
                    {station for station, _, _, epoch in items if epoch is not None and station in rows}
                )
                held: dict[str, int] = {}
                if fenced_ids:
                    held = {
                        sid: int(e)
                        for sid, e in (
                            await conn.execute(
                                select(sessions.c.station_id, sessions.c.epoch)
                                .where(sessions.c.station_id.in_(fenced_ids))
                                .order_by(sessions.c.station_id)
                                .with_for_update(read=True)
                            )
                        ).all()
                    }
                out: list[bool] = []
                changes: dict[str, dict[str, Any]] = {}
                for station, state, last_seen, epoch in items:
                    row = rows.get(station)
                    if row is None or (epoch is not None and held.get(station) != epoch):
                        out.append(False)
                        continue
                    old, changed_at = row
                    change = changes.setdefault(station, {"k_station": station, "last_seen": None})
                    if old != state:
                        rows[station] = (state, now)
                        changed_at = now
                    change["state"] = int(state)
                    change["state_changed_at"] = changed_at
                    if last_seen is not None:
                        change["last_seen"] = last_seen
                    out.append(True)
                seen = [c for c in changes.values() if c["last_seen"] is not None]
                unseen = [
                    {k: v for k, v in c.items() if k != "last_seen"} for c in changes.values() if c["last_seen"] is None
                ]
                for group, columns in (
                    (seen, ("state", "state_changed_at", "last_seen")),
                    (unseen, ("state", "state_changed_at")),
                ):
                    if group:
                        await conn.execute(
                            update(stations)
                            .where(stations.c.station_id == bindparam("k_station"))
                            .values({c: bindparam(c) for c in columns}),
                            group,
                        )
        return out

    async def record_hello(
        self,
        station_id: str,
        *,
        agent_version: str,
        capabilities: dict[str, Any],
        clock_offset_s: float,
        boot_ids: Iterable[str] = (),
        replica: str = "",
        session_id: str = "",
    ) -> HelloClaim:
        """`record_hellos` for one Hello that leaves the station's state alone; raises what refuses it."""
        hello = HelloIn(agent_version, capabilities, clock_offset_s, tuple(boot_ids), replica, session_id)
        [claim] = await self._record_hellos([(station_id, "", 0, hello)])
        if isinstance(claim, SkyMeshError):
            raise claim
        return claim

    async def record_hellos(
        self, items: Sequence[tuple[str, str, int, HelloIn]], epochs: Sequence[int | None] | None = None
    ) -> list[HelloClaim | SkyMeshError]:
        """Group commit of Hellos (station, unused, unused, hello) from any number of streams, in ONE transaction:
        each station's Hello facts and liveness state, its next session epoch (held by `hello.replica`), the
        committed seq of each of its boot ids, its schedule version and open-command head. A reconnect storm of
        thousands of agents pays a few transactions, not several per agent. Answers each item in order: its claim,
        or NotFound for a station that does not exist (which writes nothing and does not hold back the others).
        `epochs` is unused (a Hello takes a new epoch; the shape is `GroupCommitter`'s)."""
        return await self._record_hellos(items)

    async def _record_hellos(self, items: Sequence[tuple[str, str, int, HelloIn]]) -> list[HelloClaim | SkyMeshError]:
        if self.dialect == "postgresql":
            with (
                tracing.span(
                    "db record_hellos", attributes={"db.system": self.dialect, "db.operation": "record_hellos"}
                ),
                DB_LATENCY.labels("record_hellos").time(),
            ):
                return await self._record_hellos_pg(items)
        now = self._now()
        stations = _table(StationRow)
        sessions = _table(StationSessionRow)
        cursors = _table(UpstreamCursorRow)
        ids = sorted({station for station, _, _, _ in items})
        with (
            tracing.span("db record_hellos", attributes={"db.system": self.dialect, "db.operation": "record_hellos"}),
            DB_LATENCY.labels("record_hellos").time(),
        ):
            async with self.engine.begin() as conn:
                # Every station row of the group in one statement, in key order (the order a single Hello and a
                # liveness write take them in), then the session rows. FOR NO KEY UPDATE, as the UPDATE itself
                # takes: it does not conflict with the KEY SHARE locks a telemetry group's inserts take on the
                # station rows they reference in any order (FOR UPDATE would, and deadlock against that group).
                found = (
                    await conn.execute(
                        select(stations.c.station_id, stations.c.state, stations.c.state_changed_at)
                        .where(stations.c.station_id.in_(ids))
                        .order_by(stations.c.station_id)
                        .with_for_update(key_share=True)
                    )
                ).all()
                state = {sid: StationState(st) for sid, st, _ in found}
                changed_at = {sid: at for sid, _, at in found}
                before: list[StationState | None] = []
                facts: dict[str, dict[str, Any]] = {}
                for station, _, _, hello in items:  # in order: a later Hello of the same station sees the earlier
                    if station not in state:
                        before.append(None)
                        continue
                    before.append(state[station])
                    if hello.state is not None and hello.state != state[station]:
                        state[station] = hello.state
                        changed_at[station] = now
                    facts[station] = {
                        "k_station": station,
                        "agent_version": hello.agent_version,
                        "capabilities": hello.capabilities,
                        "clock_offset_s": hello.clock_offset_s,
                        "last_seen": now,
                        "state": int(state[station]),
                        "state_changed_at": changed_at[station],
                    }
                if not facts:
                    return [NotFound(f"no station {station!r}", field="hello.station_id") for station, *_ in items]
                await conn.execute(
                    update(stations)
                    .where(stations.c.station_id == bindparam("k_station"))
                    .values({k: bindparam(k) for k in next(iter(facts.values())) if k != "k_station"}),
                    list(facts.values()),
                )
                await conn.execute(
                    _table(AuditRow).insert(),
                    [
                        {
                            "at": now,
                            "actor": f"station:{station}",
                            "action": "connect",
                            "subject": station,
                            "detail": {"agent_version": hello.agent_version},
                        }
                        for station, _, _, hello in items
                        if station in state
                    ],
                )
                # The next epoch of each station, taken before its cursors are read: a write fenced on the older
                # epoch either committed first (and its cursor is read here) or waits and then fails FENCED. Two
                # Hellos of one station in the group take consecutive epochs (the later one wins), one per round.
                epoch: list[int] = [0] * len(items)
                pending = [i for i, (station, *_) in enumerate(items) if station in state]
                while pending:
                    taken: dict[str, int] = {}
                    later: list[int] = []
                    for i in pending:
                        if items[i][0] in taken:
                            later.append(i)
                        else:
                            taken[items[i][0]] = i
                    # A missing row is made at epoch 0, then every row of the round moves to the next epoch (1 for
                    # a new one): executemany of one-row statements, compiled once, where one multi-row upsert was
                    # compiled afresh for every group size (most of a storm's CPU outside gRPC).
                    order = sorted(taken.items())
                    await conn.execute(
                        self._insert(sessions).on_conflict_do_nothing(index_elements=[sessions.c.station_id]),
                        [
                            {"station_id": station, "epoch": 0, "replica": "", "session_id": "", "claimed_at": now}
                            for station, _ in order
                        ],
                    )
                    await conn.execute(
                        update(sessions)
                        .where(sessions.c.station_id == bindparam("k_station"))
                        .values(
                            epoch=sessions.c.epoch + 1,
                            replica=bindparam("k_replica"),
                            session_id=bindparam("k_session"),
                            claimed_at=bindparam("k_at"),
                        ),
                        [
                            {
                                "k_station": station,
                                "k_replica": items[i][3].replica,
                                "k_session": items[i][3].session_id,
                                "k_at": now,
                            }
                            for station, i in order
                        ],
                    )
                    claimed = await conn.execute(
                        select(sessions.c.station_id, sessions.c.epoch).where(
                            sessions.c.station_id.in_([station for station, _ in order])
                        )
                    )
                    for station, value in claimed.all():
                        epoch[taken[station]] = int(value)
                    pending = later
                pairs = sorted(
                    {(station, b) for station, _, _, hello in items if station in state for b in hello.boot_ids if b}
                )
                committed: dict[tuple[str, str], int] = {}
                if pairs:
                    query = select(cursors.c.station_id, cursors.c.boot_id, cursors.c.committed_seq).where(
                        tuple_(cursors.c.station_id, cursors.c.boot_id).in_(pairs)
                    )
                    committed = {(st, b): int(seq) for st, b, seq in (await conn.execute(query)).all()}
                schedules = _table(ScheduleRow)
                versions = {
                    sid: int(v)
                    for sid, v in (
                        await conn.execute(
                            select(schedules.c.station_id, schedules.c.version).where(schedules.c.station_id.in_(ids))
                        )
                    ).all()
                }
                commands = _table(CommandRow)
                heads = {
                    sid: int(head)
                    for sid, head in (
                        await conn.execute(
                            select(commands.c.station_id, func.max(commands.c.seq))
                            .where(commands.c.station_id.in_(ids), commands.c.state.in_(OPEN_COMMAND_STATES))
                            .group_by(commands.c.station_id)
                        )
                    ).all()
                }
        return _hello_claims(items, before, epoch, committed, versions, heads)

    async def _record_hellos_pg(
        self, items: Sequence[tuple[str, str, int, HelloIn]]
    ) -> list[HelloClaim | SkyMeshError]:
        """`_record_hellos` on PostgreSQL, straight on the asyncpg connection (as `_telemetry_group_pg`): the same
        statements in the same order and locks, each one prepared statement whatever the group's size (arrays
        through unnest). The Core path compiled its multi-row INSERTs afresh for every group size: in a reconnect
        storm that compiling was most of the server's CPU per Hello outside gRPC."""
        now = self._now()
        ids = sorted({station for station, _, _, _ in items})
        async with self.engine.connect() as conn:
            pg = (await conn.get_raw_connection()).driver_connection
            assert pg is not None
            async with pg.transaction():
                found = await pg.fetch(_PG_HELLO_LOCK, ids)
                state = {r[0]: StationState(r[1]) for r in found}
                changed_at: dict[str, datetime] = {r[0]: r[2] for r in found}
                before: list[StationState | None] = []
                facts: dict[str, tuple[str, str, float, int]] = {}
                for station, _, _, hello in items:  # in order: a later Hello of the same station sees the earlier
                    if station not in state:
                        before.append(None)
                        continue
                    before.append(state[station])
                    if hello.state is not None and hello.state != state[station]:
                        state[station] = hello.state
                        changed_at[station] = now
                    facts[station] = (
                        hello.agent_version,
                        json.dumps(hello.capabilities),
                        hello.clock_offset_s,
                        int(state[station]),
                    )
                if not facts:
                    return [NotFound(f"no station {station!r}", field="hello.station_id") for station, *_ in items]
                rows = sorted(facts.items())
                await pg.execute(
                    _PG_HELLO_FACTS,
                    [sid for sid, _ in rows],
                    [f[0] for _, f in rows],
                    [f[1] for _, f in rows],
                    [f[2] for _, f in rows],
                    [f[3] for _, f in rows],
                    [changed_at[sid] for sid, _ in rows],
                    now,
                )
                present = [(station, hello) for station, _, _, hello in items if station in state]
                await pg.execute(
                    _PG_HELLO_AUDIT,
                    [station for station, _ in present],
                    [json.dumps({"agent_version": hello.agent_version}) for _, hello in present],
                    now,
                )
                # The next epoch of each station, taken before its cursors are read (see `_record_hellos`); two
                # Hellos of one station in the group take consecutive epochs, one per round (the later one wins).
                epoch: list[int] = [0] * len(items)
                pending = [i for i, (station, *_) in enumerate(items) if station in state]
                while pending:
                    taken: dict[str, int] = {}
                    later: list[int] = []
                    for i in pending:
                        if items[i][0] in taken:
                            later.append(i)
                        else:
                            taken[items[i][0]] = i
                    order = sorted(taken.items())
                    claimed = await pg.fetch(
                        _PG_HELLO_CLAIM,
                        [station for station, _ in order],
                        [items[i][3].replica for _, i in order],
                        [items[i][3].session_id for _, i in order],
                        now,
                    )
                    for station, value in claimed:
                        epoch[taken[station]] = int(value)
                    pending = later
                pairs = sorted(
                    {(station, b) for station, _, _, hello in items if station in state for b in hello.boot_ids if b}
                )
                committed: dict[tuple[str, str], int] = {}
                if pairs:
                    got = await pg.fetch(_PG_HELLO_CURSORS, [p[0] for p in pairs], [p[1] for p in pairs])
                    committed = {(st, b): int(seq) for st, b, seq in got}
                versions = {sid: int(v) for sid, v in await pg.fetch(_PG_HELLO_SCHEDULES, ids)}
                heads = {
                    sid: int(head) for sid, head in await pg.fetch(_PG_HELLO_HEADS, ids, list(OPEN_COMMAND_STATES))
                }
        return _hello_claims(items, before, epoch, committed, versions, heads)

    async def station_states(self) -> dict[str, StationState]:
        async with self._tx("station_states") as s:
            rows = (await s.execute(select(StationRow.station_id, StationRow.state))).all()
        return {sid: StationState(st) for sid, st in rows}

    # ---------------------------------------------------------------------------------------------- observations

    async def list_observations(
        self,
        *,
        target_id: str = "",
        station_id: str = "",
        window: TimeWindow | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[StoredObservation]:
        """Newest first by (start, observation_id); `after` pages them (the last row of the previous page)."""
        query = (
            select(ObservationRow)
            .order_by(ObservationRow.start.desc(), ObservationRow.observation_id.desc())
            .limit(limit)
        )
        if after is not None:
            query = query.where(
                ObservationRow.start <= after[0],  # an index range, as for jobs
                or_(
                    ObservationRow.start < after[0],
                    and_(ObservationRow.start == after[0], ObservationRow.observation_id < after[1]),
                ),
            )
        if target_id:
            query = query.where(ObservationRow.target_id == target_id)
        if station_id:
            query = query.where(ObservationRow.station_id == station_id)
        if window is not None:
            query = query.where(ObservationRow.start >= window.start, ObservationRow.start < window.end)
        async with self._tx("list_observations") as s:
            rows = (await s.scalars(query)).all()
        return [
            StoredObservation(r.observation_id, r.station_id, r.raw, r.received_at, r.start, _reduction(r))
            for r in rows
        ]

    async def light_curve(
        self, target_id: str, *, filter: str = "", window: TimeWindow | None = None, include_bad: bool = False
    ) -> list[LightCurvePointRecord]:
        """Points in time order: the server's calibrated magnitude where the observation was reduced (left out when
        its reduction failed quality, unless `include_bad`), else the magnitude the agent reported."""
        reduced = ObservationRow.reduction_state.in_(["good", "bad"] if include_bad else ["good"])
        agent_only = (ObservationRow.reduction_state.in_(["", "error"])) & ObservationRow.magnitude.is_not(None)
        query = (
            select(ObservationRow)
            .where(ObservationRow.target_id == target_id, reduced | agent_only)
            .order_by(ObservationRow.start)
        )
        if window is not None:
            query = query.where(ObservationRow.start >= window.start, ObservationRow.start < window.end)
        async with self._tx("light_curve") as s:
            rows = (await s.scalars(query)).all()
        points = []
        for r in rows:
            mid = r.start + (r.end - r.start) / 2
            if r.reduction_state in ("good", "bad"):
                if r.reduced_magnitude is None:
                    continue
                band = r.reduced_filter or ""
                point = LightCurvePointRecord(
                    mid,
                    r.reduced_magnitude,
                    r.reduced_magnitude_error or 0.0,
                    r.station_id,
                    tuple(r.reduction_flags or ()),
                    airmass=r.reduced_airmass or 0.0,
                    filter=band,
                    reduced=True,
                    observation_id=r.observation_id,
                )
            else:
                band = r.filter
                point = LightCurvePointRecord(
                    mid,
                    r.magnitude or 0.0,
                    r.magnitude_error or 0.0,
                    r.station_id,
                    tuple(r.quality_flags),
                    airmass=r.airmass,
                    filter=band,
                    observation_id=r.observation_id,
                )
            if not filter or band == filter:
                points.append(point)
        return points

    async def count_telemetry(self, station_id: str) -> int:
        async with self._tx("count_telemetry") as s:
            query = select(func.count()).select_from(TelemetryRow).where(TelemetryRow.station_id == station_id)
            return int(await s.scalar(query) or 0)

    # ---------------------------------------------------------------------------------------------- artifacts

    async def get_artifact(self, resource_name: str) -> ArtifactRecord | None:
        async with self._tx("get_artifact") as s:
            row = await s.get(ArtifactRow, resource_name)
            return _artifact(row) if row is not None else None

    async def complete_artifacts(self, observation_ids: Iterable[str]) -> list[ArtifactRecord]:
        """The complete uploads of these observations, in one query (ListObservations names the one whose waterfall
        an observation's reduction shows)."""
        ids = list(dict.fromkeys(observation_ids))
        if not ids:
            return []
        async with self._tx("complete_artifacts") as s:
            rows = await s.scalars(
                select(ArtifactRow)
                .where(ArtifactRow.observation_id.in_(ids), ArtifactRow.complete.is_(True))
                .order_by(ArtifactRow.resource_name)
            )
            return [_artifact(r) for r in rows.all()]

    async def open_artifact(
        self,
        resource_name: str,
        *,
        observation_id: str,
        artifact_id: str,
        station_id: str,
        path: str,
        kind: str,
        total_size_bytes: int,
    ) -> ArtifactRecord:
        """The upload's row, created on the first chunk. Another station's resource is NOT_FOUND to this one."""
        now = self._now()
        async with self._tx("open_artifact") as s:
            row = await s.get(ArtifactRow, resource_name, with_for_update=True)
            if row is None:
                row = ArtifactRow(
                    resource_name=resource_name,
                    observation_id=observation_id,
                    artifact_id=artifact_id,
                    station_id=station_id,
                    kind=kind,
                    path=path,
                    committed_size_bytes=0,
                    total_size_bytes=total_size_bytes,
                    sha256="",
                    complete=False,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
            elif row.station_id != station_id:
                raise NotFound(f"no upload {resource_name!r}", field="resource_name")
            return _artifact(row)

    async def set_artifact_progress(
        self,
        resource_name: str,
        committed_size_bytes: int,
        *,
        complete: bool = False,
        sha256: str = "",
        expected: int | None = None,
    ) -> None:
        """Commit an upload's size. `expected`: only if the committed size is still this (else FAILED_PRECONDITION
        naming it): another stream of the same upload (on this replica or another) got there first."""
        now = self._now()
        async with self._tx("set_artifact_progress") as s:
            row = await s.get(ArtifactRow, resource_name, with_for_update=True)
            if row is None:
                raise NotFound(f"no upload {resource_name!r}", field="resource_name")
            if expected is not None and (row.committed_size_bytes != expected or row.complete):
                raise FailedPrecondition(
                    f"must equal the committed size {row.committed_size_bytes} (another stream of this upload "
                    f"committed first)",
                    field="write_offset",
                )
            row.committed_size_bytes = committed_size_bytes
            row.complete = complete
            if sha256:
                row.sha256 = sha256
            row.updated_at = now


def _hello_claims(
    items: Sequence[tuple[str, str, int, HelloIn]],
    before: Sequence[StationState | None],
    epoch: Sequence[int],
    committed: Mapping[tuple[str, str], int],
    versions: Mapping[str, int],
    heads: Mapping[str, int],
) -> list[HelloClaim | SkyMeshError]:
    """Each Hello's answer from what its group read (both dialects' record_hellos): NotFound for an unknown station,
    else its claim, with the committed cursor of each boot it names."""
    out: list[HelloClaim | SkyMeshError] = []
    for i, (station, _, _, hello) in enumerate(items):
        prior = before[i]
        if prior is None:
            out.append(NotFound(f"no station {station!r}", field="hello.station_id"))
            continue
        out.append(
            HelloClaim(
                {b: committed.get((station, b), 0) for b in dict.fromkeys(hello.boot_ids) if b},
                epoch[i],
                prior,
                schedule_version=versions.get(station, 0),
                open_command_head=heads.get(station, 0),
            )
        )
    return out
