"""Engine properties: edges within 1 s of brute-force sampling, chunking and restarts change nothing, radiation is
seeded, constraints interrupt at the crossing, closed forms agree with fine Euler stepping."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from skymesh.astro.inertial import ecef_to_inertial
from skymesh.astro.sun import sun_position_km
from skymesh.sim.activities import Activity, Comparison, Condition, ModeRule
from skymesh.sim.comms import GroundStation, elevation_function
from skymesh.sim.eclipse import eclipse_function_m2
from skymesh.sim.engine import EngineConfig, EventKind, Simulation
from skymesh.sim.orbit import walker_constellation
from skymesh.sim.spacecraft import RadiationParams, SpacecraftParams, ThermalParams

EPOCH = datetime(2023, 1, 4, 20, tzinfo=UTC)
THERMAL = ThermalParams(50, 273.15, 1.0, 1.0, 2.0, 2.0, 4.0, 1000.0)
OK = Condition((Comparison("soc", ">", 0.2), Comparison("temperature_k", "<", 330)))
MASPALOMAS = GroundStation("maspalomas", 27.7629, -15.6338, 205.1, 5.0)


def constellation(n_planes: int = 4, per_plane: int = 4, **cfg: object) -> Simulation:
    orbits = walker_constellation(550e3, 10.0, n_planes, per_plane)
    socs = np.linspace(0.1, 1.0, orbits.n)
    scs = [SpacecraftParams(f"s{k}", 1e6 / 3600, float(socs[k]), 50.0, thermal=THERMAL) for k in range(orbits.n)]
    acts = [Activity("Processing", 100.0, constraint=OK, fallback="Standby"), Activity("Standby", 2.0)]
    return Simulation(orbits, scs, acts, [ModeRule("Processing", OK), ModeRule("Standby")], EPOCH, [MASPALOMAS],
                      EngineConfig(**cfg))  # type: ignore[arg-type]  # fmt: skip


def brute_force_edges(flags: np.ndarray, t: np.ndarray) -> np.ndarray:
    return t[1:][flags[1:] != flags[:-1]]


def test_eclipse_and_contact_edges_within_one_second_of_brute_force() -> None:
    sim = constellation(2, 2, step_s=60.0)
    res = sim.run(6 * 3600)
    t = np.arange(0, 6 * 3600 + 1, 1.0)
    pos, _ = sim.orbits.state(t)
    sun = sun_position_km(sim.jd0 + t / 86400) * 1000.0
    ecef, up = MASPALOMAS.ecef_m()
    sp = ecef_to_inertial(ecef[None], sim.jd0 + t / 86400, "j2000")
    su = ecef_to_inertial(up[None], sim.jd0 + t / 86400, "j2000")
    n_edges = 0
    for sat in range(sim.orbits.n):
        truth = brute_force_edges(eclipse_function_m2(pos[sat], sun) < 0, t)
        got, _ = res.edges(EventKind.ECLIPSE, sat)
        assert got.size == truth.size
        assert np.all(np.abs(got - truth) <= 1.0)
        truth_c = brute_force_edges(elevation_function(pos[sat], sp, su, np.deg2rad(5.0)) > 0, t)
        got_c, _ = res.edges(EventKind.CONTACT, sat)
        assert got_c.size == truth_c.size
        assert np.all(np.abs(got_c - truth_c) <= 1.0)
        n_edges += got.size + got_c.size
    assert n_edges > 20


def test_chunking_does_not_change_results() -> None:
    whole = constellation(step_s=30.0).run(4 * 3600)
    chunked = constellation(step_s=30.0, max_chunk_elements=600).run(4 * 3600)
    np.testing.assert_array_equal(whole.soc, chunked.soc)
    np.testing.assert_array_equal(whole.temperature_k, chunked.temperature_k)
    np.testing.assert_array_equal(whole.activity, chunked.activity)


def test_restart_from_recorded_state_reproduces_the_run() -> None:
    sim = constellation(step_s=60.0)
    full = sim.run(3 * 3600)
    first = sim.run(5400)
    second = sim.run(3 * 3600 - 5400, start_s=5400, state=first.final_state)
    np.testing.assert_allclose(second.final_state.energy_ws, full.final_state.energy_ws, rtol=1e-9)
    np.testing.assert_allclose(second.final_state.temperature_k, full.final_state.temperature_k, rtol=1e-9)
    np.testing.assert_array_equal(second.final_state.activity, full.final_state.activity)


def test_constraint_interrupts_at_the_soc_crossing() -> None:
    """One satellite, no charging: Processing at 100 W from SoC 0.25 of 1 MJ must stop when SoC hits 0.2,
    i.e. after 0.05 MJ / 100 W = 500 s, and continue in Standby."""
    orbits = walker_constellation(550e3, 10.0, 1, 1)
    sc = SpacecraftParams("s", 1e6 / 3600, 0.25, 0.0, thermal=THERMAL)
    acts = [Activity("Processing", 100.0, constraint=OK, fallback="Standby"), Activity("Standby", 2.0)]
    sim = Simulation(orbits, [sc], acts, [ModeRule("Processing", OK), ModeRule("Standby")], EPOCH,
                     config=EngineConfig(step_s=60.0, tolerance_s=0.05))  # fmt: skip
    res = sim.run(600)
    times, values = res.edges(EventKind.ACTIVITY, 0)
    switch = [t for t, v in zip(times, values, strict=True) if v == 0 and t > 0]
    assert switch[0] == pytest.approx(500.0, abs=0.1)
    assert res.final_state.energy_ws[0] == pytest.approx(0.2e6 - 2.0 * 100.0, abs=20.0)


def test_closed_forms_match_one_second_euler() -> None:
    """SoC and temperature from the event-driven engine vs PASEOS-style explicit Euler at 1 s with the same
    eclipse flags, fixed activity: within 1 %."""
    orbits = walker_constellation(550e3, 10.0, 1, 1)
    sc = SpacecraftParams("s", 1e6 / 3600, 0.5, 50.0, thermal=THERMAL)
    sim = Simulation(orbits, [sc], [Activity("Processing", 100.0)], [ModeRule("Processing")], EPOCH,
                     config=EngineConfig(step_s=60.0, record_step_s=60.0))  # fmt: skip
    res = sim.run(6 * 3600)
    t = np.arange(0, 6 * 3600, 1.0)
    pos, _ = orbits.state(t)
    ecl = eclipse_function_m2(pos[0], sun_position_km(sim.jd0 + t / 86400) * 1000.0) < 0
    r = np.linalg.norm(pos[0], axis=1)
    energy, temp = 0.5e6, 273.15
    sigma = 5.670374419e-8
    soc_ref, temp_ref = [], []
    for k in range(t.size):
        if k % 60 == 0:
            soc_ref.append(energy / 1e6)
            temp_ref.append(temp)
        lit = 0.0 if ecl[k] else 1.0
        energy = min(1e6, max(0.0, energy + 50.0 * lit - 100.0))
        flux = (2720 + 408) * lit + 0.6 * 2 * sigma * 288**4 * (6378000 / r[k]) ** 2 - 4 * sigma * temp**4 + 50
        temp += flux / 50000.0
    np.testing.assert_allclose(res.soc[:-1, 0], soc_ref, rtol=0.01)
    np.testing.assert_allclose(res.temperature_k[:-1, 0], temp_ref, rtol=0.01)


def test_radiation_is_seeded_and_reproducible() -> None:
    orbits = walker_constellation(550e3, 10.0, 2, 5)
    sc = SpacecraftParams("s", 100.0, 1.0, 10.0, radiation=RadiationParams(0.0, 1 / 3600, 1 / 20000))
    acts = [Activity("Work", 5.0, fallback="Safe"), Activity("Safe", 1.0)]
    sim = Simulation(orbits, [sc], acts, [ModeRule("Work")], EPOCH, config=EngineConfig(seed=7))
    a, b = sim.run(86400), sim.run(86400)
    np.testing.assert_array_equal(a.event_time_s, b.event_time_s)
    restarts = a.event_kind == EventKind.RESTART
    failures = a.event_kind == EventKind.FAILURE
    assert restarts.sum() > 50  # ~24 per satellite-day expected, minus dead time
    assert 1 <= len(set(a.event_sat[failures].tolist())) <= 10
    dead = a.event_sat[failures]
    assert not a.final_state.alive[dead].any()
    other = Simulation(orbits, [sc], acts, [ModeRule("Work")], EPOCH, config=replace(sim.config, seed=8)).run(86400)
    assert not np.array_equal(other.event_time_s, a.event_time_s)


def test_data_corruption_follows_storage_exposure() -> None:
    """A payload filling storage at 1000 B/s for 10 000 s: exposure 8 bits x 1000 B/s x (10 000 s)^2 / 2
    = 4e11 bit-seconds; at 1e-9 flips per bit-second about 400 flips, seeded and reproducible."""
    orbits = walker_constellation(550e3, 10.0, 1, 2)
    sc = SpacecraftParams("s", 100.0, 1.0, 10.0, radiation=RadiationParams(1e-9, 0.0, 0.0))
    sim = Simulation(orbits, [sc], [Activity("Payload", 5.0, data_rate_bytes_per_s=1000.0)], [ModeRule("Payload")],
                     EPOCH, config=EngineConfig(seed=3))  # fmt: skip
    res = sim.run(10_000)
    np.testing.assert_allclose(res.exposure_bit_s, 8 * 1000 * 10_000**2 / 2, rtol=1e-9)
    flips = res.corrupted_bits()
    assert np.all(np.abs(flips - 400) < 5 * np.sqrt(400))
    np.testing.assert_array_equal(flips, sim.run(10_000).corrupted_bits())


def test_state_at_any_second_is_reproducible() -> None:
    """run(t) ends exactly at an arbitrary second t; running it twice gives the same bits, and continuing from it
    lands on the uninterrupted run."""
    sim = constellation(step_s=60.0)
    at = sim.run(5437.0)
    again = sim.run(5437.0)
    assert at.final_state.time_s == 5437.0
    np.testing.assert_array_equal(at.final_state.energy_ws, again.final_state.energy_ws)
    np.testing.assert_array_equal(at.final_state.temperature_k, again.final_state.temperature_k)
    rest = sim.run(3 * 3600 - 5437.0, start_s=5437.0, state=at.final_state)
    full = sim.run(3 * 3600)
    np.testing.assert_allclose(rest.final_state.energy_ws, full.final_state.energy_ws, rtol=1e-6)
    np.testing.assert_allclose(rest.final_state.temperature_k, full.final_state.temperature_k, rtol=1e-6)
    np.testing.assert_array_equal(rest.final_state.activity, full.final_state.activity)


def test_worker_processes_give_identical_results() -> None:
    one = constellation(step_s=60.0, max_chunk_elements=2000).run(2 * 3600)
    two = constellation(step_s=60.0, max_chunk_elements=2000).run(2 * 3600, workers=2)
    np.testing.assert_array_equal(one.soc, two.soc)
    np.testing.assert_array_equal(one.temperature_k, two.temperature_k)
    np.testing.assert_array_equal(one.event_time_s, two.event_time_s)


def test_relay_line_of_sight_edges_match_brute_force() -> None:
    """A GEO relay as link partner (the paper's GeoSat): LOS edges within 1 s of a 1 s scan."""
    from skymesh.sim.comms import isl_function_m2
    from skymesh.sim.orbit import KeplerOrbits

    fleet = walker_constellation(550e3, 10.0, 2, 2)
    relay = KeplerOrbits(np.array([42157000.0]), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))
    sim = Simulation(fleet, [SpacecraftParams()], [Activity("a", 0.0)], [ModeRule("a")], EPOCH,
                     config=EngineConfig(step_s=60.0), relays=relay)  # fmt: skip
    res = sim.run(4 * 3600)
    t = np.arange(0, 4 * 3600 + 1, 1.0)
    pos, _ = fleet.state(t)
    rpos, _ = relay.state(t)
    total = 0
    for sat in range(fleet.n):
        truth = brute_force_edges(isl_function_m2(pos[sat], rpos[0], 6371000.0) > 0, t)
        got, _ = res.edges(EventKind.ISL, sat)
        assert got.size == truth.size
        assert np.all(np.abs(got - truth) <= 1.0)
        total += got.size
    assert total >= 8
