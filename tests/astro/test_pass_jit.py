"""find_passes' compiled kernels (numba) against its numpy code, and the fallback when numba is missing."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import skymesh.astro
from skymesh.astro import _pass_kernels
from skymesh.astro.passes import PassTable, find_passes
from skymesh.astro.propagate import SatelliteBatch
from skymesh.astro.tle import format_tle
from skymesh.astro.tle_gen import generate_catalog

START = datetime(2026, 11, 22, 5, 41, 7, tzinfo=UTC)


def _fleet() -> tuple[SatelliteBatch, np.ndarray, np.ndarray, np.ndarray]:
    tles = generate_catalog(80, START - timedelta(hours=5), seed=11)  # every family, MEO and GEO included
    # A satellite that decays during the window: its NaN states must not be visible on either path.
    decayed = format_tle(
        norad_id=99001,
        epoch=START,
        inclination_deg=51.6,
        raan_deg=0.0,
        eccentricity=0.0005,
        arg_perigee_deg=0.0,
        mean_anomaly_deg=0.0,
        mean_motion_rev_per_day=16.2,
        bstar_per_earth_radius=0.9,
    )
    tles = [*tles, decayed]
    rng = np.random.default_rng(3)
    n = 12
    return SatelliteBatch(tles), rng.uniform(-80, 80, n), rng.uniform(-180, 180, n), rng.uniform(0, 2500, n)


def _run(compiled: bool, **kw: object) -> PassTable:
    batch, lat, lon, alt = _fleet()
    return find_passes(
        batch,
        lat,
        lon,
        alt,
        START,
        START + timedelta(hours=24),
        np.linspace(0.0, 25.0, lat.size),
        compiled=compiled,
        **kw,
    )


def _same_passes(a: PassTable, b: PassTable) -> None:
    assert len(a) == len(b) > 500
    for name in ("sat_index", "station_index", "aos_clipped", "los_clipped"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # Both solve to 10 ms from brackets whose float32 values differ in the last bits.
    assert np.abs(a.aos_jd - b.aos_jd).max() * 86400.0 < 0.05
    assert np.abs(a.los_jd - b.los_jd).max() * 86400.0 < 0.05
    assert np.abs(a.max_elevation_deg - b.max_elevation_deg).max() < 1e-4
    for name in ("aos_azimuth_deg", "los_azimuth_deg"):
        d = np.abs(getattr(a, name) - getattr(b, name)) % 360.0
        assert np.minimum(d, 360.0 - d).max() < 0.01, name
    # TCA: the top of a slow (MEO, GEO) pass is flat to 1e-6 deg over minutes, there either time is the maximum.
    leo = (a.los_jd - a.aos_jd) * 86400.0 < 3600.0
    assert leo.sum() > 400
    assert np.abs(a.tca_jd - b.tca_jd)[leo].max() * 86400.0 < 0.1


def test_compiled_kernels_give_the_numpy_paths_passes() -> None:
    pytest.importorskip("numba")
    assert _pass_kernels.compiled_kernels() is not None
    _same_passes(_run(True), _run(False))


def test_compiled_kernels_with_a_horizon_mask_give_the_numpy_paths_passes() -> None:
    # At masked stations the scan stays numpy; the solvers of the unmasked items are compiled.
    pytest.importorskip("numba")
    masks = [None] * 12
    masks[2] = ((0.0, 90.0, 100.0, 180.0, 270.0), (30.0, 30.0, 5.0, 30.0, 12.0))
    _same_passes(_run(True, horizon_masks=masks), _run(False, horizon_masks=masks))


def test_without_numba_the_numpy_code_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    _pass_kernels.compiled_kernels.cache_clear()
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "skymesh.astro._pass_jit", raising=False)
    monkeypatch.delattr(skymesh.astro, "_pass_jit", raising=False)  # or `from skymesh.astro import` finds it
    try:
        assert _pass_kernels.compiled_kernels() is None
        _same_passes(_run(True), _run(False))
    finally:
        _pass_kernels.compiled_kernels.cache_clear()


def test_no_numba_environment_variable_selects_the_numpy_code(monkeypatch: pytest.MonkeyPatch) -> None:
    _pass_kernels.compiled_kernels.cache_clear()
    monkeypatch.setenv("SKYMESH_NO_NUMBA", "1")
    try:
        assert _pass_kernels.compiled_kernels() is None
    finally:
        _pass_kernels.compiled_kernels.cache_clear()
