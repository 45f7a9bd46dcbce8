"""What a planning call takes and gives, in domain terms (the wire form is `skymesh.scheduler.wire`).

Imports: `skymesh.core` and the scheduler's reason codes only.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from skymesh.core.errors import InvalidArgument
from skymesh.core.model import SpacecraftForecast, Station, Target, TimeWindow
from skymesh.scheduler.reasons import Reason

__all__ = [
    "Assignment",
    "Demand",
    "Explanation",
    "FrozenJob",
    "MappingOptions",
    "PlanRequest",
    "PlanResult",
    "PlanStats",
    "PlanTarget",
    "SolverKind",
]


class SolverKind(enum.StrEnum):
    GREEDY = "greedy"
    CPSAT = "cpsat"
    ROLLING = "rolling"
    # The SatNOGS-style order (priority, then earliest start): a baseline for benchmarks, not for production.
    GREEDY_PRIORITY_START = "greedy-priority-start"
    # The clique model as a MIP solved by HiGHS (OR-Tools MathOpt): proves the optimum, given the time.
    EXACT = "exact"


@dataclass(frozen=True)
class Demand:
    """What a target asks of the network beyond "observe once" (see scheduler.proto `Demand`)."""

    max_per_period: int = 0
    period_s: float = 0.0
    redundancy: int = 1
    time_critical: tuple[TimeWindow, ...] = ()
    time_critical_boost: float = 0.0  # multiplier on the priority inside `time_critical`; <= 1 means none
    campaign_boost: float = 0.0  # multiplier on the priority; <= 0 means none
    cadence_s: float = 0.0
    # Geographic diversity: at most this many contacts at one station per `period_s` (the whole plan when period_s
    # is 0); 0 = no limit.
    max_per_station: int = 0

    def __post_init__(self) -> None:
        if self.max_per_period < 0:
            raise InvalidArgument("must not be negative", field="max_per_period")
        if self.max_per_period and not (math.isfinite(self.period_s) and self.period_s > 0):
            raise InvalidArgument("must be positive when max_per_period is set", field="period_s")
        if self.max_per_station < 0:
            raise InvalidArgument("must not be negative", field="max_per_station")
        if not (math.isfinite(self.period_s) and self.period_s >= 0):
            raise InvalidArgument("must be a finite non-negative number", field="period_s")
        if self.redundancy < 0:
            raise InvalidArgument("must not be negative", field="redundancy")
        for name in ("time_critical_boost", "campaign_boost", "cadence_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InvalidArgument("must be a finite non-negative number", field=name)


@dataclass(frozen=True)
class PlanTarget:
    target: Target
    demand: Demand = Demand()
    campaign_id: str = ""

    @property
    def target_id(self) -> str:
        return self.target.target_id


@dataclass(frozen=True)
class FrozenJob:
    job_id: str
    station_id: str
    target_id: str
    window: TimeWindow
    preemptible: bool = False


@dataclass(frozen=True)
class MappingOptions:
    """Knobs of the mapping from stations and targets to opportunities."""

    night_sun_altitude_deg: float = -12.0
    celestial_step_s: float = 300.0  # grid of celestial start options (LCO uses 300 s slices)
    exposure_overhead_s: float = 30.0  # readout + filter change per exposure
    pass_step_s: float = 60.0  # coarse grid of the pass search
    min_pass_s: float = 60.0  # shorter passes are dropped as TOO_SHORT
    preemptible_bonus: float = 1.05  # value multiplier that keeps a preemptible frozen job unless beaten


@dataclass(frozen=True)
class PlanRequest:
    window: TimeWindow
    stations: Sequence[Station]
    targets: Sequence[PlanTarget]
    frozen: Sequence[FrozenJob] = ()
    solver: SolverKind = SolverKind.GREEDY
    time_limit_s: float = 10.0
    turnaround_s: float = 60.0
    request_id: str = ""
    options: MappingOptions = MappingOptions()
    seed: int = 0  # solver seed: the same request and seed give the same plan
    explanation_page_size: int = 0  # reasons per page of explanations; 0 = all of them

    def __post_init__(self) -> None:
        if self.explanation_page_size < 0:
            raise InvalidArgument("must not be negative", field="explanation_page_size")
        if not 0 <= self.seed < 2**31:
            raise InvalidArgument("must be within [0, 2^31)", field="seed")


@dataclass(frozen=True)
class Assignment:
    station_id: str
    target_id: str
    window: TimeWindow
    tca: datetime | None = None
    max_elevation_deg: float = 0.0
    filter: str = ""
    exposure_s: float = 0.0
    exposure_count: int = 0
    score: float = 0.0
    job_id: str = ""


@dataclass(frozen=True)
class Explanation:
    target_id: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class PlanStats:
    solver: SolverKind
    objective: float
    bound: float
    gap: float
    runtime_s: float
    visibility_s: float
    candidates: int
    optimal: bool
    status: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    greedy_objective: float = math.nan  # the warm start's objective (the greedy plan itself for greedy)


@dataclass(frozen=True)
class PlanResult:
    request_id: str
    assignments: tuple[Assignment, ...]
    unscheduled: tuple[Explanation, ...]
    stats: PlanStats
    spacecraft_forecasts: tuple[SpacecraftForecast, ...] = ()  # satellites with a spacecraft profile
    partially_met: tuple[Explanation, ...] = ()  # per-period demand only partly met ("k of n")
    # With `explanation_page_size`: where the next page of explanations starts (see `ExplainPlan`), "" = last page.
    next_explanation_page_token: str = ""
    explanation_reasons_total: int = 0  # reasons over all pages (unscheduled and partially met)
