"""Benchmark of skymesh.sim against the PASEOS figures measured for this project.

Scenario (PASEOS paper, section III-B): Walker constellation, 4 planes, 550 km, 10 deg inclination, power (1 MJ,
50 W solar) and thermal models on every satellite, Processing (100 W) / Standby (2 W) decided every 600 s with the
SoC > 0.2 and T < 330 K constraint checked continuously, ESA Maspalomas (27.7629 N, 15.6338 W, 205.1 m, 5 deg).
Start 2023-01-04 20:00 UTC.

"1 s resolution" means: eclipse, contact and constraint edges are located to 0.1 s, and the state at any second can
be reproduced by restarting from a recorded knot. Throughput is reported as satellite-seconds simulated per wall
second ("satellite-steps/s" at a 1 s step), so it compares directly with PASEOS run at dt = 1 s.

PASEOS baseline (cannot be installed here: it needs pykep 2.x; measured for this project on a comparable 2-core
box, shared/reference/simulation-and-propagation.md sec. 1.3, paseos 0.2.1, dt = 1 s): 2.40 s (16 sats) to 3.29 s
(64 sats) per satellite per 600 s simulated with ground-contact checks every 600 s, i.e. 250 to 182
satellite-steps/s; 7.95 s with checks every step, i.e. 75 satellite-steps/s.

Each case runs in its own process so that peak memory (ru_maxrss) is per case:

    .venv/bin/python benchmarks/sim.py                 # all cases, prints a markdown table
    .venv/bin/python benchmarks/sim.py --case paper16  # one case, prints JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np

PASEOS_SAT_STEPS_PER_S = {"window (GS checks every 600 s), 16 sats": 600 / 2.40,
                          "window, 64 sats": 600 / 3.29,
                          "per-step GS checks, 16 sats": 600 / 7.95}  # fmt: skip

CASES = {
    # name: (planes, sats per plane, hours, step_s, orbit kind, worker processes)
    "paper16": (4, 4, 8.0, 60.0, "kepler", 1),
    "paper16_fixed_1s_grid": (4, 4, 8.0, 1.0, "kepler", 1),
    "scale1k": (20, 50, 24.0, 60.0, "kepler", 1),
    "scale1k_sgp4": (20, 50, 24.0, 60.0, "tle", 1),
    "scale10k": (100, 100, 24.0, 60.0, "kepler", 1),
    "scale10k_2proc": (100, 100, 24.0, 60.0, "kepler", 2),
}


def build(planes: int, per_plane: int, step_s: float, kind: str):  # type: ignore[no-untyped-def]
    from skymesh.sim.activities import Activity, Comparison, Condition, ModeRule
    from skymesh.sim.comms import GroundStation
    from skymesh.sim.engine import EngineConfig, Simulation
    from skymesh.sim.orbit import TLEOrbits, walker_constellation
    from skymesh.sim.spacecraft import SpacecraftParams, ThermalParams

    epoch = datetime(2023, 1, 4, 20, tzinfo=UTC)
    orbits = walker_constellation(550e3, 10.0, planes, per_plane)
    if kind == "tle":
        orbits = TLEOrbits(_tles(orbits, epoch), epoch)
    rng = np.random.default_rng(0)
    thermal = ThermalParams(50.0, 273.15, 1.0, 1.0, 2.0, 2.0, 4.0, 1000.0)
    scs = [SpacecraftParams(f"sat-{k}", 1e6 / 3600, float(rng.uniform(0.1, 1.0)), 50.0, thermal=thermal)
           for k in range(orbits.n)]  # fmt: skip
    ok = Condition((Comparison("soc", ">", 0.2), Comparison("temperature_k", "<", 330.0)))
    acts = [Activity("Processing", 100.0, constraint=ok, fallback="Standby"), Activity("Standby", 2.0)]
    rules = [ModeRule("Processing", ok), ModeRule("Standby")]
    station = GroundStation("maspalomas", 27.7629, -15.6338, 205.1, 5.0)
    cfg = EngineConfig(step_s=step_s, decision_step_s=600.0, tolerance_s=min(0.1, step_s), record_step_s=600.0)
    return Simulation(orbits, scs, acts, rules, epoch, [station], cfg)


def _tles(orbits, epoch: datetime) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Walker elements as SGP4 TLEs (sgp4init + export_tle), epoch at the scenario start."""
    from sgp4.api import WGS72, Satrec
    from sgp4.exporter import export_tle

    from skymesh.astro.frames import datetime_to_jd

    jd = datetime_to_jd(epoch) - 2433281.5
    out = []
    for k in range(orbits.n):
        sat = Satrec()
        n_rad_min = np.sqrt(398600.4418e9 / orbits.a_m[k] ** 3) * 60.0
        sat.sgp4init(WGS72, "i", k + 1, jd, 0.0, 0.0, 0.0, 1e-7, float(orbits.argp_rad[k]), float(orbits.i_rad[k]),
                     float(orbits.mean_anomaly_rad[k]), float(n_rad_min), float(orbits.raan_rad[k]))  # fmt: skip
        out.append(export_tle(sat))
    return out


def run_case(name: str) -> dict[str, object]:
    from skymesh.sim.engine import EventKind

    planes, per, hours, step, kind, workers = CASES[name]
    sim = build(planes, per, step, kind)
    t0 = time.perf_counter()
    c0 = time.process_time()
    res = sim.run(hours * 3600.0, workers=workers)
    wall = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + children.ru_utime + children.ru_stime
    n = sim.fleet.n
    return {
        "case": name,
        "satellites": n,
        "hours": hours,
        "grid_step_s": step,
        "orbits": kind,
        "workers": workers,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "sat_steps_per_s": n * hours * 3600.0 / wall,
        "peak_rss_mb": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss) / 1024.0,
        "eclipse_edges": int(np.sum(res.event_kind == EventKind.ECLIPSE)),
        "contact_edges": int(np.sum(res.event_kind == EventKind.CONTACT)),
        "activity_switches": int(np.sum(res.event_kind == EventKind.ACTIVITY)),
        "eclipse_share": float(res.in_eclipse.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    rows = []
    for name in args.only or CASES:
        out = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"# {name}: {rows[-1]['wall_s']} s", file=sys.stderr)
    best_paseos = max(PASEOS_SAT_STEPS_PER_S.values())
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, {datetime.now(UTC).isoformat(timespec='seconds')}")  # fmt: skip
    print()
    header = ["case", "satellites", "hours", "grid step s", "orbits", "processes", "wall s", "CPU s",
              "satellite-steps/s", "x PASEOS (250/s)", "x PASEOS per-step (75/s)", "peak RSS MB (largest process)",
              "eclipse edges", "contact edges"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        sps = float(r["sat_steps_per_s"])  # type: ignore[arg-type]
        cells = [r["case"], r["satellites"], r["hours"], r["grid_step_s"], r["orbits"], r["workers"], r["wall_s"],
                 r["cpu_s"], f"{sps:,.0f}", f"{sps / best_paseos:,.0f}", f"{sps / 75.5:,.0f}",
                 f"{float(r['peak_rss_mb']):.0f}", r["eclipse_edges"], r["contact_edges"]]  # type: ignore[arg-type]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
