"""Custom properties with update functions, and constraints over them and over named stations (PASEOS users' way)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from skymesh.core.errors import InvalidArgument
from skymesh.sim.activities import Activity, ActivityChange, CustomProperty, FleetState, ModeRule
from skymesh.sim.engine import EngineConfig, EventKind, Simulation
from skymesh.sim.orbit import KeplerOrbits
from skymesh.sim.scenario import parse_scenario
from skymesh.sim.spacecraft import SpacecraftParams
from tests.sim.test_engine import MASPALOMAS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sim"
PYKEP_EPOCH_0 = datetime(2000, 1, 1, tzinfo=UTC)


def test_custom_power_consumption_property() -> None:
    """custom_property_test.py::test_custom_power_consumption_property: a property adding power_consumption x dt,
    after advance_time(100 s, 10 W) is 100 x 10."""

    def total_power(state: FleetState, values: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
        return values + state.power_w * dt_s

    orbit = KeplerOrbits.from_state(np.array([[10000000.0, 0, 0]]), np.array([[0, 8000.0, 0]]))
    sim = Simulation(orbit, [SpacecraftParams(battery_capacity_wh=1e6 / 3600, initial_soc=0.05, charge_power_w=1)],
                     [Activity("consume", 10.0)], [ModeRule("consume")], PYKEP_EPOCH_0,
                     custom_properties=[CustomProperty("total_power_consumption", 0.0, total_power)])  # fmt: skip
    res = sim.run(100)
    assert res.final_state.custom[0, 0] == pytest.approx(100 * 10)
    assert res.custom["total_power_consumption"][-1, 0] == pytest.approx(1000)
    # and it continues from a recorded state like every other quantity
    more = sim.run(50, start_s=100, state=res.final_state)
    assert more.final_state.custom[0, 0] == pytest.approx(1500)


def test_dose_limit_in_a_scenario_interrupts_at_the_crossing() -> None:
    """A radiation dose growing at 1e-3 per second while sunlit; Processing needs dose < 2: it stops when the dose,
    accumulated only outside eclipse, reaches 2, to within the engine's tolerance."""
    doc = yaml.safe_load((EXAMPLES / "constellation.yaml").read_text())
    doc.update(step_s=60, duration_s=4 * 3600)
    doc["custom_properties"] = [{"name": "dose", "initial": 0, "rate_per_s": 1e-3, "when": "in_eclipse == 0"}]
    doc["activities"][0]["constraint"] = ["custom.dose < 2"]
    doc["modes"][0]["when"] = ["custom.dose < 2"]
    sim = parse_scenario(doc).simulation
    res = sim.run(4 * 3600)
    dose = res.custom["dose"]
    assert np.all(np.diff(dose, axis=0) >= 0)
    for sat in range(sim.fleet.n):  # sunlit seconds up to each record, from the eclipse edges
        et, ev = res.edges(EventKind.ECLIPSE, sat)
        bounds = np.r_[0.0, et, res.times_s[-1]]
        lit = np.r_[not res.in_eclipse[0, sat], ev < 0.5]
        sunlit = np.array([np.sum(np.clip(np.minimum(bounds[1:], t) - bounds[:-1], 0, None) * lit)
                           for t in res.times_s])  # fmt: skip
        np.testing.assert_allclose(dose[:, sat], 1e-3 * sunlit, atol=1e-3 * 2 * sim.config.tolerance_s * et.size)
    t, new = res.event_time_s, res.event_arg
    stop = (res.event_kind == EventKind.ACTIVITY) & (new == sim.activity_index["Standby"]) & (t > 1)
    for sat in range(sim.fleet.n):
        when = t[stop & (res.event_sat == sat)]
        assert when.size >= 1
        k = int(np.searchsorted(res.times_s, when[0]))  # the dose just after the stop is 2 (+ < 1 record step)
        assert dose[k - 1, sat] < 2.0 <= dose[k, sat] + 1e-9


def test_rules_over_named_stations_and_or() -> None:
    """A mode rule with `in_contact_with("maspalomas")` or'ed with a time condition picks Downlink exactly when the
    named station sees the spacecraft (or after 3 h)."""
    orbits = KeplerOrbits(np.full(4, 6921e3), np.zeros(4), np.deg2rad(np.full(4, 30.0)), np.linspace(0, 3, 4),
                          np.zeros(4), np.linspace(0, 5, 4))  # fmt: skip
    rules = [ModeRule("Downlink", lambda s: s.in_contact_with("maspalomas") | (s.time_s >= 3 * 3600)),
             ModeRule("Idle")]  # fmt: skip
    sim = Simulation(orbits, [SpacecraftParams()], [Activity("Downlink", 20.0), Activity("Idle", 1.0)], rules,
                     datetime(2023, 1, 4, 20, tzinfo=UTC), [MASPALOMAS],
                     EngineConfig(step_s=60, decision_step_s=60))  # fmt: skip
    res = sim.run(4 * 3600)
    down = res.activity == 0
    before = res.times_s < 3 * 3600
    np.testing.assert_array_equal(down[before], res.in_contact[before])
    assert res.in_contact[before].any()
    assert down[~before].all()
    with pytest.raises(InvalidArgument) as info:
        FleetState(*(np.zeros(1),) * 6, *(np.zeros(1, bool),) * 4).in_contact_with("kiruna")
    assert info.value.field == "station"


def test_async_constraint_and_start_end_callbacks() -> None:
    """PASEOS-style: an async constraint function, user code when the activity starts and when it ends (the
    termination function), told why it ended."""
    seen: list[tuple[str, str, list[int], list[float], str]] = []

    async def battery_ok(state: FleetState) -> np.ndarray:
        return np.asarray(state.soc > 0.1)

    async def terminated(change: ActivityChange) -> None:
        seen.append(("end", change.activity, change.sats.tolist(), change.time_s.tolist(), change.reason))

    def started(change: ActivityChange) -> None:
        seen.append(("start", change.activity, change.sats.tolist(), change.time_s.tolist(), change.reason))

    orbit = KeplerOrbits.from_state(np.array([[7_000_000.0, 0, 0]] * 2), np.array([[0, 7_546.0, 0]] * 2))
    scs = [SpacecraftParams("a", 1.0, 0.5), SpacecraftParams("b", 1.0, 0.9)]  # 1,800 Ws and 3,240 Ws
    acts = [
        Activity("idle", 0.0),
        Activity("activity_A", 10.0, constraint=battery_ok, fallback="idle", on_start=started, on_end=terminated),
    ]
    sim = Simulation(orbit, scs, acts, [ModeRule("idle")], PYKEP_EPOCH_0)  # fmt: skip
    sim.run(400, schedule=[(0, 0.0, 1), (1, 0.0, 1), (1, 100.0, -1)])
    starts = [e for e in seen if e[0] == "start"]
    ends = [e for e in seen if e[0] == "end"]
    assert starts == [("start", "activity_A", [0, 1], [0.0, 0.0], "schedule")]
    assert [e[2] for e in ends] == [[1], [0]]
    assert ends[0][3] == [100.0] and ends[0][4] == "schedule"
    assert ends[1][3][0] == pytest.approx(144.0, abs=0.1) and ends[1][4] == "constraint"


def test_scenario_conditions_with_any_of_and_named_stations() -> None:
    doc = yaml.safe_load((EXAMPLES / "constellation.yaml").read_text())
    doc.update(step_s=60, decision_step_s=60, record_step_s=60)
    doc["modes"] = [{"activity": "Standby", "when": {"any_of": ["contact.maspalomas == 1", "time_s >= 10800"]}},
                    {"activity": "Processing"}]  # fmt: skip
    sim = parse_scenario(doc).simulation
    res = sim.run(4 * 3600)
    standby = res.activity_names.index("Standby")
    must = (res.in_contact | (res.times_s >= 10800)[:, None])[:-1]  # the last record is the run's end
    assert must.sum() > sim.fleet.n * 60
    assert np.all(res.activity[:-1][must] == standby)
    doc["modes"][0]["when"] = {"any_of": ["contact.kiruna == 1"]}
    with pytest.raises(InvalidArgument) as info:
        parse_scenario(doc).simulation.run(600)
    assert info.value.field == "station"
    doc["modes"][0]["when"] = {"one_of": ["soc > 0.1"]}
    with pytest.raises(InvalidArgument) as info:
        parse_scenario(doc)
    assert info.value.field == "modes[0].when"
