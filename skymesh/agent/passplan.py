"""A satellite pass planned whole before AOS, and the honest statistics of how it was flown.

- `station_rotator_model`: the configured limits (and slew rate) intersected with the travel the rotator itself
  reports (rotctld's `\\dump_state`), so a config allowing 450 degrees against a 360-degree daemon plans inside 360
  instead of failing the job when the daemon refuses a command.
- `plan_pass`: the look angles of the visible part of the job window go through `plan_track` (wrap / overwind, flip,
  flip through the zenith) and `reachable_track` (the best path within 90 % of the rotator's rate, so that it can
  catch up after a late command), from `skymesh.core.rotator_scalar`: `skymesh.core.rotator`'s model in plain Python;
  `PassPlan.command_at` is what to command at any instant. Samples the limits cannot reach are `clipped`; samples
  where the rotator is too slow to follow the sky are `rate_limited`. Both are said in the pass record.
- `PassStats`: pointing error (rotator reading vs the agent's own ephemeris at the reading's time), SNR and tracked
  time, accumulated per tracking tick and summarised with percentiles.

Pure Python (a pass is a few hundred samples; numpy would cost a ground-station agent 15 MB). Imports: the
standard library, the agent's config, tracking and driver protocols, `skymesh.core` (not `skymesh.core.rotator`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime

from skymesh.agent.config import HardwareLimits
from skymesh.agent.drivers.base import RotatorTravel
from skymesh.agent.tracking import SatelliteTrack, interpolate
from skymesh.core.rotator_scalar import AxisLimits, RotatorModel, plan_track, reachable_track, separation_deg
from skymesh.core.sphere import separation_deg as angular_separation_deg  # re-exported: the agent's pointing error

__all__ = ["PassPlan", "PassStats", "angular_separation_deg", "park_position", "plan_pass", "station_rotator_model"]

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
    t_s: tuple[float, ...]
    command_azimuth_deg: tuple[float, ...]  # mechanical
    command_elevation_deg: tuple[float, ...]
    visible: tuple[bool, ...]  # target above the horizon
    clipped: tuple[bool, ...]  # visible but outside the travel limits
    rate_limited: tuple[bool, ...]  # visible, inside the limits, but too fast for the rotator
    mode: str
    max_rate_needed_deg_s: float

    def command_at(self, when: datetime) -> tuple[float, float]:
        t = (when - self.start).total_seconds()
        return interpolate(t, self.t_s, self.command_azimuth_deg), interpolate(t, self.t_s, self.command_elevation_deg)

    @property
    def first_command(self) -> tuple[float, float]:
        """Where to pre-position: the first visible sample's command (the start of the window if none is)."""
        i = self.visible.index(True) if any(self.visible) else 0
        return self.command_azimuth_deg[i], self.command_elevation_deg[i]

    def _seconds(self, mask: tuple[bool, ...]) -> float:
        return sum(mask) * (self.t_s[1] - self.t_s[0] if len(self.t_s) > 1 else 0.0)

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
    visible = [e > 0.0 for e in sky_el]  # NaN (not propagated) is not visible
    n = len(t)
    if any(visible):
        first = visible.index(True)
        last = n - 1 - visible[::-1].index(True)
    else:
        first, last = 0, n - 1
    part = slice(first, last + 1)
    model = _with_headroom(model)
    el_floor = model.elevation.min_deg
    # Below the rotator's lowest elevation it points as low as it can: said as clipped, not planned as unreachable.
    plan = plan_track(
        model, t[part], sky_az[part], [max(e, el_floor) for e in sky_el[part]], current_azimuth_deg=current_azimuth_deg
    )
    cmd_az_part, cmd_el_part = reachable_track(model, t[part], plan)
    cmd_az = [cmd_az_part[0]] * first + cmd_az_part + [cmd_az_part[-1]] * (n - 1 - last)
    cmd_el = [cmd_el_part[0]] * first + cmd_el_part + [cmd_el_part[-1]] * (n - 1 - last)
    clipped = [False] * n
    for i, (reachable, e) in enumerate(zip(plan.reachable, sky_el[part], strict=True)):
        clipped[first + i] = not reachable or e < el_floor
    deviation = separation_deg(plan.azimuth_deg, plan.elevation_deg, cmd_az_part, cmd_el_part)
    rate_limited = [False] * n
    for i, off_deg in enumerate(deviation):
        rate_limited[first + i] = off_deg > _RATE_LIMITED_DEG and not clipped[first + i]
    return PassPlan(
        start=track.start,
        t_s=tuple(t),
        command_azimuth_deg=tuple(cmd_az),
        command_elevation_deg=tuple(cmd_el),
        visible=tuple(visible),
        clipped=tuple(c and v for c, v in zip(clipped, visible, strict=True)),
        rate_limited=tuple(r and v for r, v in zip(rate_limited, visible, strict=True)),
        mode=plan.mode,
        max_rate_needed_deg_s=plan.max_rate_needed_deg_s,
    )


def percentile(values: list[float], q: float) -> float:
    """numpy.percentile's default (linear between closest ranks); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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
        return percentile(self.pointing_error_deg, q)

    def pointing_above_s(self, threshold_deg: float) -> float:
        return sum(dt for e, dt in zip(self.pointing_error_deg, self.pointing_dt_s, strict=True) if e > threshold_deg)

    def snr_percentile_db(self, q: float) -> float:
        return percentile(self.snr_db, q)

    def snr_above_s(self, threshold_db: float) -> float:
        return sum(dt for snr, dt in zip(self.snr_db, self.snr_dt_s, strict=True) if snr >= threshold_db)
