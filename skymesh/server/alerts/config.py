"""Alert ingest settings (the `alerts:` section of the server's YAML): the watch directory, the Kafka consumer,
parser limits, the cone-match radius, and the rules that turn an alert into a target.

Rules are tried in order; the first whose `source` and `alert_type` patterns (fnmatch) match decides. A rule either
stores the alert only (`action: store`) or makes a target (`action: target`) with a priority, a time-critical
window of `window_s` from reception (the scheduler multiplies the priority by `boost` inside it) and observing
settings, provided the alert has a position whose 90 % radius is at most `max_error_radius_deg`. An alert that
carries a sky map instead (LVK) becomes up to `max_targets` targets: fields of view of `tile_fov_deg` (0: the widest
telescope's) tiling its `credible_level` region, ranked by the probability each holds (docs/alerts.md). Imports
only the standard library and `skymesh.core`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skymesh.core.errors import InvalidArgument

__all__ = ["DEFAULT_RULES", "AlertRule", "AlertsConfig"]


@dataclass(frozen=True)
class AlertRule:
    source: str = "*"
    alert_type: str = "*"
    action: str = "store"  # "target" | "store"
    priority: int = 8  # 1..10
    window_s: float = 6 * 3600.0
    boost: float = 2.0
    max_error_radius_deg: float = 0.5
    exposure_s: float = 60.0
    exposure_count: int = 3
    filters: tuple[str, ...] = ()
    max_airmass: float = 2.5
    # Sky maps (LVK): tiles of this field of view (0: the widest telescope's), covering this credible region.
    tile_fov_deg: float = 0.0
    credible_level: float = 0.9
    max_targets: int = 10

    def __post_init__(self) -> None:
        if self.action not in ("target", "store"):
            raise InvalidArgument("must be 'target' or 'store'", field="alerts.rules.action")
        if not 1 <= self.priority <= 10:
            raise InvalidArgument("must be within 1..10", field="alerts.rules.priority")
        if self.window_s <= 0 or self.boost < 0 or self.max_error_radius_deg < 0:
            raise InvalidArgument("window_s must be > 0, boost and max_error_radius_deg >= 0", field="alerts.rules")
        if not 0 < self.exposure_s <= 3600 or self.exposure_count < 1:
            raise InvalidArgument("exposure_s within (0, 3600], exposure_count >= 1", field="alerts.rules")
        if not 0.0 <= self.tile_fov_deg <= 30.0 or not 0.0 < self.credible_level <= 1.0:
            raise InvalidArgument("tile_fov_deg within [0, 30], credible_level within (0, 1]", field="alerts.rules")
        if not 1 <= self.max_targets <= 500:
            raise InvalidArgument("must be within 1..500", field="alerts.rules.max_targets")

    def matches(self, source: str, alert_type: str) -> bool:
        return fnmatch.fnmatchcase(source, self.source) and fnmatch.fnmatchcase(alert_type, self.alert_type)


DEFAULT_RULES: tuple[AlertRule, ...] = (
    # Well-localised GRBs and neutrinos: follow up at once.
    AlertRule(source="gcn", alert_type="swift.*", action="target", priority=9, window_s=6 * 3600.0),
    AlertRule(source="gcn", alert_type="voevent.swift", action="target", priority=9, window_s=6 * 3600.0),
    AlertRule(source="gcn", alert_type="einstein_probe.*", action="target", priority=8, window_s=12 * 3600.0),
    AlertRule(
        source="gcn",
        alert_type="icecube.*",
        action="target",
        priority=8,
        window_s=12 * 3600.0,
        max_error_radius_deg=1.0,
    ),
    # Gravitational waves: the sky map's 90 % region tiled by the widest camera, the densest tiles first, for a day
    # (a kilonova fades by about a magnitude a day).
    AlertRule(source="gcn", alert_type="lvk", action="target", priority=9, window_s=86400.0, max_targets=10),
    # New transients from TNS: classification-grade follow-up over a few nights.
    AlertRule(source="tns", action="target", priority=6, window_s=3 * 86400.0, boost=1.5),
    # Survey streams are high volume: kept, targeted only when an operator writes a rule for them.
    AlertRule(source="ztf", action="store"),
    AlertRule(source="rubin", action="store"),
    AlertRule(action="store"),
)


@dataclass(frozen=True)
class AlertsConfig:
    # Packets dropped here are ingested and moved to done/ or rejected/ (None: no watcher).
    watch_dir: str | None = None
    watch_interval_s: float = 0.2
    # An alert matches an existing sidereal target within this radius (after name and alias matching).
    match_radius_deg: float = 5.0 / 3600.0
    max_json_bytes: int = 1 << 20
    max_xml_bytes: int = 1 << 20
    max_avro_bytes: int = 32 << 20
    max_json_depth: int = 32
    # Writer schemas for Confluent-framed avro (Rubin's Kafka): files named <schema id>.avsc, read at start.
    avro_schema_dir: str | None = None
    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    # Kafka consumer (empty bootstrap: none). Offsets are committed only after an alert is stored.
    kafka_bootstrap: str = ""
    kafka_topics: tuple[str, ...] = ()
    kafka_group_id: str = "skymesh-alerts"
    kafka_config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.match_radius_deg < 0 or self.match_radius_deg > 1.0:
            raise InvalidArgument("must be within [0, 1] degree", field="alerts.match_radius_deg")
        if self.watch_interval_s <= 0:
            raise InvalidArgument("must be positive", field="alerts.watch_interval_s")
        if self.kafka_bootstrap and not self.kafka_topics:
            raise InvalidArgument("a Kafka bootstrap needs topics", field="alerts.kafka_topics")

    def rule_for(self, source: str, alert_type: str) -> AlertRule:
        return next((r for r in self.rules if r.matches(source, alert_type)), AlertRule())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AlertsConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InvalidArgument(f"unknown settings {sorted(unknown)}", field="alerts")
        args = dict(values)
        if "rules" in args:
            rule_fields = {f.name for f in dataclasses.fields(AlertRule)}
            rules = []
            for i, raw in enumerate(args["rules"] or ()):
                if not isinstance(raw, Mapping) or set(raw) - rule_fields:
                    raise InvalidArgument(f"unknown rule settings in {raw!r}", field=f"alerts.rules[{i}]")
                rule = dict(raw)
                if "filters" in rule:
                    rule["filters"] = tuple(rule["filters"])
                rules.append(AlertRule(**rule))
            args["rules"] = tuple(rules)
        if "kafka_topics" in args:
            args["kafka_topics"] = tuple(args["kafka_topics"] or ())
        if "kafka_config" in args:
            args["kafka_config"] = {str(k): str(v) for k, v in dict(args["kafka_config"] or {}).items()}
        return cls(**args)
