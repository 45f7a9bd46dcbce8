"""Station health events (opened by `skymesh.server.health`'s detectors): stored with their evidence window."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, String, select
from sqlalchemy.orm import Mapped, mapped_column

from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import Base, UTCDateTime
from skymesh.server.db.records import HealthEventRecord

__all__ = ["HealthRepo"]


class HealthEventRow(Base):
    __tablename__ = "station_health_events"
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    station_id: Mapped[str] = mapped_column(String(64), index=True)
    detector: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    peak_z: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]]


def _record(row: HealthEventRow) -> HealthEventRecord:
    return HealthEventRecord(
        event_id=row.event_id,
        station_id=row.station_id,
        detector=row.detector,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        peak_z=row.peak_z,
        evidence=dict(row.evidence),
    )


class HealthRepo(RepoBase):
    async def open_health_event(
        self, station_id: str, detector: str, at: datetime, z: float, evidence: dict[str, Any]
    ) -> str:
        event_id = str(uuid.uuid4())
        async with self._tx("open_health_event") as s:
            s.add(
                HealthEventRow(
                    event_id=event_id,
                    station_id=station_id,
                    detector=detector,
                    opened_at=at,
                    closed_at=None,
                    peak_z=z,
                    evidence=evidence,
                )
            )
        return event_id

    async def close_health_event(self, station_id: str, detector: str, at: datetime) -> None:
        async with self._tx("close_health_event") as s:
            rows = await s.scalars(
                select(HealthEventRow).where(
                    HealthEventRow.station_id == station_id,
                    HealthEventRow.detector == detector,
                    HealthEventRow.closed_at.is_(None),
                )
            )
            for row in rows:
                row.closed_at = at

    async def health_events(self, station_id: str) -> list[HealthEventRecord]:
        async with self._tx("health_events") as s:
            rows = await s.scalars(
                select(HealthEventRow).where(HealthEventRow.station_id == station_id).order_by(HealthEventRow.opened_at)
            )
            return [_record(r) for r in rows]
