"""A satellite pass planned whole before AOS, and the honest statistics of how it was flown.

- `station_rotator_model`: the configured limits (and slew rate) intersected with the travel the rotator itself
  reports (rotctld's `\\dump_state`), so a config allowing 450 degrees against a 360-degree daemon plans inside 360
  instead of failing the job when the daemon refuses a command.
- `plan_pass`: the look angles of the visible part of the job window go through `skymesh.core.rotator.plan_track`
  (wrap / overwind, flip, flip through the zenith) and `reachable_track` (the best path within 90 % of the rotator's
  rate, so that it can catch up after a late command);
  `PassPlan.command_at` is what to command at any instant. Samples the limits cannot reach are `clipped`; samples
  where the rotator is too slow to follow the sky are `rate_limited`. Both are said in the pass record.
- `PassStats`: pointing error (rotator reading vs the agent's own ephemeris at the reading's time), SNR and tracked
  time, accumulated per tracking tick and summarised with percentiles.

Imports: numpy, the agent's config, tracking and driver protocols, `skymesh.core`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from skymesh.agent.config import HardwareLimits
from skymesh.agent.drivers.base import RotatorTravel
from skymesh.agent.tracking import SatelliteTrack
from skymesh.core.rotator import AxisLimits, RotatorModel, plan_track, reachable_track

__all__ = ["PassPlan", "PassStats", "angular_separation_deg", "park_position", "plan_pass", "station_rotator_model"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Where the best path the rotator's rate allows is further than this from the sky, the pass is said to be rate limited
# (the pointing goal is 1 degree).
_RATE_LIMITED_DEG = 1.0


def station_rotator_model(limits: HardwareLimits, travel: RotatorTravel | None) -> RotatorModel:
    """Configured limits, narrowed to what the rotator reports (when it reports anything)."""
    rate = limits.slew_rate_deg_s
    config = RotatorModel(
        azimuth=AxisLimits(limits.azimuth_min_deg, limits.azimuth_max_deg, rate),
        elevation=AxisLimits(limits.elevation_min_deg, limits.elevation_max_deg, rate),
        park_azimuth_deg=limits.park_azimuth_deg,
        park_elevation_deg=limits.park_elevation_deg,
    )
    if travel is None:
        return config
    reported = RotatorModel(
        azimuth=AxisLimits(travel.azimuth_min_deg, travel.azimuth_max_deg, rate),
        elevation=AxisLimits(travel.elevation_min_deg, travel.elevation_max_deg, rate),
    )
    return config.intersect(reported)


def angular_separation_deg(az1_deg: float, el1_deg: float, az2_deg: float, el2_deg: float) -> float:
    """Great-circle angle between two directions. Valid for mechanical angles too: (az + 180, 180 - el) is the
    same direction as (az, el) in this formula, and azimuth outside 0..360 wraps through the cosine."""
    a1, e1, a2, e2 = map(math.radians, (az1_deg, el1_deg, az2_deg, el2_deg))
    c = math.sin(e1) * math.sin(e2) + math.cos(e1) * math.cos(e2) * math.cos(a1 - a2)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def park_position(model: RotatorModel, current_azimuth_deg: float) -> tuple[float, float]:
    """The configured park position as a mechanical command inside the travel, on the wrap nearest to now."""
    base = model.park_azimuth_deg % 360.0
    options = [base + 360.0 * k for k in range(-2, 3)]
    inside = [a for a in options if model.azimuth.min_deg <= a <= model.azimuth.max_deg]
    if inside:
        azimuth = min(inside, key=lambda a: abs(a - current_azimuth_deg))
    else:
        azimuth = min(max(base, model.azimuth.min_deg), model.azimuth.max_deg)
    elevation = min(max(model.park_elevation_deg, model.elevation.min_deg), model.elevation.max_deg)
    return azimuth, elevation


@dataclass(frozen=True)
class PassPlan:
    """The whole job window on a 1 s grid: the sky, the mechanical commands, and where they fall short."""

    start: datetime
    t_s: FloatArray
    command_azimuth_deg: FloatArray  # mechanical
    command_elevation_deg: FloatArray
    visible: BoolArray  # target above the horizon
    clipped: BoolArray  # visible but outside the travel limits
    rate_limited: BoolArray  # visible, inside the limits, but too fast for the rotator
    mode: str
    max_rate_needed_deg_s: float

    def command_at(self, when: datetime) -> tuple[float, float]:
        t = (when - self.start).total_seconds()
        return (
            float(np.interp(t, self.t_s, self.command_azimuth_deg)),
            float(np.interp(t, self.t_s, self.command_elevation_deg)),
        )

    @property
    def first_command(self) -> tuple[float, float]:
        """Where to pre-position: the first visible sample's command (the start of the window if none is)."""
        i = int(np.argmax(self.visible)) if self.visible.any() else 0
        return float(self.command_azimuth_deg[i]), float(self.command_elevation_deg[i])

    def _seconds(self, mask: BoolArray) -> float:
        return float(mask.sum()) * (float(self.t_s[1] - self.t_s[0]) if self.t_s.size > 1 else 0.0)

    @property
    def clipped_s(self) -> float:
        return self._seconds(self.clipped)

    @property
    def rate_limited_s(self) -> float:
        return self._seconds(self.rate_limited)


# Plan for a little less than the rotator's top rate: a track that needs every last degree per second leaves no
# time to catch up after a late command, and the lag then only grows (seen on rotctld's dummy at full rate).
RATE_HEADROOM = 0.9


def _with_headroom(model: RotatorModel) -> RotatorModel:
    az, el = model.azimuth, model.elevation
    return dataclasses.replace(
        model,
        azimuth=dataclasses.replace(az, rate_deg_s=az.rate_deg_s * RATE_HEADROOM),
        elevation=dataclasses.replace(el, rate_deg_s=el.rate_deg_s * RATE_HEADROOM),
    )


def plan_pass(track: SatelliteTrack, model: RotatorModel, current_azimuth_deg: float | None) -> PassPlan:
    """Plan the visible part of `track` for `model`; outside it, hold the first / last visible command."""
    t, sky_az, sky_el = track.samples()
    visible = sky_el > 0.0
    n = t.size
    if visible.any():
        first = int(np.argmax(visible))
        last = n - 1 - int(np.argmax(visible[::-1]))
    else:
        first, last = 0, n - 1
    part = slice(first, last + 1)
    model = _with_headroom(model)
    el_floor = model.elevation.min_deg
    # Below the rotator's lowest elevation it points as low as it can: said as clipped, not planned as unreachable.
    plan = plan_track(
        model, t[part], sky_az[part], np.maximum(sky_el[part], el_floor), current_azimuth_deg=current_azimuth_deg
    )
    cmd_az_part, cmd_el_part = reachable_track(model, t[part], plan)
    cmd_az = np.empty(n)
    cmd_el = np.empty(n)
    cmd_az[part], cmd_el[part] = cmd_az_part, cmd_el_part
    cmd_az[:first], cmd_el[:first] = cmd_az_part[0], cmd_el_part[0]
    cmd_az[last + 1 :], cmd_el[last + 1 :] = cmd_az_part[-1], cmd_el_part[-1]
    clipped = np.zeros(n, dtype=bool)
    clipped[part] = ~plan.reachable | (sky_el[part] < el_floor)
    deviation = _separation_deg(plan.azimuth_deg, plan.elevation_deg, cmd_az_part, cmd_el_part)
    rate_limited = np.zeros(n, dtype=bool)
    rate_limited[part] = (deviation > _RATE_LIMITED_DEG) & ~clipped[part]
    return PassPlan(
        start=track.start,
        t_s=t,
        command_azimuth_deg=cmd_az,
        command_elevation_deg=cmd_el,
        visible=visible,
        clipped=clipped & visible,
        rate_limited=rate_limited & visible,
        mode=plan.mode,
        max_rate_needed_deg_s=plan.max_rate_needed_deg_s,
    )


def _separation_deg(az1: FloatArray, el1: FloatArray, az2: FloatArray, el2: FloatArray) -> FloatArray:
    a1, e1, a2, e2 = (np.radians(x) for x in (az1, el1, az2, el2))
    c = np.sin(e1) * np.sin(e2) + np.cos(e1) * np.cos(e2) * np.cos(a1 - a2)
    out: FloatArray = np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
    return out


@dataclass
class PassStats:
    """Per-tick samples of one pass; `dt_s` weights each sample by the time it stood for."""

    pointing_error_deg: list[float] = field(default_factory=list)
    pointing_dt_s: list[float] = field(default_factory=list)
    snr_db: list[float] = field(default_factory=list)
    snr_dt_s: list[float] = field(default_factory=list)
    visible_s: float = 0.0
    hardware_faults: int = 0

    def add_pointing(self, error_deg: float, dt_s: float) -> None:
        self.pointing_error_deg.append(error_deg)
        self.pointing_dt_s.append(dt_s)

    def add_snr(self, snr_db: float, dt_s: float) -> None:
        self.snr_db.append(snr_db)
        self.snr_dt_s.append(dt_s)

    @property
    def tracked_s(self) -> float:
        return float(sum(self.pointing_dt_s))

    def pointing_percentile_deg(self, q: float) -> float:
        return float(np.percentile(self.pointing_error_deg, q)) if self.pointing_error_deg else 0.0

    def pointing_above_s(self, threshold_deg: float) -> float:
        err = np.asarray(self.pointing_error_deg)
        return float(np.asarray(self.pointing_dt_s)[err > threshold_deg].sum()) if err.size else 0.0

    def snr_percentile_db(self, q: float) -> float:
        return float(np.percentile(self.snr_db, q)) if self.snr_db else 0.0

    def snr_above_s(self, threshold_db: float) -> float:
        snr = np.asarray(self.snr_db)
        return float(np.asarray(self.snr_dt_s)[snr >= threshold_db].sum()) if snr.size else 0.0
