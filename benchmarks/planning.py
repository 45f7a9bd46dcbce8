"""Planning benchmark on the TALOS workload: greedy, SatNOGS-order greedy and CP-SAT, with bounds and gaps.

    .venv/bin/python benchmarks/planning.py --stations 50 --satellites 200 --hours 24 --seed 1 --limits 1 5 10 30
    .venv/bin/python benchmarks/planning.py --stations 200 --satellites 1000 --hours 24 --seed 1 --limits 60
    .venv/bin/python benchmarks/planning.py --seed 7 --limits --exact 60 --calls 5 --call-limit 5

`--calls N --call-limit L` times N whole planning calls (`compute_plan`: visibility, greedy, search, explanations;
the fork server already running, as in the scheduler service) against the optimum `--exact` proves with HiGHS,
and checks that the N plans are identical (same input and seed).

Every ratio is against the best *proven* upper bound of the run (the smallest bound any method reported), so
"% of bound" is a guaranteed lower bound on "% of optimum". Peak memory is the largest resident set of this process
and of its solver children (ru_maxrss). Prints a Markdown table and writes JSON next to it with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from typing import Any


def _rss_gb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    return own, kids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=50)
    p.add_argument("--satellites", type=int, default=200)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limits", type=float, nargs="*", default=[1.0, 5.0, 10.0, 30.0])
    p.add_argument(
        "--whole-day",
        type=float,
        nargs="*",
        default=[],
        help="also run the whole-horizon clique CP-SAT model (hint = greedy) at these limits, for comparison",
    )
    p.add_argument("--rolling", type=float, nargs="*", default=[], help="also run the rolling horizon at these limits")
    p.add_argument(
        "--windows",
        type=float,
        nargs="*",
        default=[],
        help="also run the previous cpsat path (greedy + CP-SAT windows + Lagrangian bound) at these limits",
    )
    p.add_argument(
        "--rotator",
        choices=sorted(_ROTATORS),
        default="none",
        help="give every station this rotator travel at its slew rate (none: travel unknown, slews the short way "
        "round); 360, 450, wide (-180..540) and flip (elevation to 180) time the cable wrap",
    )
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--exact", type=float, default=0.0, help="prove the optimum with HiGHS within this many seconds")
    p.add_argument("--calls", type=int, default=0, help="whole planning calls to time (compute_plan, cpsat)")
    p.add_argument("--call-limit", type=float, default=5.0, help="time_limit_s of each whole call")
    args = p.parse_args(argv)

    from skymesh.scheduler.bounds import compute_bounds
    from skymesh.scheduler.cpsat import CpSatPlanner
    from skymesh.scheduler.greedy import GreedyPlanner
    from skymesh.scheduler.isolation import Isolated, warm_up
    from skymesh.scheduler.opportunities import compile_request
    from skymesh.scheduler.scenario import generate_talos

    # The scheduler service starts its solver fork server once, at start-up (2.5 s of preloading OR-Tools on 2 busy
    # cores): do the same here, so that no timed row pays for it.
    warm_up()
    Isolated.start(abs, (-1,)).result(60.0)
    rows: list[dict[str, Any]] = []
    t = time.perf_counter()
    req = generate_talos(stations=args.stations, satellites=args.satellites, hours=args.hours, seed=args.seed)
    if args.rotator != "none":
        req = _with_rotators(req, args.rotator)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = compile_request(req)
    problem = compiled.problem
    compile_s = time.perf_counter() - t
    n = len(problem.opportunities)
    print(
        f"# {req.request_id}: {n:,} candidate passes; generate {gen_s:.1f} s, visibility {compiled.visibility_s:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    slew_rows_s = _time_slew_rows(problem)
    print(f"# rotator {args.rotator}: clique rows {slew_rows_s:.2f} s", file=sys.stderr)

    greedy = GreedyPlanner().solve(problem)
    rows.append(
        {
            "method": "greedy (priority x duration)",
            "limit_s": None,
            "objective": greedy.objective,
            "bound": None,
            "wall_s": greedy.runtime_s,
            "status": "FEASIBLE",
        }
    )
    satnogs = GreedyPlanner("priority_start").solve(problem)
    rows.append(
        {
            "method": "greedy, SatNOGS order (priority, then start)",
            "limit_s": None,
            "objective": satnogs.objective,
            "bound": None,
            "wall_s": satnogs.runtime_s,
            "status": "FEASIBLE",
        }
    )
    t = time.perf_counter()
    cheap = compute_bounds(problem)
    rows.append(
        {
            "method": "cheap bounds (request / resource relaxation)",
            "limit_s": None,
            "objective": None,
            "bound": cheap.best,
            "wall_s": time.perf_counter() - t,
            "status": f"request {cheap.request_s:,.0f}, resource DP {cheap.resource_s:,.0f}",
        }
    )
    print(
        f"# greedy {greedy.objective:,.0f} ({greedy.runtime_s:.2f} s), SatNOGS order {satnogs.objective:,.0f}, "
        f"cheap bound {cheap.best:,.0f}",
        file=sys.stderr,
        flush=True,
    )

    runs = [(limit, "cpsat (LP bound, LP-ordered greedy, RINS, windows)", 150_000) for limit in args.limits]
    runs += [(limit, "previous cpsat (greedy + CP-SAT windows + Lagrangian bound)", 0) for limit in args.windows]
    for limit, label, lp_max in runs:
        t = time.perf_counter()
        plan = CpSatPlanner(isolate=True, lp_max_candidates=lp_max).solve(problem, time_limit_s=limit, hint=greedy)
        wall = time.perf_counter() - t
        rows.append(
            {
                "child_rss_gb": plan.timings_s.get("child_peak_rss_gb", 0.0),
                "method": label,
                "limit_s": limit,
                "objective": plan.objective,
                "bound": plan.bound,
                "wall_s": wall,
                "status": plan.status,
                "rss_gb": _rss_gb(),
            }
        )
        print(
            f"# cpsat {limit:g} s: {plan.objective:,.0f} bound {plan.bound:,.0f} gap {100 * plan.gap:.3f} % "
            f"wall {wall:.1f} s {plan.status}",
            file=sys.stderr,
            flush=True,
        )
    for limit in args.whole_day:
        t = time.perf_counter()
        plan = CpSatPlanner(isolate=True, global_max_candidates=1 << 40).solve(problem, time_limit_s=limit, hint=greedy)
        wall = time.perf_counter() - t
        rows.append(
            {
                "method": "whole-horizon clique CP-SAT, hint = greedy",
                "limit_s": limit,
                "objective": plan.objective,
                "bound": plan.bound,
                "wall_s": wall,
                "status": plan.status,
                "rss_gb": _rss_gb(),
            }
        )
        print(
            f"# whole-day {limit:g} s: {plan.objective:,.0f} bound {plan.bound:,.0f} wall {wall:.1f} s {plan.status}",
            file=sys.stderr,
            flush=True,
        )
    for limit in args.rolling:
        from skymesh.scheduler.rolling import RollingHorizonPlanner

        t = time.perf_counter()
        plan = RollingHorizonPlanner().solve(problem, time_limit_s=limit)
        wall = time.perf_counter() - t
        rows.append(
            {
                "method": "rolling horizon (2 h chunks, CP-SAT)",
                "limit_s": limit,
                "objective": plan.objective,
                "bound": plan.bound,
                "wall_s": wall,
                "status": plan.status,
                "rss_gb": _rss_gb(),
            }
        )

    if args.exact:
        from skymesh.scheduler.exact import ExactPlanner

        t = time.perf_counter()
        plan = ExactPlanner().solve(problem, time_limit_s=args.exact)
        wall = time.perf_counter() - t
        rows.append(
            {
                "method": "exact (HiGHS MIP, presolve off)",
                "limit_s": args.exact,
                "objective": plan.objective,
                "bound": plan.bound,
                "wall_s": wall,
                "status": plan.status,
                "rss_gb": _rss_gb(),
            }
        )
        print(f"# exact: {plan.objective:,.0f} bound {plan.bound:,.0f} {plan.status} {wall:.1f} s", file=sys.stderr)
    calls = _whole_calls(req, args.calls, args.call_limit) if args.calls else []

    best_bound = min(r["bound"] for r in rows if r["bound"] is not None)
    best_obj = max(r["objective"] for r in rows if r["objective"] is not None)
    print(
        f"\n{req.request_id}: {n:,} candidates; best objective {best_obj:,.0f}; best proven bound {best_bound:,.0f}; "
        f"{platform.python_version()}, {platform.machine()}\n"
    )
    print("| method | limit | objective | % of best bound (>= % of optimum) | own bound | own gap | wall | status |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        obj = r["objective"]
        own_gap = "" if r["bound"] is None or obj is None else f"{100 * (r['bound'] - obj) / r['bound']:.3f} %"
        limit = "" if r["limit_s"] is None else f"{r['limit_s']:g} s"
        objective = "" if obj is None else f"{obj:,.0f}"
        share = "" if obj is None else f"{100 * obj / best_bound:.3f} %"
        bound = "" if r["bound"] is None else f"{r['bound']:,.0f}"
        cells = [r["method"], limit, objective, share, bound, own_gap, f"{r['wall_s']:.2f} s", r["status"]]
        print("| " + " | ".join(cells) + " |")
    own, kids = _rss_gb()
    print(
        f"\npeak RSS: this process {own:.2f} GB, largest solver child "
        f"{max([kids] + [r.get('child_rss_gb', 0.0) for r in rows]):.2f} GB; "
        f"SatNOGS order / greedy = {satnogs.objective / greedy.objective:.4f}"
    )
    if calls:
        best_obj = max(best_obj, *(c["objective"] for c in calls))
        print(
            f"\nWhole calls (`compute_plan`, solver cpsat, time_limit_s {args.call_limit:g}, seed 0), % of the best "
            f"proven bound {best_bound:,.0f}:\n"
        )
        print(
            "| run | load | objective | % of best bound | own proven gap | call wall | call CPU (this process + solver "
            "child) | visibility | status | plan hash |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for k, c in enumerate(calls, 1):
            child_cpu = c["timings_s"].get("search_cpu_s")
            cells = [
                str(k),
                f"{c['load_1min']:.1f}",
                f"{c['objective']:,.0f}",
                f"{100 * c['objective'] / best_bound:.4f} %",
                f"{100 * c['gap']:.4f} %",
                f"{c['wall_s']:.2f} s",
                f"{c['cpu_s']:.2f} + " + ("-" if child_cpu is None else f"{child_cpu:.2f} s"),
                f"{c['visibility_s']:.2f} s",
                c["status"],
                c["hash"],
            ]
            print("| " + " | ".join(cells) + " |")
        shares = [c["objective"] / best_bound for c in calls]
        walls = [c["wall_s"] for c in calls]
        print(
            f"\nworst {100 * min(shares):.4f} %, best {100 * max(shares):.4f} % of the proven bound; call wall "
            f"{min(walls):.2f}-{max(walls):.2f} s; {len({c['hash'] for c in calls})} distinct plan(s) in {len(calls)} "
            "runs"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "scenario": req.request_id,
                    "candidates": n,
                    "visibility_s": compiled.visibility_s,
                    "compile_s": compile_s,
                    "rotator": args.rotator,
                    "station_rows_s": slew_rows_s,
                    "best_bound": best_bound,
                    "rows": rows,
                    "calls": calls,
                },
                fh,
                indent=1,
            )
    return 0


def _rotators() -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    return {
        "360": ((0.0, 360.0), (0.0, 90.0)),
        "450": ((0.0, 450.0), (0.0, 90.0)),
        "wide": ((-180.0, 540.0), (0.0, 90.0)),
        "flip": ((0.0, 360.0), (0.0, 180.0)),
        "none": ((0.0, 0.0), (0.0, 0.0)),
    }


_ROTATORS = _rotators()


def _with_rotators(req: Any, kind: str) -> Any:
    from dataclasses import replace

    from skymesh.core.rotator import AxisLimits, RotatorModel

    (az_lo, az_hi), (el_lo, el_hi) = _ROTATORS[kind]
    stations = [
        replace(
            s,
            rotator=RotatorModel(
                AxisLimits(az_lo, az_hi, s.slew_rate_deg_s), AxisLimits(el_lo, el_hi, s.slew_rate_deg_s)
            ),
        )
        for s in req.stations
    ]
    return replace(req, stations=stations)


def _time_slew_rows(problem: Any) -> float:
    """Seconds to build the clique model's rows (no-overlap cliques, slew pairs, demand rows) on a fresh copy of the
    problem (so the rotator's per-opportunity wraps are computed inside): the part of planning the slew model costs."""
    from dataclasses import replace

    import numpy as np

    from skymesh.scheduler.cliques import build_rows

    fresh = replace(problem)
    t = time.perf_counter()
    build_rows(fresh, np.ones(len(fresh.opportunities), dtype=bool))
    return time.perf_counter() - t


def _whole_calls(req: Any, n: int, limit: float) -> list[dict[str, Any]]:
    import hashlib
    from dataclasses import replace

    from skymesh.scheduler.inputs import SolverKind
    from skymesh.scheduler.planning import compute_plan

    out = []
    for k in range(n):
        load = os.getloadavg()[0]
        t, c = time.perf_counter(), time.process_time()
        res = compute_plan(replace(req, solver=SolverKind.CPSAT, time_limit_s=limit), isolate=True)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        key = "\n".join(f"{a.station_id} {a.target_id} {a.window.start.isoformat()}" for a in res.assignments)
        out.append(
            {
                "objective": res.stats.objective,
                "bound": res.stats.bound,
                "gap": res.stats.gap,
                "wall_s": wall,
                # This process's CPU (visibility, greedy, explanations); the solver child's is in timings_s.
                "cpu_s": cpu,
                "load_1min": load,
                "visibility_s": res.stats.visibility_s,
                "status": res.stats.status,
                "hash": hashlib.sha256(key.encode()).hexdigest()[:12],
                "timings_s": res.stats.timings_s,
            }
        )
        print(f"# call {k + 1}: {out[-1]}", file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
