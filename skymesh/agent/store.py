"""The agent's durable local state: one SQLite file (stdlib sqlite3, WAL, synchronous=FULL).

What lives here, and why it must survive a crash at any instant:
- **boots**: one row per process start; each boot owns an upstream sequence space (`next_seq`).
- **outbox**: every reliable upstream message (JobUpdate, TelemetryBatch, ObservationRecord) as serialized
  `ConnectRequest` bytes keyed by (boot_id, seq); a row is deleted only when an `UpstreamAck` covers it.
- **commands**: every command ever received (dedup on command_id), its local state, the state last reported to the
  server, and the highest contiguous command seq (what `Hello.last_command_seq` says).
- **jobs**: the accepted schedule (version in `meta`) with each job's local state; replaced atomically.
- **uploads**: artifact files (FITS, ...) to send over `UploadArtifact` once their observation is acknowledged.
- **unavailable**: windows from `SetUnavailable`.

Every change that must stay consistent (a job's state and the JobUpdate reporting it; an observation and its
SUCCEEDED update) is one transaction. The methods are blocking; async code calls them through `AsyncStore`, which
runs them in a worker thread so the event loop never waits on fsync.

Imports: stdlib, the generated agent protos, `skymesh.core`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.jobs import JobState, can_advance
from skymesh.observability import tracing

__all__ = ["AsyncStore", "CommandRecord", "LocalJob", "PendingUpload", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS boots (
    ordinal INTEGER PRIMARY KEY AUTOINCREMENT,
    boot_id TEXT NOT NULL UNIQUE,
    started_at REAL NOT NULL,
    next_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    spooled_at REAL,
    PRIMARY KEY (boot_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL,
    rejected_at REAL NOT NULL,
    PRIMARY KEY (boot_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    state INTEGER NOT NULL,
    cause INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    reported_state INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS commands_seq ON commands (seq);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    spec BLOB NOT NULL,
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    state INTEGER NOT NULL,
    in_schedule INTEGER NOT NULL,
    boot_id TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    artifact_id TEXT PRIMARY KEY,
    observation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS unavailable (
    start_ts REAL NOT NULL,
    end_ts REAL NOT NULL,
    reason TEXT NOT NULL
);
"""

# Spooled upstream messages that carry the trace context current when they were spooled (a traced command's effects).
_TRACED_UP = frozenset({"job_update"})

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Command states the agent still has to act on.
_OPEN_COMMAND_STATES = (agent_pb2.COMMAND_STATE_RECEIVED, agent_pb2.COMMAND_STATE_STARTED)


@dataclass(frozen=True)
class LocalJob:
    """A job of the accepted schedule as the agent sees it."""

    job_id: str
    spec: agent_pb2.ScheduledJob
    start: datetime
    end: datetime
    state: JobState
    in_schedule: bool
    boot_id: str  # the boot that started it (RUNNING), else ""


@dataclass(frozen=True)
class PendingUpload:
    artifact_id: str
    observation_id: str
    kind: str
    size_bytes: int
    sha256: str

    @property
    def resource_name(self) -> str:
        return f"observations/{self.observation_id}/artifacts/{self.artifact_id}"

    def path(self, state_dir: Path) -> Path:
        """Where the executor keeps the file until it is uploaded."""
        return state_dir / "artifacts" / self.observation_id / f"{self.artifact_id}.{self.kind}"


@dataclass(frozen=True)
class CommandRecord:
    command: agent_pb2.Command
    state: int  # agent_pb2.CommandState
    cause: int
    detail: str
    updated_at: datetime
    new: bool = False


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class Store:
    """Blocking access to the agent's SQLite file; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self._db.executescript(_SCHEMA)
            # Spools written before `spooled_at` existed (it dates the oldest unacked message for SREs).
            if "spooled_at" not in {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}:
                self._db.execute("ALTER TABLE outbox ADD COLUMN spooled_at REAL")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------------------------------------ meta

    def _meta_get(self, key: str, default: str) -> str:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else default

    @staticmethod
    def _meta_set(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?", (key, value, value)
        )

    # ------------------------------------------------------------------------------------------------ boots + outbox

    def begin_boot(self, boot_id: str, now: datetime) -> None:
        with self._txn() as db:
            db.execute(
                "INSERT OR IGNORE INTO boots (boot_id, started_at, next_seq) VALUES (?, ?, 1)", (boot_id, _ts(now))
            )
            # Earlier boots with nothing left to send are forgotten.
            db.execute(
                "DELETE FROM boots WHERE boot_id != ? AND boot_id NOT IN (SELECT boot_id FROM outbox)", (boot_id,)
            )

    def next_seq(self, boot_id: str) -> int:
        rows = self._query("SELECT next_seq FROM boots WHERE boot_id = ?", (boot_id,))
        return int(rows[0][0]) if rows else 1

    def _enqueue(self, db: sqlite3.Connection, boot_id: str, messages: Sequence[agent_pb2.ConnectRequest]) -> list[int]:
        row = db.execute("SELECT next_seq FROM boots WHERE boot_id = ?", (boot_id,)).fetchone()
        if row is None:
            raise KeyError(f"unknown boot {boot_id}")
        seq = int(row[0])
        seqs = []
        for message in messages:
            msg = agent_pb2.ConnectRequest()
            msg.CopyFrom(message)
            msg.seq = seq
            msg.boot_id = boot_id
            tracing.inject_body(msg, _TRACED_UP)
            db.execute(
                "INSERT INTO outbox (boot_id, seq, kind, payload, spooled_at) VALUES (?, ?, ?, ?, ?)",
                (boot_id, seq, msg.WhichOneof("body") or "", msg.SerializeToString(), time.time()),
            )
            seqs.append(seq)
            seq += 1
        db.execute("UPDATE boots SET next_seq = ? WHERE boot_id = ?", (seq, boot_id))
        return seqs

    def enqueue(self, boot_id: str, messages: Sequence[agent_pb2.ConnectRequest]) -> list[int]:
        """Give each message the boot's next seq and store it, all in one transaction. Returns the seqs."""
        with self._txn() as db:
            return self._enqueue(db, boot_id, messages)

    def ack(self, boot_id: str, committed_seq: int) -> int:
        """The server holds everything of `boot_id` up to `committed_seq`: delete it. Returns rows deleted."""
        with self._txn() as db:
            cur = db.execute("DELETE FROM outbox WHERE boot_id = ? AND seq <= ?", (boot_id, committed_seq))
            # A finished boot with nothing left to send is forgotten.
            db.execute(
                "DELETE FROM boots WHERE boot_id = ? AND boot_id NOT IN (SELECT boot_id FROM outbox) "
                "AND ordinal < (SELECT MAX(ordinal) FROM boots)",
                (boot_id,),
            )
            return int(cur.rowcount)

    def pending(self, boot_id: str, after_seq: int, limit: int) -> list[agent_pb2.ConnectRequest]:
        rows = self._query(
            "SELECT payload FROM outbox WHERE boot_id = ? AND seq > ? ORDER BY seq LIMIT ?", (boot_id, after_seq, limit)
        )
        return [agent_pb2.ConnectRequest.FromString(r[0]) for r in rows]

    def set_aside(self, boot_id: str, seq: int, error: str, now: datetime) -> bool:
        """Move one outbox message the server refused into `rejected`, in one transaction. False if not spooled."""
        with self._txn() as db:
            row = db.execute(
                "SELECT kind, payload FROM outbox WHERE boot_id = ? AND seq = ?", (boot_id, seq)
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "INSERT OR REPLACE INTO rejected (boot_id, seq, kind, payload, error, rejected_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (boot_id, seq, row[0], row[1], error, _ts(now)),
            )
            db.execute("DELETE FROM outbox WHERE boot_id = ? AND seq = ?", (boot_id, seq))
            return True

    def rejected(self) -> list[tuple[str, int, str]]:
        """(boot_id, seq, error) of every message the server refused."""
        return [
            (str(b), int(q), str(e))
            for b, q, e in self._query("SELECT boot_id, seq, error FROM rejected ORDER BY rejected_at")
        ]

    def outbox_keys(self) -> list[tuple[str, int]]:
        return [(str(b), int(s)) for b, s in self._query("SELECT boot_id, seq FROM outbox ORDER BY boot_id, seq")]

    def spooled_boot_ids(self) -> list[str]:
        """Boots with unacknowledged messages, oldest first."""
        rows = self._query(
            "SELECT b.boot_id FROM boots b WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.boot_id = b.boot_id) "
            "ORDER BY b.ordinal"
        )
        return [str(r[0]) for r in rows]

    def outbox_depth(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM outbox")[0][0])

    # ------------------------------------------------------------------------------------------------ commands

    def record_command(self, command: agent_pb2.Command, now: datetime) -> CommandRecord:
        """Store a command durably unless its command_id was seen before; advance the contiguous seq."""
        with self._txn() as db:
            row = db.execute(
                "SELECT payload, state, cause, detail, updated_at FROM commands WHERE command_id = ?",
                (command.command_id,),
            ).fetchone()
            if row is not None:
                return CommandRecord(
                    agent_pb2.Command.FromString(row[0]), int(row[1]), int(row[2]), str(row[3]), _dt(row[4])
                )
            db.execute(
                "INSERT INTO commands (command_id, seq, payload, state, updated_at) VALUES (?, ?, ?, ?, ?)",
                (
                    command.command_id,
                    command.seq,
                    command.SerializeToString(),
                    agent_pb2.COMMAND_STATE_RECEIVED,
                    _ts(now),
                ),
            )
            last = int((db.execute("SELECT value FROM meta WHERE key = 'last_command_seq'").fetchone() or ("0",))[0])
            while db.execute("SELECT 1 FROM commands WHERE seq = ?", (last + 1,)).fetchone():
                last += 1
            self._meta_set(db, "last_command_seq", str(last))
            return CommandRecord(command, agent_pb2.COMMAND_STATE_RECEIVED, 0, "", now, new=True)

    def last_command_seq(self) -> int:
        return int(self._meta_get("last_command_seq", "0"))

    def set_command_state(self, command_id: str, state: int, now: datetime, cause: int = 0, detail: str = "") -> None:
        with self._txn() as db:
            db.execute(
                "UPDATE commands SET state = ?, cause = ?, detail = ?, updated_at = ? WHERE command_id = ?",
                (state, cause, detail, _ts(now), command_id),
            )

    def command(self, command_id: str) -> CommandRecord | None:
        rows = self._query(
            "SELECT payload, state, cause, detail, updated_at FROM commands WHERE command_id = ?", (command_id,)
        )
        if not rows:
            return None
        p, s, c, d, u = rows[0]
        return CommandRecord(agent_pb2.Command.FromString(p), int(s), int(c), str(d), _dt(u))

    def open_commands(self) -> list[agent_pb2.Command]:
        marks = ",".join("?" * len(_OPEN_COMMAND_STATES))
        rows = self._query(f"SELECT payload FROM commands WHERE state IN ({marks}) ORDER BY seq", _OPEN_COMMAND_STATES)
        return [agent_pb2.Command.FromString(r[0]) for r in rows]

    def unreported_command_updates(self) -> list[agent_pb2.CommandUpdate]:
        """CommandUpdates for every command whose current state the server has not been sent yet."""
        rows = self._query(
            "SELECT seq, command_id, state, cause, detail, updated_at FROM commands "
            "WHERE state != reported_state ORDER BY seq"
        )
        return [
            agent_pb2.CommandUpdate(
                command_seq=int(seq),
                command_id=str(cid),
                state=int(state),  # type: ignore[arg-type]
                cause=int(cause),  # type: ignore[arg-type]
                detail=str(detail),
                at=timestamp_from_datetime(_dt(at)),
            )
            for seq, cid, state, cause, detail, at in rows
        ]

    def rereport_commands(self, since: datetime) -> int:
        """Mark every command changed since `since` as unreported, so its current state is sent again.

        A CommandUpdate handed to a stream that then broke may never have reached the server, and the server does
        not acknowledge command updates; so each new session re-sends the recent ones (the server ignores repeats).
        """
        with self._txn() as db:
            cur = db.execute("UPDATE commands SET reported_state = 0 WHERE updated_at >= ?", (_ts(since),))
            return int(cur.rowcount)

    def mark_command_reported(self, command_id: str, state: int) -> None:
        with self._txn() as db:
            db.execute("UPDATE commands SET reported_state = ? WHERE command_id = ?", (state, command_id))

    # ------------------------------------------------------------------------------------------------ schedule + jobs

    def schedule_version(self) -> int:
        return int(self._meta_get("schedule_version", "0"))

    def replace_schedule(
        self, version: int, jobs: Sequence[agent_pb2.ScheduledJob], boot_id: str, now: datetime
    ) -> list[str]:
        """Make `jobs` the whole accepted schedule, atomically, and spool JobUpdate RECEIVED for each new job.

        Jobs missing from the new version that have not started are dropped; a running job stays (only AbortJob
        interrupts it); finished jobs keep their rows so a resent schedule never runs them twice.
        Returns the ids of the jobs that were new.
        """
        new_ids: list[str] = []
        updates: list[agent_pb2.ConnectRequest] = []
        with self._txn() as db:
            wanted = {job.job_id for job in jobs}
            for job_id, state in db.execute("SELECT job_id, state FROM jobs WHERE in_schedule = 1").fetchall():
                if job_id in wanted:
                    continue
                if JobState(state) == JobState.RECEIVED:
                    db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
                else:
                    db.execute("UPDATE jobs SET in_schedule = 0 WHERE job_id = ?", (job_id,))
            for job in jobs:
                start = job.start.ToDatetime(tzinfo=UTC)
                end = job.end.ToDatetime(tzinfo=UTC)
                row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job.job_id,)).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO jobs (job_id, spec, start_ts, end_ts, state, in_schedule, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, 1, ?)",
                        (job.job_id, job.SerializeToString(), _ts(start), _ts(end), int(JobState.RECEIVED), _ts(now)),
                    )
                    new_ids.append(job.job_id)
                    updates.append(_job_update(job.job_id, JobState.RECEIVED, now))
                elif JobState(row[0]) == JobState.RECEIVED:
                    db.execute(
                        "UPDATE jobs SET spec = ?, start_ts = ?, end_ts = ?, in_schedule = 1 WHERE job_id = ?",
                        (job.SerializeToString(), _ts(start), _ts(end), job.job_id),
                    )
                else:
                    db.execute("UPDATE jobs SET in_schedule = 1 WHERE job_id = ?", (job.job_id,))
            self._meta_set(db, "schedule_version", str(version))
            if updates:
                self._enqueue(db, boot_id, updates)
        return new_ids

    def jobs(self, *states: JobState) -> list[LocalJob]:
        sql = "SELECT job_id, spec, start_ts, end_ts, state, in_schedule, boot_id FROM jobs"
        args: tuple[int, ...] = ()
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args = tuple(int(s) for s in states)
        rows = self._query(sql + " ORDER BY start_ts, job_id", args)
        return [
            LocalJob(
                str(r[0]),
                agent_pb2.ScheduledJob.FromString(r[1]),
                _dt(r[2]),
                _dt(r[3]),
                JobState(r[4]),
                bool(r[5]),
                str(r[6]),
            )
            for r in rows
        ]

    def job(self, job_id: str) -> LocalJob | None:
        return next((j for j in self.jobs() if j.job_id == job_id), None)

    def transition_job(
        self,
        job_id: str,
        state: JobState,
        boot_id: str,
        now: datetime,
        *,
        cause: int = 0,
        detail: str = "",
        progress: float = 0.0,
        observation: agent_pb2.ObservationRecord | None = None,
    ) -> bool:
        """Move a job to `state` and spool its JobUpdate (after the observation, if any) in one transaction.

        Returns False (and writes nothing) when the move is illegal, e.g. the job is already terminal.
        """
        with self._txn() as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or not can_advance(JobState(row[0]), state):
                return False
            if JobState(row[0]) == state and state != JobState.RUNNING:
                return False
            db.execute(
                "UPDATE jobs SET state = ?, updated_at = ?, boot_id = CASE WHEN ? THEN ? ELSE boot_id END "
                "WHERE job_id = ?",
                (int(state), _ts(now), state == JobState.RUNNING, boot_id, job_id),
            )
            messages = []
            if observation is not None:
                messages.append(agent_pb2.ConnectRequest(observation=observation))
            messages.append(_job_update(job_id, state, now, cause=cause, detail=detail, progress=progress))
            seqs = self._enqueue(db, boot_id, messages)
            if observation is not None:
                # Its files are uploaded once the server holds the record (its outbox row is acked).
                for artifact in observation.artifacts:
                    db.execute(
                        "INSERT OR IGNORE INTO uploads "
                        "(artifact_id, observation_id, kind, size_bytes, sha256, boot_id, seq) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            artifact.artifact_id,
                            observation.observation_id,
                            artifact.kind,
                            artifact.size_bytes,
                            artifact.sha256,
                            boot_id,
                            seqs[0],
                        ),
                    )
            return True

    # ------------------------------------------------------------------------------------------------ uploads

    def ready_uploads(self) -> list[PendingUpload]:
        """Artifacts not yet uploaded whose observation record the server has acknowledged."""
        rows = self._query(
            "SELECT artifact_id, observation_id, kind, size_bytes, sha256 FROM uploads u WHERE done = 0 AND NOT EXISTS "
            "(SELECT 1 FROM outbox o WHERE o.boot_id = u.boot_id AND o.seq = u.seq) ORDER BY rowid"
        )
        return [PendingUpload(str(a), str(o), str(k), int(n), str(h)) for a, o, k, n, h in rows]

    def pending_upload_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM uploads WHERE done = 0")[0][0])

    def finish_upload(self, artifact_id: str) -> None:
        with self._txn() as db:
            db.execute("UPDATE uploads SET done = 1 WHERE artifact_id = ?", (artifact_id,))

    # ------------------------------------------------------------------------------------------------ availability

    def add_unavailable(self, start: datetime, end: datetime, reason: str) -> None:
        with self._txn() as db:
            db.execute(
                "INSERT INTO unavailable (start_ts, end_ts, reason) VALUES (?, ?, ?)", (_ts(start), _ts(end), reason)
            )

    def unavailable_at(self, when: datetime) -> str | None:
        """The reason the station is unavailable at `when`, or None."""
        rows = self._query(
            "SELECT reason FROM unavailable WHERE start_ts <= ? AND ? < end_ts LIMIT 1", (_ts(when), _ts(when))
        )
        return str(rows[0][0]) if rows else None


def _job_update(
    job_id: str, state: JobState, now: datetime, *, cause: int = 0, detail: str = "", progress: float = 0.0
) -> agent_pb2.ConnectRequest:
    return agent_pb2.ConnectRequest(
        job_update=agent_pb2.JobUpdate(
            job_id=job_id,
            state=common_pb2.JobState.ValueType(int(state)),
            cause=common_pb2.CauseCode.ValueType(cause),
            detail=detail,
            at=timestamp_from_datetime(now),
            progress=progress,
        )
    )


class AsyncStore:
    """The same store for async code: each call runs in a worker thread; `changed` wakes the upstream sender."""

    def __init__(self, store: Store) -> None:
        self.sync = store
        self.outbox_changed = asyncio.Event()
        self.commands_changed = asyncio.Event()  # a command's state changed: the link reports it
        self.commands_received = asyncio.Event()  # a new command was stored: the executor picks it up
        self.schedule_changed = asyncio.Event()

    async def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def enqueue(self, boot_id: str, messages: Sequence[agent_pb2.ConnectRequest]) -> list[int]:
        seqs = await self.call(self.sync.enqueue, boot_id, messages)
        self.outbox_changed.set()
        return seqs

    async def transition_job(
        self,
        job_id: str,
        state: JobState,
        boot_id: str,
        now: datetime,
        *,
        cause: int = 0,
        detail: str = "",
        progress: float = 0.0,
        observation: agent_pb2.ObservationRecord | None = None,
    ) -> bool:
        done = await asyncio.to_thread(
            self.sync.transition_job,
            job_id,
            state,
            boot_id,
            now,
            cause=cause,
            detail=detail,
            progress=progress,
            observation=observation,
        )
        if done:
            self.outbox_changed.set()
        return done

    async def set_command_state(
        self, command_id: str, state: int, now: datetime, cause: int = 0, detail: str = ""
    ) -> None:
        await self.call(self.sync.set_command_state, command_id, state, now, cause, detail)
        self.commands_changed.set()
