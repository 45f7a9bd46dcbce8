"""Simulator edges against a brute-force 1 s scan (issue 13): missed windows and edge errors.

Fleet: 440 random LEO orbits (seeded): altitude 350-1,500 km, eccentricity 0-0.02, inclination, node, perigee and
anomaly uniform (grazing passes over every station), plus 60 circular 550 km orbits whose beta angle is within
0.15 deg of the no-eclipse limit at the start (`tests/sim/test_edges.grazing_eclipse_orbits`): as the Sun moves
their eclipses appear and shrink through seconds to minutes. Four
ground stations (ESA Maspalomas 5 deg, Kiruna 5 deg, Svalbard 10 deg, Santiago 10 deg). 24 h from 2023-01-04 20:00
UTC. The engine runs at its defaults (60 s grid, 0.1 s tolerance).

The reference evaluates every satellite at every second on the exact orbits (`tests/sim/brute_force.py`) and
places each sign change at the root of the cubic through the surrounding samples. Reported: reference windows, how
many are shorter than the grid or fall between two knots (what a sign-change-only search misses), windows >= 5 s the
engine misses, extra engine edges, and |engine - reference| p50 / p99 / max over matched edges; wall time of both.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/sim_edges.py [--satellites 500] [--hours 24] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime

import numpy as np


def build(n: int, seed: int = 13, step_s: float = 60.0):  # type: ignore[no-untyped-def]
    from skymesh.astro.frames import datetime_to_jd
    from skymesh.sim.activities import Activity, ModeRule
    from skymesh.sim.comms import GroundStation
    from skymesh.sim.engine import EngineConfig, Simulation
    from skymesh.sim.orbit import KeplerOrbits
    from skymesh.sim.spacecraft import SpacecraftParams
    from tests.sim.test_edges import grazing_eclipse_orbits

    rng = np.random.default_rng(seed)
    epoch = datetime(2023, 1, 4, 20, tzinfo=UTC)
    n_graze = min(60, n // 8)
    m = n - n_graze
    rand = KeplerOrbits(
        a_m=6_378_137.0 + rng.uniform(350e3, 1500e3, m),
        e=rng.uniform(0.0, 0.02, m),
        i_rad=np.arccos(rng.uniform(-1.0, 1.0, m)),
        raan_rad=rng.uniform(0, 2 * np.pi, m),
        argp_rad=rng.uniform(0, 2 * np.pi, m),
        mean_anomaly_rad=rng.uniform(0, 2 * np.pi, m),
    )
    graze = grazing_eclipse_orbits(550e3, np.linspace(-0.15, 0.15, n_graze), datetime_to_jd(epoch))
    fields = ("a_m", "e", "i_rad", "raan_rad", "argp_rad", "mean_anomaly_rad")
    orbits = KeplerOrbits(*(np.concatenate([getattr(rand, f), getattr(graze, f)]) for f in fields))
    stations = [
        GroundStation("maspalomas", 27.7629, -15.6338, 205.1, 5.0),
        GroundStation("kiruna", 67.8571, 20.9643, 402.0, 5.0),
        GroundStation("svalbard", 78.2297, 15.4077, 500.0, 10.0),
        GroundStation("santiago", -33.1511, -70.6664, 723.0, 10.0),
    ]
    return Simulation(orbits, [SpacecraftParams()], [Activity("idle", 0.0)], [ModeRule("idle")],
                      epoch, stations, EngineConfig(step_s=step_s))  # fmt: skip


def main() -> None:
    from skymesh.sim.engine import EventKind
    from tests.sim.brute_force import brute_force_edges, compare, engine_edges

    ap = argparse.ArgumentParser()
    ap.add_argument("--satellites", type=int, default=500)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sim = build(args.satellites)
    duration = args.hours * 3600.0
    engine_s = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = sim.run(duration)
        engine_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    ref = brute_force_edges(sim, duration)
    brute_s = time.perf_counter() - t0
    knots, _ = sim.knots(0.0, duration)
    print(f"## {args.satellites} satellites x {args.hours:g} h, grid {sim.config.step_s:g} s, "
          f"tolerance {sim.config.tolerance_s:g} s ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n")  # fmt: skip
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}.")
    print(f"Engine run (all models, edges included): best {min(engine_s):.2f} s, worst {max(engine_s):.2f} s "
          f"of {args.repeat}; brute-force 1 s scan: {brute_s:.2f} s (one run).\n")  # fmt: skip
    print("| kind | reference windows | shorter than grid | between two knots | missed >= 5 s | missed < 5 s |"
          " extra edges | matched edges | error p50 s | error p99 s | error max s | shortest found s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, kind in (("eclipse", EventKind.ECLIPSE), ("contact", EventKind.CONTACT)):
        c = compare(ref[kind], engine_edges(res, kind), knots, sim.config.step_s)
        e = c.errors_s
        print(f"| {name} | {c.windows} | {c.short_windows} | {c.between_knots} | {c.missed_windows} | "
              f"{c.missed_short} | {c.extra_edges} | {e.size} | {np.percentile(e, 50):.3f} | "
              f"{np.percentile(e, 99):.3f} | {e.max():.3f} | {c.shortest_found_s:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
