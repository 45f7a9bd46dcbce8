"""Repository part for work: jobs (through `skymesh.core.jobs.advance`), plans, per-station schedule versions and
the command outbox (per-station seq allocated atomically, UUID command ids, delivery states)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from skymesh.core.errors import FailedPrecondition, NotFound, SkyMeshError
from skymesh.core.jobs import JobState
from skymesh.core.model import TimeWindow
from skymesh.observability import tracing
from skymesh.observability.metrics import COMMAND_DELIVERY, DB_LATENCY
from skymesh.server.db.base import RepoBase, fenced
from skymesh.server.db.models import AuditRow, CommandRow, JobRow, ScheduleRow, StationRow, StationSessionRow, TargetRow
from skymesh.server.db.records import (
    OPEN_COMMAND_STATES,
    CommandRecord,
    CommandStateValue,
    CommandUpdateIn,
    JobCancel,
    JobChange,
    JobRecord,
    PlannedJob,
    PlanOutcome,
    ScheduleSnapshot,
    TargetRecord,
)

__all__ = ["CAUSE_ABORTED_BY_OPERATOR", "CAUSE_EXPIRED_BEFORE_START", "CAUSE_REMOVED_FROM_SCHEDULE", "WorkRepo"]

log = logging.getLogger(__name__)

# common.v1.CauseCode values (kept as ints so this layer needs no protobuf).
CAUSE_EXPIRED_BEFORE_START = 2
CAUSE_ABORTED_BY_OPERATOR = 5
CAUSE_REMOVED_FROM_SCHEDULE = 12

# Jobs the agent holds or will hold: what a schedule snapshot carries.
SCHEDULE_STATES = (JobState.SCHEDULED, JobState.DISPATCHED, JobState.RECEIVED, JobState.RUNNING)
# Jobs the planner may still move or drop.
UNSTARTED_STATES = (JobState.SCHEDULED, JobState.DISPATCHED, JobState.RECEIVED)
_OPEN_COMMAND_STATES = OPEN_COMMAND_STATES
# A kept job whose window moved less than this is not a change worth a new schedule version.
_WINDOW_TOLERANCE_S = 1.0
# Agent reports that prove a command reached it (delivery latency is measured at the first of them).
_AGENT_ACK_STATES = frozenset(
    {
        CommandStateValue.RECEIVED,
        CommandStateValue.REJECTED,
        CommandStateValue.STARTED,
        CommandStateValue.PROGRESS,
        CommandStateValue.SUCCEEDED,
        CommandStateValue.FAILED,
    }
)


# An open job as apply_plan reads it: job_id, station_id, target_id, start, end, state.
_OpenJob = Row[str, str, str, datetime, datetime, int]

# Rows per bulk statement of a plan's apply and push. Small enough that one statement's parameters (built and
# encoded on the event loop: ~18 per new job) and its result rows are a few tens of milliseconds of CPU on a loaded
# machine, so the loop keeps serving streams and health checks between them (issue 8: never blocked > 100 ms).
_BULK_ROWS = 250

_JOBS = cast(Table, JobRow.__table__)
_SCHEDULES = cast(Table, ScheduleRow.__table__)
_TARGETS = cast(Table, TargetRow.__table__)
# The columns of a job record (`RepoBase._job`), read as plain rows: mapped objects cost far more than the query.
_JOB_COLUMNS = [c for c in _JOBS.c if c.name != "created_at"]
_STATIONS = cast(Table, StationRow.__table__)
_COMMANDS = cast(Table, CommandRow.__table__)
_AUDIT = cast(Table, AuditRow.__table__)
_SESSIONS = cast(Table, StationSessionRow.__table__)

# agent.v1.COMMAND_PRIORITY_URGENT (an int: no protobuf in this layer). Its transaction goes before the next group
# commit on SQLite (skymesh.server.db.writegate).
_PRIORITY_URGENT = 3

# The command path's statements, built once (SQLAlchemy Core on one connection: a CancelJob was five ORM sessions,
# ~20 ms of server CPU with the agent's two reports; issue 8). FOR UPDATE is dropped by the SQLite compiler, whose
# BEGIN IMMEDIATE already holds the one writer lock.
_JOB_FOR_CANCEL = select(*_JOB_COLUMNS).where(_JOBS.c.job_id == bindparam("k_job")).with_for_update()
_CANCEL_JOB = (
    update(_JOBS)
    .where(_JOBS.c.job_id == bindparam("k_job"))
    .values(
        state=int(JobState.CANCELLED),
        cause=CAUSE_ABORTED_BY_OPERATOR,
        detail=bindparam("v_detail"),
        updated_at=bindparam("v_at"),
    )
)
_BUMP_SCHEDULE = (
    update(_SCHEDULES)
    .where(_SCHEDULES.c.station_id == bindparam("k_station"))
    .values(version=_SCHEDULES.c.version + 1, generated_at=bindparam("v_at"))
    .returning(_SCHEDULES.c.version)
)
_NEXT_COMMAND_SEQ = (
    update(_STATIONS)
    .where(_STATIONS.c.station_id == bindparam("k_station"))
    .values(command_seq=_STATIONS.c.command_seq + 1)
    .returning(_STATIONS.c.command_seq)
)
_INSERT_COMMAND = insert(_COMMANDS)
_INSERT_AUDIT = insert(_AUDIT)
_INSERT_SCHEDULE = insert(_SCHEDULES)
_UPDATE_COMMAND = (
    update(_COMMANDS)
    .where(_COMMANDS.c.command_id == bindparam("k_command"))
    .values(
        state=bindparam("v_state"),
        cause=bindparam("v_cause"),
        detail=bindparam("v_detail"),
        updated_at=bindparam("v_at"),
    )
)


def _command(row: CommandRow) -> CommandRecord:
    return CommandRecord(
        command_id=row.command_id,
        station_id=row.station_id,
        seq=row.seq,
        kind=row.kind,
        payload=row.payload,
        not_before=row.not_before,
        expires_at=row.expires_at,
        priority=row.priority,
        state=CommandStateValue(row.state),
        cause=row.cause,
        detail=row.detail,
        job_id=row.job_id,
    )


@dataclass
class _PlanDiff:
    inserts: list[dict[str, object]]  # new jobs' rows (schedule_version filled in later)
    moves: list[dict[str, object]]  # kept unstarted jobs whose window moved: k_job, start, end, tca
    dropped: list[str]  # unstarted jobs left out of the plan (and not frozen): to cancel
    changed: set[str]  # stations whose job set or a window changed
    kept: int


def _diff_plan(
    planned: Sequence[PlannedJob],
    existing: Sequence[_OpenJob],
    vetoed_rows: Sequence[Row[str, str, datetime, datetime]],
    stations: set[str],
    live_targets: set[str],
    frozen: set[str],
    now: datetime,
) -> _PlanDiff:
    """`apply_plan`'s diff of a plan against the stations' open jobs: pure CPU over its arguments (run in a worker
    thread). Assignments matching a live job (by job id, or same station and target with an overlapping window) keep
    it; the others become new jobs; unstarted jobs left out (and not frozen) are dropped."""
    by_id = {r.job_id: r for r in existing}
    unkept = set(by_id)
    # Indexed by (station, target): each assignment is matched against its own few jobs, not all of them.
    vetoed: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for v in vetoed_rows:
        vetoed.setdefault((v.station_id, v.target_id), []).append((v.start, v.end))
    candidates: dict[tuple[str, str], list[_OpenJob]] = {}
    for r in sorted(existing, key=lambda r: r.job_id):
        candidates.setdefault((r.station_id, r.target_id), []).append(r)
    inserts: list[dict[str, object]] = []
    moves: list[dict[str, object]] = []
    changed: set[str] = set()
    kept = 0
    for p in planned:
        if p.station_id not in stations or p.target_id not in live_targets:
            log.warning("plan names unknown station %r or target %r: skipped", p.station_id, p.target_id)
            continue
        key = (p.station_id, p.target_id)
        if any(start < p.window.end and p.window.start < end for start, end in vetoed.get(key, ())):
            continue
        row = by_id.get(p.job_id) if p.job_id else None
        if row is None:
            row = next(
                (
                    r
                    for r in candidates.get(key, ())
                    if r.job_id in unkept and r.start < p.window.end and p.window.start < r.end
                ),
                None,
            )
        if row is not None and row.job_id in unkept:
            unkept.discard(row.job_id)
            kept += 1
            moved = (
                abs((row.start - p.window.start).total_seconds()) > _WINDOW_TOLERANCE_S
                or abs((row.end - p.window.end).total_seconds()) > _WINDOW_TOLERANCE_S
            )
            if moved and JobState(row.state) in UNSTARTED_STATES:
                moves.append({"k_job": row.job_id, "start": p.window.start, "end": p.window.end, "tca": p.tca})
                changed.add(row.station_id)
            continue
        inserts.append(
            {
                "job_id": str(uuid.uuid4()),
                "station_id": p.station_id,
                "target_id": p.target_id,
                "start": p.window.start,
                "end": p.window.end,
                "tca": p.tca,
                "max_elevation_deg": p.max_elevation_deg,
                "filter": p.filter,
                "exposure_s": p.exposure_s,
                "exposure_count": p.exposure_count,
                "priority": p.priority,
                "score": p.score,
                "state": int(JobState.SCHEDULED),
                "cause": 0,
                "detail": "",
                "schedule_version": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        changed.add(p.station_id)
    dropped = sorted(
        job_id for job_id in unkept if job_id not in frozen and JobState(by_id[job_id].state) != JobState.RUNNING
    )
    changed.update(by_id[job_id].station_id for job_id in dropped)
    return _PlanDiff(inserts, moves, dropped, changed, kept)


def _snapshot_jobs(
    station_ids: Sequence[str], rows: Sequence[Row[Any]], targets: Mapping[str, TargetRecord]
) -> dict[str, list[tuple[JobRecord, TargetRecord]]]:
    """Each station's (job, target) pairs from plain job rows (run in a worker thread)."""
    jobs: dict[str, list[tuple[JobRecord, TargetRecord]]] = {sid: [] for sid in station_ids}
    for r in rows:
        jobs[r.station_id].append((RepoBase._job(r), targets[r.target_id]))
    return jobs


class WorkRepo(RepoBase):
    # ---------------------------------------------------------------------------------------------- jobs

    async def get_job(self, job_id: str) -> JobRecord:
        async with self._tx("get_job") as s:
            row = await s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"no job {job_id!r}", field="job_id")
            return self._job(row)

    async def list_jobs(
        self,
        *,
        station_id: str = "",
        states: Iterable[JobState] = (),
        window: TimeWindow | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 10_000,
    ) -> list[JobRecord]:
        """Jobs by (start, job_id); `after` pages them (keys greater than it, the last row of the previous page)."""
        query = select(JobRow).order_by(JobRow.start, JobRow.job_id).limit(limit)
        if after is not None:
            # The plain bound on start lets the database range-scan its index on start; the OR alone would not.
            query = query.where(
                JobRow.start >= after[0],
                or_(JobRow.start > after[0], and_(JobRow.start == after[0], JobRow.job_id > after[1])),
            )
        if station_id:
            query = query.where(JobRow.station_id == station_id)
        wanted = [int(s) for s in states]
        if wanted:
            query = query.where(JobRow.state.in_(wanted))
        if window is not None:
            query = query.where(JobRow.start < window.end, JobRow.end > window.start)
        async with self._tx("list_jobs") as s:
            return [self._job(r) for r in (await s.scalars(query)).all()]

    async def cancel_job(self, job_id: str, reason: str, *, actor: str = "system") -> tuple[JobRecord, int | None]:
        """Cancel an unstarted job (a running one is returned unchanged: `cancel_or_abort_job` queues its AbortJob).

        Returns the job and, when it was in an agent's schedule, the station's new schedule version (else None).
        Raises FailedPrecondition for a finished job."""
        done = await self._cancel(job_id, reason, actor, None, 0.0, 0)
        return done.job, done.version

    async def cancel_or_abort_job(
        self,
        job_id: str,
        reason: str,
        *,
        actor: str,
        abort: tuple[str, bytes],
        abort_ttl_s: float,
        abort_priority: int = _PRIORITY_URGENT,
    ) -> JobCancel:
        """CancelJob in ONE transaction: an unstarted job is CANCELLED (its station's schedule version bumped when an
        agent held it), a running one gets `abort` (kind, serialized Command) appended to its station's outbox; the
        audit row with it. Nothing is written when any step fails. Raises NotFound, or FailedPrecondition for a
        finished job (a cancel of a cancelled job is refused, as before)."""
        return await self._cancel(job_id, reason, actor, abort, abort_ttl_s, abort_priority)

    async def _cancel(
        self, job_id: str, reason: str, actor: str, abort: tuple[str, bytes] | None, ttl_s: float, priority: int
    ) -> JobCancel:
        now = self._now()
        async with self.write_gate.urgent(), self._core("cancel_job") as conn:
            row = (await conn.execute(_JOB_FOR_CANCEL, {"k_job": job_id})).first()
            if row is None:
                raise NotFound(f"no job {job_id!r}", field="job_id")
            job = self._job(row)
            state = job.state
            if state.terminal:
                raise FailedPrecondition(f"job is already {state.name}", field="job_id")
            if state == JobState.RUNNING:
                if abort is None:
                    return JobCancel(state, job)
                kind, payload = abort
                command = await self._enqueue(
                    conn,
                    job.station_id,
                    kind,
                    payload,
                    not_before=now,
                    expires_at=now + timedelta(seconds=ttl_s),
                    priority=priority,
                    job_id=job_id,
                    actor=actor,
                    now=now,
                )
                return JobCancel(state, job, command=command)
            await conn.execute(_CANCEL_JOB, {"k_job": job_id, "v_detail": reason, "v_at": now})
            version = None
            if state in (JobState.DISPATCHED, JobState.RECEIVED):
                version = await conn.scalar(_BUMP_SCHEDULE, {"k_station": job.station_id, "v_at": now})
                if version is None:
                    version = 1
                    await conn.execute(
                        _INSERT_SCHEDULE,
                        {
                            "station_id": job.station_id,
                            "version": 1,
                            "generated_at": now,
                            "acked_version": 0,
                            "ack_error": "",
                        },
                    )
            await conn.execute(
                _INSERT_AUDIT,
                {"at": now, "actor": actor, "action": "cancel_job", "subject": job_id, "detail": {"reason": reason}},
            )
            cancelled = dataclasses.replace(
                job, state=JobState.CANCELLED, cause=CAUSE_ABORTED_BY_OPERATOR, detail=reason, updated_at=now
            )
            return JobCancel(state, cancelled, version)

    @asynccontextmanager
    async def _core(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """`_tx` without the ORM: one connection, plain statements (the command path)."""
        with (
            tracing.span(f"db {operation}", attributes={"db.system": self.dialect, "db.operation": operation}),
            DB_LATENCY.labels(operation).time(),
        ):
            async with self.engine.begin() as conn:
                yield conn

    async def frozen_jobs(self, until: datetime, *, held_by: Sequence[str] = ()) -> list[JobRecord]:
        """Jobs the planner must keep: running ones, dispatched/received ones starting before `until`, and every live
        job (ending in the future) of the stations in `held_by` (disconnected: their agents run what they hold).

        A disconnected station that had not acknowledged its latest schedule may still hold jobs a plan removed
        (the stream ended before that schedule reached it, or before its ack came back): its future jobs removed by
        a plan are kept too, so no other station is booked on them while it runs them unseen."""
        now = self._now()
        condition = (JobRow.state == int(JobState.RUNNING)) | (
            JobRow.state.in_([int(JobState.DISPATCHED), int(JobState.RECEIVED)]) & (JobRow.start < until)
        )
        async with self._tx("frozen_jobs") as s:
            if held_by:
                condition = condition | (
                    JobRow.station_id.in_(list(held_by))
                    & JobRow.state.in_([int(x) for x in SCHEDULE_STATES])
                    & (JobRow.end > now)
                )
                unacked = (
                    await s.scalars(
                        select(ScheduleRow.station_id).where(
                            ScheduleRow.station_id.in_(list(held_by)), ScheduleRow.acked_version < ScheduleRow.version
                        )
                    )
                ).all()
                if unacked:
                    condition = condition | (
                        JobRow.station_id.in_(list(unacked))
                        & (JobRow.state == int(JobState.CANCELLED))
                        & (JobRow.cause == CAUSE_REMOVED_FROM_SCHEDULE)
                        & (JobRow.end > now)
                    )
            # Plain rows: after a drop this is every live job of the stations gone (thousands at 200 stations).
            result = await s.execute(select(*_JOB_COLUMNS).where(condition))
            out: list[JobRecord] = []
            while chunk := result.fetchmany(_BULK_ROWS):
                out += [self._job(r) for r in chunk]
                await asyncio.sleep(0)
            return out

    # ---------------------------------------------------------------------------------------------- plans

    async def _bump_schedule(self, s: AsyncSession, station_id: str, now: datetime) -> int:
        row = await s.get(ScheduleRow, station_id, with_for_update=True)
        if row is None:
            row = ScheduleRow(station_id=station_id, version=0, generated_at=now, acked_version=0, ack_error="")
            s.add(row)
        row.version += 1
        row.generated_at = now
        return row.version

    async def _bump_schedules(self, s: AsyncSession, station_ids: Iterable[str], now: datetime) -> dict[str, int]:
        """`_bump_schedule` for many stations in a few statements (a 200-station plan was 200 reads and a flush of
        200 UPDATEs): rows locked in station order (as one by one), bumped by one UPDATE, missing ones created at
        version 1. Returns each station's new version."""
        ids = sorted(set(station_ids))
        versions: dict[str, int] = {}
        for i in range(0, len(ids), _BULK_ROWS):
            chunk = ids[i : i + _BULK_ROWS]
            await s.execute(
                select(_SCHEDULES.c.station_id)
                .where(_SCHEDULES.c.station_id.in_(chunk))
                .order_by(_SCHEDULES.c.station_id)
                .with_for_update()
            )
            done = await s.execute(
                update(_SCHEDULES)
                .where(_SCHEDULES.c.station_id.in_(chunk))
                .values(version=_SCHEDULES.c.version + 1, generated_at=now)
                .returning(_SCHEDULES.c.station_id, _SCHEDULES.c.version)
            )
            versions.update({station_id: version for station_id, version in done})
        missing = [sid for sid in ids if sid not in versions]
        for i in range(0, len(missing), _BULK_ROWS):
            await s.execute(
                insert(_SCHEDULES),
                [
                    {"station_id": sid, "version": 1, "generated_at": now, "acked_version": 0, "ack_error": ""}
                    for sid in missing[i : i + _BULK_ROWS]
                ],
            )
        versions.update(dict.fromkeys(missing, 1))
        return versions

    async def apply_plan(
        self,
        station_ids: Sequence[str],
        planned: Sequence[PlannedJob],
        *,
        frozen_ids: Iterable[str] = (),
    ) -> PlanOutcome:
        """Turn a plan into jobs for `station_ids` in one transaction.

        Assignments matching a live job (by job id, or same station and target with an overlapping window) keep it;
        new ones become SCHEDULED jobs; unstarted jobs left out (and not frozen) become CANCELLED with
        REMOVED_FROM_SCHEDULE. A station's schedule version is bumped only when its job set or a window changed.
        """
        now = self._now()
        frozen = set(frozen_ids)
        stations = set(station_ids)
        async with self._tx("apply_plan") as s:
            # A station deleted while the plan was computed gets nothing (DeleteStation ended its work already).
            stations -= set(
                (
                    await s.scalars(
                        select(StationRow.station_id).where(
                            StationRow.station_id.in_(stations), StationRow.deleted_at.is_not(None)
                        )
                    )
                ).all()
            )
            # Read in slices of stations: the event loop serves other calls between them (a 500-station plan holds
            # tens of thousands of open jobs). Plain rows of the columns the diff needs, not mapped objects: their
            # construction (and a flush of one UPDATE per changed object) cost seconds per plan at that size.
            existing: list[_OpenJob] = []
            ordered = sorted(stations)
            for i in range(0, len(ordered), 20):  # ~1,200 rows a statement at 60 jobs a station
                existing += (
                    await s.execute(
                        select(
                            JobRow.job_id, JobRow.station_id, JobRow.target_id, JobRow.start, JobRow.end, JobRow.state
                        )
                        .where(
                            JobRow.station_id.in_(ordered[i : i + 20]),
                            JobRow.state.in_([int(x) for x in (*UNSTARTED_STATES, JobState.RUNNING)]),
                            JobRow.end > now,
                        )
                        .order_by(JobRow.job_id)  # locked in job-id order, as the push's marks lock them
                        .with_for_update()
                    )
                ).all()
            # vetoed: an operator's cancel sticks: the planner must not hand the same pass straight back.
            live_targets = set(
                (await s.scalars(select(TargetRow.target_id).where(TargetRow.deleted_at.is_(None)))).all()
            )
            vetoed_rows = (
                await s.execute(
                    select(JobRow.station_id, JobRow.target_id, JobRow.start, JobRow.end).where(
                        JobRow.station_id.in_(stations),
                        JobRow.cause == CAUSE_ABORTED_BY_OPERATOR,
                        JobRow.state.in_([int(JobState.CANCELLED), int(JobState.ABORTED)]),
                        JobRow.end > now,
                    )
                )
            ).all()
            # The diff is pure CPU over ~36,000 jobs at 500 x 3,000 (sorting, indexing, matching, a dict per new
            # job): a worker thread computes it, so the event loop keeps serving while it runs.
            diff = await asyncio.to_thread(
                _diff_plan, planned, existing, vetoed_rows, stations, live_targets, frozen, now
            )
            inserts, moves, dropped = diff.inserts, diff.moves, diff.dropped
            # Cancellations and moves in bulk, in slices (the rows are locked above). SQLAlchemy Core statements on
            # the table, not the ORM's bulk paths: those check every parameter dict against the mapper (a third of a
            # second of CPU, in one step, for 12,000 new jobs).
            for i in range(0, len(dropped), _BULK_ROWS):
                await s.execute(
                    update(_JOBS)
                    .where(_JOBS.c.job_id.in_(dropped[i : i + _BULK_ROWS]))
                    .values(
                        state=int(JobState.CANCELLED),
                        cause=CAUSE_REMOVED_FROM_SCHEDULE,
                        detail="removed from schedule by a new plan",
                        updated_at=now,
                    )
                )
            move = (
                update(_JOBS)
                .where(_JOBS.c.job_id == bindparam("k_job"))
                .values(start=bindparam("start"), end=bindparam("end"), tca=bindparam("tca"))
            )
            for i in range(0, len(moves), _BULK_ROWS):  # by primary key, one executemany
                await s.execute(move, moves[i : i + _BULK_ROWS])
            versions = await self._bump_schedules(s, diff.changed, now)
            for values in inserts:
                values["schedule_version"] = versions[str(values["station_id"])]
            # New jobs in bulk (executemany), in slices so no one statement holds the loop or the wire for long.
            for i in range(0, len(inserts), _BULK_ROWS):
                await s.execute(insert(_JOBS), inserts[i : i + _BULK_ROWS])
        return PlanOutcome(versions, len(inserts), diff.kept, len(dropped))

    # ---------------------------------------------------------------------------------------------- schedules

    async def bump_schedules_for_target(self, target_id: str) -> list[str]:
        """New schedule versions for every station holding a live job of `target_id` (its elements changed, so
        the snapshot each agent tracks from must be re-sent). Returns those stations."""
        now = self._now()
        async with self._tx("bump_schedules_for_target") as s:
            stations = sorted(
                set(
                    (
                        await s.scalars(
                            select(JobRow.station_id).where(
                                JobRow.target_id == target_id,
                                JobRow.state.in_([int(x) for x in SCHEDULE_STATES]),
                                JobRow.end > now,
                            )
                        )
                    ).all()
                )
            )
            for station_id in stations:
                await self._bump_schedule(s, station_id, now)
        return stations

    async def schedule_version(self, station_id: str) -> int:
        async with self._tx("schedule_version") as s:
            row = await s.get(ScheduleRow, station_id)
            return row.version if row is not None else 0

    async def schedule_snapshot(self, station_id: str) -> ScheduleSnapshot:
        """The station's current version and every job it should hold (live, ending in the future)."""
        return (await self.schedule_snapshots([station_id]))[0]

    async def schedule_snapshots(
        self, station_ids: Sequence[str], *, targets: dict[str, TargetRecord] | None = None
    ) -> list[ScheduleSnapshot]:
        """`schedule_snapshot` for several stations in one transaction: the targets and their current elements are
        read in bulk, once each (not once per job, nor two queries per target). `targets`: records already read by
        the caller (e.g. for the previous slice of a plan's push), used as they are and added to."""
        now = self._now()
        out: list[ScheduleSnapshot] = []
        targets = {} if targets is None else targets
        # Plain rows (SQLAlchemy Core), not mapped objects, turned into records in slices with a yield to the event
        # loop between them: a 20-station slice of a plan's push is ~1,200 jobs and, first, most of the targets.
        async with self._tx("schedule_snapshots") as s:
            for i in range(0, len(station_ids), 500):
                ids = list(station_ids[i : i + 500])
                found = await s.execute(
                    select(_SCHEDULES.c.station_id, _SCHEDULES.c.version, _SCHEDULES.c.generated_at).where(
                        _SCHEDULES.c.station_id.in_(ids)
                    )
                )
                scheds = {station_id: (version, at) for station_id, version, at in found}
                result = await s.execute(
                    select(*_JOB_COLUMNS)
                    .where(
                        _JOBS.c.station_id.in_(ids),
                        _JOBS.c.state.in_([int(x) for x in SCHEDULE_STATES]),
                        _JOBS.c.end > now,
                    )
                    .order_by(_JOBS.c.station_id, _JOBS.c.start, _JOBS.c.job_id)
                )
                rows: list[Row[Any]] = []
                while chunk := result.fetchmany(_BULK_ROWS):
                    rows += chunk
                    await asyncio.sleep(0)
                missing = sorted({r.target_id for r in rows} - targets.keys())
                for k in range(0, len(missing), _BULK_ROWS):
                    found_targets = (
                        await s.execute(
                            select(*_TARGETS.c).where(_TARGETS.c.target_id.in_(missing[k : k + _BULK_ROWS]))
                        )
                    ).all()
                    for record in await self._target_records(s, found_targets):
                        targets[record.target.target_id] = record
                    await asyncio.sleep(0)
                # Records from rows (a JobRecord and its window per job, ~1,800 in a push slice): pure CPU over
                # immutable rows, in a worker thread, so the event loop keeps serving meanwhile.
                jobs = await asyncio.to_thread(_snapshot_jobs, ids, rows, dict(targets))
                for sid in ids:
                    version, at = scheds.get(sid, (0, now))
                    out.append(ScheduleSnapshot(sid, version, at, tuple(jobs[sid])))
        return out

    async def mark_dispatched(self, station_id: str, job_ids: Iterable[str]) -> list[JobChange]:
        """SCHEDULED -> DISPATCHED for the jobs of a schedule that was just sent."""
        return (await self.mark_dispatched_many({station_id: list(job_ids)})).get(station_id, [])

    async def mark_dispatched_many(self, jobs: Mapping[str, Sequence[str]]) -> dict[str, list[JobChange]]:
        """`mark_dispatched` for several stations' schedules (station id -> job ids) in one transaction."""
        now = self._now()
        changes: dict[str, list[JobChange]] = {}
        if not any(jobs.values()):
            return changes
        # By job id: every transaction that marks jobs locks them in one global order (each statement's rows in
        # order, and the statements in order), so two pushes that overlap (a plan's and a station's Hello, or the
        # replicas' poll) wait for each other instead of deadlocking (seen at 500 x 3,000 on PostgreSQL).
        pairs = sorted(
            ((station_id, job_id) for station_id, job_ids in jobs.items() for job_id in job_ids), key=lambda p: p[1]
        )
        async with self._tx("mark_dispatched") as s:
            # One UPDATE per 250 (station, job) pairs across the stations (a push slice of 20 stations was 20
            # round trips), not a row object per job: a 500-station plan marks tens of thousands.
            for i in range(0, len(pairs), _BULK_ROWS):
                chunk = pairs[i : i + _BULK_ROWS]
                locked = (
                    select(_JOBS.c.job_id)
                    .where(
                        tuple_(_JOBS.c.station_id, _JOBS.c.job_id).in_(chunk),
                        _JOBS.c.state == int(JobState.SCHEDULED),
                    )
                    .order_by(_JOBS.c.job_id)
                    .with_for_update()
                )
                done = await s.execute(
                    update(JobRow)
                    .where(JobRow.job_id.in_(locked.scalar_subquery()), JobRow.state == int(JobState.SCHEDULED))
                    .values(state=int(JobState.DISPATCHED), updated_at=now)
                    .returning(JobRow.station_id, JobRow.job_id)
                    .execution_options(synchronize_session=False)
                )
                for station_id, job_id in done:
                    changes.setdefault(station_id, []).append(
                        JobChange(job_id, station_id, JobState.SCHEDULED, JobState.DISPATCHED, True)
                    )
        return changes

    async def record_schedule_ack(self, station_id: str, version: int, error: str, *, epoch: int | None = None) -> None:
        async with self._tx("record_schedule_ack") as s:
            await self._fence(s, station_id, epoch)
            row = await s.get(ScheduleRow, station_id, with_for_update=True)
            if row is None:
                return
            if error:
                row.ack_error = error
            elif version > row.acked_version:
                row.acked_version = version
                row.ack_error = ""

    # ---------------------------------------------------------------------------------------------- commands

    async def enqueue_command(
        self,
        station_id: str,
        kind: str,
        payload: bytes,
        *,
        not_before: datetime,
        expires_at: datetime,
        priority: int,
        job_id: str | None = None,
        actor: str = "system",
    ) -> CommandRecord:
        """Append a command to the station's outbox with the next seq (atomic on both dialects)."""
        now = self._now()
        gate = self.write_gate.urgent() if priority >= _PRIORITY_URGENT else self.write_gate.bulk()
        async with gate, self._core("enqueue_command") as conn:
            return await self._enqueue(
                conn,
                station_id,
                kind,
                payload,
                not_before=not_before,
                expires_at=expires_at,
                priority=priority,
                job_id=job_id,
                actor=actor,
                now=now,
            )

    async def _enqueue(
        self,
        conn: AsyncConnection,
        station_id: str,
        kind: str,
        payload: bytes,
        *,
        not_before: datetime,
        expires_at: datetime,
        priority: int,
        job_id: str | None,
        actor: str,
        now: datetime,
    ) -> CommandRecord:
        seq = await conn.scalar(_NEXT_COMMAND_SEQ, {"k_station": station_id})
        if seq is None:
            raise NotFound(f"no station {station_id!r}", field="station_id")
        record = CommandRecord(
            command_id=str(uuid.uuid4()),
            station_id=station_id,
            seq=seq,
            kind=kind,
            payload=payload,
            not_before=not_before,
            expires_at=expires_at,
            priority=priority,
            state=CommandStateValue.QUEUED,
            job_id=job_id,
        )
        await conn.execute(
            _INSERT_COMMAND,
            {
                "command_id": record.command_id,
                "station_id": station_id,
                "seq": seq,
                "kind": kind,
                "payload": payload,
                "not_before": not_before,
                "expires_at": expires_at,
                "priority": priority,
                "state": int(CommandStateValue.QUEUED),
                "cause": 0,
                "detail": "",
                "job_id": job_id,
                "created_at": now,
                "updated_at": now,
            },
        )
        await conn.execute(
            _INSERT_AUDIT,
            {
                "at": now,
                "actor": actor,
                "action": "enqueue_command",
                "subject": station_id,
                "detail": {"kind": kind, "seq": seq, "job_id": job_id},
            },
        )
        return record

    async def commands_for_replay(self, station_id: str, after_seq: int) -> tuple[list[CommandRecord], int]:
        """Open commands with seq > `after_seq`, in seq order; expired ones are marked EXPIRED and left out.

        Returns (commands to send, number expired)."""
        now = self._now()
        out: list[CommandRecord] = []
        expired = 0
        async with self._tx("commands_for_replay") as s:
            rows = (
                await s.scalars(
                    select(CommandRow)
                    .where(
                        CommandRow.station_id == station_id,
                        CommandRow.seq > after_seq,
                        CommandRow.state.in_(_OPEN_COMMAND_STATES),
                    )
                    .order_by(CommandRow.seq)
                    .with_for_update()
                )
            ).all()
            for r in rows:
                if r.expires_at <= now:
                    r.state = int(CommandStateValue.EXPIRED)
                    r.cause = CAUSE_EXPIRED_BEFORE_START
                    r.detail = "expired before delivery"
                    r.updated_at = now
                    expired += 1
                else:
                    out.append(_command(r))
        return out, expired

    async def get_command(self, command_id: str) -> CommandRecord:
        async with self._tx("get_command") as s:
            row = await s.get(CommandRow, command_id)
            if row is None:
                raise NotFound(f"no command {command_id!r}", field="command_id")
            return _command(row)

    async def list_commands(self, station_id: str) -> list[CommandRecord]:
        async with self._tx("list_commands") as s:
            rows = (
                await s.scalars(select(CommandRow).where(CommandRow.station_id == station_id).order_by(CommandRow.seq))
            ).all()
        return [_command(r) for r in rows]

    async def apply_command_update(
        self,
        station_id: str,
        command_id: str,
        state: CommandStateValue,
        cause: int,
        detail: str,
        *,
        epoch: int | None = None,
    ) -> bool:
        """Record an agent's report on a command; returns whether the state moved. Regressions are ignored. With
        `epoch`, a station held by a newer session raises Aborted (FENCED) and nothing is written."""
        [result] = await self._command_updates(
            [(station_id, "", 0, CommandUpdateIn(command_id, state, cause, detail))], [epoch]
        )
        if isinstance(result, SkyMeshError):
            raise result
        return result

    async def apply_command_updates(
        self, items: Sequence[tuple[str, str, int, CommandUpdateIn]], epochs: Sequence[int | None] | None = None
    ) -> list[bool | SkyMeshError]:
        """Group commit of agents' command reports (station, unused, unused, report), from any streams, in ONE
        transaction (`GroupCommitter`'s shape, skymesh.server.stream): each answered in order as
        `apply_command_update` would answer it alone (moved or not, or the error that refuses it: FENCED for a stale
        epoch, NotFound for a command not of this station), reports of one command applied in their order."""
        return await self._command_updates(items, epochs)

    async def _command_updates(
        self, items: Sequence[tuple[str, str, int, CommandUpdateIn]], epochs: Sequence[int | None] | None
    ) -> list[bool | SkyMeshError]:
        now = self._now()
        epochs = list(epochs) if epochs is not None else [None] * len(items)
        out: list[bool | SkyMeshError] = [False] * len(items)
        delivered: list[float] = []
        async with self._core("apply_command_updates") as conn:
            fenced_ids = sorted(
                {station_id for (station_id, *_), epoch in zip(items, epochs, strict=True) if epoch is not None}
            )
            current: dict[str, int] = {}
            if fenced_ids:
                # FOR SHARE: a Hello taking the next epoch waits until this commits (as `RepoBase._fence`).
                found = await conn.execute(
                    select(_SESSIONS.c.station_id, _SESSIONS.c.epoch)
                    .where(_SESSIONS.c.station_id.in_(fenced_ids))
                    .order_by(_SESSIONS.c.station_id)
                    .with_for_update(read=True)
                )
                current = {station_id: epoch for station_id, epoch in found}
            ids = sorted({update.command_id for *_, update in items})
            rows = {
                r.command_id: r
                for r in await conn.execute(
                    select(_COMMANDS.c.command_id, _COMMANDS.c.station_id, _COMMANDS.c.state, _COMMANDS.c.created_at)
                    .where(_COMMANDS.c.command_id.in_(ids))
                    .order_by(_COMMANDS.c.command_id)
                    .with_for_update()
                )
            }
            states = {command_id: CommandStateValue(r.state) for command_id, r in rows.items()}
            writes: dict[str, dict[str, Any]] = {}
            for i, ((station_id, _boot, _seq, update_in), epoch) in enumerate(zip(items, epochs, strict=True)):
                if epoch is not None and current.get(station_id) != epoch:
                    out[i] = fenced(station_id)
                    continue
                row = rows.get(update_in.command_id)
                if row is None or row.station_id != station_id:
                    out[i] = NotFound(
                        f"no command {update_in.command_id!r} for this station", field="command_update.command_id"
                    )
                    continue
                state, old = update_in.state, states[update_in.command_id]
                if old.terminal or state.rank < old.rank or (state == old and state.rank < 3):
                    continue
                if old == CommandStateValue.QUEUED and state in _AGENT_ACK_STATES:
                    # The agent's first word on a command is its delivery: created -> RECEIVED (or later, coalesced).
                    delivered.append(max(0.0, (now - row.created_at).total_seconds()))
                states[update_in.command_id] = state
                writes[update_in.command_id] = {
                    "k_command": update_in.command_id,
                    "v_state": int(state),
                    "v_cause": update_in.cause,
                    "v_detail": update_in.detail,
                    "v_at": now,
                }
                out[i] = True
            if writes:
                await conn.execute(_UPDATE_COMMAND, list(writes.values()))
        for latency_s in delivered:
            COMMAND_DELIVERY.observe(latency_s)
        return out
