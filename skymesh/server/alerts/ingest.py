"""The server's one way in for alerts, whatever the source (gRPC IngestAlert, the watch directory, Kafka): parse,
keep the raw packet, store and apply it (`Repository.store_alert`), then act on what changed: abort retracted jobs
that are running, push changed schedules, and wake the planner at once for an accepted alert or a retraction. An
alert carrying a sky map (LVK) is stored first, then its map is tiled in the reduction worker pool (`skymap_tiler`,
never on the event loop) and the tiles become its targets.

A packet that does not parse is kept as REJECTED with the reason and nothing else is written. Uses the repository and
the dispatcher; never imports another service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.errors import InvalidArgument
from skymesh.observability.metrics import SERVER_ALERT_INGEST, SERVER_ALERTS
from skymesh.server.alerts.config import AlertRule, AlertsConfig
from skymesh.server.alerts.model import Alert, AlertFormat, AlertParseError, AlertRole, AlertStatus
from skymesh.server.alerts.parse import ParseLimits, parse_alerts
from skymesh.server.db import Repository
from skymesh.server.db.alerts import AlertOutcome, AlertRecord, SkyTile
from skymesh.server.dispatch import Dispatcher

__all__ = ["AlertIngest", "IngestResult", "load_schema_dir"]

log = logging.getLogger(__name__)

_ABORT_TTL_S = 600.0
_THREAD_PARSE_BYTES = 256 * 1024  # larger packets are decoded off the event loop
_DEFAULT_TILE_FOV_DEG = 1.0  # no telescope says its field of view

# (sky map bytes, fov_deg=, level=, max_tiles=) -> [(ra_deg, dec_deg, probability)], most probable first; raises
# ValueError for a map it cannot read (`Reducer.tile_skymap`).
SkyMapTiler = Callable[..., Awaitable[list[tuple[float, float, float]]]]


def load_schema_dir(directory: Path) -> dict[int, Any]:
    """{schema id: parsed schema} from `<id>.avsc` files (the Confluent registry's ids), checked by fastavro."""
    import fastavro

    schemas: dict[int, Any] = {}
    for path in sorted(directory.glob("*.avsc")):
        if not path.stem.isdigit():
            raise InvalidArgument(
                "schema files are named <schema id>.avsc", field=f"alerts.avro_schema_dir:{path.name}"
            )
        try:
            schemas[int(path.stem)] = fastavro.parse_schema(json.loads(path.read_text()))
        except (ValueError, fastavro.schema.SchemaParseException) as exc:
            raise InvalidArgument(f"not an Avro schema: {exc}", field=f"alerts.avro_schema_dir:{path.name}") from None
    return schemas


@dataclass(frozen=True)
class IngestResult:
    outcomes: tuple[AlertOutcome, ...] = ()
    rejected: AlertRecord | None = None
    error: AlertParseError | None = None
    replan_requested: bool = False


class AlertIngest:
    def __init__(
        self, repo: Repository, dispatcher: Dispatcher, config: AlertsConfig, replan: Callable[[str], None]
    ) -> None:
        self._repo = repo
        self._dispatcher = dispatcher
        self._config = config
        self._replan = replan
        self.skymap_tiler: SkyMapTiler | None = None  # set by the server once its worker pool runs
        self._schemas = load_schema_dir(Path(config.avro_schema_dir)) if config.avro_schema_dir else {}
        self._limits = ParseLimits(
            max_json_bytes=config.max_json_bytes,
            max_xml_bytes=config.max_xml_bytes,
            max_avro_bytes=config.max_avro_bytes,
            max_json_depth=config.max_json_depth,
        )

    async def ingest(
        self, packet: bytes, *, origin: str, hint: AlertFormat | None = None, actor: str = "system"
    ) -> IngestResult:
        started = time.monotonic()
        try:
            if len(packet) > _THREAD_PARSE_BYTES:
                alerts = await asyncio.to_thread(
                    parse_alerts, packet, hint=hint, limits=self._limits, schemas=self._schemas
                )
            else:
                alerts = parse_alerts(packet, hint=hint, limits=self._limits, schemas=self._schemas)
        except AlertParseError as exc:
            record = await self._repo.store_rejected_alert(packet, str(exc), origin=origin)
            SERVER_ALERTS.labels("unknown", "rejected").inc()
            SERVER_ALERT_INGEST.observe(time.monotonic() - started)
            log.warning("alert from %s rejected (%s); raw packet kept as %s", origin, exc, record.alert_id)
            return IngestResult(rejected=record, error=exc)
        outcomes = []
        replan_reasons = []
        for alert in alerts:
            rule = self._config.rule_for(alert.source, alert.alert_type)
            outcome = await self._repo.store_alert(
                alert,
                packet,
                origin=origin,
                rule=rule,
                match_radius_deg=self._config.match_radius_deg,
                actor=actor,
            )
            if self._wants_tiles(alert, rule, outcome):
                outcome = await self._tile(alert, rule, outcome, actor)
            outcomes.append(outcome)
            for job in outcome.running_jobs:
                await self._dispatcher.send_command(
                    job.station_id,
                    agent_pb2.Command(
                        abort_job=agent_pb2.AbortJob(job_id=job.job_id, reason=f"alert retracted: {alert.dedup_key}")
                    ),
                    priority=agent_pb2.COMMAND_PRIORITY_URGENT,
                    ttl_s=_ABORT_TTL_S,
                    job_id=job.job_id,
                    actor=actor,
                )
            for station_id in outcome.bumped_stations:
                await self._dispatcher.push_schedule(station_id)
            if outcome.replan:
                replan_reasons.append(f"alert {alert.dedup_key}")
            record = outcome.record
            SERVER_ALERTS.labels(alert.source, "duplicate" if outcome.duplicate else record.status.name.lower()).inc()
            log.info(
                "alert %s from %s: %s%s%s (%.1f ms)",
                alert.dedup_key,
                origin,
                "DUPLICATE" if outcome.duplicate else record.status.name,
                f" -> target {record.target_id}" if record.target_id else "",
                f", {len(outcome.running_jobs)} running job(s) aborted" if outcome.running_jobs else "",
                (time.monotonic() - started) * 1000.0,
            )
        for reason in replan_reasons:
            self._replan(reason)
        SERVER_ALERT_INGEST.observe(time.monotonic() - started)
        return IngestResult(outcomes=tuple(outcomes), replan_requested=bool(replan_reasons))

    async def tile_pending(self) -> int:
        """At start: sky-map alerts that were stored but never tiled (the server stopped in between) and whose
        rule's window has not yet passed are tiled now. Returns how many became targets; never raises."""
        if self.skymap_tiler is None:
            return 0
        tiled = 0
        try:
            now = self._repo.clock.now()
            for record in await self._repo.list_alerts(status=AlertStatus.STORED, limit=1000):
                rule = self._config.rule_for(record.source, record.alert_type)
                if record.error or record.retraction or rule.action != "target" or record.dedup_key is None:
                    continue
                if (now - record.received_at).total_seconds() > rule.window_s:
                    continue  # too late to follow up: it stays stored
                _, raw = await self._repo.get_alert(record.alert_id)
                try:
                    alerts = await asyncio.to_thread(parse_alerts, raw, limits=self._limits, schemas=self._schemas)
                except AlertParseError:
                    continue
                alert = next((a for a in alerts if a.dedup_key == record.dedup_key and a.skymap), None)
                if alert is None or alert.role != AlertRole.OBSERVATION:
                    continue
                outcome = await self._tile(alert, rule, AlertOutcome(record), "system")
                for station_id in outcome.bumped_stations:
                    await self._dispatcher.push_schedule(station_id)
                if outcome.replan:
                    tiled += 1
                    self._replan(f"alert {alert.dedup_key} (sky map tiled at start)")
        except Exception:  # the server runs on without it; the alerts stay stored
            log.exception("tiling the sky maps left from before the start failed")
        return tiled

    @staticmethod
    def _wants_tiles(alert: Alert, rule: AlertRule, outcome: AlertOutcome) -> bool:
        return (
            bool(alert.skymap)
            and rule.action == "target"
            and alert.role == AlertRole.OBSERVATION
            and not alert.retraction
            and not outcome.duplicate
            and outcome.record.status == AlertStatus.STORED
        )

    async def _tile(self, alert: Alert, rule: AlertRule, outcome: AlertOutcome, actor: str) -> AlertOutcome:
        """Tile the stored alert's sky map in the worker pool and make its targets; a map that cannot be used
        leaves the alert STORED with the reason in its `error`."""
        alert_id = outcome.record.alert_id
        if self.skymap_tiler is None:
            record = await self._repo.note_alert_error(alert_id, "sky map not tiled: the server has no worker pool")
            return AlertOutcome(record)
        fov_deg = rule.tile_fov_deg or await self._repo.widest_telescope_fov_deg() or _DEFAULT_TILE_FOV_DEG
        try:
            tiles = await self.skymap_tiler(
                alert.skymap, fov_deg=fov_deg, level=rule.credible_level, max_tiles=rule.max_targets
            )
        except (ValueError, RuntimeError) as exc:
            log.warning("alert %s: sky map not tiled (%s)", alert.dedup_key, exc)
            return AlertOutcome(await self._repo.note_alert_error(alert_id, f"sky map not tiled: {exc}"))
        return await self._repo.attach_skymap_targets(
            alert_id, [SkyTile(*t) for t in tiles], rule=rule, fov_deg=fov_deg, actor=actor
        )
