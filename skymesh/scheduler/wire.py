"""Converters between `skymesh.api.scheduler.v1` messages and the scheduler's domain types, with validation.

The common types (stations, targets, windows) go through `skymesh.api.convert`; this module adds what is specific
to the scheduler contract. Bad input raises `InvalidArgument` naming the field ("window.end", "solver",
"targets[3].demand.period_s"), which `skymesh.api.errors.grpc_errors` turns into INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from skymesh.api.convert import (
    spacecraft_forecast_to_proto,
    station_from_proto,
    station_to_proto,
    target_from_proto,
    target_to_proto,
    time_window_from_proto,
    time_window_to_proto,
    timestamp_from_datetime,
)
from skymesh.api.scheduler.v1 import scheduler_pb2 as pb
from skymesh.core.errors import InvalidArgument, SkyMeshError
from skymesh.core.model import TimeWindow
from skymesh.scheduler.inputs import (
    Assignment,
    Demand,
    Explanation,
    FrozenJob,
    MappingOptions,
    PlanRequest,
    PlanResult,
    PlanTarget,
    SolverKind,
)
from skymesh.scheduler.pages import ExplanationPage
from skymesh.scheduler.rank import RankedTarget

__all__ = [
    "DEFAULT_EXPLANATION_PAGE_SIZE",
    "MAX_EXPLANATION_PAGE_SIZE",
    "assignments_from_proto",
    "explain_response_to_proto",
    "explanation_page_size",
    "plan_request_from_proto",
    "plan_request_to_proto",
    "plan_response_to_proto",
    "plan_target_from_proto",
    "rank_response_to_proto",
    "solver_from_proto",
    "solver_to_proto",
    "twilight_from_proto",
    "twilight_to_proto",
]

_SOLVERS: dict[int, SolverKind] = {
    pb.SOLVER_UNSPECIFIED: SolverKind.GREEDY,
    pb.SOLVER_GREEDY: SolverKind.GREEDY,
    pb.SOLVER_CPSAT: SolverKind.CPSAT,
    pb.SOLVER_ROLLING: SolverKind.ROLLING,
    pb.SOLVER_EXACT: SolverKind.EXACT,
}


def solver_from_proto(value: int) -> SolverKind:
    if value not in _SOLVERS:
        raise InvalidArgument(
            f"unknown solver {value}; use SOLVER_GREEDY, SOLVER_CPSAT, SOLVER_ROLLING or SOLVER_EXACT", field="solver"
        )
    return _SOLVERS[value]


def solver_to_proto(kind: SolverKind) -> pb.Solver.ValueType:
    if kind == SolverKind.CPSAT:
        return pb.SOLVER_CPSAT
    if kind == SolverKind.ROLLING:
        return pb.SOLVER_ROLLING
    if kind == SolverKind.EXACT:
        return pb.SOLVER_EXACT
    return pb.SOLVER_GREEDY


# Sun altitude (deg) below which it is night for telescopes; unspecified = nautical.
_TWILIGHTS: dict[int, float] = {
    pb.TWILIGHT_UNSPECIFIED: -12.0,
    pb.TWILIGHT_CIVIL: -6.0,
    pb.TWILIGHT_NAUTICAL: -12.0,
    pb.TWILIGHT_ASTRONOMICAL: -18.0,
}


def twilight_from_proto(value: int) -> float:
    """The night's Sun altitude limit in degrees for a `Twilight` value."""
    if value not in _TWILIGHTS:
        raise InvalidArgument(
            f"unknown twilight {value}; use TWILIGHT_CIVIL, TWILIGHT_NAUTICAL or TWILIGHT_ASTRONOMICAL",
            field="twilight",
        )
    return _TWILIGHTS[value]


def twilight_to_proto(sun_altitude_deg: float) -> pb.Twilight.ValueType:
    """The `Twilight` for a Sun altitude limit; one that is none of -6, -12, -18 is sent as unspecified (nautical)."""
    for value in (pb.TWILIGHT_CIVIL, pb.TWILIGHT_NAUTICAL, pb.TWILIGHT_ASTRONOMICAL):
        if _TWILIGHTS[value] == sun_altitude_deg:
            return value
    return pb.TWILIGHT_UNSPECIFIED


# Per-opportunity reasons per page on the wire. Measured on a dense day (20 stations x 400 satellites x 24 h, 2,321
# assignments, 16,767 reasons): all of them 5.5 MB, past gRPC's default 4 MB; a response with 1,000 per page
# 0.55 MB, with 5,000 1.84 MB.
DEFAULT_EXPLANATION_PAGE_SIZE = 1000
MAX_EXPLANATION_PAGE_SIZE = 5000


def explanation_page_size(value: int, field: str) -> int:
    """A page size from the wire: 0 = the default; negative or above the maximum refused."""
    if not 0 <= value <= MAX_EXPLANATION_PAGE_SIZE:
        raise InvalidArgument(f"must be within [0, {MAX_EXPLANATION_PAGE_SIZE}] (0 = 1,000)", field=field)
    return value or DEFAULT_EXPLANATION_PAGE_SIZE


def _prefixed(exc: SkyMeshError, prefix: str) -> SkyMeshError:
    exc.field = f"{prefix}.{exc.field}" if exc.field else prefix
    return exc


def _demand_from_proto(msg: pb.Demand, field: str) -> Demand:
    try:
        for name in ("period_s", "time_critical_boost", "campaign_boost", "cadence_s"):
            if not math.isfinite(getattr(msg, name)):
                raise InvalidArgument("must be a finite number", field=name)
        return Demand(
            max_per_period=msg.max_per_period,
            period_s=msg.period_s,
            redundancy=msg.redundancy,
            time_critical=tuple(
                time_window_from_proto(w, f"time_critical[{i}]") for i, w in enumerate(msg.time_critical)
            ),
            time_critical_boost=msg.time_critical_boost,
            campaign_boost=msg.campaign_boost,
            cadence_s=msg.cadence_s,
            max_per_station=msg.max_per_station,
        )
    except SkyMeshError as exc:
        raise _prefixed(exc, field) from None


def plan_target_from_proto(msg: pb.PlanTarget, field: str) -> PlanTarget:
    if not msg.HasField("target"):
        raise InvalidArgument("is required", field=f"{field}.target")
    target = target_from_proto(msg.target, f"{field}.target")
    return PlanTarget(target, _demand_from_proto(msg.demand, f"{field}.demand"), msg.target.campaign_id)


def plan_request_from_proto(msg: pb.ComputePlanRequest) -> PlanRequest:
    if not msg.HasField("window"):
        raise InvalidArgument("is required", field="window")
    window = time_window_from_proto(msg.window, "window")
    solver = solver_from_proto(msg.solver)
    night_sun_altitude_deg = twilight_from_proto(msg.twilight)
    if not (math.isfinite(msg.time_limit_s) and 0 <= msg.time_limit_s <= 3600):
        raise InvalidArgument("must be within [0, 3600] seconds (0 = default 10 s)", field="time_limit_s")
    if not (math.isfinite(msg.turnaround_s) and 0 <= msg.turnaround_s <= 3600):
        raise InvalidArgument("must be within [0, 3600] seconds (0 = default 60 s)", field="turnaround_s")
    if msg.seed < 0:
        raise InvalidArgument("must not be negative", field="seed")
    page_size = explanation_page_size(msg.explanation_page_size, "explanation_page_size")
    stations = [station_from_proto(s, f"stations[{i}]") for i, s in enumerate(msg.stations)]
    targets = [plan_target_from_proto(t, f"targets[{i}]") for i, t in enumerate(msg.targets)]
    frozen = []
    for i, f in enumerate(msg.frozen):
        if not f.job_id:
            raise InvalidArgument("must not be empty", field=f"frozen[{i}].job_id")
        frozen.append(
            FrozenJob(
                f.job_id,
                f.station_id,
                f.target_id,
                time_window_from_proto(f.window, f"frozen[{i}].window"),
                f.preemptible,
            )
        )
    return PlanRequest(
        window=window,
        stations=stations,
        targets=targets,
        frozen=frozen,
        solver=solver,
        time_limit_s=msg.time_limit_s or 10.0,
        turnaround_s=msg.turnaround_s or 60.0,
        request_id=msg.request_id,
        options=MappingOptions(night_sun_altitude_deg=night_sun_altitude_deg),
        seed=msg.seed,
        explanation_page_size=page_size,
    )


def plan_request_to_proto(req: PlanRequest) -> pb.ComputePlanRequest:
    """The wire form of a request (for clients, `skymesh plan --server` and tests)."""
    msg = pb.ComputePlanRequest(
        solver=solver_to_proto(req.solver),
        time_limit_s=req.time_limit_s,
        turnaround_s=req.turnaround_s,
        request_id=req.request_id,
        twilight=twilight_to_proto(req.options.night_sun_altitude_deg),
        seed=req.seed,
        explanation_page_size=req.explanation_page_size,
    )
    msg.window.CopyFrom(time_window_to_proto(req.window))
    msg.stations.extend(station_to_proto(s) for s in req.stations)
    for pt in req.targets:
        d = pt.demand
        m = msg.targets.add()
        m.target.CopyFrom(target_to_proto(pt.target, pt.campaign_id))
        m.demand.CopyFrom(
            pb.Demand(
                max_per_period=d.max_per_period,
                period_s=d.period_s,
                redundancy=d.redundancy,
                time_critical=[time_window_to_proto(w) for w in d.time_critical],
                time_critical_boost=d.time_critical_boost,
                campaign_boost=d.campaign_boost,
                cadence_s=d.cadence_s,
                max_per_station=d.max_per_station,
            )
        )
    for f in req.frozen:
        msg.frozen.add(job_id=f.job_id, station_id=f.station_id, target_id=f.target_id, preemptible=f.preemptible)
        msg.frozen[-1].window.CopyFrom(time_window_to_proto(f.window))
    return msg


def plan_response_to_proto(result: PlanResult) -> pb.ComputePlanResponse:
    out = pb.ComputePlanResponse(request_id=result.request_id)
    for a in result.assignments:
        m = out.assignments.add(
            station_id=a.station_id,
            target_id=a.target_id,
            max_elevation_deg=a.max_elevation_deg,
            filter=a.filter,
            exposure_s=a.exposure_s,
            exposure_count=a.exposure_count,
            score=a.score,
            job_id=a.job_id,
        )
        m.window.CopyFrom(time_window_to_proto(a.window))
        if a.tca is not None:
            m.tca.CopyFrom(timestamp_from_datetime(a.tca))
    _explanations_to_proto(result.unscheduled, out.unscheduled)
    _explanations_to_proto(result.partially_met, out.partially_met)
    out.next_explanation_page_token = result.next_explanation_page_token
    out.explanation_reasons_total = result.explanation_reasons_total
    s = result.stats
    out.stats.CopyFrom(
        pb.PlanStats(
            solver=solver_to_proto(s.solver),
            objective=s.objective,
            bound=s.bound if math.isfinite(s.bound) else 0.0,
            gap=s.gap,
            runtime_s=s.runtime_s,
            visibility_s=s.visibility_s,
            candidates=s.candidates,
            optimal=s.optimal,
            status=s.status,
            timings_s=s.timings_s,
            greedy_objective=s.greedy_objective if math.isfinite(s.greedy_objective) else 0.0,
        )
    )
    out.spacecraft_forecasts.extend(spacecraft_forecast_to_proto(f) for f in result.spacecraft_forecasts)
    return out


def _explanations_to_proto(explanations: Sequence[Explanation], into: Any) -> None:
    for e in explanations:
        x = into.add(target_id=e.target_id)
        for r in e.reasons:
            m = x.reasons.add(
                code=pb.ReasonCode.ValueType(int(r.code)),
                detail=r.detail,
                station_id=r.station_id,
                winner_target_id=r.winner_target_id,
                value=r.value,
            )
            if r.start is not None and r.end is not None:
                m.window.CopyFrom(time_window_to_proto(TimeWindow(r.start, r.end)))
            for o in r.occupants:
                m.occupants.add(
                    target_id=o.target_id,
                    station_id=o.station_id,
                    window=time_window_to_proto(TimeWindow(o.start, o.end)),
                    priority=o.priority,
                    value=o.value,
                    job_id=o.job_id,
                    frozen=o.frozen,
                )


def explain_response_to_proto(page: ExplanationPage) -> pb.ExplainPlanResponse:
    out = pb.ExplainPlanResponse(next_page_token=page.next_page_token, total_reasons=page.total_reasons)
    _explanations_to_proto(page.unscheduled, out.unscheduled)
    _explanations_to_proto(page.partially_met, out.partially_met)
    return out


def assignments_from_proto(msgs: Sequence[pb.Assignment], field: str = "assignments") -> list[Assignment]:
    """The assignments of a plan sent back by a client (only what identifies them: station, target, window, job)."""
    out: list[Assignment] = []
    for i, a in enumerate(msgs):
        window = time_window_from_proto(a.window, f"{field}[{i}].window")
        out.append(Assignment(a.station_id, a.target_id, window, score=a.score, job_id=a.job_id))
    return out


def rank_response_to_proto(ranked: list[RankedTarget]) -> pb.RankTargetsResponse:
    out = pb.RankTargetsResponse()
    for r in ranked:
        out.targets.add(
            target_id=r.target_id,
            score=r.score,
            altitude_deg=r.altitude_deg,
            airmass=r.airmass,
            remaining_s=r.remaining_s,
        )
    return out
