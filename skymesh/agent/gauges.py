"""Agent gauges read from its durable store at scrape time: spool age and upload backlog.

Opens the agent's SQLite file read-only (WAL lets a reader in beside the agent's writer), so nothing in the hot path
writes a gauge and the numbers are the store's own, not a cache:

- `skymesh_agent_spool_oldest_age_seconds`: age of the oldest upstream message the server has not acknowledged
  (0 when the spool is empty; messages spooled by an agent older than the `spooled_at` column are not dated).
- `skymesh_agent_upload_backlog_files` / `_bytes`: artifact files waiting for upload.

Imports only the standard library and prometheus_client.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["StoreGauges"]


class StoreGauges(Collector):
    def __init__(self, database_path: Path | str) -> None:
        self._path = Path(database_path)

    def _read(self) -> tuple[float, int, int] | None:
        if not self._path.exists():
            return None
        db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=1.0)
        try:
            (oldest,) = db.execute("SELECT MIN(spooled_at) FROM outbox").fetchone()
            files, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM uploads WHERE done = 0"
            ).fetchone()
        except sqlite3.Error:  # not created yet, or busy past the timeout: skip this scrape's values
            return None
        finally:
            db.close()
        age = 0.0 if oldest is None else max(0.0, time.time() - float(oldest))
        return age, int(files), int(size)

    def collect(self) -> Iterator[Metric]:
        values = self._read()
        if values is None:
            return
        age, files, size = values
        yield GaugeMetricFamily(
            "skymesh_agent_spool_oldest_age_seconds",
            "Age of the oldest upstream message not yet acknowledged by the server; 0 when the spool is empty",
            value=age,
        )
        yield GaugeMetricFamily(
            "skymesh_agent_upload_backlog_files", "Artifact files waiting to be uploaded", value=files
        )
        yield GaugeMetricFamily(
            "skymesh_agent_upload_backlog_bytes", "Bytes of artifact files waiting to be uploaded", value=size
        )
