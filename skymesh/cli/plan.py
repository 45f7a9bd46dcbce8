"""`skymesh plan`: compute a plan from a scenario file, or generate a reproducible scenario (TALOS workload).

    skymesh plan --scenario examples/scenarios/small.yaml --solver cpsat --time-limit-s 10 --json
    skymesh plan --generate talos --stations 50 --satellites 200 --hours 24 --seed 1 --out talos.json

Runs the scheduler library in-process (no server needed); heavy imports happen inside the handler.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]

_SOLVERS = ("greedy", "cpsat", "rolling", "exact", "greedy-priority-start")
_STATIONS_SHOWN = 3  # per target in text mode; the rest are counted


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "plan", help="plan a scenario file (greedy, CP-SAT, rolling horizon) or generate one"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenario", metavar="FILE", help="scenario file (.json, .yaml)")
    src.add_argument("--generate", choices=("talos",), help="generate a seeded scenario instead of reading one")
    p.add_argument("--stations", type=int, default=50, help="generated ground stations (default %(default)s)")
    p.add_argument("--satellites", type=int, default=200, help="generated LEO satellites (default %(default)s)")
    p.add_argument("--hours", type=float, default=24.0, help="generated horizon in hours (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated scenario (default %(default)s)")
    p.add_argument("--start", default=None, help="start of the generated window, ISO 8601 UTC (default 2026-01-01)")
    p.add_argument("--out", metavar="FILE", help="with --generate: write the scenario here (.json or .yaml) and stop")
    p.add_argument("--solver", choices=_SOLVERS, default=None, help="planner (default: the scenario's, else greedy)")
    p.add_argument(
        "--time-limit-s",
        type=float,
        default=None,
        help="budget of the whole call, visibility and explanations included, in seconds (default 10)",
    )
    p.add_argument(
        "--solver-seed", type=int, default=None, help="solver seed: same scenario and seed, same plan (default 0)"
    )
    p.add_argument(
        "--no-isolate",
        action="store_true",
        help="solve in-process (default: CP-SAT and the bound run in child processes with a memory cap and watchdog)",
    )
    p.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    p.add_argument("--limit", type=int, default=20, help="assignments and explanations listed in text mode")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    import sys
    import time
    from dataclasses import replace

    from skymesh.scheduler.inputs import SolverKind
    from skymesh.scheduler.scenario import generate_talos, load_scenario, save_scenario
    from skymesh.scheduler.spacecraft import plan_with_spacecraft

    t0 = time.perf_counter()
    if not args.no_isolate and args.solver in ("cpsat", "exact", "rolling", None):
        from skymesh.scheduler.isolation import warm_up

        # The solver children's fork server preloads OR-Tools (2.5 s on 2 busy cores): start it now, so it loads
        # while the scenario is read and visibility runs, not inside the solver's share of the limit.
        warm_up()
    if args.generate:
        start = None
        if args.start:
            from datetime import UTC, datetime

            start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).astimezone(UTC)
        req = generate_talos(
            stations=args.stations, satellites=args.satellites, hours=args.hours, seed=args.seed, start=start
        )
        if args.out:
            save_scenario(req, args.out, name=req.request_id)
            print(
                f"wrote {args.out}: {len(req.stations)} stations, {len(req.targets)} satellites, "
                f"{args.hours:g} h from {req.window.start.isoformat()} (seed {args.seed})"
            )
            return 0
    else:
        req = load_scenario(args.scenario)
    if args.solver:
        req = replace(req, solver=SolverKind(args.solver))
    if args.time_limit_s is not None:
        req = replace(req, time_limit_s=args.time_limit_s)
    if args.solver_seed is not None:
        req = replace(req, seed=args.solver_seed)
    load_s = time.perf_counter() - t0
    result = plan_with_spacecraft(req, isolate=not args.no_isolate)
    s = result.stats
    if args.json:
        doc = {
            "request_id": result.request_id,
            "stats": {
                "solver": s.solver.value,
                "objective": s.objective,
                "bound": _num(s.bound),
                "gap": s.gap,
                "optimal": s.optimal,
                "status": s.status,
                "greedy_objective": _num(s.greedy_objective),
                "candidates": s.candidates,
                "runtime_s": s.runtime_s,
                "visibility_s": s.visibility_s,
                "timings_s": {"load_s": load_s, **s.timings_s},
            },
            "assignments": [
                {
                    "station_id": a.station_id,
                    "target_id": a.target_id,
                    "start": a.window.start.isoformat(),
                    "end": a.window.end.isoformat(),
                    "tca": a.tca.isoformat() if a.tca else None,
                    "max_elevation_deg": round(a.max_elevation_deg, 3),
                    "filter": a.filter,
                    "exposure_s": a.exposure_s,
                    "exposure_count": a.exposure_count,
                    "score": a.score,
                    "job_id": a.job_id,
                }
                for a in result.assignments
            ],
            "unscheduled": [_explanation_doc(e) for e in result.unscheduled],
            "partially_met": [_explanation_doc(e) for e in result.partially_met],
            "explanation_reasons_total": result.explanation_reasons_total,
        }
        json.dump(doc, sys.stdout, indent=1, allow_nan=False)
        print()
        return 0
    print(
        f"{result.request_id or 'plan'}: solver={s.solver.value} status={s.status} objective={s.objective:,.0f} "
        f"bound={s.bound:,.0f} gap={100 * s.gap:.3f}% greedy={s.greedy_objective:,.0f}"
    )
    print(
        f"  {len(result.assignments)} assignments from {s.candidates:,} candidates; {len(result.unscheduled)} targets "
        f"unscheduled; runtime {s.runtime_s:.2f} s (" + ", ".join(f"{k}={v:.2f}" for k, v in s.timings_s.items()) + ")"
    )
    for a in result.assignments[: args.limit]:
        extra = (
            f" {a.filter} {a.exposure_count}x{a.exposure_s:g}s"
            if a.exposure_count
            else f" max_el={a.max_elevation_deg:.1f}"
        )
        print(f"  {a.window.start:%Y-%m-%d %H:%M:%S}-{a.window.end:%H:%M:%S} {a.station_id:>10} {a.target_id}{extra}")
    if len(result.assignments) > args.limit:
        print(f"  ... {len(result.assignments) - args.limit} more")
    for label, items in (("not scheduled", result.unscheduled), ("partly met", result.partially_met)):
        for e in items[: args.limit]:
            print(f"  {label}: {e.target_id}: {_summary(e.reasons)}")
        if len(items) > args.limit:
            print(f"  ... {len(items) - args.limit} more {label}")
    return 0


def _explanation_doc(e: Any) -> dict[str, Any]:
    return {
        "target_id": e.target_id,
        "reasons": [
            {
                "code": r.code.name,
                "detail": r.detail,
                "station_id": r.station_id,
                "winner_target_id": r.winner_target_id,
                "start": r.start.isoformat() if r.start else None,
                "end": r.end.isoformat() if r.end else None,
                "value": r.value,
                "occupants": [
                    {
                        "target_id": o.target_id,
                        "station_id": o.station_id,
                        "start": o.start.isoformat(),
                        "end": o.end.isoformat(),
                        "priority": o.priority,
                        "value": o.value,
                        "job_id": o.job_id,
                        "frozen": o.frozen,
                    }
                    for o in r.occupants
                ],
            }
            for r in e.reasons
        ],
    }


def _summary(reasons: Any) -> str:
    """Target-level reasons in full; per-opportunity ones grouped by station, the first few shown, the rest counted."""
    from collections import Counter

    general = [f"{r.code.name}: {r.detail}" for r in reasons if r.start is None]
    by_station: dict[str, Counter[str]] = {}
    winners: dict[str, Counter[str]] = {}
    for r in reasons:
        if r.start is not None:
            by_station.setdefault(r.station_id, Counter())[r.code.name] += 1
            for o in r.occupants:
                winners.setdefault(r.station_id, Counter())[o.target_id] += 1
    ranked = sorted(by_station, key=lambda s: (-sum(by_station[s].values()), s))
    shown = []
    for st in ranked[:_STATIONS_SHOWN]:
        codes = ", ".join(f"{n} {c}" for c, n in by_station[st].most_common())
        top = winners.get(st, Counter()).most_common(2)
        to = f" (to {', '.join(w for w, _ in top)})" if top else ""
        shown.append(f"at {st}: {codes}{to}")
    rest = ranked[_STATIONS_SHOWN:]
    if rest:
        n = sum(sum(by_station[s].values()) for s in rest)
        shown.append(f"+{n} windows at {len(rest)} more stations")
    return "; ".join(general + shown)


def _num(value: float) -> float | None:
    import math

    return value if math.isfinite(value) else None
