"""Edges exact: no eclipse or contact window of 5 s or more is missed, even between two grid knots, and every edge
is within 1 s of a brute-force 1 s scan on the exact orbits (tests/sim/brute_force.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.astro.sun import sun_position_km
from skymesh.sim.activities import Activity, ModeRule
from skymesh.sim.comms import GroundStation
from skymesh.sim.engine import EngineConfig, EventKind, Simulation
from skymesh.sim.events import find_edges
from skymesh.sim.orbit import KeplerOrbits
from skymesh.sim.spacecraft import SpacecraftParams
from tests.sim.brute_force import brute_force_edges, compare, engine_edges

EPOCH = datetime(2023, 1, 4, 20, tzinfo=UTC)
R_EARTH_M = 6_371_000.0


def grazing_eclipse_orbits(altitude_m: float, margins_deg: np.ndarray, jd: float) -> KeplerOrbits:
    """Circular orbits whose plane makes a beta angle within a fraction of a degree of the no-eclipse limit
    asin(R / r) at the epoch (margin > 0: inside the limit). As the Sun moves (~0.04 deg/h) their eclipses appear,
    grow or shrink through seconds to minutes: many are shorter than the grid."""
    r = R_EARTH_M + altitude_m
    beta = np.arcsin(R_EARTH_M / r) - np.deg2rad(margins_deg)
    s = sun_position_km(jd)
    s = s / np.linalg.norm(s)
    p = np.cross(s, [0.0, 0.0, 1.0])
    p /= np.linalg.norm(p)
    normal = np.sin(beta)[:, None] * s + np.cos(beta)[:, None] * p  # angle to the Sun = 90 deg - beta
    inc = np.arccos(normal[:, 2])
    raan = np.arctan2(normal[:, 0], -normal[:, 1])
    n = margins_deg.size
    return KeplerOrbits(np.full(n, r), np.zeros(n), inc, np.mod(raan, 2 * np.pi), np.zeros(n),
                        np.linspace(0, 2 * np.pi, n, endpoint=False))  # fmt: skip


def fleet(step_s: float) -> Simulation:
    rng = np.random.default_rng(5)
    n = 60
    rand = KeplerOrbits(6_378_137.0 + rng.uniform(350e3, 1500e3, n), rng.uniform(0, 0.02, n),
                        np.arccos(rng.uniform(-1, 1, n)), rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n),
                        rng.uniform(0, 2 * np.pi, n))  # fmt: skip
    from skymesh.astro.frames import datetime_to_jd

    graze = grazing_eclipse_orbits(550e3, np.linspace(-0.15, 0.15, 60), datetime_to_jd(EPOCH))
    orbits = KeplerOrbits(*(np.concatenate([getattr(rand, f), getattr(graze, f)])
                            for f in ("a_m", "e", "i_rad", "raan_rad", "argp_rad", "mean_anomaly_rad")))  # fmt: skip
    stations = [GroundStation("maspalomas", 27.7629, -15.6338, 205.1, 5.0),
                GroundStation("svalbard", 78.2297, 15.4077, 500.0, 10.0)]  # fmt: skip
    return Simulation(orbits, [SpacecraftParams()], [Activity("idle", 0.0)], [ModeRule("idle")], EPOCH, stations,
                      EngineConfig(step_s=step_s))  # fmt: skip


def test_no_window_of_five_seconds_is_missed_on_a_coarse_grid() -> None:
    step = 120.0  # twice the default grid, so that more windows fall between two knots
    sim = fleet(step)
    duration = 6 * 3600.0
    res = sim.run(duration)
    ref = brute_force_edges(sim, duration)
    knots, _ = sim.knots(0.0, duration)
    for kind in (EventKind.ECLIPSE, EventKind.CONTACT):
        c = compare(ref[kind], engine_edges(res, kind), knots, step)
        assert c.between_knots >= 3, "the scenario must hold windows a sign-change search cannot see"
        assert c.missed_windows == 0
        assert c.extra_edges == 0
        assert c.errors_s.size >= 2 * c.windows
        assert float(c.errors_s.max()) < 1.0


def test_find_edges_sees_a_bump_between_two_knots() -> None:
    """A 6 s window centred between knots 60 s apart: both edges, each to the tolerance."""
    knots = np.array([0.0, 60.0, 120.0])

    def fn(rows: np.ndarray, ks: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.asarray(9.0 - (t - 31.0) ** 2 + 0.0 * rows, dtype=np.float64)  # > 0 on (28, 34)

    values = fn(np.zeros(3, np.int64), np.zeros(3, np.int64), knots)[None, :]
    slopes = (-2.0 * (knots - 31.0))[None, :]
    rows, times, rising = find_edges(values, slopes, knots, fn, 0.01)
    assert rows.tolist() == [0, 0]
    assert rising.tolist() == [True, False]
    np.testing.assert_allclose(times, [28.0, 34.0], atol=0.011)


@settings(max_examples=60, deadline=None)
@given(
    period_s=st.floats(240.0, 6000.0),
    phase=st.floats(0.0, 2 * np.pi),
    offset=st.floats(-1.0, 1.0),
)
def test_find_edges_matches_dense_sampling_of_a_sinusoid(period_s: float, phase: float, offset: float) -> None:
    """Every window of cos(w t + phase) + offset lasting >= 1 s over 3 h is found, edges within the tolerance, on a
    60 s grid (at most one extremum per interval: the period is >= 4 grid steps)."""
    w = 2 * np.pi / period_s
    knots = np.arange(0.0, 10_801.0, 60.0)

    def fn(rows: np.ndarray, ks: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.asarray(np.cos(w * t + phase) + offset + 0.0 * rows, dtype=np.float64)

    values = np.cos(w * knots + phase)[None, :] + offset
    slopes = (-w * np.sin(w * knots + phase))[None, :]
    _, times, rising = find_edges(values, slopes, knots, fn, 0.01)
    fine = np.arange(0.0, 10_800.0 + 1e-9, 0.05)
    pos = np.cos(w * fine + phase) + offset > 0
    flips = np.flatnonzero(pos[1:] != pos[:-1])
    truth = fine[flips] + 0.025
    # windows (either sign) shorter than 1 s may hide; all others must match one to one
    gaps = np.diff(np.r_[0.0, truth, 10_800.0])
    keep = np.ones(truth.size, dtype=bool)
    for i in range(truth.size):  # an edge that bounds a window shorter than 1 s on either side is allowed to hide
        if gaps[i] < 1.0 or gaps[i + 1] < 1.0:
            keep[i] = False
    for t in truth[keep]:
        assert np.min(np.abs(times - t), initial=np.inf) <= 0.01 + 0.03
    assert times.size <= truth.size
    assert np.all(np.diff(times) > 0)
    assert np.all(rising[1:] != rising[:-1])
