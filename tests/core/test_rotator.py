"""The rotator model: per-axis trapezoid slews, wrap and flip choice for whole passes."""

from __future__ import annotations

import numpy as np
import pytest

from skymesh.core.errors import InvalidArgument
from skymesh.core.rotator import (
    AxisLimits,
    RotatorModel,
    axis_move_time_s,
    plan_track,
    reachable_track,
    slew_time_s,
)


def test_axis_time_rate_only_and_trapezoid() -> None:
    fast = AxisLimits(0, 360, rate_deg_s=6.0)
    assert axis_move_time_s(60.0, fast) == pytest.approx(10.0)
    accel = AxisLimits(0, 360, rate_deg_s=6.0, accel_deg_s2=3.0)  # 12 deg to reach full rate and brake
    assert axis_move_time_s(60.0, accel) == pytest.approx(60.0 / 6.0 + 6.0 / 3.0)
    assert axis_move_time_s(3.0, accel) == pytest.approx(2.0 * np.sqrt(1.0))  # triangle profile
    assert axis_move_time_s(-60.0, fast) == pytest.approx(10.0)


def test_slew_is_slower_axis_and_short_way_round() -> None:
    model = RotatorModel(AxisLimits(0, 360, 5.0), AxisLimits(0, 90, 2.0))
    assert slew_time_s(model, 350.0, 10.0, 10.0, 10.0) == pytest.approx(4.0)  # 20 deg az across north
    assert slew_time_s(model, 0.0, 10.0, 10.0, 40.0) == pytest.approx(15.0)  # el is the slow axis
    out = slew_time_s(model, np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([90.0, 0.0]), np.array([0.0, 90.0]))
    assert np.allclose(out, [18.0, 45.0])


def _north_crossing() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 600.0, 61)
    az = (348.0 + (28.0 * t / 600.0)) % 360.0  # 348 -> 16 through north
    el = 10.0 + 50.0 * np.sin(np.pi * t / 600.0)
    return t, az, el


def test_north_crossing_pass_uses_overwind_when_available() -> None:
    t, az, el = _north_crossing()
    plan = plan_track(RotatorModel(AxisLimits(-180.0, 540.0, 6.0), AxisLimits(0, 90, 6.0)), t, az, el)
    assert plan.within_limits and plan.mode == "normal"
    assert np.all(np.abs(np.diff(plan.azimuth_deg)) < 5.0)  # no unwind anywhere


def test_north_crossing_pass_flips_on_a_180_elevation_rotator() -> None:
    t, az, el = _north_crossing()
    plan = plan_track(RotatorModel(AxisLimits(0.0, 360.0, 6.0), AxisLimits(0, 180, 6.0)), t, az, el)
    assert plan.within_limits and plan.mode == "flip"
    assert np.all((plan.azimuth_deg >= 0) & (plan.azimuth_deg <= 360))
    sky_az = (plan.azimuth_deg + 180.0) % 360.0
    assert np.allclose(sky_az, az) and np.allclose(180.0 - plan.elevation_deg, el)


def test_unreachable_samples_are_reported_not_hidden() -> None:
    t, az, el = _north_crossing()
    plan = plan_track(RotatorModel(AxisLimits(0.0, 360.0, 6.0), AxisLimits(0, 90, 6.0)), t, az, el)
    assert not plan.within_limits and 0 < plan.reachable.sum() < len(t)


def test_slow_rotator_is_flagged() -> None:
    t = np.array([0.0, 1.0, 2.0])
    plan = plan_track(
        RotatorModel(AxisLimits(0, 360, 2.0), AxisLimits(0, 90, 2.0)), t, np.array([10.0, 20, 30]), np.full(3, 30.0)
    )
    assert not plan.rate_ok and plan.max_rate_needed_deg_s == pytest.approx(10.0)


def test_intersect_takes_narrower_travel_and_slower_rate() -> None:
    config = RotatorModel(AxisLimits(-90, 450, 8.0), AxisLimits(0, 180, 8.0))
    daemon = RotatorModel(AxisLimits(0, 360, 6.0), AxisLimits(0, 90, 6.0))
    both = config.intersect(daemon)
    assert (both.azimuth.min_deg, both.azimuth.max_deg, both.azimuth.rate_deg_s) == (0, 360, 6.0)
    assert not both.can_flip
    with pytest.raises(InvalidArgument):
        RotatorModel(AxisLimits(0, 90, 1.0)).intersect(RotatorModel(AxisLimits(100, 200, 1.0)))


def _overhead(north_offset_km: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A straight pass 500 km up at 7 km/s heading east, passing `north_offset_km` north of the zenith at t = 0."""
    t = np.arange(-300.0, 301.0, 1.0)
    east, north, up = 7.0 * t, np.full_like(t, north_offset_km), np.full_like(t, 500.0)
    az = np.degrees(np.arctan2(east, north)) % 360.0
    el = np.degrees(np.arctan2(up, np.hypot(east, north)))
    return t, az, el


def _sep(az1: np.ndarray, el1: np.ndarray, az2: np.ndarray, el2: np.ndarray) -> np.ndarray:
    a1, e1, a2, e2 = (np.radians(x) for x in (az1, el1, az2, el2))
    c = np.sin(e1) * np.sin(e2) + np.cos(e1) * np.cos(e2) * np.cos(a1 - a2)
    out: np.ndarray = np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
    return out


def test_keyhole_is_flown_through_the_zenith_by_a_180_degree_rotator() -> None:
    t, az, el = _overhead(5.0)  # culminates at 89.4 deg; azimuth whips 180 deg in a few seconds
    model = RotatorModel(AxisLimits(0.0, 360.0, 6.0), AxisLimits(0.0, 180.0, 6.0))
    plan = plan_track(model, t, az, el)
    assert plan.mode in ("flip_after_tca", "flip_before_tca") and plan.within_limits
    cmd_az, cmd_el = reachable_track(model, t, plan)
    assert np.all(np.abs(np.diff(cmd_az)) <= 6.0 + 1e-9) and np.all(np.abs(np.diff(cmd_el)) <= 6.0 + 1e-9)
    assert _sep(cmd_az, cmd_el, az, el).max() < 1.0


def test_too_slow_for_the_keyhole_tracks_the_best_reachable_point() -> None:
    t, az, el = _overhead(5.0)
    model = RotatorModel(AxisLimits(-180.0, 540.0, 6.0), AxisLimits(0.0, 90.0, 6.0))
    plan = plan_track(model, t, az, el)
    assert plan.mode == "normal" and plan.within_limits and not plan.rate_ok
    cmd_az, cmd_el = reachable_track(model, t, plan)
    assert np.all(np.abs(np.diff(cmd_az)) <= 6.0 + 1e-9)  # what the rotator can really do
    err = _sep(cmd_az, cmd_el, az, el)
    # A plain follower (command the sky, let the rotator lag) is worse than leading into the keyhole.
    follow = np.empty_like(plan.azimuth_deg)
    follow[0] = plan.azimuth_deg[0]
    for i in range(1, t.size):
        follow[i] = follow[i - 1] + np.clip(plan.azimuth_deg[i] - follow[i - 1], -6.0, 6.0)
    lagging = _sep(follow, plan.elevation_deg, az, el)
    assert err.max() < 0.75 * lagging.max()
    assert (err > 1.0).sum() < 60  # off only around the culmination
    assert np.all(err[np.abs(t) > 60] < 0.01)  # and exactly on the sky elsewhere


def test_a_pass_across_the_stop_without_overwind_unwinds_once_at_full_rate() -> None:
    t, az, el = _north_crossing()
    model = RotatorModel(AxisLimits(0.0, 360.0, 6.0), AxisLimits(0, 90, 6.0))
    plan = plan_track(model, t, az, el)
    cmd_az, _ = reachable_track(model, t, plan)
    assert np.all((cmd_az >= 0.0) & (cmd_az <= 360.0))
    steps = np.abs(np.diff(cmd_az))
    assert np.all(steps <= 6.0 * 10.0 + 1e-9)  # 10 s samples at 6 deg/s
    big = np.diff(cmd_az)[steps > 1.0]
    # One unwind (all one way, 360 deg less the sky's own motion meanwhile), not a clamp at the stop for the rest of
    # the pass.
    assert (np.all(big > 0) or np.all(big < 0)) and 350.0 < abs(big.sum()) <= 360.0
    assert _sep(cmd_az, plan.elevation_deg, az, el)[-1] < 0.01


def test_a_slow_rotator_prefers_small_misses_to_a_zenith_flip_that_loses_the_target() -> None:
    # Culminating at 80 deg: flying through the zenith would be 10 deg off at the culmination; following the
    # azimuth too slowly is off by less. Lost signal (> 5 deg) counts before the 1-degree goal.
    t, az, el = _overhead(88.0)
    assert 79.5 < el.max() < 80.5
    model = RotatorModel(AxisLimits(0.0, 450.0, 3.0), AxisLimits(0.0, 180.0, 3.0))
    plan = plan_track(model, t, az, el)
    assert plan.mode in ("normal", "flip") and not plan.rate_ok
    cmd_az, cmd_el = reachable_track(model, t, plan)
    assert _sep(cmd_az, cmd_el, az, el).max() < 5.0
