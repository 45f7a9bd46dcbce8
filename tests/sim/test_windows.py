"""find_next_window: named devices, windows shorter than the grid, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skymesh.core.errors import InvalidArgument
from skymesh.sim.engine import EventKind
from skymesh.sim.scenario import parse_scenario
from skymesh.sim.windows import find_next_window

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sim"


def scenario(**spacecraft: object) -> dict[str, object]:
    doc = yaml.safe_load((EXAMPLES / "constellation.yaml").read_text())
    doc["spacecraft"].update(spacecraft)
    doc["step_s"] = 60
    return dict(doc)


def test_device_rate_and_window_match_the_engine_events() -> None:
    sim = parse_scenario(scenario(comm_devices={"uhf": 1200, "sband": 250000})).simulation
    res = sim.run(86400)
    times, values = res.edges(EventKind.CONTACT, 3)
    first_aos = float(times[values > 0][0])
    window = find_next_window(sim, 3, station="maspalomas", search_window_s=86400, device="sband")
    assert window is not None and window.complete
    assert window.start_s == pytest.approx(first_aos, abs=sim.config.tolerance_s)
    assert window.volume_bytes == pytest.approx(250000 * window.length_s)
    later = find_next_window(sim, 3, station=0, start_s=window.end_s + 1, search_window_s=86400, rate_bytes_per_s=1)
    assert later is not None and later.start_s > window.end_s


def test_errors_name_the_field() -> None:
    sim = parse_scenario(scenario(comm_devices={"uhf": 1200})).simulation
    with pytest.raises(InvalidArgument) as info:
        find_next_window(sim, 0, station="maspalomas", search_window_s=600, device="laser")
    assert info.value.field == "device"
    with pytest.raises(InvalidArgument) as info:
        find_next_window(sim, 0, station="nowhere", search_window_s=600)
    assert info.value.field == "station"
    with pytest.raises(InvalidArgument) as info:
        parse_scenario(scenario(comm_devices={"uhf": 0}))
    assert info.value.field == "spacecraft.comm_devices.uhf"
