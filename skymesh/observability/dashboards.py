"""Grafana dashboards for SkyMesh, as code; `python -m skymesh.observability.dashboards DIR` writes them as JSON.

The committed files in `skymesh/observability/grafana/` are this module's output (a test fails when they differ).
Four dashboards, each on a `datasource` variable (any Prometheus):

- network overview: stations by state, streams, command delivery p99 against its SLO, schedule freshness, ingest,
  reconnects by reason, alerts firing;
- one station (`station_id` variable): its stream age, schedule age, reconnects, and its agent's spool and backlog;
- scheduler: solve time by solver and phase, objective, gap, candidates, plan age and outcomes;
- database: query latency by operation, transaction rates, ack lag.

Panels use the Grafana dashboard model (schemaVersion 39): `timeseries` and `stat` panels on a 24-column grid.
Imports only the standard library and `skymesh.observability.rules`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["DASHBOARDS", "dashboards", "write"]

_DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39


class _Board:
    def __init__(self, uid: str, title: str, tags: list[str], variables: list[dict[str, Any]] | None = None) -> None:
        self.uid = uid
        self.title = title
        self.tags = tags
        self.variables = variables or []
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def panel(
        self,
        title: str,
        exprs: dict[str, str],
        *,
        kind: str = "timeseries",
        unit: str = "short",
        width: int = 12,
        height: int = 8,
        description: str = "",
        thresholds: list[tuple[float, str]] | None = None,
    ) -> None:
        if self._x + width > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        steps += [{"color": color, "value": value} for value, color in thresholds or []]
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": _DS,
                "gridPos": {"x": self._x, "y": self._y, "w": width, "h": height},
                "fieldConfig": {
                    "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                    "overrides": [],
                },
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
                "targets": [
                    {"refId": chr(ord("A") + i), "datasource": _DS, "expr": expr, "legendFormat": legend}
                    for i, (legend, expr) in enumerate(exprs.items())
                ],
            }
        )
        self._x += width
        self._row_h = max(self._row_h, height)

    def model(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "tags": ["skymesh", *self.tags],
            "timezone": "utc",
            "editable": True,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Prometheus",
                        "type": "datasource",
                        "query": "prometheus",
                        "current": {},
                        "hide": 0,
                    },
                    *self.variables,
                ]
            },
            "annotations": {"list": []},
            "links": [{"title": "SkyMesh dashboards", "type": "dashboards", "tags": ["skymesh"], "asDropdown": True}],
            "panels": self.panels,
        }


def _network() -> _Board:
    b = _Board("skymesh-network", "SkyMesh / Network overview", ["network"])
    b.panel("Stations by state", {"{{state}}": "max by (state) (skymesh_server_stations)"}, kind="stat", width=8)
    b.panel("Open agent streams", {"{{instance}}": "skymesh_server_streams"}, kind="stat", width=8)
    b.panel(
        "Alerts firing",
        {"{{alertname}}": 'count by (alertname) (ALERTS{alertstate="firing", alertname=~"SkyMesh.*"})'},
        kind="stat",
        width=8,
    )
    b.panel(
        "Command delivery p99 (SLO < 1 s)",
        {"p99": "skymesh:command_delivery_seconds:p99_5m"},
        unit="s",
        thresholds=[(1.0, "red")],
    )
    b.panel(
        "Stations with a fresh schedule (SLO ≥ 99 %)",
        {"fresh": "skymesh:stations_schedule_fresh:ratio"},
        unit="percentunit",
        thresholds=[(0.99, "green")],
    )
    b.panel("Ingest rate", {"{{type}}": "skymesh:ingested:rate5m"}, unit="ops")
    b.panel("Stream ends by reason", {"{{reason}}": "skymesh:stream_ends:rate5m"}, unit="ops")
    b.panel("Stream messages", {"{{direction}} {{type}}": "skymesh:stream_messages:rate5m"}, unit="ops", width=24)
    b.panel(
        "Oldest unacknowledged agent data",
        {"{{instance}}": "topk(10, skymesh_agent_spool_oldest_age_seconds)"},
        unit="s",
        thresholds=[(600.0, "red")],
    )
    b.panel(
        "Upload backlog",
        {"{{instance}}": "topk(10, skymesh_agent_upload_backlog_bytes)"},
        unit="bytes",
    )
    b.panel(
        "Open station health events",
        {"{{detector}}": "sum by (detector) (skymesh_server_station_health_open)"},
        description="Telemetry anomaly detectors (robust z-score); the events and their evidence are stored.",
    )
    b.panel(
        "Health events opened",
        {"{{detector}}": "sum by (detector) (increase(skymesh_server_station_health_events_total[1h]))"},
    )
    b.panel(
        "Job state changes",
        {"{{state}}": "sum by (state) (rate(skymesh_server_jobs_total[$__rate_interval]))"},
        unit="ops",
    )
    b.panel(
        "Command state changes",
        {"{{state}}": "sum by (state) (rate(skymesh_server_commands_total[$__rate_interval]))"},
        unit="ops",
    )
    return b


def _station() -> _Board:
    station = {
        "name": "station_id",
        "label": "Station",
        "type": "query",
        "datasource": _DS,
        "query": {"query": "label_values(skymesh_server_stream_start_time_seconds, station_id)", "refId": "V"},
        "refresh": 2,
        "current": {},
        "hide": 0,
    }
    b = _Board("skymesh-station", "SkyMesh / Station", ["station"], [station])
    sel = 'station_id="$station_id"'
    b.panel(
        "Stream age",
        {"age": f"time() - max(skymesh_server_stream_start_time_seconds{{{sel}}})"},
        kind="stat",
        unit="s",
        width=6,
    )
    b.panel(
        "Schedule age",
        {"age": f"max(skymesh_server_station_schedule_age_seconds{{{sel}}})"},
        kind="stat",
        unit="s",
        width=6,
    )
    b.panel(
        "Reconnects (30 min)",
        {"reconnects": f"max(changes(skymesh_server_stream_start_time_seconds{{{sel}}}[30m]))"},
        kind="stat",
        width=6,
        thresholds=[(5.0, "red")],
    )
    b.panel(
        "Agent connected",
        {"connected": f"max(skymesh_agent_connected * on(instance) group_left() skymesh_agent_station_info{{{sel}}})"},
        kind="stat",
        width=6,
    )
    b.panel(
        "Agent spool",
        {
            "messages": f"skymesh_agent_spool_messages * on(instance) group_left() skymesh_agent_station_info{{{sel}}}",
        },
    )
    b.panel(
        "Oldest unacknowledged data",
        {
            "age": (
                f"skymesh_agent_spool_oldest_age_seconds * on(instance) group_left() "
                f"skymesh_agent_station_info{{{sel}}}"
            ),
        },
        unit="s",
        thresholds=[(600.0, "red")],
    )
    b.panel(
        "Agent job state changes",
        {
            "{{state}}": (
                "sum by (state) (rate(skymesh_agent_jobs_total[$__rate_interval]) * on(instance) group_left() "
                f"skymesh_agent_station_info{{{sel}}})"
            ),
        },
        unit="ops",
    )
    b.panel(
        "Agent reconnects by reason",
        {
            "{{reason}}": (
                "sum by (reason) (rate(skymesh_agent_reconnects_total[$__rate_interval]) * on(instance) "
                f"group_left() skymesh_agent_station_info{{{sel}}})"
            ),
        },
        unit="ops",
    )
    return b


def _scheduler() -> _Board:
    b = _Board("skymesh-scheduler", "SkyMesh / Scheduler", ["scheduler"])
    b.panel("Plan age", {"age": "skymesh:plan_age_seconds:max"}, kind="stat", unit="s", width=8)
    b.panel("Last plan gap", {"gap": "max(skymesh_server_plan_gap_ratio)"}, kind="stat", unit="percentunit", width=8)
    b.panel(
        "Unscheduled requests (last plan)",
        {"unscheduled": "max(skymesh_server_plan_unscheduled_requests)"},
        kind="stat",
        width=8,
    )
    b.panel("Solve time p95 by solver", {"{{solver}}": "skymesh:scheduler_plan_seconds:p95_15m"}, unit="s")
    b.panel(
        "Time per phase",
        {
            "{{solver}} {{phase}}": (
                "sum by (solver, phase) (rate(skymesh_scheduler_plan_phase_duration_seconds_sum[$__rate_interval]))"
                " / sum by (solver, phase) (rate(skymesh_scheduler_plan_phase_duration_seconds_count"
                "[$__rate_interval]))"
            ),
        },
        unit="s",
    )
    b.panel("Objective by solver", {"{{solver}}": "max by (solver) (skymesh_scheduler_plan_objective)"})
    b.panel("Gap by solver", {"{{solver}}": "max by (solver) (skymesh_scheduler_plan_gap_ratio)"}, unit="percentunit")
    b.panel("Candidates by solver", {"{{solver}}": "max by (solver) (skymesh_scheduler_plan_candidates)"})
    b.panel(
        "Visibility windows computed",
        {"windows/s": "sum(rate(skymesh_scheduler_visibility_windows_total[$__rate_interval]))"},
        unit="ops",
    )
    b.panel(
        "Planning rounds by outcome",
        {"{{outcome}}": "sum by (outcome) (rate(skymesh_server_plans_total[$__rate_interval]))"},
        unit="ops",
        width=24,
    )
    return b


def _database() -> _Board:
    b = _Board("skymesh-database", "SkyMesh / Database", ["database"])
    b.panel("Query latency p99 by operation", {"{{operation}}": "skymesh:db_query_seconds:p99_5m"}, unit="s", width=24)
    b.panel(
        "Transactions by operation",
        {
            "{{operation}}": (
                "sum by (operation) (rate(skymesh_server_db_query_duration_seconds_count[$__rate_interval]))"
            ),
        },
        unit="ops",
    )
    b.panel(
        "Upstream ack lag p99",
        {
            "p99": (
                "histogram_quantile(0.99, sum by (le) (rate(skymesh_server_ack_lag_seconds_bucket[$__rate_interval])))"
            ),
        },
        unit="s",
    )
    b.panel(
        "Duplicates by kind",
        {"{{type}}": "sum by (type) (rate(skymesh_server_dedup_hits_total[$__rate_interval]))"},
        unit="ops",
    )
    b.panel(
        "Upload throughput",
        {"bytes/s": "sum(rate(skymesh_server_upload_bytes_total[$__rate_interval]))"},
        unit="Bps",
    )
    return b


DASHBOARDS = {"network": _network, "station": _station, "scheduler": _scheduler, "database": _database}


def dashboards() -> dict[str, dict[str, Any]]:
    """File stem -> dashboard model."""
    return {f"skymesh-{name}": build().model() for name, build in DASHBOARDS.items()}


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, model in dashboards().items():
        path = directory / f"{stem}.json"
        path.write_text(render(model))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "skymesh/observability/grafana")):
        print(p)
