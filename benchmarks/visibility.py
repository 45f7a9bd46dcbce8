"""Benchmark: satellite pass prediction, `skymesh.astro.find_passes` against a serial Skyfield `find_events` loop.

One run measures:
  A. the same satellites x stations x 24 h with (a) Skyfield `EarthSatellite.find_events` per (satellite, station)
     and (b) `find_passes`; the speed ratio and how well the passes agree (matched fraction, max |dAOS|, |dLOS|
     in s, max |d max-elevation| in deg; complete passes only, since Skyfield reports no clipped ones);
  B. `find_passes` alone at a large size and a smaller one (each in its own process, so peak RSS from
     `resource.getrusage` belongs to that size alone), to show how time and memory grow.

Satellites: `generate_catalog` (mixed LEO/MEO/GEO families). Stations: a Fibonacci lattice over the globe,
0-2000 m. Minimum elevation 10 deg. Results go to benchmarks/results/visibility.md (and stdout).

    .venv/bin/python benchmarks/visibility.py            # full: 200 x 50 vs Skyfield, 20,000 x 100 and 5,000 x 100
    .venv/bin/python benchmarks/visibility.py --quick    # small sizes, about half a minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skymesh.astro.passes import PassTable, find_passes  # noqa: E402
from skymesh.astro.propagate import SatelliteBatch, look_angles  # noqa: E402
from skymesh.astro.tle_gen import generate_catalog  # noqa: E402

START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
HOURS = 24.0
MIN_ELEVATION_DEG = 10.0


def stations(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n sites spread evenly over the globe (Fibonacci lattice), altitudes 0-2000 m."""
    k = np.arange(n) + 0.5
    lat = np.degrees(np.arcsin(1.0 - 2.0 * k / n))
    lon = (np.degrees(np.pi * (1.0 + 5.0**0.5) * k) + 180.0) % 360.0 - 180.0
    alt = (np.arange(n) * 397.0) % 2000.0
    return lat, lon, alt


def run_find_passes(n_sat: int, n_sta: int, seed: int = 1) -> tuple[PassTable, float, float, float]:
    tles = generate_catalog(n_sat, START - timedelta(hours=6), seed=seed)
    lat, lon, alt = stations(n_sta)
    t0, c0 = time.perf_counter(), time.process_time()
    batch = SatelliteBatch(tles)
    table = find_passes(batch, lat, lon, alt, START, START + timedelta(hours=HOURS), MIN_ELEVATION_DEG)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return table, wall, cpu, rss_mb


def pct(part: float, whole: float) -> str:
    return f"{100.0 * part / max(whole, 1.0):.3f} %"


def one_size(n_sat: int, n_sta: int) -> dict[str, float]:
    """Child-process entry: one find_passes run, JSON on stdout."""
    load = os.getloadavg()[0]
    table, wall, cpu, rss_mb = run_find_passes(n_sat, n_sta)
    out = {
        "sats": n_sat,
        "stations": n_sta,
        "wall_s": wall,
        "cpu_s": cpu,
        "passes": len(table),
        "peak_rss_mb": rss_mb,
        "load_start": load,
        "load_end": os.getloadavg()[0],
    }
    out.update({k: float(v) for k, v in table.stats.items()})
    return out


def compare_with_skyfield(n_sat: int, n_sta: int) -> dict[str, Any]:
    from skyfield.api import load

    from tests.astro.skyfield_ref import compare, passes_from_events, skyfield_events

    tles = generate_catalog(n_sat, START - timedelta(hours=6), seed=1)
    lat, lon, alt = stations(n_sta)
    end = START + timedelta(hours=HOURS)
    load.timescale()  # load the time scale files outside the timed loop
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    raw = skyfield_events(tles, lat, lon, alt, START, end, MIN_ELEVATION_DEG)
    # The loop only; altitudes at culmination are read afterwards, untimed.
    sky_s, sky_cpu = time.perf_counter() - t0, time.process_time() - c0
    ref = passes_from_events(raw)
    runs, cpus = [], []
    table: PassTable | None = None
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        table = find_passes(SatelliteBatch(tles), lat, lon, alt, START, end, MIN_ELEVATION_DEG)
        runs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    assert table is not None
    agree = compare(table, ref)
    # Split by orbit: Skyfield's find_events can step over a shallow dip below the mask during a slow MEO/GEO
    # pass and report one long pass where there are two. Count those, checking each by direct sampling.
    high = {i for i, t in enumerate(tles) if t.mean_motion_rev_per_day < 6.0}
    leo_table = table.select(~np.isin(table.sat_index, sorted(high)))
    leo = compare(leo_table, [p for p in ref if p.sat_index not in high])
    hi_ref = [p for p in ref if p.sat_index in high]
    hi = compare(table.select(np.isin(table.sat_index, sorted(high))), hi_ref)
    batch = SatelliteBatch(tles)
    dips = 0
    for p in hi_ref:
        jd = np.linspace(p.aos_jd_utc, p.los_jd_utc, 2000)[1:-1]
        el = look_angles(
            batch,
            lat[p.station_index : p.station_index + 1],
            lon[p.station_index : p.station_index + 1],
            alt[p.station_index : p.station_index + 1],
            jd,
        ).elevation_deg[p.sat_index, 0]
        dips += int(el.min() < MIN_ELEVATION_DEG - 0.01)
    return {
        "sats": n_sat,
        "stations": n_sta,
        "skyfield_s": sky_s,
        "skyfield_cpu_s": sky_cpu,
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "find_passes_worst_s": max(runs),
        "find_passes_best_s": min(runs),
        "find_passes_worst_cpu_s": max(cpus),
        "find_passes_best_cpu_s": min(cpus),
        "speedup_worst": sky_s / max(runs),
        "speedup_best": sky_s / min(runs),
        "speedup_cpu_worst": sky_cpu / max(cpus),
        "speedup_cpu_best": sky_cpu / min(cpus),
        "skyfield_passes": agree.reference,
        "matched": agree.matched,
        "extra": agree.extra,
        "max_daos_s": agree.max_aos_s,
        "max_dlos_s": agree.max_los_s,
        "max_del_deg": agree.max_elevation_deg,
        "leo_skyfield_passes": leo.reference,
        "leo_matched": leo.matched,
        "leo_extra": leo.extra,
        "leo_max_daos_s": leo.max_aos_s,
        "leo_max_dlos_s": leo.max_los_s,
        "leo_max_del_deg": leo.max_elevation_deg,
        "high_skyfield_passes": hi.reference,
        "high_matched": hi.matched,
        "high_extra": hi.extra,
        "high_max_daos_s": hi.max_aos_s,
        "high_skyfield_passes_with_dip": dips,
        "leo_unmatched": "; ".join(
            f"{(q.los_jd_utc - q.aos_jd_utc) * 86400:.1f} s long, peak {q.max_elevation_deg:.4f} deg"
            for q in leo.unmatched
        )
        or "none",
        "our_passes_total": len(table),
        **{f"stat_{k}": float(v) for k, v in table.stats.items()},
    }


def child(n_sat: int, n_sta: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--one-size", str(n_sat), str(n_sta)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import sgp4

    try:
        import skyfield

        sky = skyfield.__version__
    except ImportError:
        sky = "n/a"
    return (
        f"{cpu}, {os.cpu_count()} cores (shared with other jobs), Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, sgp4 {sgp4.__version__} (accelerated), skyfield {sky}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--one-size", nargs=2, type=int, metavar=("SATS", "STATIONS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "visibility.md"))
    args = parser.parse_args()
    if args.one_size:
        print(json.dumps(one_size(*args.one_size)))
        return 0

    cmp_size = (40, 10) if args.quick else (200, 50)
    big_sizes = [(500, 20), (2000, 20)] if args.quick else [(5000, 100), (20000, 100)]
    started = datetime.now(UTC)
    print(f"A. Skyfield loop vs find_passes, {cmp_size[0]} sats x {cmp_size[1]} stations x {HOURS:g} h ...", flush=True)
    a = compare_with_skyfield(*cmp_size)
    print(json.dumps(a, indent=1), flush=True)
    b = []
    for n_sat, n_sta in big_sizes:
        print(f"B. find_passes {n_sat} sats x {n_sta} stations x {HOURS:g} h ...", flush=True)
        b.append(child(n_sat, n_sta))
        print(json.dumps(b[-1], indent=1), flush=True)

    command = "`.venv/bin/python benchmarks/visibility.py" + (" --quick" if args.quick else "") + "`"
    lines = [
        "# Visibility benchmark: `find_passes` vs a Skyfield `find_events` loop",
        "",
        f"Command: {command} (started {started:%Y-%m-%d %H:%M} UTC).",
        f"Machine: {machine()}.",
        f"Workload: `generate_catalog` mixed families (40 % Starlink-like, 20 % SSO, 15 % CubeSat, 10 % polar, "
        f"5 % each ISS-like, MEO, GEO), stations on a Fibonacci lattice over the globe (0-2000 m), "
        f"{HOURS:g} h from {START:%Y-%m-%d %H:%M} UTC, minimum elevation {MIN_ELEVATION_DEG:g} deg, 60 s grid.",
        "",
        f"## A. Same passes, {a['sats']:.0f} satellites x {a['stations']:.0f} stations x {HOURS:g} h",
        "",
        f"One process; Skyfield once, then `find_passes` 5 times (each including `SatelliteBatch`); load average "
        f"{a['load_start']:.1f} at the start, {a['load_end']:.1f} at the end (2 shared cores). CPU is the process "
        "time, less disturbed by the other jobs than wall time.",
        "",
        "| | wall s (worst / best) | speed-up (worst / best) | CPU s (worst / best) | CPU speed-up (worst / best) |",
        "|---|---:|---:|---:|---:|",
        f"| Skyfield `find_events` loop (events only) | {a['skyfield_s']:.2f} | 1x | {a['skyfield_cpu_s']:.2f} | 1x |",
        f"| `find_passes` | {a['find_passes_worst_s']:.3f} / {a['find_passes_best_s']:.3f} | "
        f"{a['speedup_worst']:.0f}x / {a['speedup_best']:.0f}x | "
        f"{a['find_passes_worst_cpu_s']:.3f} / {a['find_passes_best_cpu_s']:.3f} | "
        f"{a['speedup_cpu_worst']:.0f}x / {a['speedup_cpu_best']:.0f}x |",
        "",
        "Agreement on complete passes (Skyfield reports no clipped ones), matched by satellite, station and AOS:",
        "",
        "| | all | LEO | MEO + GEO |",
        "|---|---:|---:|---:|",
        f"| Skyfield passes | {a['skyfield_passes']:.0f} | {a['leo_skyfield_passes']:.0f} | "
        f"{a['high_skyfield_passes']:.0f} |",
        f"| matched by `find_passes` | {a['matched']:.0f} ({pct(a['matched'], a['skyfield_passes'])}) | "
        f"{a['leo_matched']:.0f} ({pct(a['leo_matched'], a['leo_skyfield_passes'])}) | "
        f"{a['high_matched']:.0f} ({pct(a['high_matched'], a['high_skyfield_passes'])}) |",
        f"| extra complete passes in `find_passes` | {a['extra']:.0f} | {a['leo_extra']:.0f} | {a['high_extra']:.0f} |",
        f"| max \\|dAOS\\| s | {a['max_daos_s']:.3f} | {a['leo_max_daos_s']:.3f} | {a['high_max_daos_s']:.3f} |",
        f"| max \\|dLOS\\| s | {a['max_dlos_s']:.3f} | {a['leo_max_dlos_s']:.3f} | see below |",
        f"| max \\|d max-elevation\\| deg | {a['max_del_deg']:.4f} | {a['leo_max_del_deg']:.4f} | see below |",
        "",
        f"MEO + GEO: {a['high_skyfield_passes_with_dip']:.0f} of the Skyfield passes contain a stretch below "
        f"{MIN_ELEVATION_DEG:g} deg when sampled directly (2000 points per pass): `find_events` stepped over a "
        "shallow dip of a slow pass and reported one pass where there are two, so its LOS and maximum differ "
        "from ours there by hours; the extra passes in the MEO + GEO column are the second halves.",
        "",
        f"LEO Skyfield passes without a match: {a['leo_unmatched']}. Skyfield's culmination altitude is re-sampled "
        "every 10 ms over +-0.5 s for passes above 60 deg (find_events places culminations to ~0.1 s, which costs "
        "up to 0.06 deg near the zenith).",
        "",
        "## B. Scaling of `find_passes` (each size in a fresh process)",
        "",
        "| satellites x stations | passes | wall s | CPU s | propagate s | grid s | refine s | assemble s "
        "| peak RSS MB | load start / end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in b:
        lines.append(
            f"| {r['sats']:.0f} x {r['stations']:.0f} | {r['passes']:.0f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['propagate_s']:.1f} | {r['grid_s']:.1f} | {r['refine_s']:.1f} | {r['assemble_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {r['load_start']:.1f} / {r['load_end']:.1f} |"
        )
    lines += [
        "",
        "Wall and CPU time include building the `SatelliteBatch`, not generating the TLEs; the phase columns are "
        "wall time. Peak RSS is the whole process "
        "(Python, numpy, the TLE list and the result table included). The machine was shared with other jobs, so "
        "read the figures as what one busy core or so can do.",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
