"""Prometheus recording and alert rules for SkyMesh, as code; `python -m skymesh.observability.rules` prints them.

The committed file `skymesh/observability/prometheus/skymesh.rules.yml` is this module's output (a test fails when
they differ), so a deployment loads a reviewed file and the tests prove the same rules: `promtool check rules`,
`promtool test rules` (every alert fires when it should and stays silent when it should not), and a live
Prometheus scraping real SkyMesh processes with `for:` shortened by `rule_groups(fast=True)`.

Scrape jobs are expected to be named `skymesh-server`, `skymesh-scheduler` and `skymesh-agent` (see
`prometheus.scrape_config`). Every alert carries `severity` (page: critical; ticket: warning), a `summary`, a
`description` and a `runbook_url` pointing at its entry in docs/runbook.md.

SLOs encoded here:
- command delivery (created -> RECEIVED at the agent): p99 under 1 s;
- schedules: at least 99 % of connected stations hold a schedule younger than the planning interval (with half an
  interval of grace, because a schedule is refreshed once per interval and the round itself takes time);
- agent spools: no unacknowledged message older than 10 minutes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["ALERTS", "RECORDING", "RUNBOOK_URL", "Alert", "render", "rule_groups"]

RUNBOOK_URL = "https://github.com/skymesh/skymesh/blob/main/docs/runbook.md"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str  # "critical" pages a human; "warning" opens a ticket
    summary: str
    description: str

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_URL}#{self.name.lower()}"


# Recording rules: name -> expression. Names follow level:metric:operations.
RECORDING: dict[str, str] = {
    "skymesh:command_delivery_seconds:p99_5m": (
        "histogram_quantile(0.99, sum by (le) (rate(skymesh_server_command_delivery_seconds_bucket[5m])))"
    ),
    "skymesh:stations_schedule_fresh:ratio": (
        "(count(skymesh_server_station_schedule_age_seconds"
        " <= on() group_left() (1.5 * max(skymesh_server_replan_interval_seconds))) or vector(0))"
        " / count(skymesh_server_station_schedule_age_seconds)"
    ),
    "skymesh:plan_age_seconds:max": "time() - max(skymesh_server_plan_last_success_timestamp_seconds > 0)",
    "skymesh:db_query_seconds:p99_5m": (
        "histogram_quantile(0.99, sum by (le, operation) (rate(skymesh_server_db_query_duration_seconds_bucket[5m])))"
    ),
    "skymesh:scheduler_plan_seconds:p95_15m": (
        "histogram_quantile(0.95, sum by (le, solver) (rate(skymesh_scheduler_plan_duration_seconds_bucket[15m])))"
    ),
    "skymesh:stream_messages:rate5m": "sum by (direction, type) (rate(skymesh_server_stream_messages_total[5m]))",
    "skymesh:ingested:rate5m": "sum by (type) (rate(skymesh_server_ingested_total[5m]))",
    "skymesh:stream_ends:rate5m": "sum by (reason) (rate(skymesh_server_stream_ends_total[5m]))",
}

ALERTS: tuple[Alert, ...] = (
    Alert(
        "SkyMeshServerDown",
        'up{job="skymesh-server"} == 0',
        "1m",
        "critical",
        "SkyMesh server {{ $labels.instance }} is down",
        "Prometheus cannot scrape the server at {{ $labels.instance }}: its agents cannot reach it through this "
        "replica and no new work is dispatched from it.",
    ),
    Alert(
        "SkyMeshSchedulerDown",
        'up{job="skymesh-scheduler"} == 0',
        "2m",
        "critical",
        "SkyMesh scheduler {{ $labels.instance }} is down",
        "Prometheus cannot scrape the scheduler at {{ $labels.instance }}: planning rounds fail and schedules age.",
    ),
    Alert(
        "SkyMeshAgentDown",
        'up{job="skymesh-agent"} == 0',
        "10m",
        "warning",
        "Station agent {{ $labels.instance }} is not answering scrapes",
        "The agent process at {{ $labels.instance }} is down or unreachable; its schedule still runs only if "
        "the process does.",
    ),
    Alert(
        "SkyMeshCommandDeliverySlow",
        "skymesh:command_delivery_seconds:p99_5m > 1",
        "10m",
        "warning",
        "Command delivery p99 is {{ $value | humanizeDuration }} (SLO: under 1 s)",
        "99th percentile of the time from a command's creation to the agent reporting it RECEIVED has been over "
        "1 s for 10 minutes.",
    ),
    Alert(
        "SkyMeshSchedulesStale",
        "skymesh:stations_schedule_fresh:ratio < 0.99",
        "15m",
        "warning",
        "Only {{ $value | humanizePercentage }} of connected stations hold a fresh schedule (SLO: 99 %)",
        "Fewer than 99 % of connected stations were covered by a plan within the planning interval (plus half).",
    ),
    # The age from the raw timestamp, not the skymesh:plan_age_seconds:max record: that one is another group's,
    # evaluated before or after this one (promtool picks the order at random: its summary was a minute off in 1 of 8
    # runs of tests/observability/test_rules.py), and Prometheus evaluates groups independently too.
    Alert(
        "SkyMeshPlanStale",
        "(time() - max(skymesh_server_plan_last_success_timestamp_seconds > 0))"
        " > 3 * max(skymesh_server_replan_interval_seconds > 0)",
        "5m",
        "critical",
        "No plan applied for {{ $value | humanizeDuration }}",
        "The rolling planner has not applied a plan for three planning intervals: the network is going idle.",
    ),
    Alert(
        "SkyMeshSchedulerGapHigh",
        "max(skymesh_server_plan_gap_ratio) > 0.1",
        "30m",
        "warning",
        "Applied plans are {{ $value | humanizePercentage }} from their bound",
        "The last applied plans are more than 10 % below the solver's bound: raise the time limit or check load.",
    ),
    Alert(
        "SkyMeshAgentSpoolOld",
        "skymesh_agent_spool_oldest_age_seconds > 600",
        "1m",
        "warning",
        "Agent {{ $labels.instance }} holds data unacknowledged for {{ $value | humanizeDuration }}",
        "The oldest upstream message in the agent's spool is older than 10 minutes (SLO): the server is not "
        "acknowledging it.",
    ),
    Alert(
        "SkyMeshUploadBacklog",
        "skymesh_agent_upload_backlog_bytes > 1e9 or skymesh_agent_upload_backlog_files > 100",
        "30m",
        "warning",
        "Agent {{ $labels.instance }} has an upload backlog of {{ $value | humanize }}",
        "More than 1 GB or 100 artifact files have been waiting for upload for 30 minutes.",
    ),
    Alert(
        "SkyMeshStationFlapping",
        "changes(skymesh_server_stream_start_time_seconds[30m]) >= 5",
        "0m",
        "warning",
        "Station {{ $labels.station_id }} reconnected {{ $value }} times in 30 minutes",
        "The station's stream keeps ending and reopening: a bad link, a crashing agent or two agents with one key.",
    ),
    Alert(
        "SkyMeshStationsDisconnected",
        'max(sum by (instance) (skymesh_server_stations{state=~"disconnected|offline"})'
        " / sum by (instance) (skymesh_server_stations)) > 0.1",
        "10m",
        "warning",
        "{{ $value | humanizePercentage }} of stations are disconnected or offline",
        "More than 10 % of registered stations have no stream: a network partition or a server-side problem.",
    ),
    Alert(
        "SkyMeshStationAnomaly",
        "sum by (detector) (skymesh_server_station_health_open) > 0",
        "5m",
        "warning",
        "{{ $value }} station health event(s) open from the {{ $labels.detector }} detector",
        "A telemetry anomaly detector found a station's hardware outside its normal behaviour; the stored health "
        "event holds the evidence window.",
    ),
    Alert(
        "SkyMeshDatabaseSlow",
        "skymesh:db_query_seconds:p99_5m > 0.5",
        "10m",
        "warning",
        "Database operation {{ $labels.operation }} p99 is {{ $value | humanizeDuration }}",
        "A repository operation's 99th percentile latency has been over 500 ms for 10 minutes.",
    ),
)


def rule_groups(*, fast: bool = False) -> dict[str, Any]:
    """The rules file's content. `fast`: every `for:` is 0s (for tests against a live Prometheus)."""
    return {
        "groups": [
            {
                "name": "skymesh.recording",
                "rules": [{"record": name, "expr": expr} for name, expr in RECORDING.items()],
            },
            {
                "name": "skymesh.alerts",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": "0s" if fast else a.for_,
                        "labels": {"severity": a.severity},
                        "annotations": {
                            "summary": a.summary,
                            "description": a.description,
                            "runbook_url": a.runbook_url,
                        },
                    }
                    for a in ALERTS
                ],
            },
        ]
    }


def render(*, fast: bool = False) -> str:
    header = "# Generated by `python -m skymesh.observability.rules`; edit skymesh/observability/rules.py instead.\n"
    return header + yaml.safe_dump(rule_groups(fast=fast), sort_keys=False, width=200)


if __name__ == "__main__":
    sys.stdout.write(render(fast="--fast" in sys.argv[1:]))
