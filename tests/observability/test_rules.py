"""Alert and recording rules under the real `promtool` (Debian `prometheus` package): they parse, the committed file
is the generator's output, every alert has a runbook entry, and `promtool test rules` shows each alert firing when
it should (with its rendered summary) and silent when it should not."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from skymesh.observability.rules import ALERTS, RECORDING, render

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "skymesh/observability/prometheus/skymesh.rules.yml"
RUNBOOK = ROOT / "docs/runbook.md"


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install the Debian 'prometheus' package (.ci/run does)"
    return path


@dataclass
class Case:
    """One promtool test group: input series, then (minute, alert, firing label sets with their summaries)."""

    name: str
    series: dict[str, str]
    checks: list[tuple[int, str, list[tuple[dict[str, str], str]]]] = field(default_factory=list)


_BY_NAME = {a.name: a for a in ALERTS}

CASES = [
    Case(
        "server down",
        {
            'up{job="skymesh-server", instance="server-a:9100"}': "1 1 0 0 0 0 0",
            'up{job="skymesh-server", instance="server-b:9100"}': "1 1 1 1 1 1 1",
        },
        [
            (1, "SkyMeshServerDown", []),
            (2, "SkyMeshServerDown", []),  # pending: down for less than 1m
            (
                4,
                "SkyMeshServerDown",
                [({"job": "skymesh-server", "instance": "server-a:9100"}, "SkyMesh server server-a:9100 is down")],
            ),
        ],
    ),
    Case(
        "scheduler down",
        {'up{job="skymesh-scheduler", instance="sched:9101"}': "1 0 0 0 0 0"},
        [
            (2, "SkyMeshSchedulerDown", []),
            (
                4,
                "SkyMeshSchedulerDown",
                [({"job": "skymesh-scheduler", "instance": "sched:9101"}, "SkyMesh scheduler sched:9101 is down")],
            ),
        ],
    ),
    Case(
        "agent down",
        {
            'up{job="skymesh-agent", instance="gs-1:9200"}': "1 0x15",
            'up{job="skymesh-agent", instance="gs-2:9200"}': "1x15",
        },
        [
            (10, "SkyMeshAgentDown", []),
            (
                12,
                "SkyMeshAgentDown",
                [
                    (
                        {"job": "skymesh-agent", "instance": "gs-1:9200"},
                        "Station agent gs-1:9200 is not answering scrapes",
                    )
                ],
            ),
        ],
    ),
    Case(
        "command delivery slow",
        {
            'skymesh_server_command_delivery_seconds_bucket{le="0.5"}': "0x30",
            'skymesh_server_command_delivery_seconds_bucket{le="1"}': "0x30",
            'skymesh_server_command_delivery_seconds_bucket{le="2.5"}': "0+10x30",
            'skymesh_server_command_delivery_seconds_bucket{le="+Inf"}': "0+10x30",
        },
        [
            (5, "SkyMeshCommandDeliverySlow", []),
            (20, "SkyMeshCommandDeliverySlow", [({}, "Command delivery p99 is 2.485s (SLO: under 1 s)")]),
        ],
    ),
    Case(
        "command delivery fast",
        {
            'skymesh_server_command_delivery_seconds_bucket{le="0.5"}': "0+10x30",
            'skymesh_server_command_delivery_seconds_bucket{le="1"}': "0+10x30",
            'skymesh_server_command_delivery_seconds_bucket{le="+Inf"}': "0+10x30",
        },
        [(20, "SkyMeshCommandDeliverySlow", [])],
    ),
    Case(
        "schedules stale",
        {
            'skymesh_server_replan_interval_seconds{instance="s"}': "300x30",
            'skymesh_server_station_schedule_age_seconds{instance="s", station_id="gs-1"}': "100x30",
            'skymesh_server_station_schedule_age_seconds{instance="s", station_id="gs-2"}': "1000x30",
        },
        [
            (14, "SkyMeshSchedulesStale", []),
            (16, "SkyMeshSchedulesStale", [({}, "Only 50% of connected stations hold a fresh schedule (SLO: 99 %)")]),
        ],
    ),
    Case(
        "schedules fresh",
        {
            'skymesh_server_replan_interval_seconds{instance="s"}': "300x30",
            'skymesh_server_station_schedule_age_seconds{instance="s", station_id="gs-1"}': "100x30",
            'skymesh_server_station_schedule_age_seconds{instance="s", station_id="gs-2"}': "400x30",
        },
        [(20, "SkyMeshSchedulesStale", [])],
    ),
    Case(
        "plan stale",
        {
            'skymesh_server_replan_interval_seconds{instance="s"}': "300x40",
            'skymesh_server_plan_last_success_timestamp_seconds{instance="s"}': "60x40",
        },
        [
            (20, "SkyMeshPlanStale", []),
            (23, "SkyMeshPlanStale", [({}, "No plan applied for 22m 0s")]),
        ],
    ),
    Case(
        "plans keep coming",
        {
            'skymesh_server_replan_interval_seconds{instance="s"}': "300x40",
            'skymesh_server_plan_last_success_timestamp_seconds{instance="s"}': "0+60x40",
        },
        [(30, "SkyMeshPlanStale", [])],
    ),
    Case(
        "gap",
        {'skymesh_server_plan_gap_ratio{instance="a"}': "0.2x40", 'skymesh_server_plan_gap_ratio{instance="b"}': "0"},
        [
            (29, "SkyMeshSchedulerGapHigh", []),
            (31, "SkyMeshSchedulerGapHigh", [({}, "Applied plans are 20% from their bound")]),
        ],
    ),
    Case(
        "gap small",
        {'skymesh_server_plan_gap_ratio{instance="a"}': "0.05x40"},
        [(35, "SkyMeshSchedulerGapHigh", [])],
    ),
    Case(
        "spool old",
        {
            'skymesh_agent_spool_oldest_age_seconds{job="skymesh-agent", instance="gs-1:9200"}': "0+60x20",
            'skymesh_agent_spool_oldest_age_seconds{job="skymesh-agent", instance="gs-2:9200"}': "0x20",
        },
        [
            (11, "SkyMeshAgentSpoolOld", []),
            (
                13,
                "SkyMeshAgentSpoolOld",
                [
                    (
                        {"job": "skymesh-agent", "instance": "gs-1:9200"},
                        "Agent gs-1:9200 holds data unacknowledged for 13m 0s",
                    )
                ],
            ),
        ],
    ),
    Case(
        "upload backlog",
        {
            'skymesh_agent_upload_backlog_bytes{instance="gs-1:9200"}': "2e9x40",
            'skymesh_agent_upload_backlog_files{instance="gs-1:9200"}': "3x40",
            'skymesh_agent_upload_backlog_bytes{instance="gs-2:9200"}': "1e6x40",
            'skymesh_agent_upload_backlog_files{instance="gs-2:9200"}': "3x40",
        },
        [
            (29, "SkyMeshUploadBacklog", []),
            (31, "SkyMeshUploadBacklog", [({"instance": "gs-1:9200"}, "Agent gs-1:9200 has an upload backlog of 2G")]),
        ],
    ),
    Case(
        "flapping",
        {
            'skymesh_server_stream_start_time_seconds{instance="s", station_id="gs-1"}': "0 60 120 180 240 300 300x40",
            'skymesh_server_stream_start_time_seconds{instance="s", station_id="gs-2"}': "100x46",
        },
        [
            (3, "SkyMeshStationFlapping", []),
            (
                6,
                "SkyMeshStationFlapping",
                [({"instance": "s", "station_id": "gs-1"}, "Station gs-1 reconnected 5 times in 30 minutes")],
            ),
            (40, "SkyMeshStationFlapping", []),  # quiet for 30 minutes: resolved
        ],
    ),
    Case(
        "stations disconnected",
        {
            'skymesh_server_stations{instance="s", state="online"}': "8x20",
            'skymesh_server_stations{instance="s", state="disconnected"}': "1x20",
            'skymesh_server_stations{instance="s", state="offline"}': "1x20",
        },
        [
            (9, "SkyMeshStationsDisconnected", []),
            (11, "SkyMeshStationsDisconnected", [({}, "20% of stations are disconnected or offline")]),
        ],
    ),
    Case(
        "stations connected",
        {
            'skymesh_server_stations{instance="s", state="online"}': "10x20",
            'skymesh_server_stations{instance="s", state="offline"}': "0x20",
        },
        [(15, "SkyMeshStationsDisconnected", [])],
    ),
    Case(
        "database slow",
        {
            'skymesh_server_db_query_duration_seconds_bucket{operation="ingest_upstream", le="0.5"}': "0x30",
            'skymesh_server_db_query_duration_seconds_bucket{operation="ingest_upstream", le="1"}': "0+10x30",
            'skymesh_server_db_query_duration_seconds_bucket{operation="ingest_upstream", le="+Inf"}': "0+10x30",
            'skymesh_server_db_query_duration_seconds_bucket{operation="get_station", le="0.5"}': "0+10x30",
            'skymesh_server_db_query_duration_seconds_bucket{operation="get_station", le="1"}': "0+10x30",
            'skymesh_server_db_query_duration_seconds_bucket{operation="get_station", le="+Inf"}': "0+10x30",
        },
        [
            (
                20,
                "SkyMeshDatabaseSlow",
                [({"operation": "ingest_upstream"}, "Database operation ingest_upstream p99 is 995ms")],
            ),
        ],
    ),
    Case(
        "station anomaly",
        {
            'skymesh_server_station_health_open{instance="s", detector="rotator_pointing_error"}': "0 1x10",
            'skymesh_server_station_health_open{instance="s", detector="camera_temperature"}': "0x10",
        },
        [
            (4, "SkyMeshStationAnomaly", []),
            (
                7,
                "SkyMeshStationAnomaly",
                [
                    (
                        {"detector": "rotator_pointing_error"},
                        "1 station health event(s) open from the rotator_pointing_error detector",
                    )
                ],
            ),
        ],
    ),
    Case(
        "database fast",
        {
            'skymesh_server_db_query_duration_seconds_bucket{operation="get_station", le="0.5"}': "0+10x30",
            'skymesh_server_db_query_duration_seconds_bucket{operation="get_station", le="1"}': "0+10x30",
            'skymesh_server_db_query_duration_seconds_bucket{operation="get_station", le="+Inf"}': "0+10x30",
        },
        [(20, "SkyMeshDatabaseSlow", [])],
    ),
]


def _expected(alert: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
    rule = _BY_NAME[alert]
    description = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], rule.description)
    return {
        "exp_labels": {"severity": rule.severity, **labels},
        "exp_annotations": {"summary": summary, "description": description, "runbook_url": rule.runbook_url},
    }


def _promtool_tests(rules_path: Path, cases: list[Case]) -> dict[str, Any]:
    return {
        "rule_files": [str(rules_path)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": case.name,
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": f"{minute}m",
                        "alertname": alert,
                        "exp_alerts": [_expected(alert, labels, summary) for labels, summary in firing],
                    }
                    for minute, alert, firing in case.checks
                ],
            }
            for case in cases
        ],
    }


def test_committed_rules_file_is_the_generators_output() -> None:
    assert RULES_FILE.read_text() == render(), "run: python -m skymesh.observability.rules > " + str(RULES_FILE)


def test_promtool_check_rules_accepts_both_variants(tmp_path: Path) -> None:
    fast = tmp_path / "fast.rules.yml"
    fast.write_text(render(fast=True))
    out = subprocess.run([promtool(), "check", "rules", str(RULES_FILE), str(fast)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(RECORDING) + len(ALERTS)} rules found" in out.stdout


def test_every_alert_has_a_runbook_entry_severity_and_summary() -> None:
    runbook = RUNBOOK.read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^### (\S+)\s*$", runbook, flags=re.M)}
    for alert in ALERTS:
        assert alert.severity in {"critical", "warning"}
        assert alert.summary and alert.description
        assert alert.name.lower() in anchors, f"docs/runbook.md has no '### {alert.name}' entry"
        assert alert.runbook_url.endswith("docs/runbook.md#" + alert.name.lower())


def test_every_alert_has_firing_and_silent_unit_tests() -> None:
    fires = {alert for case in CASES for _m, alert, firing in case.checks if firing}
    silent = {alert for case in CASES for _m, alert, firing in case.checks if not firing}
    names = {a.name for a in ALERTS}
    assert names == fires, f"no firing test for {names - fires}"
    assert names == silent, f"no silent test for {names - silent}"


def test_promtool_unit_tests_pass(tmp_path: Path) -> None:
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(yaml.safe_dump(_promtool_tests(RULES_FILE, CASES), sort_keys=False))
    out = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The harness is not vacuous: a wrong expectation (a silent alert expected to fire) makes promtool fail."""
    wrong = Case(
        "wrong",
        {'up{job="skymesh-server", instance="x"}': "1x5"},
        [(4, "SkyMeshServerDown", [({"job": "skymesh-server", "instance": "x"}, "SkyMesh server x is down")])],
    )
    tests = tmp_path / "wrong_test.yml"
    tests.write_text(yaml.safe_dump(_promtool_tests(RULES_FILE, [wrong]), sort_keys=False))
    out = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True)
    assert out.returncode != 0


@pytest.mark.parametrize("name", sorted(RECORDING))
def test_recording_rule_names_follow_level_metric_operations(name: str) -> None:
    assert re.fullmatch(r"skymesh:[a-z0-9_]+:[a-z0-9_]+", name)
