"""How an az/el rotator really moves: per-axis slew times, cable wrap and flip, planned once for a whole pass.

One model serves both ends: the scheduler uses `slew_time_s` to pad consecutive contacts at a station, and the agent
uses `plan_track` before AOS to choose the wrap (or flip) it will follow, so that a plan the scheduler calls feasible
is one the hardware can fly. Angles are degrees; a *mechanical* azimuth may lie outside 0..360 (overwind, e.g. a
450-degree or -180..540 rotator), a *sky* azimuth is always in [0, 360).

Each axis moves on its own with a trapezoidal speed profile (rate limit, optional acceleration limit); a slew takes
as long as its slower axis. Flip mode (rotators whose elevation reaches 180 degrees) points at sky (az, el) with the
mechanical pair (az + 180, 180 - el), which turns an overhead pass that crosses the azimuth stop into one without a
long unwind. Flipping at the culmination (`flip_after_tca` / `flip_before_tca`) is how such a rotator flies through
the zenith: azimuth stays near the pass's ground-track direction while elevation sweeps past 90, so the keyhole's
azimuth whip (tens of degrees per second near the zenith) disappears.

When the rotator is too slow for some part of a track (the keyhole of a 90-degree rotator), `reachable_track`
gives the best path it can fly: each axis limited to its rate, leading into the fast part as much as it lags out of
it (the mean of a forward and a backward rate-limited follow, which is itself within the rate limit).

Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from skymesh.core.errors import InvalidArgument

__all__ = [
    "AxisLimits",
    "RotatorModel",
    "TrackPlan",
    "axis_move_time_s",
    "plan_track",
    "reachable_track",
    "slew_time_s",
]

FloatArray = npt.NDArray[np.float64]
TrackMode = Literal["normal", "flip", "flip_after_tca", "flip_before_tca"]
_MODE_RANK: dict[TrackMode, int] = {"normal": 0, "flip": 1, "flip_after_tca": 2, "flip_before_tca": 3}


@dataclass(frozen=True, slots=True)
class AxisLimits:
    """One axis: its travel in degrees, its top rate and (0 = unlimited) its acceleration."""

    min_deg: float
    max_deg: float
    rate_deg_s: float
    accel_deg_s2: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.min_deg) and np.isfinite(self.max_deg) and self.min_deg < self.max_deg):
            raise InvalidArgument(f"axis range {self.min_deg}..{self.max_deg} is empty", field="min_deg")
        if not (np.isfinite(self.rate_deg_s) and self.rate_deg_s > 0):
            raise InvalidArgument("must be a positive number", field="rate_deg_s")
        if not (np.isfinite(self.accel_deg_s2) and self.accel_deg_s2 >= 0):
            raise InvalidArgument("must be zero (unlimited) or positive", field="accel_deg_s2")

    @property
    def span_deg(self) -> float:
        return self.max_deg - self.min_deg


@dataclass(frozen=True, slots=True)
class RotatorModel:
    """An az/el rotator (or alt-az mount used the same way) with its travel, speeds and park position."""

    azimuth: AxisLimits = AxisLimits(0.0, 360.0, 6.0)
    elevation: AxisLimits = AxisLimits(0.0, 90.0, 6.0)
    park_azimuth_deg: float = 0.0
    park_elevation_deg: float = 90.0

    @property
    def can_flip(self) -> bool:
        """Elevation travel reaches past the zenith to the far horizon (a 180-degree elevation axis)."""
        return self.elevation.max_deg >= 180.0 - 1e-9 and self.elevation.min_deg <= 0.0 + 1e-9

    def intersect(self, other: RotatorModel) -> RotatorModel:
        """Travel allowed by both (e.g. the agent's config and what the rotctld daemon reports); slower rates win."""
        return RotatorModel(
            azimuth=_intersect_axis(self.azimuth, other.azimuth, "azimuth"),
            elevation=_intersect_axis(self.elevation, other.elevation, "elevation"),
            park_azimuth_deg=self.park_azimuth_deg,
            park_elevation_deg=self.park_elevation_deg,
        )


def _intersect_axis(a: AxisLimits, b: AxisLimits, name: str) -> AxisLimits:
    low, high = max(a.min_deg, b.min_deg), min(a.max_deg, b.max_deg)
    if low >= high:
        raise InvalidArgument(f"{name} ranges {a.min_deg}..{a.max_deg} and {b.min_deg}..{b.max_deg} do not overlap")
    accels = [x for x in (a.accel_deg_s2, b.accel_deg_s2) if x > 0]
    return AxisLimits(low, high, min(a.rate_deg_s, b.rate_deg_s), min(accels) if accels else 0.0)


def axis_move_time_s(delta_deg: float | FloatArray, axis: AxisLimits) -> float | FloatArray:
    """Seconds to move one axis by |delta_deg| from rest to rest (trapezoid; triangle when the move is short)."""
    d = np.abs(np.asarray(delta_deg, dtype=np.float64))
    v = axis.rate_deg_s
    if axis.accel_deg_s2 <= 0:
        out = d / v
    else:
        a = axis.accel_deg_s2
        ramp_deg = v * v / a  # distance spent accelerating and braking at full rate
        out = np.where(d >= ramp_deg, d / v + v / a, 2.0 * np.sqrt(d / a))
    return float(out) if out.ndim == 0 else out


def slew_time_s(
    model: RotatorModel,
    from_az_deg: float | FloatArray,
    from_el_deg: float | FloatArray,
    to_az_deg: float | FloatArray,
    to_el_deg: float | FloatArray,
) -> float | FloatArray:
    """Time for a slew between two sky directions: each axis on its own, the slower one decides.

    Without a known mechanical wrap the azimuth move is the shorter way round (what a planner can assume before the
    agent chooses the wrap); the agent's `plan_track` pre-positions with the real mechanical angles.
    """
    daz = np.abs((np.asarray(to_az_deg, dtype=np.float64) - from_az_deg + 180.0) % 360.0 - 180.0)
    del_ = np.asarray(to_el_deg, dtype=np.float64) - np.asarray(from_el_deg, dtype=np.float64)
    out = np.maximum(axis_move_time_s(daz, model.azimuth), axis_move_time_s(del_, model.elevation))
    return float(out) if np.ndim(out) == 0 else np.asarray(out)


@dataclass(frozen=True, slots=True)
class TrackPlan:
    """The mechanical path chosen for a pass, and how well the rotator can follow it."""

    mode: TrackMode
    azimuth_deg: FloatArray  # mechanical, may be outside 0..360
    elevation_deg: FloatArray  # mechanical, up to 180 in flip mode
    reachable: npt.NDArray[np.bool_]  # inside travel limits at that sample
    max_rate_needed_deg_s: float  # fastest axis rate the track asks for
    rate_ok: bool  # the rotator is fast enough everywhere

    @property
    def start(self) -> tuple[float, float]:
        return float(self.azimuth_deg[0]), float(self.elevation_deg[0])

    @property
    def within_limits(self) -> bool:
        return bool(self.reachable.all())


def _unwrap_deg(az_deg: FloatArray) -> FloatArray:
    return np.rad2deg(np.unwrap(np.deg2rad(az_deg)))


def _best_offset(path: FloatArray, axis: AxisLimits, current_deg: float | None) -> float:
    """The multiple of 360 that puts most of `path` inside the axis travel (ties: least move from `current_deg`)."""
    lo_k = int(np.floor((axis.min_deg - path.max()) / 360.0)) - 1
    hi_k = int(np.ceil((axis.max_deg - path.min()) / 360.0)) + 1
    best: tuple[int, float, float] | None = None
    for k in range(lo_k, hi_k + 1):
        shifted = path + 360.0 * k
        inside = int(((shifted >= axis.min_deg - 1e-9) & (shifted <= axis.max_deg + 1e-9)).sum())
        move = abs(shifted[0] - current_deg) if current_deg is not None else abs(shifted[0] - axis.min_deg)
        key = (-inside, move)
        if best is None or key < (best[0], best[1]):
            best = (-inside, move, 360.0 * k)
    assert best is not None
    return best[2]


def _flipped_mask(mode: TrackMode, el: FloatArray) -> npt.NDArray[np.bool_]:
    after_tca = np.arange(el.size) > int(np.argmax(el))
    if mode == "flip":
        return np.ones(el.size, dtype=bool)
    if mode == "flip_after_tca":
        return after_tca
    if mode == "flip_before_tca":
        return ~after_tca
    return np.zeros(el.size, dtype=bool)


def _candidate(
    model: RotatorModel, mode: TrackMode, t_s: FloatArray, az: FloatArray, el: FloatArray, current: float | None
) -> TrackPlan:
    flipped = _flipped_mask(mode, el)
    az = np.where(flipped, (az + 180.0) % 360.0, az)
    el = np.where(flipped, 180.0 - el, el)
    path = _unwrap_deg(az)
    path = path + _best_offset(path, model.azimuth, current)
    reachable = (
        (path >= model.azimuth.min_deg - 1e-9)
        & (path <= model.azimuth.max_deg + 1e-9)
        & (el >= model.elevation.min_deg - 1e-9)
        & (el <= model.elevation.max_deg + 1e-9)
    )
    if len(t_s) > 1:
        dt = np.maximum(np.diff(t_s), 1e-9)
        az_rate = float(np.max(np.abs(np.diff(path)) / dt))
        el_rate = float(np.max(np.abs(np.diff(el)) / dt))
    else:
        az_rate = el_rate = 0.0
    rate_ok = az_rate <= model.azimuth.rate_deg_s + 1e-9 and el_rate <= model.elevation.rate_deg_s + 1e-9
    return TrackPlan(mode, path, el.copy(), reachable, max(az_rate, el_rate), rate_ok)


def plan_track(
    model: RotatorModel,
    t_s: FloatArray,
    azimuth_deg: FloatArray,
    elevation_deg: FloatArray,
    *,
    current_azimuth_deg: float | None = None,
) -> TrackPlan:
    """Choose the wrap (and flip, where the rotator has one) so the whole pass is flown without an unwind.

    Preference: every sample reachable, then the rotator fast enough (else the track whose `reachable_track` is off
    by more than 5 degrees for the fewest samples, then by more than 1 degree, then by the least), then normal over
    flip modes, then the shortest pre-positioning move. Flip mode shifts the whole track's azimuth by 180 degrees, which
    moves a north-crossing pass away from the azimuth stop; it does not slow the keyhole (azimuth still sweeps fast
    near the zenith). Flipping at the culmination does: it is chosen for near-overhead passes, and never for a low
    pass (the jump at the culmination is far beyond any rotator's rate).
    When no candidate reaches every sample, the one that reaches the most is returned with `reachable` saying where
    it cannot point.
    """
    t = np.asarray(t_s, dtype=np.float64)
    az = np.asarray(azimuth_deg, dtype=np.float64) % 360.0
    el = np.asarray(elevation_deg, dtype=np.float64)
    if t.shape != az.shape or t.shape != el.shape or t.size == 0:
        raise InvalidArgument("time, azimuth and elevation must be non-empty and of one length", field="t_s")
    modes: list[TrackMode] = list(_MODE_RANK) if model.can_flip else ["normal"]
    candidates = [_candidate(model, m, t, az, el, current_azimuth_deg) for m in modes]

    def key(plan: TrackPlan) -> tuple[int, int, tuple[int, int, float], int, float]:
        move = abs(plan.azimuth_deg[0] - current_azimuth_deg) if current_azimuth_deg is not None else 0.0
        if plan.rate_ok:
            return (-int(plan.reachable.sum()), 0, (0, 0, 0.0), _MODE_RANK[plan.mode], move)
        # Too slow somewhere for every candidate: the one whose best reachable path loses the target least.
        misses = _misses(_separation_deg(*reachable_track(model, t, plan), az, el))
        return (-int(plan.reachable.sum()), 1, misses, _MODE_RANK[plan.mode], move)

    return min(candidates, key=key)


def _misses(error_deg: FloatArray) -> tuple[int, int, float]:
    """How badly a path misses: samples off by more than 5 degrees (the signal is lost), then by more than 1 degree
    (the pointing goal), then the worst miss. Fewer large misses beat fewer small ones."""
    return int((error_deg > 5.0).sum()), int((error_deg > 1.0).sum()), float(error_deg.max())


def _separation_deg(az1: FloatArray, el1: FloatArray, az2: FloatArray, el2: FloatArray) -> FloatArray:
    a1, e1, a2, e2 = (np.radians(x) for x in (az1, el1, az2, el2))
    c = np.sin(e1) * np.sin(e2) + np.cos(e1) * np.cos(e2) * np.cos(a1 - a2)
    out: FloatArray = np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
    return out


def _into_travel(az_deg: FloatArray, axis: AxisLimits) -> FloatArray:
    out = np.clip(az_deg, axis.min_deg, axis.max_deg)
    for k in (-2, -1, 1, 2):
        shifted = az_deg + 360.0 * k
        fits = (out != az_deg) & (shifted >= axis.min_deg) & (shifted <= axis.max_deg)
        out = np.where(fits, shifted, out)
    return out


def _rate_limited(path: FloatArray, t_s: FloatArray, rate_deg_s: float) -> FloatArray:
    out = np.empty_like(path)
    out[0] = path[0]
    steps = np.diff(t_s) * rate_deg_s
    for i in range(1, path.size):  # sequential by nature; once per pass, a few thousand samples at most
        out[i] = out[i - 1] + float(np.clip(path[i] - out[i - 1], -steps[i - 1], steps[i - 1]))
    return out


def reachable_track(model: RotatorModel, t_s: FloatArray, plan: TrackPlan) -> tuple[FloatArray, FloatArray]:
    """The mechanical (azimuth_deg, elevation_deg) path the rotator can really fly for `plan`.

    Samples outside the azimuth travel move to another turn inside it where there is one (the unwind a rotator
    without overwind cannot avoid on a pass across its stop; the rate limit below makes it a slew), else they are
    clipped to the travel; then, per axis, the mean of a forward rate-limited follow (starting on
    the track) and a backward one (ending on it). Where the track is within the rate both equal the track; around a
    part too fast for the rotator the path starts turning early and finishes late, which halves the worst lag of a
    plain follower. Two such paths are tried (see `_feasible`); the one that misses the track least wins
    (`_misses`). Acceleration is not modelled here (rate only).
    """
    t = np.asarray(t_s, dtype=np.float64)
    az = _into_travel(plan.azimuth_deg, model.azimuth)
    el = np.clip(plan.elevation_deg, model.elevation.min_deg, model.elevation.max_deg)
    if t.size < 2 or (plan.rate_ok and plan.within_limits):
        return az, el
    options = [
        (_feasible(az, t, model.azimuth.rate_deg_s, boost), _feasible(el, t, model.elevation.rate_deg_s, boost))
        for boost in (1.0, 2.0)
    ]

    return min(options, key=lambda option: _misses(_separation_deg(option[0], option[1], az, el)))


def _feasible(path: FloatArray, t: FloatArray, rate_deg_s: float, boost: float) -> FloatArray:
    """Mean of a forward and a backward follow at `boost` times the rate, followed again at the rate itself.

    boost 1 spreads a fast part evenly before and after it (best for a smooth sweep such as a keyhole); boost 2
    crosses a jump (an unwind) at full rate, starting half-way before it.
    """
    forward = _rate_limited(path, t, rate_deg_s * boost)
    backward = _rate_limited(path[::-1], -t[::-1], rate_deg_s * boost)[::-1]
    mean = 0.5 * (forward + backward)
    if boost == 1.0:
        return mean
    forward = _rate_limited(mean, t, rate_deg_s)
    backward = _rate_limited(mean[::-1], -t[::-1], rate_deg_s)[::-1]
    out: FloatArray = 0.5 * (forward + backward)
    return out
