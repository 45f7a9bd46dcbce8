"""The agent's plain-Python pass planner (`skymesh.core.rotator_scalar`) against numpy's (`skymesh.core.rotator`):
the same mode, mechanical track, reachability, needed rate and reachable path on random passes and rotators."""

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


def _models(rng: np.random.Generator) -> tuple[rotator.RotatorModel, rotator_scalar.RotatorModel]:
    az_min, az_max = _TRAVELS[int(rng.integers(len(_TRAVELS)))]
    el_min, el_max = (0.0, 180.0) if rng.random() < 0.4 else (float(rng.choice([0.0, 5.0])), 90.0)
    az_rate, el_rate = (float(x) for x in rng.uniform(0.3, 12.0, 2))
    numpy_model = rotator.RotatorModel(
        rotator.AxisLimits(az_min, az_max, az_rate), rotator.AxisLimits(el_min, el_max, el_rate)
    )
    plain_model = rotator_scalar.RotatorModel(
        rotator_scalar.AxisLimits(az_min, az_max, az_rate), rotator_scalar.AxisLimits(el_min, el_max, el_rate)
    )
    return numpy_model, plain_model


@pytest.mark.parametrize("seed", range(3))
def test_plain_python_planner_agrees_with_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        t, az, el = _random_pass(rng)
        if rng.random() < 0.2:  # a rough, jumpy track too (random walk with big steps)
            az = (az[0] + np.cumsum(rng.normal(0.0, 40.0, t.size))) % 360.0
            el = np.clip(el[0] + np.cumsum(rng.normal(0.0, 5.0, t.size)), -5.0, 90.0)
        numpy_model, plain_model = _models(rng)
        current = None if rng.random() < 0.3 else float(rng.uniform(-200.0, 560.0))
        expected = rotator.plan_track(numpy_model, t, az, el, current_azimuth_deg=current)
        got = rotator_scalar.plan_track(plain_model, list(t), list(az), list(el), current_azimuth_deg=current)
        assert got.mode == expected.mode
        np.testing.assert_allclose(got.azimuth_deg, expected.azimuth_deg, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.elevation_deg, expected.elevation_deg, rtol=0, atol=1e-9)
        assert list(got.reachable) == expected.reachable.tolist()
        assert got.rate_ok == expected.rate_ok
        assert got.max_rate_needed_deg_s == pytest.approx(expected.max_rate_needed_deg_s, abs=1e-9)
        path_az, path_el = rotator.reachable_track(numpy_model, t, expected)
        plain_az, plain_el = rotator_scalar.reachable_track(plain_model, list(t), got)
        np.testing.assert_allclose(plain_az, path_az, rtol=0, atol=1e-7)
        np.testing.assert_allclose(plain_el, path_el, rtol=0, atol=1e-7)


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
