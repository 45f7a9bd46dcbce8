"""Real processes (scheduler, server, agent), each scraped as Prometheus would: lint-clean under `promtool check
metrics`, only its own metrics, health endpoints apart from /metrics; then a real Prometheus with SkyMesh's rules
scrapes them, the scheduler is killed, and the matching alert fires (and the server's /readyz says why)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skymesh.observability.dashboards import dashboards
from skymesh.observability.prometheus import Prometheus, start_prometheus
from skymesh.observability.rules import ALERTS, RECORDING
from tests.observability.stack import Stack, free_port, http_get, wait_until

pytestmark = pytest.mark.slow

OWN_PREFIX = {"server": "skymesh_server_", "scheduler": "skymesh_scheduler_", "agent": "skymesh_agent_"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start()
        yield s
    except BaseException:
        print(s.log_tails())
        raise
    finally:
        s.stop()


def _families(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))


@pytest.mark.parametrize("name", ["server", "scheduler", "agent"])
def test_scrape_is_promtool_clean(stack: Stack, name: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install the Debian 'prometheus' package (.ci/run does)"
    body = stack.scrape(name)
    out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out.stdout + out.stderr


@pytest.mark.parametrize("name", ["server", "scheduler", "agent"])
def test_each_process_exports_only_its_own_metrics(stack: Stack, name: str) -> None:
    body = stack.scrape(name)
    skymesh = {f for f in _families(body) if f.startswith("skymesh_")}
    foreign = {f for f in skymesh if f != "skymesh_build_info" and not f.startswith(OWN_PREFIX[name])}
    assert not foreign, f"{name} exports other processes' metrics: {sorted(foreign)}"
    assert len(skymesh) > 5
    assert re.search(rf'^skymesh_build_info\{{.*component="{name}".*\}} 1\.0$', body, flags=re.M), body
    assert "process_start_time_seconds" in body


def test_label_values_are_lower_case_everywhere(stack: Stack) -> None:
    for name in ("server", "scheduler", "agent"):
        for labels in re.findall(r"^skymesh_\w+_total\{([^}]*)\}", stack.scrape(name), flags=re.M):
            for key, value in re.findall(r'(\w+)="([^"]*)"', labels):
                if key in {"state", "reason", "type", "direction", "outcome", "solver"}:
                    assert value == value.lower(), f"{name}: {key}={value!r}"


def test_health_endpoints_are_apart_from_metrics(stack: Stack) -> None:
    for name, addr in stack.metrics.items():
        assert http_get(f"http://{addr}/healthz") == (200, "ok\n"), name
        assert http_get(f"http://{addr}/readyz") == (200, "ok\n"), name
        status, body = http_get(f"http://{addr}/")
        assert status == 404 and "skymesh_" not in body, name
        assert http_get(f"http://{addr}/metrics/extra")[0] == 404


def test_server_and_agent_report_the_connected_station(stack: Stack) -> None:
    server = stack.scrape("server")
    assert 'skymesh_server_stations{state="online"} 1.0' in server
    started = re.search(r'^skymesh_server_stream_start_time_seconds\{station_id="gs-obs"\} (\S+)$', server, re.M)
    assert started and 0 < time.time() - float(started.group(1)) < 600
    assert re.search(r'^skymesh_server_station_schedule_age_seconds\{station_id="gs-obs"\} \S+$', server, re.M)
    assert re.search(r"^skymesh_server_plan_last_success_timestamp_seconds [1-9]", server, re.M), server
    assert "skymesh_server_replan_interval_seconds 5.0" in server
    agent = stack.scrape("agent")
    assert 'skymesh_agent_station_info{kind="ground_station",station_id="gs-obs"} 1.0' in agent
    assert re.search(r"^skymesh_agent_spool_oldest_age_seconds \S+$", agent, re.M)
    assert "skymesh_agent_upload_backlog_files 0.0" in agent


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    return set(re.findall(r"\b(skymesh_[a-z0-9_]+)", expr))


def test_every_metric_the_rules_and_dashboards_name_is_exported(stack: Stack) -> None:
    exported: set[str] = set()
    for name in ("server", "scheduler", "agent"):
        body = stack.scrape(name)
        exported |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", body, flags=re.M))
        # Labelled families with no child yet (no plan computed, no reconnect so far) are declared, not sampled.
        for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", body, flags=re.M):
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            exported |= {family + suffix for suffix in suffixes}
    named = {m for rule in ALERTS for m in _metric_names(rule.expr)}
    named |= {m for expr in RECORDING.values() for m in _metric_names(expr)}
    for model in dashboards().values():
        for panel in model["panels"]:
            for target in panel["targets"]:
                named |= _metric_names(target["expr"])
    assert len(named) > 20
    assert not named - exported, f"named but exported by no process: {sorted(named - exported)}"


def _alert_states(prom: Prometheus, name: str) -> set[str]:
    return {a["state"] for a in prom.alerts() if a["labels"].get("alertname") == name}


def test_prometheus_fires_scheduler_down_when_the_scheduler_is_killed(stack: Stack, tmp_path: Path) -> None:
    """Runs last in this module: it kills the scheduler."""
    targets = {f"skymesh-{name}": [addr] for name, addr in stack.metrics.items()}
    prom = start_prometheus(
        tmp_path / "prometheus",
        targets,
        port=free_port(),
        fast_rules=True,
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    try:

        def all_up() -> bool:
            active = prom.api("targets")["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        wait_until(all_up, 30, "Prometheus to scrape all three processes")
        # The recording rules evaluate on live data.
        wait_until(
            lambda: bool(prom.api("query", query="skymesh:stations_schedule_fresh:ratio")["result"]),
            30,
            "the schedule-freshness recording rule",
        )
        assert not _alert_states(prom, "SkyMeshSchedulerDown")

        stack.procs["scheduler"].kill9()
        wait_until(lambda: "firing" in _alert_states(prom, "SkyMeshSchedulerDown"), 30, "SkyMeshSchedulerDown")
        firing = {a["labels"]["alertname"] for a in prom.alerts() if a["state"] == "firing"}
        assert "SkyMeshServerDown" not in firing and "SkyMeshAgentDown" not in firing, firing
        status, body = http_get(f"http://{stack.metrics['server']}/readyz")
        assert status == 503 and body.startswith("scheduler: unreachable"), (status, body)
        assert http_get(f"http://{stack.metrics['server']}/healthz") == (200, "ok\n")
    finally:
        prom.stop()
