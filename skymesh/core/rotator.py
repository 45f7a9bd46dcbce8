"""How an az/el rotator really moves: per-axis slew times, cable wrap and flip, planned once for a whole pass.

One model serves both ends: the agent uses `plan_track` before AOS to choose the wrap (or flip) it will follow, and
the scheduler pads consecutive contacts at a station with the slew between the wraps the agent would choose for them
(`pass_wraps`, `wraps_slew_time_s`: `choose_wrap`, the rule `plan_track` decides a fitting pass's wrap by), so that a
plan the scheduler calls feasible is one the hardware can fly, unwinds across the stops included. `slew_time_s` is
the slew the short way round, for stations whose travel is not known.

The per-pass planning (`AxisLimits`, `RotatorModel`, `plan_track`, `reachable_track`) lives once, in plain Python,
in `skymesh.core.rotator_scalar` (the agent on a ground station loads no numpy); here it is re-exported, with
`plan_track` and `reachable_track` taking and giving arrays. The scheduler's parts stay vectorised over passes;
`tests/core/test_rotator_scalar.py` and `tests/scheduler/test_cable_wrap.py` check that their wrap is the planner's.

Angles are degrees; a *mechanical* azimuth may lie outside 0..360 (overwind, e.g. a 450-degree or -180..540
rotator), a *sky* azimuth is always in [0, 360).

Each axis moves on its own with a trapezoidal speed profile (rate limit, optional acceleration limit); a slew takes
as long as its slower axis. Flip mode (rotators whose elevation reaches 180 degrees) points at sky (az, el) with the
mechanical pair (az + 180, 180 - el), which turns an overhead pass that crosses the azimuth stop into one without a
long unwind. Flipping at the culmination (`flip_after_tca` / `flip_before_tca`) is how such a rotator flies through
the zenith: azimuth stays near the pass's ground-track direction while elevation sweeps past 90, so the keyhole's
azimuth whip (tens of degrees per second near the zenith) disappears.

When the rotator is too slow for some part of a track (the keyhole of a 90-degree rotator), `reachable_track`
gives the best path it can fly: each axis limited to its rate, leading into the fast part as much as it lags out of
it (the mean of a forward and a backward rate-limited follow, which is itself within the rate limit).

Imports numpy and `skymesh.core` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from skymesh.core import rotator_scalar as _plain
from skymesh.core.errors import InvalidArgument
from skymesh.core.rotator_scalar import AxisLimits, RotatorModel, TrackMode

__all__ = [
    "AMBIGUOUS_SWEEP_DEG",
    "AxisLimits",
    "PassWraps",
    "RotatorModel",
    "TrackPlan",
    "axis_move_time_s",
    "choose_wrap",
    "pass_slew_time_s",
    "pass_sweep_deg",
    "pass_wraps",
    "pass_wraps_both_ways",
    "plan_track",
    "reachable_track",
    "slew_time_s",
    "wraps_slew_time_one_s",
    "wraps_slew_time_s",
]

FloatArray = npt.NDArray[np.float64]


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


def _fitting_turns(axis: AxisLimits, low_deg: FloatArray, high_deg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The range [k_lo, k_hi] of turns k for which [low, high] + 360 k lies inside the travel (empty: k_lo > k_hi)."""
    k_lo = np.ceil((axis.min_deg - 1e-9 - low_deg) / 360.0)
    k_hi = np.floor((axis.max_deg + 1e-9 - high_deg) / 360.0)
    return k_lo, k_hi


def _turn_toward(current_deg: FloatArray, lowest_start_deg: FloatArray, turns: FloatArray) -> FloatArray:
    """Which of the wraps 0..turns (each +360) starts nearest `current_deg`, the lower one on a tie."""
    # |start + 360 k - current| is convex in k: the nearest k, clipped into 0..turns; ceil(v - 1/2) keeps the lower
    # of two equally near wraps, as the agent's search in increasing k does.
    out: FloatArray = np.clip(np.ceil((current_deg - lowest_start_deg) / 360.0 - 0.5), 0.0, turns)
    return out


def _turn_toward_one(current_deg: float, lowest_start_deg: float, turns: float) -> float:
    """`_turn_toward` for one pass in plain floats (the greedy planner asks one pair at a time)."""
    return min(max(float(math.ceil((current_deg - lowest_start_deg) / 360.0 - 0.5)), 0.0), turns)


def choose_wrap(
    axis: AxisLimits,
    start_deg: float | FloatArray,
    low_deg: float | FloatArray,
    high_deg: float | FloatArray,
    current_deg: float | FloatArray | None = None,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """The wrap the agent flies a pass on: (offset_deg, fits), vectorised over passes.

    A pass's unwrapped azimuth path starts at `start_deg` and spans [low_deg, high_deg]. Among the multiples of 360
    that put the whole path inside the travel, the one whose start is nearest `current_deg` (the rotator's mechanical
    azimuth now; the travel's minimum when unknown), the lower one on a tie. `plan_track` decides every pass that fits
    somewhere this way, and the scheduler times its slews with it. Where no wrap fits (`fits` false) the offset is
    the one covering most of the path in degrees (the agent counts samples there; the scheduler cannot).
    """
    s = np.asarray(start_deg, dtype=np.float64)
    low = np.asarray(low_deg, dtype=np.float64)
    high = np.asarray(high_deg, dtype=np.float64)
    ref = np.full_like(s, axis.min_deg) if current_deg is None else np.asarray(current_deg, dtype=np.float64)
    k_lo, k_hi = _fitting_turns(axis, low, high)
    fits = k_lo <= k_hi
    k = k_lo + _turn_toward(ref, s + 360.0 * k_lo, np.maximum(k_hi - k_lo, 0.0))
    if not fits.all():
        k = np.where(fits, k, _most_overlap_turn(axis, s, low, high, ref))
    return 360.0 * k, fits


def _most_overlap_turn(
    axis: AxisLimits, s: FloatArray, low: FloatArray, high: FloatArray, ref: FloatArray
) -> FloatArray:
    first = int(np.floor((axis.min_deg - float(np.max(high))) / 360.0))
    last = int(np.ceil((axis.max_deg - float(np.min(low))) / 360.0))
    best_k = np.zeros_like(s)
    best_overlap = np.full_like(s, -np.inf)
    best_move = np.full_like(s, np.inf)
    for k in range(first, last + 1):  # a handful of turns, each vectorised over passes
        overlap = np.minimum(high + 360.0 * k, axis.max_deg) - np.maximum(low + 360.0 * k, axis.min_deg)
        move = np.abs(s + 360.0 * k - ref)
        better = (overlap > best_overlap + 1e-9) | ((np.abs(overlap - best_overlap) <= 1e-9) & (move < best_move))
        best_k = np.where(better, float(k), best_k)
        best_overlap = np.where(better, overlap, best_overlap)
        best_move = np.where(better, move, best_move)
    return best_k


# A pass sweeps less than half a turn of azimuth unless it goes nearly through the zenith, where its sweep is close to
# 180 degrees either way; from AOS and LOS alone the direction is then unknown (the culmination's azimuth tells it).
AMBIGUOUS_SWEEP_DEG = 165.0


def _short_sweep(from_az: FloatArray, to_az: FloatArray) -> FloatArray:
    out: FloatArray = (to_az - from_az + 180.0) % 360.0 - 180.0
    return out


def pass_sweep_deg(
    start_azimuth_deg: float | FloatArray,
    end_azimuth_deg: float | FloatArray,
    mid_azimuth_deg: float | FloatArray | None = None,
) -> FloatArray:
    """The signed azimuth a pass sweeps from AOS to LOS: through `mid_azimuth_deg` (the culmination's) where given
    (not NaN), else the short way round (which is ambiguous beyond `AMBIGUOUS_SWEEP_DEG`)."""
    s = np.asarray(start_azimuth_deg, dtype=np.float64)
    e = np.asarray(end_azimuth_deg, dtype=np.float64)
    if mid_azimuth_deg is None:
        return _short_sweep(s, e)
    m = np.asarray(mid_azimuth_deg, dtype=np.float64)
    out: FloatArray = np.where(np.isnan(m), _short_sweep(s, e), _short_sweep(s, m) + _short_sweep(m, e))
    return out


@dataclass(frozen=True, slots=True)
class PassWraps:
    """How passes are flown, as far as it does not depend on where the rotator stands before them (columns).

    Mechanical start and end on the lowest wrap that holds the whole pass, in the mode `plan_track` would choose
    (normal where a wrap holds the pass, else flip where the rotator has one and it helps); `turns` more wraps, each
    360 degrees higher, hold it as well, and the agent takes the one starting nearest the rotator (`at`). A pass no
    wrap holds (`fits` false) is flown with an unwind inside it; its ends are the positions inside the travel.
    """

    start_azimuth_deg: FloatArray
    start_elevation_deg: FloatArray
    end_azimuth_deg: FloatArray
    end_elevation_deg: FloatArray
    turns: FloatArray
    flipped: npt.NDArray[np.bool_]
    fits: npt.NDArray[np.bool_]

    def at(self, current_azimuth_deg: float | FloatArray | None) -> PassWraps:
        """The wrap the agent picks with the rotator at `current_azimuth_deg` (None: unknown, the lowest)."""
        if current_azimuth_deg is None:
            return self
        shift = 360.0 * _turn_toward(
            np.asarray(current_azimuth_deg, dtype=np.float64), self.start_azimuth_deg, self.turns
        )
        return PassWraps(
            self.start_azimuth_deg + shift,
            self.start_elevation_deg,
            self.end_azimuth_deg + shift,
            self.end_elevation_deg,
            np.zeros_like(self.turns),
            self.flipped,
            self.fits,
        )

    def take(self, index: npt.NDArray[np.int64]) -> PassWraps:
        return PassWraps(*(np.asarray(getattr(self, f))[index] for f in self.__slots__))

    def row(self, i: int) -> tuple[float, float, float, float, float]:
        """(start_az, start_el, end_az, end_el, turns) of pass `i` as plain floats."""
        return (
            float(self.start_azimuth_deg[i]),
            float(self.start_elevation_deg[i]),
            float(self.end_azimuth_deg[i]),
            float(self.end_elevation_deg[i]),
            float(self.turns[i]),
        )


def pass_wraps(
    model: RotatorModel,
    start_azimuth_deg: float | FloatArray,
    start_elevation_deg: float | FloatArray,
    end_azimuth_deg: float | FloatArray,
    end_elevation_deg: float | FloatArray,
    *,
    sweep_deg: float | FloatArray | None = None,
) -> PassWraps:
    """`PassWraps` of passes known by their sky ends (AOS, LOS) and the azimuth they sweep between (default: the
    short way round), vectorised. The wrap is `choose_wrap`'s, the one `plan_track` flies.

    Not predicted here: the flips at the culmination, which `plan_track` chooses when the keyhole of a near-overhead
    pass is too fast for the rotator (that needs the whole track).
    """
    az = model.azimuth
    start_az = np.asarray(start_azimuth_deg, dtype=np.float64)
    sweep = pass_sweep_deg(start_az, end_azimuth_deg) if sweep_deg is None else np.asarray(sweep_deg, np.float64)
    s = np.atleast_1d(start_az % 360.0 + np.zeros_like(sweep))
    e = s + sweep
    el0 = np.asarray(start_elevation_deg, dtype=np.float64) + np.zeros_like(s)
    el1 = np.asarray(end_elevation_deg, dtype=np.float64) + np.zeros_like(s)
    low, high = np.minimum(s, e), np.maximum(s, e)
    offset, fits = choose_wrap(az, s, low, high)
    flipped = np.zeros(s.shape, dtype=bool)
    if model.can_flip and not fits.all():
        offset_f, fits_f = choose_wrap(az, s + 180.0, low + 180.0, high + 180.0)
        flipped = ~fits & fits_f
        offset = np.where(flipped, offset_f + 180.0, offset)
        fits = fits | fits_f
    shift = np.where(flipped, 180.0, 0.0)
    k_lo, k_hi = _fitting_turns(az, low + shift, high + shift)
    start, end = s + offset, e + offset
    if not fits.all():
        start = np.where(fits, start, _into_travel(start, az))
        end = np.where(fits, end, _into_travel(end, az))
    return PassWraps(
        start_azimuth_deg=start,
        start_elevation_deg=np.where(flipped, 180.0 - el0, el0),
        end_azimuth_deg=end,
        end_elevation_deg=np.where(flipped, 180.0 - el1, el1),
        turns=np.where(fits, np.maximum(k_hi - k_lo, 0.0), 0.0),
        flipped=flipped,
        fits=np.asarray(fits, dtype=bool),
    )


def pass_wraps_both_ways(
    model: RotatorModel,
    start_azimuth_deg: FloatArray,
    start_elevation_deg: FloatArray,
    end_azimuth_deg: FloatArray,
    end_elevation_deg: FloatArray,
    mid_azimuth_deg: FloatArray | None = None,
) -> tuple[PassWraps, PassWraps]:
    """`pass_wraps` for the sweep, and for the other way round where it is ambiguous (no culmination azimuth and
    at least `AMBIGUOUS_SWEEP_DEG`); elsewhere both are the same."""
    sweep = pass_sweep_deg(start_azimuth_deg, end_azimuth_deg, mid_azimuth_deg)
    unknown = np.ones(sweep.shape, dtype=bool) if mid_azimuth_deg is None else np.isnan(mid_azimuth_deg)
    ambiguous = unknown & (np.abs(sweep) >= AMBIGUOUS_SWEEP_DEG)
    one = pass_wraps(model, start_azimuth_deg, start_elevation_deg, end_azimuth_deg, end_elevation_deg, sweep_deg=sweep)
    if not ambiguous.any():
        return one, one
    other = np.where(ambiguous, sweep - np.copysign(360.0, sweep), sweep)
    two = pass_wraps(model, start_azimuth_deg, start_elevation_deg, end_azimuth_deg, end_elevation_deg, sweep_deg=other)
    return one, two


def wraps_slew_time_s(model: RotatorModel, prev: Sequence[PassWraps], nxt: Sequence[PassWraps]) -> FloatArray:
    """Seconds from the end of passes `prev` to the start of passes `nxt` (aligned rows), as the rotator moves.

    Each previous pass ends on its wrap; the next starts on the wrap the agent picks from there (`PassWraps.at`),
    and the slew is the mechanical move between them, so an unwind across a stop takes its time. What a pairwise
    rule cannot know it takes at its worst, so that every plan it admits can be flown: which of the wraps holding
    the previous pass the agent chose (that depends on where the pass before it left the rotator: on a 450-degree
    rotator a pass within the first 90 degrees of azimuth may end on either turn), and which way round each pass
    sweeps when that is ambiguous (the alternatives in `prev` and `nxt`, see `pass_wraps_both_ways`).
    """
    out = np.zeros(len(prev[0].start_azimuth_deg))
    for a in prev:
        for turn in range(int(a.turns.max(initial=0.0)) + 1):  # 1-3 wraps, each vectorised over the pairs
            end_az = a.end_azimuth_deg + 360.0 * np.minimum(turn, a.turns)
            for b in nxt:
                start = b.at(end_az)
                t = np.maximum(
                    axis_move_time_s(start.start_azimuth_deg - end_az, model.azimuth),
                    axis_move_time_s(start.start_elevation_deg - a.end_elevation_deg, model.elevation),
                )
                out = np.maximum(out, t)
    return out


def wraps_slew_time_one_s(
    model: RotatorModel,
    prev: Sequence[tuple[float, float, float, float, float]],
    nxt: Sequence[tuple[float, float, float, float, float]],
) -> float:
    """`wraps_slew_time_s` for one pair, from `PassWraps.row` tuples, in plain floats (about 100 times faster than
    numpy on one pair; the greedy planner asks one pair at a time)."""
    out = 0.0
    for _a0, _ae0, a1, ae1, a_turns in prev:
        for turn in range(int(a_turns) + 1):
            end_az = a1 + 360.0 * turn
            for b0, be0, _b1, _be1, b_turns in nxt:
                start_az = b0 + 360.0 * _turn_toward_one(end_az, b0, b_turns)
                t = max(
                    _move_one_s(abs(start_az - end_az), model.azimuth),
                    _move_one_s(abs(be0 - ae1), model.elevation),
                )
                out = max(out, t)
    return out


def _move_one_s(d: float, axis: AxisLimits) -> float:
    """`axis_move_time_s` for one move in plain floats."""
    v = axis.rate_deg_s
    if axis.accel_deg_s2 <= 0:
        return d / v
    a = axis.accel_deg_s2
    return d / v + v / a if d >= v * v / a else 2.0 * math.sqrt(d / a)


def pass_slew_time_s(
    model: RotatorModel,
    prev_start_azimuth_deg: float | FloatArray,
    prev_end_azimuth_deg: float | FloatArray,
    prev_end_elevation_deg: float | FloatArray,
    next_start_azimuth_deg: float | FloatArray,
    next_start_elevation_deg: float | FloatArray,
    next_end_azimuth_deg: float | FloatArray,
) -> float | FloatArray:
    """Seconds from the end of one pass to the start of the next, each known by its sky ends (AOS and LOS azimuth),
    as the rotator really moves (see `wraps_slew_time_s`), vectorised."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in (prev_start_azimuth_deg, next_start_azimuth_deg)))
    a0, a1, ae1, b0, be0, b1 = (
        np.broadcast_to(np.asarray(x, dtype=np.float64), shape).reshape(-1)
        for x in (
            prev_start_azimuth_deg,
            prev_end_azimuth_deg,
            prev_end_elevation_deg,
            next_start_azimuth_deg,
            next_start_elevation_deg,
            next_end_azimuth_deg,
        )
    )
    prev = pass_wraps_both_ways(model, a0, np.zeros_like(a0), a1, ae1)
    nxt = pass_wraps_both_ways(model, b0, be0, b1, np.zeros_like(b0))
    out = wraps_slew_time_s(model, prev, nxt)
    return float(out[0]) if len(shape) == 0 else out.reshape(shape)


def plan_track(
    model: RotatorModel,
    t_s: FloatArray,
    azimuth_deg: FloatArray,
    elevation_deg: FloatArray,
    *,
    current_azimuth_deg: float | None = None,
) -> TrackPlan:
    """Choose the wrap (and flip, where the rotator has one) so the whole pass is flown without an unwind:
    `skymesh.core.rotator_scalar.plan_track` (the agent's planner, where the rules are) over arrays."""
    t, az, el = (np.asarray(x, dtype=np.float64) for x in (t_s, azimuth_deg, elevation_deg))
    if t.ndim != 1:
        raise InvalidArgument("time, azimuth and elevation must be non-empty and of one length", field="t_s")
    plan = _plain.plan_track(model, t.tolist(), az.tolist(), el.tolist(), current_azimuth_deg=current_azimuth_deg)
    return TrackPlan(
        plan.mode,
        np.asarray(plan.azimuth_deg, dtype=np.float64),
        np.asarray(plan.elevation_deg, dtype=np.float64),
        np.asarray(plan.reachable, dtype=bool),
        plan.max_rate_needed_deg_s,
        plan.rate_ok,
    )


def _into_travel(az_deg: FloatArray, axis: AxisLimits) -> FloatArray:
    out = np.clip(az_deg, axis.min_deg, axis.max_deg)
    for k in (-2, -1, 1, 2):
        shifted = az_deg + 360.0 * k
        fits = (out != az_deg) & (shifted >= axis.min_deg) & (shifted <= axis.max_deg)
        out = np.where(fits, shifted, out)
    return out


def reachable_track(model: RotatorModel, t_s: FloatArray, plan: TrackPlan) -> tuple[FloatArray, FloatArray]:
    """The mechanical (azimuth_deg, elevation_deg) path the rotator can really fly for `plan`:
    `skymesh.core.rotator_scalar.reachable_track` over arrays."""
    plain = _plain.TrackPlan(
        plan.mode,
        tuple(plan.azimuth_deg.tolist()),
        tuple(plan.elevation_deg.tolist()),
        tuple(plan.reachable.tolist()),
        plan.max_rate_needed_deg_s,
        plan.rate_ok,
    )
    az, el = _plain.reachable_track(model, np.asarray(t_s, dtype=np.float64).tolist(), plain)
    return np.asarray(az, dtype=np.float64), np.asarray(el, dtype=np.float64)
