"""An az/el rotator's per-pass planning in plain Python: the one implementation, used by the station agent (no
numpy: on a Raspberry Pi numpy costs more, 15 MB of resident memory and most of the agent's budget, than it saves on
a few hundred samples a pass) and, over arrays, by `skymesh.core.rotator` (read its docstring for the rules: per-axis
travel and rate, cable wrap, flip, flipping at the culmination, the reachable path of a rotator too slow for the
keyhole).

The scheduler's vectorised wrap choice (`skymesh.core.rotator.choose_wrap`, `pass_wraps`) must pick the wrap this
planner flies: `tests/core/test_rotator_scalar.py` checks it on random passes and rotators, and
`tests/scheduler/test_cable_wrap.py` on real ones. A change to the wrap rules here belongs there too.

Here: `AxisLimits`, `RotatorModel`, `TrackPlan`, `plan_track`, `reachable_track`, `separation_deg` (slew times stay
with the scheduler). Imports the standard library and `skymesh.core.errors` only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from skymesh.core import sphere
from skymesh.core.errors import InvalidArgument

__all__ = ["AxisLimits", "RotatorModel", "TrackPlan", "plan_track", "reachable_track"]

TrackMode = Literal["normal", "flip", "flip_after_tca", "flip_before_tca"]
_MODE_RANK: dict[TrackMode, int] = {"normal": 0, "flip": 1, "flip_after_tca": 2, "flip_before_tca": 3}
Floats = Sequence[float]


@dataclass(frozen=True, slots=True)
class AxisLimits:
    """One axis: its travel in degrees, its top rate and (0 = unlimited) its acceleration."""

    min_deg: float
    max_deg: float
    rate_deg_s: float
    accel_deg_s2: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_deg) and math.isfinite(self.max_deg) and self.min_deg < self.max_deg):
            raise InvalidArgument(f"axis range {self.min_deg}..{self.max_deg} is empty", field="min_deg")
        if not (math.isfinite(self.rate_deg_s) and self.rate_deg_s > 0):
            raise InvalidArgument("must be a positive number", field="rate_deg_s")
        if not (math.isfinite(self.accel_deg_s2) and self.accel_deg_s2 >= 0):
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


@dataclass(frozen=True, slots=True)
class TrackPlan:
    """The mechanical path chosen for a pass, and how well the rotator can follow it."""

    mode: TrackMode
    azimuth_deg: tuple[float, ...]  # mechanical, may be outside 0..360
    elevation_deg: tuple[float, ...]  # mechanical, up to 180 in flip mode
    reachable: tuple[bool, ...]  # inside travel limits at that sample
    max_rate_needed_deg_s: float  # fastest axis rate the track asks for
    rate_ok: bool  # the rotator is fast enough everywhere

    @property
    def start(self) -> tuple[float, float]:
        return self.azimuth_deg[0], self.elevation_deg[0]

    @property
    def within_limits(self) -> bool:
        return all(self.reachable)


def _unwrap_deg(az_deg: Floats) -> list[float]:
    """numpy.unwrap, in radians as `skymesh.core.rotator` does it (so a step of exactly 180 degrees goes the same
    way): a step of more than half a turn is taken the short way round."""
    rad = [math.radians(a) for a in az_deg]
    out = [math.degrees(rad[0])]
    correction = 0.0
    for prev, cur in itertools.pairwise(rad):
        d = cur - prev
        mod = (d + math.pi) % (2.0 * math.pi) - math.pi
        if mod == -math.pi and d > 0:
            mod = math.pi
        if abs(d) >= math.pi:
            correction += mod - d
        out.append(math.degrees(cur + correction))
    return out


def _best_offset(path: Floats, axis: AxisLimits, current_deg: float | None) -> float:
    """The multiple of 360 that puts most of `path` inside the axis travel (ties: least move from `current_deg`)."""
    lo_k = math.floor((axis.min_deg - max(path)) / 360.0) - 1
    hi_k = math.ceil((axis.max_deg - min(path)) / 360.0) + 1
    best: tuple[int, float, float] | None = None
    low, high = axis.min_deg - 1e-9, axis.max_deg + 1e-9
    for k in range(lo_k, hi_k + 1):
        shift = 360.0 * k
        inside = sum(1 for a in path if low <= a + shift <= high)
        first = path[0] + shift
        move = abs(first - current_deg) if current_deg is not None else abs(first - axis.min_deg)
        if best is None or (-inside, move) < (best[0], best[1]):
            best = (-inside, move, shift)
    assert best is not None
    return best[2]


def _flipped(mode: TrackMode, el: Floats) -> list[bool]:
    tca = max(range(len(el)), key=el.__getitem__)  # first maximum, as numpy.argmax
    if mode == "flip":
        return [True] * len(el)
    if mode == "flip_after_tca":
        return [i > tca for i in range(len(el))]
    if mode == "flip_before_tca":
        return [i <= tca for i in range(len(el))]
    return [False] * len(el)


def _candidate(
    model: RotatorModel, mode: TrackMode, t_s: Floats, az: Floats, el: Floats, current: float | None
) -> TrackPlan:
    flipped = _flipped(mode, el)
    sky_az = [(a + 180.0) % 360.0 if f else a for a, f in zip(az, flipped, strict=True)]
    mech_el = [180.0 - e if f else e for e, f in zip(el, flipped, strict=True)]
    path = _unwrap_deg(sky_az)
    offset = _best_offset(path, model.azimuth, current)
    path = [a + offset for a in path]
    az_lo, az_hi = model.azimuth.min_deg - 1e-9, model.azimuth.max_deg + 1e-9
    el_lo, el_hi = model.elevation.min_deg - 1e-9, model.elevation.max_deg + 1e-9
    reachable = tuple(az_lo <= a <= az_hi and el_lo <= e <= el_hi for a, e in zip(path, mech_el, strict=True))
    az_rate = el_rate = 0.0
    for i in range(1, len(t_s)):
        dt = max(t_s[i] - t_s[i - 1], 1e-9)
        az_rate = max(az_rate, abs(path[i] - path[i - 1]) / dt)
        el_rate = max(el_rate, abs(mech_el[i] - mech_el[i - 1]) / dt)
    rate_ok = az_rate <= model.azimuth.rate_deg_s + 1e-9 and el_rate <= model.elevation.rate_deg_s + 1e-9
    return TrackPlan(mode, tuple(path), tuple(mech_el), reachable, max(az_rate, el_rate), rate_ok)


def plan_track(
    model: RotatorModel,
    t_s: Floats,
    azimuth_deg: Floats,
    elevation_deg: Floats,
    *,
    current_azimuth_deg: float | None = None,
) -> TrackPlan:
    """Choose the wrap (and flip, where the rotator has one) so the whole pass is flown without an unwind.

    Preference: every sample reachable, then the rotator fast enough (else the track whose `reachable_track` is off
    by more than 5 degrees for the fewest samples, then by more than 1 degree, then by the least), then normal over
    flip modes, then the shortest pre-positioning move. Flip mode shifts the whole track's azimuth by 180 degrees,
    which moves a north-crossing pass away from the azimuth stop; it does not slow the keyhole (azimuth still sweeps
    fast near the zenith). Flipping at the culmination does: it is chosen for near-overhead passes, and never for a
    low pass (the jump at the culmination is far beyond any rotator's rate). When no candidate reaches every sample,
    the one that reaches the most is returned with `reachable` saying where it cannot point.
    """
    t = [float(x) for x in t_s]
    az = [float(x) % 360.0 for x in azimuth_deg]
    el = [float(x) for x in elevation_deg]
    if not t or len(t) != len(az) or len(t) != len(el):
        raise InvalidArgument("time, azimuth and elevation must be non-empty and of one length", field="t_s")
    modes: list[TrackMode] = list(_MODE_RANK) if model.can_flip else ["normal"]
    candidates = [_candidate(model, m, t, az, el, current_azimuth_deg) for m in modes]

    def key(plan: TrackPlan) -> tuple[int, int, tuple[int, int, float], int, float]:
        move = abs(plan.azimuth_deg[0] - current_azimuth_deg) if current_azimuth_deg is not None else 0.0
        reached = sum(plan.reachable)
        if plan.rate_ok:
            return (-reached, 0, (0, 0, 0.0), _MODE_RANK[plan.mode], move)
        misses = _misses(separation_deg(*reachable_track(model, t, plan), az, el))
        return (-reached, 1, misses, _MODE_RANK[plan.mode], move)

    return min(candidates, key=key)


def _misses(error_deg: Floats) -> tuple[int, int, float]:
    """How badly a path misses: samples off by more than 5 degrees (the signal is lost), then by more than 1 degree
    (the pointing goal), then the worst miss. Fewer large misses beat fewer small ones."""
    return sum(1 for e in error_deg if e > 5.0), sum(1 for e in error_deg if e > 1.0), max(error_deg)


def separation_deg(az1: Floats, el1: Floats, az2: Floats, el2: Floats) -> list[float]:
    """Great-circle angles between paired directions (mechanical (az + 180, 180 - el) is the same direction)."""
    return [sphere.separation_deg(*pair) for pair in zip(az1, el1, az2, el2, strict=True)]


def _into_travel(az_deg: Floats, axis: AxisLimits) -> list[float]:
    out = []
    for a in az_deg:
        value = min(max(a, axis.min_deg), axis.max_deg)
        for k in (-2, -1, 1, 2):
            shifted = a + 360.0 * k
            if value != a and axis.min_deg <= shifted <= axis.max_deg:
                value = shifted
        out.append(value)
    return out


def _rate_limited(path: Floats, t_s: Floats, rate_deg_s: float) -> list[float]:
    out = [path[0]]
    for i in range(1, len(path)):
        step = (t_s[i] - t_s[i - 1]) * rate_deg_s
        out.append(out[-1] + min(max(path[i] - out[-1], -step), step))
    return out


def reachable_track(model: RotatorModel, t_s: Floats, plan: TrackPlan) -> tuple[list[float], list[float]]:
    """The mechanical (azimuth_deg, elevation_deg) path the rotator can really fly for `plan`.

    Samples outside the azimuth travel move to another turn inside it where there is one (the unwind a rotator
    without overwind cannot avoid on a pass across its stop; the rate limit makes it a slew), else they are clipped
    to the travel; then, per axis, the mean of a forward rate-limited follow (starting on the track) and a backward
    one (ending on it). Where the track is within the rate both equal the track; around a part too fast for the
    rotator the path starts turning early and finishes late, which halves the worst lag of a plain follower. Two
    such paths are tried (see `_feasible`); the one that misses the track least wins (`_misses`).
    Acceleration is not modelled here (rate only).
    """
    t = [float(x) for x in t_s]
    az = _into_travel(plan.azimuth_deg, model.azimuth)
    el = [min(max(e, model.elevation.min_deg), model.elevation.max_deg) for e in plan.elevation_deg]
    if len(t) < 2 or (plan.rate_ok and plan.within_limits):
        return az, el
    options = [
        (_feasible(az, t, model.azimuth.rate_deg_s, boost), _feasible(el, t, model.elevation.rate_deg_s, boost))
        for boost in (1.0, 2.0)
    ]
    return min(options, key=lambda option: _misses(separation_deg(option[0], option[1], az, el)))


def _follow_both_ways(path: Floats, t: Floats, rate_deg_s: float) -> list[float]:
    forward = _rate_limited(path, t, rate_deg_s)
    backward = _rate_limited(path[::-1], [-x for x in t[::-1]], rate_deg_s)[::-1]
    return [0.5 * (f + b) for f, b in zip(forward, backward, strict=True)]


def _feasible(path: Floats, t: Floats, rate_deg_s: float, boost: float) -> list[float]:
    """Mean of a forward and a backward follow at `boost` times the rate, followed again at the rate itself.

    boost 1 spreads a fast part evenly before and after it (best for a smooth sweep such as a keyhole); boost 2
    crosses a jump (an unwind) at full rate, starting half-way before it.
    """
    mean = _follow_both_ways(path, t, rate_deg_s * boost)
    if boost == 1.0:
        return mean
    return _follow_both_ways(mean, t, rate_deg_s)
