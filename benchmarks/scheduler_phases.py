"""The scheduler's planning call, phase by phase, in process: wall, CPU and peak resident memory of each phase.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/scheduler_phases.py --stations 500 --satellites 3000 --hours 24

The phases of `compute_plan` as the scheduler service runs it (a `VisibilityCache` of `--cache-mb`, the service's
default): visibility with a cold cache (the first plan), visibility again with the warm cache (a steady replan),
then visibility after one station was added (the cache reuses the other stations' passes where it can), the
greedy pass, the bound, the explanations, and (`--cpsat L`) the CP-SAT planner at limit L in its watched child.
Peak RSS per phase is sampled every 20 ms from /proc (this process; the solver child's peak is ru_maxrss of the
children). `--save FILE` pickles the problem and the greedy plan (for comparing greedy implementations).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Sampler:
    """The largest RSS seen since the last `reset`, sampled every 20 ms on a thread."""

    def __init__(self) -> None:
        self.peak_mb = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def reset(self) -> None:
        self.peak_mb = _rss_mb()

    def stop(self) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=500)
    p.add_argument("--satellites", type=int, default=3000)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cache-mb", type=float, default=None, help="visibility cache bound (default: the service's)")
    p.add_argument("--cpsat", type=float, default=0.0, help="also run CP-SAT (isolated) at this limit")
    p.add_argument("--no-add", action="store_true", help="skip the added-station visibility phase")
    p.add_argument("--save", metavar="FILE")
    args = p.parse_args(argv)

    from skymesh.scheduler.bounds import compute_bounds
    from skymesh.scheduler.greedy import GreedyPlanner
    from skymesh.scheduler.opportunities import compile_request
    from skymesh.scheduler.planning import _explain
    from skymesh.scheduler.scenario import generate_talos
    from skymesh.scheduler.service import DEFAULT_VISIBILITY_CACHE_MB
    from skymesh.scheduler.viscache import VisibilityCache

    cache_mb = DEFAULT_VISIBILITY_CACHE_MB if args.cache_mb is None else args.cache_mb
    sampler = _Sampler()
    rows: list[tuple[str, float, float, float, float, str]] = []

    @contextmanager
    def phase(name: str, note: Callable[[], str] = lambda: "") -> Iterator[None]:
        sampler.reset()
        w0, c0 = time.perf_counter(), time.process_time()
        yield
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rows.append((name, wall, cpu, sampler.peak_mb, _rss_mb(), note()))
        print(f"# {name}: wall {wall:.1f} s, CPU {cpu:.1f} s, peak {sampler.peak_mb:,.0f} MB {note()}", file=sys.stderr)

    req = generate_talos(stations=args.stations + 1, satellites=args.satellites, hours=args.hours, seed=args.seed)
    extra = req.stations[-1]
    req = dataclasses.replace(req, stations=req.stations[:-1])
    # Compile the numba kernels (and read their on-disk cache) before timing anything.
    compile_request(generate_talos(stations=2, satellites=2, hours=1.0, seed=args.seed))
    cache = VisibilityCache(int(cache_mb * 1e6))
    out: dict[str, Any] = {}
    with phase("visibility, cold cache", lambda: f"{cache.nbytes / 1e6:,.0f} MB cached"):
        out["compiled"] = compile_request(req, visibility_cache=cache)
    compiled = out["compiled"]
    problem = compiled.problem
    print(f"# {len(problem.opportunities):,} candidates", file=sys.stderr)
    h0, m0 = cache.hits, cache.misses
    with phase(
        "visibility, warm cache (steady replan)", lambda: f"{cache.hits - h0:,} hits, {cache.misses - m0:,} misses"
    ):
        out["warm"] = compile_request(req, visibility_cache=cache)
    del out["warm"]
    if not args.no_add:
        added = dataclasses.replace(req, stations=(*req.stations, extra))
        h0, m0, s0 = cache.hits, cache.misses, getattr(cache, "station_misses", 0)
        with phase(
            "visibility, one station added",
            lambda: (
                f"{cache.hits - h0:,} hits, {cache.misses - m0:,} misses "
                f"({getattr(cache, 'station_misses', 0) - s0:,} satellite x block x station computed)"
            ),
        ):
            out["added"] = compile_request(added, visibility_cache=cache)
        del out["added"]
    with phase("greedy"):
        plan = GreedyPlanner().solve(problem)
    with phase("bound"):
        bound = compute_bounds(problem).best
    with phase("explanations"):
        _explain(compiled, plan.selected, req.window.duration_s, optimal=False)
    if args.cpsat:
        from skymesh.scheduler.cpsat import CpSatPlanner
        from skymesh.scheduler.isolation import Isolated, warm_up

        warm_up()
        Isolated.start(abs, (-1,)).result(60.0)
        with phase(
            f"CP-SAT {args.cpsat:g} s (isolated)", lambda: f"search CPU {cp.timings_s.get('search_cpu_s', -1):.1f} s"
        ):
            cp = CpSatPlanner(isolate=True).solve(problem, time_limit_s=args.cpsat)
        print(f"# CP-SAT: {cp.objective:,.0f}, status {cp.status}", file=sys.stderr)
    sampler.stop()
    if args.save:
        with open(args.save, "wb") as f:
            pickle.dump((problem, plan.selected), f, protocol=pickle.HIGHEST_PROTOCOL)

    load = os.getloadavg()
    print(
        f"\n{args.stations} stations x {args.satellites} satellites x {args.hours:g} h (seed {args.seed}): "
        f"{len(problem.opportunities):,} candidates, greedy {plan.objective:,.0f} ({len(plan.selected):,} "
        f"contacts), bound {bound:,.0f}; cache {cache_mb:g} MB; load {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n"
    )
    print("| phase | wall | CPU | peak RSS | RSS after | note |")
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, peak, after, note in rows:
        print(f"| {name} | {wall:.1f} s | {cpu:.1f} s | {peak:,.0f} MB | {after:,.0f} MB | {note} |")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    kids_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e3
    print(f"\npeak RSS: this process {own:,.0f} MB, largest child {kids_rss:,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
