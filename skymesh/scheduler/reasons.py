"""Reason codes for "why was this not scheduled?" and the per-target log the mapping fills while it filters.

The codes have the values of `skymesh.api.scheduler.v1.ReasonCode`, so the wire conversion is a cast.
Imports: the standard library only.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["FilterLog", "Reason", "ReasonCode"]


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


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    detail: str = ""
    station_id: str = ""
    winner_target_id: str = ""


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
