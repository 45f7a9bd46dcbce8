"""Scenario files: the shipped examples load and run; bad values name their field; the CLI writes CSV, Parquet and
a figure."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from skymesh.cli.main import main
from skymesh.core.errors import InvalidArgument
from skymesh.sim.scenario import load_scenario, parse_condition, parse_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sim"


def base() -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLES / "constellation.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("name", ["constellation", "single_satellite", "learning_pair"])
def test_examples_load(name: str) -> None:
    sc = load_scenario(EXAMPLES / f"{name}.yaml")
    assert sc.duration_s > 0
    assert sc.simulation.fleet.n >= 1


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("duration_s",), -5, "duration_s"),
        (("epoch",), "yesterday", "epoch"),
        (("spacecraft", "battery_capacity_wh"), 0, "spacecraft.battery_capacity_wh"),
        (("spacecraft", "initial_soc"), {"uniform": [0.5, 1.5]}, "spacecraft.initial_soc.uniform"),
        (("spacecraft", "thermal", "mass_kg"), "heavy", "spacecraft.thermal.mass_kg"),
        (("spacecraft", "thermal", "body_emissivity"), 2.0, "spacecraft.thermal.body_emissivity"),
        (("spacecraft", "colour"), "red", "spacecraft.colour"),
        (("orbits", "walker", "planes"), 0, "orbits.walker.planes"),
        (("stations", 0, "latitude_deg"), 95, "stations[0].latitude_deg"),
        (("activities", 1, "power_w"), -2, "activities[1].power_w"),
        (("activities", 0, "fallback"), "Nap", "activities[0].fallback"),
        (("modes", 0, "when"), "charge > 3", "modes[0].when[0]"),
        (("modes", 0, "activity"), "Dance", "modes[0].activity"),
    ],
)
def test_bad_values_name_the_field(path: tuple[Any, ...], value: Any, field: str) -> None:
    doc = base()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InvalidArgument) as info:
        parse_scenario(doc)
    assert info.value.field == field


def test_missing_thermal_field_is_named() -> None:
    doc = base()
    del doc["spacecraft"]["thermal"]["emissive_area_m2"]
    with pytest.raises(InvalidArgument) as info:
        parse_scenario(doc)
    assert info.value.field == "spacecraft.thermal.emissive_area_m2"


def test_condition_forms() -> None:
    a = parse_condition("soc > 0.2", "c")
    b = parse_condition(["soc", ">", 0.2], "c")
    c = parse_condition(["soc > 0.2", ["temperature_k", "<", 330]], "c")
    assert a == b
    assert len(c.all_of) == 2


def test_cli_run_writes_csv_parquet_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = EXAMPLES / "constellation.yaml"
    out_csv = tmp_path / "run.csv"
    png = tmp_path / "run.png"
    assert main(["sim", "run", str(scenario), "--out", str(out_csv), "--plot", str(png), "--duration-s", "3600",
                 "--quiet"]) == 0  # fmt: skip
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16 * 61  # 16 satellites x records every 60 s over 1 h (both ends)
    assert {r["activity"] for r in rows} <= {"Processing", "Standby", "off"}
    assert all(0.0 <= float(r["soc"]) <= 1.0 for r in rows)
    assert png.stat().st_size > 10_000
    pq = pytest.importorskip("pyarrow.parquet")
    out_pq = tmp_path / "run.parquet"
    assert main(["sim", "run", str(scenario), "--out", str(out_pq), "--duration-s", "1200", "--quiet"]) == 0
    table = pq.read_table(out_pq)
    assert table.num_rows == 16 * 21
    assert "temperature_k" in table.column_names


def test_cli_reports_bad_field_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = base()
    doc["spacecraft"]["charge_power_w"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    assert main(["sim", "run", str(bad), "--out", str(tmp_path / "x.csv"), "--quiet"]) == 2
    assert "spacecraft.charge_power_w" in capsys.readouterr().err
    assert main(["sim", "run", str(EXAMPLES / "constellation.yaml"), "--out", str(tmp_path / "x.txt")]) == 2


def test_sim_imports_no_wire_database_or_service_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, skymesh.sim, skymesh.sim.scenario, skymesh.sim.inloop, skymesh.sim.realtime, skymesh.sim.output;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('grpc', 'sqlalchemy') or m.startswith('google.protobuf')"
        " or m.startswith(('skymesh.server', 'skymesh.scheduler', 'skymesh.agent', 'skymesh.web'))];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_single_satellite_link_constraint_interrupts_processing() -> None:
    """Paper sec. III-A: processing stops when the ground station comes into view; stored results drain there."""
    import numpy as np

    from skymesh.sim.engine import EventKind

    sc = load_scenario(EXAMPLES / "single_satellite.yaml")
    res = sc.simulation.run(sc.duration_s)
    detect = sc.simulation.activity_index["VolcanoDetection"]
    in_contact = res.in_contact[:, 0]
    assert in_contact.any()
    assert not np.any(res.activity[in_contact, 0] == detect)
    aos, values = res.edges(EventKind.CONTACT, 0)
    switches, previous = res.edges(EventKind.ACTIVITY, 0)
    new = res.event_arg[(res.event_kind == EventKind.ACTIVITY) & (res.event_sat == 0)]
    checked = 0
    for t in aos[values > 0]:
        before = new[switches < t]
        if before.size and before[-1] == detect:  # it was processing when the station came into view
            stopped = switches[(previous == detect) & (switches >= t)]
            assert stopped.size and stopped[0] - t <= 0.2  # interrupted within the engine tolerance of AOS
            checked += 1
    assert checked >= 1
    drained = np.diff(res.stored_bytes[:, 0])[in_contact[1:] & in_contact[:-1]]
    assert (drained <= 0).all() and (drained < 0).any()


@given(
    field=st.sampled_from(["soc", "temperature_k", "stored_bytes", "in_contact"]),
    op=st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 6)),
)
def test_condition_string_and_list_forms_agree(field: str, op: str, value: float) -> None:
    text = parse_condition(f"{field} {op} {value!r}", "c")
    listed = parse_condition([field, op, value], "c")
    assert text == listed
    assert text.all_of[0].value == value


def test_tle_file_orbits_and_missing_file(tmp_path: Path) -> None:
    doc = base()
    del doc["orbits"]["walker"]
    (tmp_path / "fleet.tle").write_text(
        "SENTINEL-2B\n"
        "1 42063U 17013A   22300.18652110  .00000099  00000+0  54271-4 0  9998\n"
        "2 42063  98.5693  13.0364 0001083 104.3232 255.8080 14.30819357294601\n"
    )
    doc["orbits"]["tle_file"] = "fleet.tle"
    sc = parse_scenario(doc, tmp_path)
    assert sc.simulation.fleet.n == 1
    assert sc.simulation.orbits.frame == "teme"
    doc["orbits"]["tle_file"] = "missing.tle"
    with pytest.raises(InvalidArgument) as info:
        parse_scenario(doc, tmp_path)
    assert info.value.field == "orbits.tle_file"
