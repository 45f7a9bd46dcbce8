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


def test_data_moves_to_a_relay_at_the_isl_rate_while_it_is_in_view() -> None:
    """Stored data drains at isl_rate_bytes_per_s exactly while a relay is in line of sight (and at the downlink
    rate while a station is): the drained volume is rate x the relay windows' length."""
    from datetime import UTC, datetime

    import numpy as np

    from skymesh.sim import Activity, EngineConfig, KeplerOrbits, ModeRule, Simulation, SpacecraftParams

    fleet = KeplerOrbits(np.full(2, 6921e3), np.zeros(2), np.deg2rad([97.0, 40.0]), np.array([0.0, 1.0]),
                         np.zeros(2), np.array([0.0, 2.0]))  # fmt: skip
    geo = KeplerOrbits(np.array([42164e3]), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))
    sc = SpacecraftParams(initial_stored_bytes=1e9, isl_rate_bytes_per_s=1e4)
    sim = Simulation(fleet, [sc], [Activity("idle", 0.0)], [ModeRule("idle")], datetime(2023, 1, 4, tzinfo=UTC),
                     config=EngineConfig(step_s=60), relays=geo)  # fmt: skip
    res = sim.run(6 * 3600)
    for sat in range(2):
        m = (res.event_kind == EventKind.ISL) & (res.event_sat == sat) & (res.event_arg == -1)
        t, v = res.event_time_s[m], res.event_value[m]
        bounds = np.r_[0.0, t, 6 * 3600.0]
        in_view = np.r_[res.isl_contact[0, sat], v > 0]
        seconds = float(np.sum(np.diff(bounds) * in_view))
        assert 0 < seconds < 6 * 3600
        assert res.downlinked_bytes[sat] == pytest.approx(1e4 * seconds, rel=1e-9)
        assert res.final_state.stored_bytes[sat] == pytest.approx(1e9 - 1e4 * seconds, rel=1e-9)


def test_data_flows_between_two_spacecraft_while_they_see_each_other() -> None:
    """The learning pair with a flow 0 -> 1 at 1 Mbit/s: the receiver gains exactly what the sender sends,
    rate x the link windows' length while the sender holds data; nothing else moves."""
    import numpy as np

    doc = yaml.safe_load((EXAMPLES / "learning_pair.yaml").read_text())
    doc["spacecraft"]["initial_stored_bytes"] = 1e10
    doc["spacecraft"]["overrides"] = [{"index": 1, "initial_stored_bytes": 0}]
    doc["isl"]["flows"] = [[0, 1]]
    sim = parse_scenario(doc).simulation
    res = sim.run(6 * 3600)
    m = (res.event_kind == EventKind.ISL) & (res.event_sat == 0)
    t, v = res.event_time_s[m], res.event_value[m]
    bounds = np.r_[0.0, t, 6 * 3600.0]
    in_view = np.r_[res.isl_contact[0, 0], v > 0]
    seconds = float(np.sum(np.diff(bounds) * in_view))
    assert seconds > 60
    rate = 125000.0
    assert res.isl_sent_bytes[0] == pytest.approx(rate * seconds, rel=1e-9)
    assert res.isl_received_bytes[1] == pytest.approx(rate * seconds, rel=1e-9)
    assert res.final_state.stored_bytes[1] == pytest.approx(rate * seconds, rel=1e-9)
    assert res.final_state.stored_bytes[0] == pytest.approx(1e10 - rate * seconds, rel=1e-9)
    assert res.isl_sent_bytes[1] == 0 and res.downlinked_bytes.sum() == 0
    # the receiver's series rises only while the link is open
    rises = np.diff(res.stored_bytes[:, 1]) > 0
    assert np.all(res.isl_contact[:-1, 1][rises] | res.isl_contact[1:, 1][rises])
    doc["isl"]["flows"] = [[0, 0]]
    with pytest.raises(InvalidArgument) as info:
        parse_scenario(doc)
    assert info.value.field == "isl.flows[0]"


def test_a_sender_without_data_sends_nothing() -> None:
    import numpy as np

    doc = yaml.safe_load((EXAMPLES / "learning_pair.yaml").read_text())
    doc["isl"]["flows"] = [[0, 1]]
    res = parse_scenario(doc).simulation.run(3 * 3600)
    assert np.all(res.isl_sent_bytes == 0) and np.all(res.stored_bytes == 0)


def test_a_chain_of_flows_conserves_data() -> None:
    """1 -> 0 -> 2: spacecraft 1 sends to 0 in their brief windows, 0 forwards to 2 (always in view, 40 deg ahead
    in its plane); every byte sent is received and the fleet's total never changes."""
    import numpy as np

    doc = yaml.safe_load((EXAMPLES / "learning_pair.yaml").read_text())
    doc["orbits"]["keplerian"].append(dict(doc["orbits"]["keplerian"][0], mean_anomaly_deg=40.0))
    doc["spacecraft"]["overrides"] = [{"index": 1, "initial_stored_bytes": 5e9}]
    doc["isl"]["pairs"] = [[1, 0], [0, 2]]
    doc["isl"]["flows"] = [[1, 0], [0, 2]]
    sim = parse_scenario(doc).simulation
    res = sim.run(6 * 3600)
    assert res.isl_sent_bytes[1] > 0 and res.isl_sent_bytes[0] > 0
    np.testing.assert_allclose(res.isl_received_bytes[[0, 2]], res.isl_sent_bytes[[1, 0]], rtol=1e-12)
    np.testing.assert_allclose(res.stored_bytes.sum(axis=1), 5e9, rtol=1e-12)
    assert res.final_state.stored_bytes[2] == pytest.approx(res.isl_received_bytes[2])
