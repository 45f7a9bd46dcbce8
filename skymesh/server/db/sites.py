"""Observations submitted over the control API by sites without an agent stream (DATAS "POST /observations"):
the same row and checks as the stream's observations, deduplicated on the observation id, audited."""

from __future__ import annotations

from sqlalchemy import select

from skymesh.core.errors import NotFound
from skymesh.server.db.ingest import IngestRepo
from skymesh.server.db.models import ObservationRow, StationRow
from skymesh.server.db.records import ObservationIn

__all__ = ["SitesRepo"]

_SUBMITTED_BOOT = "control-api"


class SitesRepo(IngestRepo):
    async def submit_observation(self, station_id: str, obs: ObservationIn, *, actor: str = "system") -> bool:
        """Store one observation; False when its id was already stored (nothing written)."""
        now = self._now()
        async with self._tx("submit_observation") as s:
            if await s.get(StationRow, station_id) is None:
                raise NotFound(f"no station {station_id!r}", field="station_id")
            exists = await s.scalar(
                select(ObservationRow.observation_id).where(ObservationRow.observation_id == obs.observation_id)
            )
            if exists is not None:
                return False
            await self._insert_observation(s, station_id, _SUBMITTED_BOOT, 0, obs, now)
            self._audit(s, now, actor, "submit_observation", obs.observation_id, station_id=station_id)
        return True
