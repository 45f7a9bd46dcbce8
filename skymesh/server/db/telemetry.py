"""Repository part for reading stored telemetry back (StationService.ListTelemetry).

Agents send telemetry in batches and the ingest (`skymesh.server.db.ingest`) stores one row per batch: the batch's
first sample time in `at` and its samples columnar in `data` (`skymesh.server.db.telemetry_blob`; rows written before
migration 0018 hold them as JSON in `samples`, read the same way). A reader wants samples, so this module walks the
batches of one station in (at, id) order, unpacks them and filters each sample by its own time and channels. A
position in that walk is (batch at, batch id, sample index): the key of keyset paging.

Samples of a batch are filtered by their own time, but batches are found by their first sample's time: from `after`
the walk starts at the batch that began last before it (its later samples may be in range), unless that began more
than `BATCH_SPAN` before (agents send a batch every few seconds); batches that overlap in time (two sessions of a
station at once) may be missed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from skymesh.core.errors import NotFound
from skymesh.server.db.base import RepoBase
from skymesh.server.db.models import StationRow, TelemetryRow
from skymesh.server.db.telemetry_blob import TelemetryColumns, from_json, unpack

__all__ = ["BATCH_SPAN", "TelemetryKey", "TelemetryRepo", "TelemetrySampleRecord"]

BATCH_SPAN = timedelta(hours=1)
# Batches read by the first statement (growing 4x per statement up to _SCAN_ROWS: a small page reads little), and
# the most one call reads before answering with what it found (a rare channel over a long history answers a short
# page with a token instead of holding a connection for the whole scan).
_FIRST_SCAN_ROWS = 16
_SCAN_ROWS = 1024
_MAX_SCAN_ROWS = 20_000

# (batch at, batch id, sample index within the batch)
TelemetryKey = tuple[datetime, int, int]


@dataclass(frozen=True)
class TelemetrySampleRecord:
    at: datetime
    values: dict[str, float]
    boot_id: str
    key: TelemetryKey


def _batch(data: bytes | None, samples: Any) -> TelemetryColumns:
    """A stored batch: the columnar blob, or the JSON of a row written before migration 0018."""
    return unpack(data) if data is not None else from_json(samples or ())


class TelemetryRepo(RepoBase):
    async def list_telemetry(
        self,
        station_id: str,
        *,
        channels: Sequence[str] = (),
        after: datetime | None = None,
        before: datetime | None = None,
        after_key: TelemetryKey | None = None,
        limit: int = 100,
    ) -> tuple[list[TelemetrySampleRecord], TelemetryKey | None]:
        """Up to `limit` samples of `station_id` in [after, before), only `channels` (all when empty), strictly past
        `after_key`; and the key to continue from, None when nothing more matches.

        NotFound for a station that never existed (a deleted one's history is still read)."""
        wanted = frozenset(channels)
        out: list[TelemetrySampleRecord] = []
        base = select(
            TelemetryRow.id, TelemetryRow.at, TelemetryRow.boot_id, TelemetryRow.data, TelemetryRow.samples
        ).where(TelemetryRow.station_id == station_id)
        if before is not None:
            base = base.where(TelemetryRow.at < before)
        base = base.order_by(TelemetryRow.at, TelemetryRow.id)
        # The row to resume in (inclusive, skipping its samples up to the key's index); later scans are strict.
        resume, inclusive = after_key, True
        scanned = 0
        chunk = _FIRST_SCAN_ROWS
        async with self._tx("list_telemetry") as s:
            if await s.scalar(select(StationRow.station_id).where(StationRow.station_id == station_id)) is None:
                raise NotFound(f"no station {station_id!r}", field="station_id")
            if after is not None:
                # The batch that began last before `after` may hold samples after it; earlier ones (within
                # BATCH_SPAN) only if batches overlapped, so that one batch is where the scan starts.
                previous = await s.scalar(
                    select(func.max(TelemetryRow.at)).where(
                        TelemetryRow.station_id == station_id, TelemetryRow.at < after
                    )
                )
                if previous is not None and after - previous <= BATCH_SPAN:
                    base = base.where(TelemetryRow.at >= previous)
                else:
                    base = base.where(TelemetryRow.at >= after)
            while True:
                query = base.limit(chunk)
                if resume is not None:
                    at, row_id, _ = resume
                    same = TelemetryRow.id >= row_id if inclusive else TelemetryRow.id > row_id
                    # The plain bound on at lets the database range-scan (station_id, at, id).
                    query = query.where(
                        TelemetryRow.at >= at, or_(TelemetryRow.at > at, and_(TelemetryRow.at == at, same))
                    )
                rows = (await s.execute(query)).all()
                last_count = 0
                for row_id, row_at, boot_id, data, samples in rows:
                    skip = resume[2] if inclusive and resume is not None and row_id == resume[1] else -1
                    batch = _batch(data, samples)
                    last_count = len(batch)
                    for index, sample_at, values in batch.samples():
                        if index <= skip:
                            continue
                        if (after is not None and sample_at < after) or (before is not None and sample_at >= before):
                            continue
                        if wanted:
                            values = {k: values[k] for k in wanted if k in values}
                        if not values:
                            continue
                        if len(out) == limit:  # one more matches: there is a next page
                            return out, out[-1].key
                        out.append(TelemetrySampleRecord(sample_at, values, boot_id, (row_at, row_id, index)))
                scanned += len(rows)
                if len(rows) < chunk:
                    return out, None
                chunk = min(chunk * 4, _SCAN_ROWS)
                last_id, last_at = rows[-1][0], rows[-1][1]
                resume, inclusive = (last_at, last_id, last_count - 1), False
                if scanned >= _MAX_SCAN_ROWS:
                    # Answer what was found; the token resumes after the last batch read.
                    return out, resume
