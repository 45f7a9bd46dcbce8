"""The one pass planner (`skymesh.core.rotator_scalar`, plain Python for the agent) and the scheduler's vectorised
wrap choice (`skymesh.core.rotator.choose_wrap`) agree on random passes and rotators; `skymesh.core.rotator`'s array
`plan_track` and `reachable_track` are that planner's answers as arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skymesh.core import rotator, rotator_scalar
from skymesh.core.errors import InvalidArgument

_TRAVELS = [(0.0, 360.0), (-180.0, 540.0), (0.0, 450.0), (-90.0, 270.0), (-180.0, 180.0), (20.0, 340.0)]


def _random_pass(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat-Earth pass: straight ground track at `height_km`, passing `offset_km` from the site (0: overhead)."""
    n = int(rng.integers(2, 300))
    step_s = float(rng.choice([0.5, 1.0, 2.0]))
    t = np.arange(n) * step_s
    heading = rng.uniform(0.0, 2.0 * math.pi)
    offset_km = float(rng.choice([0.0, rng.uniform(0.0, 30.0), rng.uniform(0.0, 1500.0)]))
    along = 7.5 * (t - rng.uniform(0.0, t[-1] + 1.0))
    east = along * math.sin(heading) + offset_km * math.cos(heading)
    north = along * math.cos(heading) - offset_km * math.sin(heading)
    ground = np.hypot(east, north)
    az = np.degrees(np.arctan2(east, north)) % 360.0
    el = np.degrees(np.arctan2(500.0, ground)) - rng.uniform(0.0, 20.0)
    return t, az, el


def _model(rng: np.random.Generator) -> rotator_scalar.RotatorModel:
    az_min, az_max = _TRAVELS[int(rng.integers(len(_TRAVELS)))]
    el_min, el_max = (0.0, 180.0) if rng.random() < 0.4 else (float(rng.choice([0.0, 5.0])), 90.0)
    az_rate, el_rate = (float(x) for x in rng.uniform(0.3, 12.0, 2))
    return rotator_scalar.RotatorModel(
        rotator_scalar.AxisLimits(az_min, az_max, az_rate), rotator_scalar.AxisLimits(el_min, el_max, el_rate)
    )


@pytest.mark.parametrize("seed", range(3))
def test_the_planner_flies_the_wrap_the_scheduler_predicts(seed: int) -> None:
    """Where a wrap holds the whole planned track, it is the one `choose_wrap` picks from the same rotator position
    (the scheduler times its slews with that choice); the array planner gives the plain one's answer."""
    rng = np.random.default_rng(seed)
    fitted = 0
    for _ in range(40):
        t, az, el = _random_pass(rng)
        if rng.random() < 0.2:  # a rough, jumpy track too (random walk with big steps)
            az = (az[0] + np.cumsum(rng.normal(0.0, 40.0, t.size))) % 360.0
            el = np.clip(el[0] + np.cumsum(rng.normal(0.0, 5.0, t.size)), -5.0, 90.0)
        model = _model(rng)
        current = None if rng.random() < 0.3 else float(rng.uniform(-200.0, 560.0))
        plan = rotator_scalar.plan_track(model, list(t), list(az), list(el), current_azimuth_deg=current)
        path = plan.azimuth_deg
        if plan.within_limits:
            offset, fits = rotator.choose_wrap(model.azimuth, path[0], min(path), max(path), current)
            assert bool(fits) and float(offset) == 0.0, (plan.mode, path[0], current)
            fitted += 1
        arrays = rotator.plan_track(model, t, az, el, current_azimuth_deg=current)
        assert arrays.mode == plan.mode and arrays.rate_ok == plan.rate_ok
        assert arrays.azimuth_deg.tolist() == list(path) and arrays.reachable.tolist() == list(plan.reachable)
        path_az, path_el = rotator.reachable_track(model, t, arrays)
        plain_az, plain_el = rotator_scalar.reachable_track(model, list(t), plan)
        assert path_az.tolist() == plain_az and path_el.tolist() == plain_el
    assert fitted >= 10


def test_limits_are_validated_and_intersected_the_same_way() -> None:
    with pytest.raises(InvalidArgument):
        rotator_scalar.AxisLimits(10.0, 10.0, 6.0)
    with pytest.raises(InvalidArgument):
        rotator_scalar.AxisLimits(0.0, 360.0, math.nan)
    a = rotator_scalar.RotatorModel(rotator_scalar.AxisLimits(-180.0, 540.0, 6.0, 2.0))
    b = rotator_scalar.RotatorModel(rotator_scalar.AxisLimits(0.0, 450.0, 3.0), rotator_scalar.AxisLimits(0, 180, 9))
    both = a.intersect(b)
    assert both.azimuth == rotator_scalar.AxisLimits(0.0, 450.0, 3.0, 2.0)
    assert both.elevation == rotator_scalar.AxisLimits(0.0, 90.0, 6.0)
    assert not both.can_flip and b.can_flip
    with pytest.raises(InvalidArgument, match="do not overlap"):
        a.intersect(rotator_scalar.RotatorModel(rotator_scalar.AxisLimits(600.0, 700.0, 1.0)))
