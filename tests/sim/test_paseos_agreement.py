"""PASEOS's own test scenarios (paseos 0.2.x, aidotse/PASEOS paseos/tests), re-run on skymesh.sim, with PASEOS's
reference values written down.

Source of every reference: github.com/aidotse/PASEOS, files under paseos/tests/ (named per test). PASEOS cannot be
installed here (paseos 0.2.x needs pykep 2.x, which is only on conda-forge), so the values are copied from its
tests, not recomputed.

PASEOS's historical quirks live here and only here, not in skymesh.sim:
* Frames: PASEOS adds a spacecraft's position to pykep's heliocentric *ecliptic* Earth position to test eclipses,
  so its Keplerian states are ecliptic-aligned; `ecliptic_to_equatorial` rotates them to the equatorial J2000
  frame before simulating.
* Time scales: for ground links PASEOS hands the same vector to Skyfield as GCRS and its epochs as TT; we reproduce
  that with the J2000 frame and an Earth-rotation offset of -(TT - UT1) = -69.19 s (2022).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sgp4.api import Satrec, jday

from skymesh.sim.activities import Activity, ModeRule
from skymesh.sim.comms import GroundStation
from skymesh.sim.engine import EngineConfig, EventKind, Simulation
from skymesh.sim.orbit import KeplerOrbits
from skymesh.sim.radiation import data_corruption_mask
from skymesh.sim.spacecraft import SpacecraftParams, ThermalParams
from skymesh.sim.windows import find_next_window

OBLIQUITY_J2000_RAD = np.deg2rad(23.43928)  # pykep's, what its jpl_lp ecliptic frame uses


def ecliptic_to_equatorial(vec: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors from the J2000 ecliptic frame to the J2000 equatorial frame."""
    c, s = np.cos(OBLIQUITY_J2000_RAD), np.sin(OBLIQUITY_J2000_RAD)
    out = np.array(vec, dtype=np.float64)
    out[..., 1] = c * vec[..., 1] - s * vec[..., 2]
    out[..., 2] = s * vec[..., 1] + c * vec[..., 2]
    return out


PYKEP_EPOCH_0 = datetime(2000, 1, 1, tzinfo=UTC)  # pk.epoch(0): MJD2000 = 0
TT_MINUS_UT1_2022_S = 69.19


def paseos_orbit(r: list[float], v: list[float]) -> KeplerOrbits:
    """`ActorBuilder.set_orbit(actor, r, v, epoch, earth)` with PASEOS's ecliptic-aligned state."""
    return KeplerOrbits.from_state(ecliptic_to_equatorial(np.array([r])), ecliptic_to_equatorial(np.array([v])))


def battery_sim(r: list[float], v: list[float], level_ws: float, max_ws: float, rate_w: float) -> Simulation:
    sc = SpacecraftParams(battery_capacity_wh=max_ws / 3600, initial_soc=level_ws / max_ws, charge_power_w=rate_w)
    acts = [Activity("idle", 0.0), Activity("consume_1w", 1.0)]
    cfg = EngineConfig(step_s=10.0, decision_step_s=1e9)
    return Simulation(paseos_orbit(r, v), [sc], acts, [ModeRule("idle")], PYKEP_EPOCH_0, config=cfg)


def test_power_charging() -> None:
    """power_test.py::test_power_charging: 500 Ws + 42 s at 1 W -> 542 Ws; after 12 h in eclipse and full (10000 Ws);
    42 s at 1 W in eclipse -> 10000 - 42 Ws."""
    sim = battery_sim([10000000, 0, 0], [0, 8000.0, 0], 500, 10000, 1)
    assert sim.run(42).final_state.energy_ws[0] == pytest.approx(542, rel=0.01)
    after_12h = sim.run(12 * 3600)
    assert after_12h.final_state.energy_ws[0] == pytest.approx(10000, rel=0.01)
    assert after_12h.in_eclipse[-1, 0]
    state = after_12h.final_state
    forced = sim.run(42, start_s=12 * 3600, state=state, schedule=[(0, 12 * 3600, 1)])
    assert forced.final_state.energy_ws[0] == pytest.approx(10000 - 42, rel=0.01)
    assert forced.final_state.energy_ws[0] == pytest.approx(9958, abs=1e-6)


def test_rtg_charges_in_eclipse() -> None:
    """power_test.py::test_RTG_charging_in_eclipse: RTG at 1 W consuming 1 W for 12 h stays at 500 Ws, then +42."""
    sc = SpacecraftParams(battery_capacity_wh=10000 / 3600, initial_soc=0.05, charge_power_w=1, rtg=True)
    acts = [Activity("consume_1w", 1.0), Activity("idle", 0.0)]
    sim = Simulation(paseos_orbit([10000000, 0, 0], [0, 8000.0, 0]), [sc], acts, [ModeRule("consume_1w")],
                     PYKEP_EPOCH_0, config=EngineConfig(step_s=60, decision_step_s=1e9))  # fmt: skip
    res = sim.run(12 * 3600)
    assert res.in_eclipse[-1, 0]
    assert res.final_state.energy_ws[0] == pytest.approx(500, abs=1e-6)
    more = sim.run(42, start_s=12 * 3600, state=res.final_state, schedule=[(0, 12 * 3600, 1)])
    assert more.final_state.energy_ws[0] == pytest.approx(542, abs=1e-6)


def test_eclipse() -> None:
    """eclipse_test.py::test_eclipse: default instance not in eclipse at epoch 0, in eclipse at epoch 0.5 d."""
    sim = battery_sim([10000000, 0, 0], [0, 8000.0, 0], 500, 10000, 1)
    res = sim.run(43200)
    assert not res.in_eclipse[0, 0]
    assert res.in_eclipse[-1, 0]


def paseos_thermal_euler(temperature_k: float, seconds: int, dt: float, watts: float, eclipsed: np.ndarray,
                         radius_m: np.ndarray) -> float:  # fmt: skip
    """PASEOS ThermalModel.update_temperature transcribed (explicit Euler), mass 50, areas 1, c 1000, abs 1/1."""
    sigma, mc = 5.670374419e-8, 50.0 * 1000.0
    c_solar, c_albedo = 1.0 * 1.0 * 1360, 1.0 * 1.0 * 0.3 * 1360
    c_body = 1.0 * 0.6 * 1.0 * sigma * 288.0**4
    c_emit = 1.0 * 1.0 * sigma
    t = temperature_k
    for k in range(int(seconds / dt)):
        lit = 0.0 if eclipsed[k] else 1.0
        h = radius_m[k] / 6378000.0
        flux = c_solar * lit + 0.5 * c_albedo * lit + c_body / (h * h) - c_emit * t**4 + 0.5 * watts
        t = max(0.0, t + dt * flux / mc)
    return t


def test_thermal() -> None:
    """thermal_model_test.py::test_thermal: 10 W activity for 16 s wall x time multiplier 200 = 3200 s simulated
    (dt 5 s), from 273.15 K: PASEOS asserts 285 K < T < 300 K. Also checked against PASEOS's Euler update,
    transcribed above, within 1 %."""
    th = ThermalParams(mass_kg=50.0, initial_temperature_k=273.15, sun_absorptance=1.0, infrared_absorptance=1.0,
                       sun_facing_area_m2=1.0, body_facing_area_m2=1.0, emissive_area_m2=1.0,
                       thermal_capacity_j_per_kg_k=1000)  # fmt: skip
    sc = SpacecraftParams(battery_capacity_wh=1000000 / 3600, initial_soc=0.05, charge_power_w=1000, thermal=th)
    orbit = paseos_orbit([7000000, 0, 0], [0, 8000.0, 0])
    sim = Simulation(orbit, [sc], [Activity("Activity_1", 10.0)], [ModeRule("Activity_1")], PYKEP_EPOCH_0,
                     config=EngineConfig(step_s=5.0, record_step_s=5.0))  # fmt: skip
    res = sim.run(3200)
    temperature = float(res.final_state.temperature_k[0])
    assert 285 < temperature < 300
    pos, _ = orbit.state(res.times_s[:-1])
    reference = paseos_thermal_euler(273.15, 3200, 5.0, 10.0, res.in_eclipse[:-1, 0], np.linalg.norm(pos[0], axis=1))
    assert temperature == pytest.approx(reference, rel=0.01)
    assert temperature == pytest.approx(reference, abs=0.5)


def test_los_between_sats() -> None:
    """line_of_sight_test.py::test_los_between_sats: sat1 sees sat2 and sat3; sat2 and sat3 are hidden."""
    r = np.array([[10000000, 0, 0], [0, 10000000, 0], [0, -10000000, 0]], dtype=float)
    v = np.array([[0, 8000.0, 0], [0, 0, 8000.0], [0, 0, -8000.0]])
    orbits = KeplerOrbits.from_state(r, v)
    cfg = EngineConfig(step_s=10, isl_pairs=((0, 1), (0, 2), (1, 2)))
    sim = Simulation(orbits, [SpacecraftParams()] * 3, [Activity("a", 0)], [ModeRule("a")], PYKEP_EPOCH_0, config=cfg)
    res = sim.run(10)
    assert res.isl_contact[0].tolist() == [True, True, True]
    from skymesh.sim.comms import isl_function_m2

    assert isl_function_m2(r[1], r[2], 6371000.0) < 0 < isl_function_m2(r[0], r[1], 6371000.0)


def test_communication_link_sat_to_sat() -> None:
    """communication_window_test.py::test_communication_link_sat_to_sat: both start at [1e7, 0, 0] with opposite
    velocities; "At t=1470s they will not be in line of sight anymore" (dt = 10 s): the edge is in (1460, 1470]."""
    r = np.array([[10000000, 1e-3, 1e-3], [10000000, 1e-3, 1e-3]])
    v = np.array([[1e-3, 8000, 1e-3], [1e-3, -8000, 1e-3]])
    cfg = EngineConfig(step_s=10, isl_pairs=((0, 1),))
    sim = Simulation(KeplerOrbits.from_state(r, v), [SpacecraftParams()] * 2, [Activity("a", 0)], [ModeRule("a")],
                     PYKEP_EPOCH_0, config=cfg)  # fmt: skip
    res = sim.run(3000)
    times, values = res.edges(EventKind.ISL, 0)
    assert values[0] == -1
    assert 1460 - 1 < times[0] <= 1470 + 1


SENTINEL_2B = (
    "1 42063U 17013A   22300.18652110  .00000099  00000+0  54271-4 0  9998",
    "2 42063  98.5693  13.0364 0001083 104.3232 255.8080 14.30819357294601",
)


def sentinel_sim(t0: datetime, duration_s: float = 1800.0) -> Simulation:
    """communication_window_test.py::setup_sentinel_example (paseos 0.2.x): Keplerian orbit from the S2B TLE state
    at t0 and ESA's Maspalomas station at latitude 27.7629, longitude -15.6338, 205.1 m, minimum altitude angle 5 deg
    (before 0.2 the test passed latitude and longitude swapped)."""
    sat = Satrec.twoline2rv(*SENTINEL_2B)
    jd, fr = jday(t0.year, t0.month, t0.day, t0.hour, t0.minute, t0.second)
    _, r_km, v_km_s = sat.sgp4(jd, fr)
    orbit = KeplerOrbits.from_state(np.array([r_km]) * 1e3, np.array([v_km_s]) * 1e3)
    station = GroundStation("maspalomas", 27.7629, -15.6338, 205.1, 5.0)
    cfg = EngineConfig(step_s=30, tolerance_s=0.01, earth_rotation_offset_s=-TT_MINUS_UT1_2022_S)
    sc = SpacecraftParams(comm_devices={"link1": 1000 / 8})  # add_comm_device(..., "link1", bandwidth_in_kbps=1)
    return Simulation(orbit, [sc], [Activity("a", 0)], [ModeRule("a")], t0, [station], cfg)


def test_communication_link_sat_to_ground() -> None:
    """communication_window_test.py::test_communication_link_sat_to_ground: from 2022-10-27 22:58:09 with dt = 1 s
    `get_communication_window` counts 739 one-second steps in line of sight (739.0000000305008 s): in contact at
    t0 and at t0 + 738 s, not at t0 + 739 s, so the loss of signal falls in (738, 739] s."""
    t0 = datetime(2022, 10, 27, 22, 58, 9, tzinfo=UTC)
    res = sentinel_sim(t0).run(1200)
    assert res.in_contact[0, 0]
    times, values = res.edges(EventKind.CONTACT, 0)
    assert values[0] == -1
    assert 738 - 1 < times[0] <= 739 + 1  # within one PASEOS step of the reference


def test_find_next_window() -> None:
    """communication_window_test.py::test_find_next_window: searching 360 s from 22:57:00 (10 s steps) the window
    starts at mjd2000 8335.957060185183 (22:58:10), length 740.0000001071021 s (rtol 1 %, atol 3 s), 740000 bits at
    1 kbps; searching 360 s from 20:00:00 finds nothing (None, 0, 0)."""
    t0 = datetime(2022, 10, 27, 22, 57, 0, tzinfo=UTC)
    window = find_next_window(sentinel_sim(t0), 0, station="maspalomas", search_window_s=360, device="link1")
    assert window is not None and window.complete
    start = PYKEP_EPOCH_0 + timedelta(days=8335.957060185183)
    aos_s = (start - t0).total_seconds()
    assert aos_s == pytest.approx(70.0, abs=1e-3)
    assert aos_s - 10 - 1 < window.start_s <= aos_s + 1  # PASEOS samples every 10 s: the AOS is in (60, 70]
    assert window.length_s == pytest.approx(740.0000001071021, rel=0.01, abs=3.0)
    assert window.volume_bits == pytest.approx(740000, rel=0.01, abs=3000)
    res = sentinel_sim(t0).run(1800)  # the engine's own events agree with the query
    times, values = res.edges(EventKind.CONTACT, 0)
    assert values.tolist()[:2] == [1.0, -1.0]
    assert times[:2].tolist() == pytest.approx([window.start_s, window.end_s], abs=0.02)
    empty = sentinel_sim(datetime(2022, 10, 27, 20, 0, 0, tzinfo=UTC))
    assert find_next_window(empty, 0, station="maspalomas", search_window_s=360, device="link1") is None


def test_communication_link_sat_to_sat_window() -> None:
    """communication_window_test.py::test_communication_link_sat_to_sat with `get_communication_window`: in line of
    sight at t = 0 and still at 10 s, the link ends at about 1470 s (the test's comment); searching again from the
    window's end finds no window within 10 s."""
    r = np.array([[10000000, 1e-3, 1e-3], [10000000, 1e-3, 1e-3]])
    v = np.array([[1e-3, 8000, 1e-3], [1e-3, -8000, 1e-3]])
    sc = SpacecraftParams(comm_devices={"link1": 1000 / 8})
    sim = Simulation(KeplerOrbits.from_state(r, v), [sc, SpacecraftParams()], [Activity("a", 0)], [ModeRule("a")],
                     PYKEP_EPOCH_0, config=EngineConfig(step_s=10))  # fmt: skip
    window = find_next_window(sim, 0, partner=1, search_window_s=10, device="link1")
    assert window is not None
    assert window.start_s == 0.0
    assert 1460 - 1 < window.end_s <= 1470 + 1
    assert window.volume_bits >= 10000  # PASEOS sends its 10,000 bits
    assert find_next_window(sim, 0, partner=1, start_s=window.end_s + 0.5, search_window_s=10) is None


def test_radiation_data_corruption_matches_paseos_draws() -> None:
    """radiation_test.py::test_radiation_model: np.random.seed(42), RadiationModel(1e-5, ...),
    model_data_corruption([10, 4, 8], 1e5).sum() == 199."""
    mask = data_corruption_mask((10, 4, 8), 1e5, 1e-5, np.random.RandomState(42))
    assert mask.shape == (10, 4, 8)
    assert int(mask.sum()) == 199


def test_radiation_restart_and_failure_probabilities() -> None:
    """radiation_test.py::test_radiation_model: with seed 42, restarts at 1e-7/s: not in 1e5 s, not in 1e7 s, yes
    in 1e9 s (the same three uniform draws PASEOS compares against 1 - exp(-rate * interval))."""
    from skymesh.sim.radiation import event_probability

    draws = np.random.RandomState(42).rand(3)
    outcomes = [bool(d < event_probability(1e-7, i)) for d, i in zip(draws, (1e5, 1e7, 1e9), strict=True)]
    assert outcomes == [False, False, True]
    draws = np.random.RandomState(42).rand(3)
    outcomes = [bool(d < event_probability(1e-9, i)) for d, i in zip(draws, (1e7, 1e9, 1e11), strict=True)]
    assert outcomes == [False, False, True]
