"""`skymesh sim`: run a spacecraft-operations scenario (YAML) and write its time series, optionally a figure.

    skymesh sim run SCENARIO.yaml --out run.csv|run.parquet [--events E.csv|E.parquet] [--plot run.png]
                    [--duration-s S] [--workers N] [--quiet]
    skymesh sim check SCENARIO.yaml

The time series is streamed to the output one satellite chunk at a time (Parquet row groups or CSV lines), so the
whole table never sits in memory; the events (eclipse, contact, link and activity edges) go to `--events`, by default
next to the output as NAME-events.EXT. The figure uses every satellite up to `PLOT_SAMPLE` and an even sample
beyond that (said on the figure).

Heavy imports (numpy, the simulator, matplotlib) happen inside the handlers.
"""

from __future__ import annotations

import argparse
from typing import Any

PLOT_SAMPLE = 2000  # satellites drawn in the figure's bands at most
# satellites x knots per chunk when streaming: half the engine's default, ~13 % more CPU for half the peak memory
# (10,000 x 24 h: 596 MB RSS instead of 937 MB)
STREAM_CHUNK_ELEMENTS = 1_500_000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim", help="spacecraft-operations simulator (PASEOS models, vectorised)")
    sub = parser.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    run = sub.add_parser("run", help="run a YAML scenario")
    run.add_argument("scenario", help="scenario file (YAML)")
    run.add_argument("--out", required=True, help="time series output: .csv or .parquet")
    run.add_argument("--events", help="event output (.csv or .parquet); default: next to --out as NAME-events.EXT")
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
    from dataclasses import replace
    from pathlib import Path

    import numpy as np

    from skymesh.core.errors import InvalidArgument
    from skymesh.sim.engine import SERIES_KEYS
    from skymesh.sim.output import SeriesWriter, write_events
    from skymesh.sim.scenario import load_scenario

    if Path(args.out).suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument("output must end in .csv or .parquet", field="out")
    if args.events and Path(args.events).suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument("events output must end in .csv or .parquet", field="events")
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

    sim = sc.simulation
    sim.config = replace(sim.config, max_chunk_elements=min(sim.config.max_chunk_elements, STREAM_CHUNK_ELEMENTS))
    n = sim.fleet.n
    stride = max(1, -(-n // PLOT_SAMPLE))  # every stride-th satellite is kept for the figure
    kept: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    out = Path(args.out)
    events_path = Path(args.events) if args.events else out.with_name(f"{out.stem}-events{out.suffix}")
    writer = SeriesWriter(out, sim.fleet.names, (*(a.name for a in sim.activities), "off"), sc.epoch)

    def sink(first: int, times_s: np.ndarray, series: dict[str, np.ndarray]) -> None:
        writer.write(times_s, first, series)
        if args.plot:
            cols = np.flatnonzero((np.arange(first, first + series["soc"].shape[1]) % stride) == 0)
            kept.append((first + cols, {k: v[:, cols].copy() for k, v in series.items()}))

    t0 = time.perf_counter()
    with writer:
        result = sim.run(duration, progress=progress, workers=args.workers, series_sink=sink)
    elapsed = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    write_events(result, events_path, [st.name for st in sim.stations], sim.config.isl_pairs)
    print(f"{sc.name}: {n} spacecraft x {duration:g} s in {elapsed:.2f} s -> {out} ({writer.rows} rows), "
          f"events -> {events_path}", file=sys.stderr)  # fmt: skip
    if args.plot:
        from skymesh.sim.plot import plot_result

        idx = np.concatenate([k[0] for k in kept])
        sample = replace(result, names=tuple(result.names[i] for i in idx))
        for key in SERIES_KEYS:
            setattr(sample, key, np.concatenate([c[1][key] for c in kept], axis=1))
        # the activity worth watching: the first one guarded by a constraint (Processing, Training...)
        busy = next((a.name for a in sim.activities if a.constraint is not None), None)
        note = None if stride == 1 else f"every {stride}th of {n} spacecraft"
        print(f"figure -> {plot_result(sample, args.plot, busy, note=note)}", file=sys.stderr)
    return 0
