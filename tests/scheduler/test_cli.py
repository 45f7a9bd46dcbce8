"""`skymesh plan` end to end: generate a small scenario, plan it, read the JSON; the shipped example plans too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skymesh.cli.main import main
from skymesh.scheduler.scenario import load_scenario

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "small.yaml"


def test_generate_then_plan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "talos.json"
    args = ["plan", "--generate", "talos", "--stations", "5", "--satellites", "15", "--hours", "4", "--seed", "3"]
    assert main([*args, "--out", str(out)]) == 0
    first = out.read_text()
    assert main([*args, "--out", str(out)]) == 0
    assert out.read_text() == first  # reproducible
    req = load_scenario(out)
    assert len(req.stations) == 5 and len(req.targets) == 15 and req.turnaround_s == 60.0
    assert all(t.demand.max_per_period == 1 and t.demand.period_s == 7200.0 for t in req.targets)
    capsys.readouterr()

    assert main(["plan", "--scenario", str(out), "--solver", "cpsat", "--time-limit-s", "5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stats = doc["stats"]
    assert stats["solver"] == "cpsat"
    assert stats["greedy_objective"] <= stats["objective"] + 1e-6 <= stats["bound"] + 1e-3
    assert 0.0 <= stats["gap"] < 0.05
    assert {"visibility_s", "greedy_s", "global_s", "explain_s", "load_s"} <= set(stats["timings_s"])
    assert len(doc["assignments"]) > 5
    assert sum(a["score"] for a in doc["assignments"]) == pytest.approx(stats["objective"])
    for e in doc["unscheduled"]:
        assert e["reasons"] and all(r["code"] for r in e["reasons"])
    # Partly met targets are in the JSON too, their summary first ("k of n wanted").
    assert doc["partially_met"]
    for e in doc["partially_met"]:
        assert e["reasons"][0]["code"] == "PARTIALLY_MET"
        assert all(r["start"] and r["station_id"] for r in e["reasons"][1:])
    assert doc["explanation_reasons_total"] == sum(len(e["reasons"]) for e in doc["unscheduled"] + doc["partially_met"])


def test_example_scenario_plans_with_explanations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--scenario", str(EXAMPLE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    why = {e["target_id"]: {r["code"] for r in e["reasons"]} for e in doc["unscheduled"]}
    assert why["faint-qso"] == {"TOO_FAINT"}
    assert why["k-band-only"] == {"NO_CAPABLE_STATION"}
    assert any(a["job_id"] == "job-0001" for a in doc["assignments"])
    assert any(a["filter"] and a["exposure_count"] for a in doc["assignments"])
    assert main(["plan", "--scenario", str(EXAMPLE), "--limit", "2"]) == 0
    assert "objective=" in capsys.readouterr().out


def test_bad_scenario_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"window": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}}))
    assert main(["plan", "--scenario", str(bad)]) == 2
    assert "window.end" in capsys.readouterr().err
