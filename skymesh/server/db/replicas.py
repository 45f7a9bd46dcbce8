"""Repository part for server replicas on one PostgreSQL (issue 8): finding the stations whose holding replica died,
adopting them (so exactly one live replica writes their DISCONNECTED and OFFLINE), and the outbox heads the holder
of a stream polls as the fallback to LISTEN/NOTIFY.

A replica's identity is the application_name of its presence connection (`skymesh.server.replicas`): it is alive
exactly while PostgreSQL lists that name in pg_stat_activity, so a replica killed with SIGKILL stops being alive as
soon as its connection is gone. SQLite has one process: every holder other than this process is dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, func, or_, select, text, update

from skymesh.core.model import StationState
from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import LatestPlanRow, ScheduleRow, StationRow, StationSessionRow

__all__ = ["REPLICA_PREFIX", "ReplicaRepo"]

# Every replica's application_name starts with this (and nothing else's does).
REPLICA_PREFIX = "skymesh-replica:"

# States a station only has while some replica holds (or held) its stream; OFFLINE needs nobody.
_HELD_STATES = [
    int(StationState.ONLINE),
    int(StationState.STALE),
    int(StationState.DEGRADED),
    int(StationState.DISCONNECTED),
]


class ReplicaRepo(RepoBase):
    async def live_replicas(self) -> set[str]:
        """Replica ids with a presence connection to this database now (empty on SQLite)."""
        if self.dialect != "postgresql":
            return set()
        async with self._tx("live_replicas") as s:
            rows = await s.execute(
                text(
                    "SELECT DISTINCT application_name FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name LIKE :prefix"
                ),
                {"prefix": REPLICA_PREFIX + "%"},
            )
            return {str(name) for (name,) in rows}

    async def orphaned_sessions(self, me: str, *, unclaimed: bool = False) -> dict[str, int]:
        """Stations in a held state (ONLINE, STALE, DEGRADED, DISCONNECTED) whose holder is not a live replica:
        station id -> the epoch to adopt it at. `unclaimed` adds such stations that have no session row at all (a
        database from before replicas, or a cluster's cold start; only the first replica up should ask)."""
        alive = await self.live_replicas() if self.dialect == "postgresql" else set()
        alive.add(me)
        sessions = StationSessionRow.__table__
        stations = StationRow.__table__
        assert isinstance(sessions, Table) and isinstance(stations, Table)
        # Only the orphans leave the database (a sweep runs every few seconds on every replica).
        orphan = sessions.c.replica.not_in(sorted(alive))
        if unclaimed:
            orphan = or_(orphan, sessions.c.epoch.is_(None))
        query = (
            select(stations.c.station_id, sessions.c.epoch)
            .select_from(stations.outerjoin(sessions, sessions.c.station_id == stations.c.station_id))
            .where(stations.c.state.in_(_HELD_STATES), stations.c.deleted_at.is_(None), orphan)
        )
        async with self._tx("orphaned_sessions") as s:
            rows = (await s.execute(query)).all()
        return {station_id: int(epoch or 0) for station_id, epoch in rows}

    async def adopt_session(self, station_id: str, epoch: int, me: str) -> int | None:
        """Take the station over from a dead holder, without a stream: the next epoch if it is still at `epoch`
        (0: no session row yet), None if someone (an agent's new Hello) got there first."""
        now = self._now()
        table = StationSessionRow.__table__
        assert isinstance(table, Table)
        async with self._tx("adopt_session") as s:
            if epoch == 0:
                claim = (
                    self._insert(table)
                    .values(station_id=station_id, epoch=1, replica=me, session_id="", claimed_at=now)
                    .on_conflict_do_nothing()
                    .returning(table.c.epoch)
                )
                got = await s.scalar(claim)
            else:
                got = await s.scalar(
                    update(table)
                    .where(table.c.station_id == station_id, table.c.epoch == epoch)
                    .values(epoch=table.c.epoch + 1, replica=me, session_id="", claimed_at=now)
                    .returning(table.c.epoch)
                )
        return int(got) if got is not None else None

    async def save_latest_plan(self, planned_at: datetime, response: bytes) -> None:
        """The planner's last plan (a serialized GetLatestPlanResponse), replacing the one before."""
        table = LatestPlanRow.__table__
        assert isinstance(table, Table)
        stmt = self._insert(table).values(id=1, planned_at=planned_at, response=response)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={"planned_at": planned_at, "response": response}
        )
        async with self._tx("save_latest_plan") as s:
            await s.execute(stmt)

    async def latest_plan(self) -> bytes | None:
        """The last plan's serialized GetLatestPlanResponse, whichever replica made it; None before the first."""
        async with self._tx("latest_plan") as s:
            row = await s.get(LatestPlanRow, 1)
            return bytes(row.response) if row is not None else None

    async def session_holder(self, station_id: str) -> tuple[int, str, str] | None:
        """The station's session row: (epoch, holding replica, session id; "" when held without a stream), or None."""
        async with self._tx("session_holder") as s:
            row = await s.get(StationSessionRow, station_id)
            return (int(row.epoch), str(row.replica), str(row.session_id)) if row is not None else None

    async def session_epochs(self, station_ids: Sequence[str]) -> dict[str, int]:
        """The current epoch of each station that has a session row."""
        out: dict[str, int] = {}
        async with self._tx("session_epochs") as s:
            for i in range(0, len(station_ids), 500):
                query = select(StationSessionRow.station_id, StationSessionRow.epoch).where(
                    StationSessionRow.station_id.in_(station_ids[i : i + 500])
                )
                out.update({sid: int(e) for sid, e in (await s.execute(query)).all()})
        return out

    async def outbox_heads(self, station_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Station id -> (last command seq handed out, current schedule version): what the holder of a stream
        compares with what it has pushed, as the fallback when a NOTIFY was missed."""
        out: dict[str, tuple[int, int]] = {}
        async with self._tx("outbox_heads") as s:
            for i in range(0, len(station_ids), 500):
                ids = station_ids[i : i + 500]
                query = (
                    select(StationRow.station_id, StationRow.command_seq, func.coalesce(ScheduleRow.version, 0))
                    .select_from(StationRow)
                    .outerjoin(ScheduleRow, ScheduleRow.station_id == StationRow.station_id)
                    .where(StationRow.station_id.in_(ids))
                )
                out.update({sid: (int(c or 0), int(v)) for sid, c, v in (await s.execute(query)).all()})
        return out
