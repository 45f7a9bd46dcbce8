"""Grafana dashboards: the committed JSON is the generator's output, every dashboard follows Grafana's dashboard
model (the structural rules below), and every panel's PromQL parses under the real `promtool`. (That every metric
they name exists on a live process is checked in test_stack.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from skymesh.observability.dashboards import SCHEMA_VERSION, dashboards, render

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "skymesh/observability/grafana"
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge", "text", "row"}
UNITS = {"short", "s", "ops", "bytes", "Bps", "percentunit"}


def panel_exprs(model: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in model["panels"] for t in p.get("targets", [])]


def promql_for_promtool(expr: str) -> str:
    """Grafana's variables replaced by values Prometheus accepts, as Grafana does before it queries."""
    return expr.replace("$__rate_interval", "5m").replace("$station_id", "gs-1")


def test_committed_dashboards_are_the_generators_output() -> None:
    models = dashboards()
    assert {p.stem for p in GRAFANA_DIR.glob("*.json")} == set(models)
    for stem, model in models.items():
        assert (GRAFANA_DIR / f"{stem}.json").read_text() == render(model), (
            "run python -m skymesh.observability.dashboards"
        )
    assert set(models) == {"skymesh-network", "skymesh-station", "skymesh-scheduler", "skymesh-database"}


@pytest.mark.parametrize("stem", sorted(dashboards()))
def test_dashboard_follows_grafanas_model(stem: str) -> None:
    model = dashboards()[stem]
    assert model["uid"] == stem and len(model["uid"]) <= 40 and re.fullmatch(r"[a-z0-9-]+", model["uid"])
    assert model["title"].startswith("SkyMesh / ")
    assert model["schemaVersion"] == SCHEMA_VERSION
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"]
        g = panel["gridPos"]
        assert all(isinstance(g[k], int) for k in ("x", "y", "w", "h"))
        assert g["x"] >= 0 and g["w"] >= 1 and g["x"] + g["w"] <= 24 and g["h"] >= 1 and g["y"] >= 0
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip()
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var == "__rate_interval" or var in variables, f"{stem}: unknown variable ${var}"


def test_every_panel_expression_parses_under_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install the Debian 'prometheus' package (.ci/run does)"
    exprs = sorted({promql_for_promtool(e) for m in dashboards().values() for e in panel_exprs(m)})
    rules = {
        "groups": [{"name": "panels", "rules": [{"record": f"panel:expr:{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # The same check rejects a broken expression (it is not vacuous).
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y:z", "expr": "sum(rate(a[5m])"}]}]})
    )
    assert subprocess.run([promtool, "check", "rules", str(path)], capture_output=True).returncode != 0
