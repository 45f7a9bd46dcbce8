"""`skymesh sim`: run a spacecraft-operations scenario (YAML) and write its time series, optionally a figure.

    skymesh sim run SCENARIO.yaml --out run.csv|run.parquet [--plot run.png] [--duration-s S] [--workers N] [--quiet]
    skymesh sim check SCENARIO.yaml

Heavy imports (numpy, the simulator, matplotlib) happen inside the handlers.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim", help="spacecraft-operations simulator (PASEOS models, vectorised)")
    sub = parser.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    run = sub.add_parser("run", help="run a YAML scenario")
    run.add_argument("scenario", help="scenario file (YAML)")
    run.add_argument("--out", required=True, help="time series output: .csv or .parquet")
    run.add_argument("--plot", help="write a PNG figure (state of charge, temperature, eclipse, links)")
    run.add_argument("--duration-s", type=float, help="override the scenario's duration")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--workers", type=int, default=1, help="worker processes for independent satellite chunks")
    run.set_defaults(func=_run)
    check = sub.add_parser("check", help="validate a YAML scenario and say what it holds")
    check.add_argument("scenario")
    check.set_defaults(func=_check)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _check(args: argparse.Namespace) -> int:
    from skymesh.sim.scenario import load_scenario

    sc = load_scenario(args.scenario)
    sim = sc.simulation
    print(f"{sc.name}: {sim.fleet.n} spacecraft, {len(sim.stations)} stations, {len(sim.activities)} activities, "
          f"{sc.duration_s:g} s from {sc.epoch.isoformat()}")  # fmt: skip
    return 0


def _run(args: argparse.Namespace) -> int:
    import sys
    import time
    from pathlib import Path

    from skymesh.core.errors import InvalidArgument
    from skymesh.sim.output import write_timeseries
    from skymesh.sim.scenario import load_scenario

    if Path(args.out).suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument("output must end in .csv or .parquet", field="out")
    sc = load_scenario(args.scenario)
    duration = args.duration_s if args.duration_s is not None else sc.duration_s
    if not duration > 0:
        raise InvalidArgument("must be > 0", field="duration_s")
    progress = None
    bar: Any = None
    if not args.quiet:
        try:
            from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

            bar = tqdm(total=100, desc=sc.name, unit="%", file=sys.stderr)

            def progress(frac: float) -> None:
                bar.n = round(100 * frac, 1)
                bar.refresh()
        except ImportError:  # a plain fallback keeps the CLI usable without tqdm

            def progress(frac: float) -> None:
                print(f"\r{sc.name}: {100 * frac:5.1f} %", end="", file=sys.stderr)

    t0 = time.perf_counter()
    result = sc.simulation.run(duration, progress=progress, workers=args.workers)
    elapsed = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    out = write_timeseries(result, args.out)
    n = sc.simulation.fleet.n
    print(f"{sc.name}: {n} spacecraft x {duration:g} s in {elapsed:.2f} s -> {out}", file=sys.stderr)
    if args.plot:
        from skymesh.sim.plot import plot_result

        # the activity worth watching: the first one guarded by a constraint (Processing, Training...)
        busy = next((a.name for a in sc.simulation.activities if a.constraint is not None), None)
        print(f"figure -> {plot_result(result, args.plot, busy)}", file=sys.stderr)
    return 0
