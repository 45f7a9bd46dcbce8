"""Reason codes for "why was this not scheduled?" and the per-target log the mapping fills while it filters.

The codes have the values of `skymesh.api.scheduler.v1.ReasonCode`, so the wire conversion is a cast.
Imports: the standard library only.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["FilterLog", "Occupant", "Reason", "ReasonCode"]


class ReasonCode(enum.IntEnum):
    NEVER_VISIBLE = 1
    BELOW_HORIZON_MASK = 2
    DAYLIGHT = 3
    AIRMASS = 4
    MOON = 5
    NO_CAPABLE_STATION = 6
    STATION_OFFLINE = 7
    STATION_UNAVAILABLE = 8
    LOST_TO_HIGHER_PRIORITY = 9
    DEMAND_MET = 10
    TOO_FAINT = 11
    TOO_SHORT = 12
    SPACECRAFT_POWER = 13
    TIME_LIMIT = 14
    HOUR_ANGLE = 15
    WEATHER = 16
    PARTIALLY_MET = 17
    # An opportunity's station is taken, in the final plan, by jobs of no higher priority that together are worth at
    # least as much as the opportunity (value = priority x seconds, with boosts).
    LOST_TO_HIGHER_VALUE = 18
    # The target's own contacts in the plan rule the opportunity out: its per-period cap, one contact at a time,
    # cadence, per-station cap or total.
    LOST_TO_SAME_SATELLITE_LIMIT = 19
    # The station is busy with a job already dispatched (frozen), which the planner may not move.
    LOST_TO_FROZEN_JOB = 20


@dataclass(frozen=True)
class Occupant:
    """A job of the final plan (or a frozen one) that occupies a station during an opportunity it explains."""

    target_id: str
    station_id: str
    start: datetime
    end: datetime
    priority: float
    value: float
    job_id: str = ""
    frozen: bool = False


@dataclass(frozen=True)
class Reason:
    """Why a target (or one of its opportunities) is not in the plan.

    Reasons about one opportunity carry its window (`start`, `end`), its `value` and the jobs that occupy its station
    then (`occupants`, all of them, each with priority and value); `winner_target_id` names the most valuable one.
    """

    code: ReasonCode
    detail: str = ""
    station_id: str = ""
    winner_target_id: str = ""
    start: datetime | None = None
    end: datetime | None = None
    value: float = 0.0
    occupants: tuple[Occupant, ...] = ()


@dataclass
class FilterLog:
    """What the mapping threw away, per target: (code, station_id) -> how many windows or stations it cost."""

    entries: dict[int, dict[tuple[ReasonCode, str], int]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, target: int, code: ReasonCode, station_id: str = "", count: int = 1) -> None:
        if count <= 0:
            return
        d = self.entries[target]
        d[(code, station_id)] = d.get((code, station_id), 0) + count

    def for_target(self, target: int) -> dict[tuple[ReasonCode, str], int]:
        return dict(self.entries.get(target, {}))
