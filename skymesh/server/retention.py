"""Telemetry maintenance (issue 8, part 1): partitions made ahead and telemetry older than the retention bound removed.

Every replica runs it (at start, then every `telemetry_maintenance_interval_s`); on PostgreSQL the repository takes an
advisory try-lock, so one replica does the work and the others skip that round. The partition DDL is idempotent:
a replica that starts on a day nobody prepared makes the day's partition itself, and the default partition takes
any row that still has none (nothing accepted is refused). What is removed is logged, one line per round that
removed something.

Imports: the repository, the config and the clock; nothing here knows about gRPC.
"""

from __future__ import annotations

import logging

from skymesh.core.clock import Clock
from skymesh.server.config import ServerConfig
from skymesh.server.db import Repository
from skymesh.server.db.telemetry_partitions import RetentionReport

__all__ = ["TelemetryMaintenance"]

log = logging.getLogger(__name__)

# When a round stopped at its delete budget with old rows left, the next comes this soon, not an interval later.
_BACKLOG_PAUSE_S = 1.0


class TelemetryMaintenance:
    def __init__(self, repo: Repository, config: ServerConfig, clock: Clock) -> None:
        self._repo = repo
        self._keep_days = config.telemetry_retention_days
        self._interval_s = config.telemetry_maintenance_interval_s
        self._clock = clock

    async def run_once(self) -> RetentionReport | None:
        """One round: partitions ahead, then retention (None when retention is off: `telemetry_retention_days` 0)."""
        made = await self._repo.ensure_telemetry_partitions()
        if made:
            log.info("telemetry partitions created: %s", ", ".join(made))
        if self._keep_days <= 0:
            return None
        report = await self._repo.apply_telemetry_retention(self._keep_days)
        if report.dropped_partitions or report.deleted_rows:
            log.info(
                "telemetry retention (keep %d days, bound %s): dropped partitions [%s] (~%d rows), deleted %d rows%s",
                self._keep_days,
                report.cutoff.isoformat(),
                ", ".join(report.dropped_partitions),
                report.dropped_rows_estimate,
                report.deleted_rows,
                " (more left: next round soon)" if report.more else "",
            )
        return report

    async def run(self) -> None:
        while True:
            pause_s = self._interval_s
            try:
                report = await self.run_once()
                if report is not None and report.more:
                    pause_s = _BACKLOG_PAUSE_S
            except Exception:  # a database hiccup (or a lock not had in time) must not end the loop: next round
                log.exception("telemetry maintenance failed")
            await self._clock.sleep(pause_s)
