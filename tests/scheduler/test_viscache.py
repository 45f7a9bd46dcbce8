"""The visibility cache: plans reuse passes only while stations and element sets are unchanged, and a plan is the
same with and without it (and its windows those of one `satellite_windows` call)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest

from skymesh.astro.tle_gen import generate_tles
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import GeoLocation, SatelliteTarget, StationState, TimeWindow, Weather
from skymesh.scheduler.inputs import PlanRequest, SolverKind
from skymesh.scheduler.opportunities import Compiled, compile_request
from skymesh.scheduler.planning import compute_plan
from skymesh.scheduler.reasons import ReasonCode
from skymesh.scheduler.scenario import generate_talos
from skymesh.scheduler.service import SchedulerServicer
from skymesh.scheduler.viscache import BLOCK_S, VisibilityCache

from .conftest import T0


@pytest.fixture(scope="module")
def day() -> PlanRequest:
    # Starts off the block grid: the first and last blocks are clipped.
    return generate_talos(stations=6, satellites=20, hours=6, seed=7, start=T0 + timedelta(minutes=17))


def _shifted(req: PlanRequest, seconds: float) -> PlanRequest:
    d = timedelta(seconds=seconds)
    return dataclasses.replace(req, window=TimeWindow(req.window.start + d, req.window.end + d))


def _windows(c: Compiled) -> list[tuple[int, int, float, float]]:
    o = c.problem.opportunities
    rows = zip(o.request.tolist(), o.resource.tolist(), o.start_s.tolist(), o.end_s.tolist(), strict=True)
    return sorted((r, s, round(a, 2), round(b, 2)) for r, s, a, b in rows)


def _log(c: Compiled) -> dict[int, dict[tuple[ReasonCode, str], int]]:
    return {k: dict(v) for k, v in c.log.entries.items() if v}


def test_windows_and_reasons_are_those_of_one_visibility_call(day: PlanRequest) -> None:
    direct = compile_request(day)
    cached = compile_request(day, visibility_cache=VisibilityCache(50_000_000))
    a, b = _windows(direct), _windows(cached)
    assert len(a) == len(b) > 100
    for x, y in zip(a, b, strict=True):
        assert x[:2] == y[:2] and abs(x[2] - y[2]) < 0.05 and abs(x[3] - y[3]) < 0.05
    assert _log(direct) == _log(cached)


def test_replans_reuse_blocks_and_plan_as_without_the_cache(day: PlanRequest) -> None:
    cache = VisibilityCache(50_000_000)
    n = len(day.targets)
    req = dataclasses.replace(day, solver=SolverKind.GREEDY, time_limit_s=20.0)
    for shift, new_blocks in ((0.0, 2), (180.0, 0), (BLOCK_S, 1)):
        misses = cache.misses
        r = _shifted(req, shift)
        with_cache = compute_plan(r, visibility_cache=cache)
        without = compute_plan(r, visibility_cache=VisibilityCache(0))
        assert cache.misses - misses == new_blocks * n  # only the new tail's blocks were computed
        assert with_cache.assignments == without.assignments
        assert with_cache.unscheduled == without.unscheduled
        assert with_cache.stats.objective == without.stats.objective > 0
    assert cache.hits == 3 * n


def test_changed_elements_or_station_move_the_passes(day: PlanRequest) -> None:
    cache = VisibilityCache(50_000_000)
    before = compile_request(day, visibility_cache=cache)
    # A new element set for satellite 0 (another orbit of the same family).
    t0 = day.targets[0]
    assert isinstance(t0.target, SatelliteTarget)
    l1, l2 = generate_tles("iss", 1, T0, seed=99)[0].lines()
    moved_sat = dataclasses.replace(t0, target=dataclasses.replace(t0.target, tle_line1=l1, tle_line2=l2))
    req = dataclasses.replace(day, targets=(moved_sat, *day.targets[1:]))
    after = compile_request(req, visibility_cache=cache)
    assert _windows(after) == _windows(compile_request(req, visibility_cache=VisibilityCache(0)))
    assert [w for w in _windows(after) if w[0] == 0] != [w for w in _windows(before) if w[0] == 0]
    assert [w for w in _windows(after) if w[0] != 0] == [w for w in _windows(before) if w[0] != 0]
    # Station 0 moves 20 degrees north.
    s0 = day.stations[0]
    loc = s0.location
    moved = dataclasses.replace(s0, location=GeoLocation(loc.latitude_deg + 20.0, loc.longitude_deg, loc.altitude_m))
    req2 = dataclasses.replace(req, stations=(moved, *req.stations[1:]))
    after2 = compile_request(req2, visibility_cache=cache)
    assert _windows(after2) == _windows(compile_request(req2, visibility_cache=VisibilityCache(0)))
    assert [w for w in _windows(after2) if w[1] == 0] != [w for w in _windows(after) if w[1] == 0]


def test_a_station_offline_or_closed_reuses_the_blocks_with_the_direct_reasons(day: PlanRequest) -> None:
    cache = VisibilityCache(50_000_000)
    compile_request(day, visibility_cache=cache)
    misses = cache.misses
    # Disconnected stations go last in a plan's list: the order changes too.
    stations = (
        dataclasses.replace(day.stations[1], weather=Weather.CLOSED),
        *day.stations[2:],
        dataclasses.replace(day.stations[0], state=StationState.DISCONNECTED),
    )
    req = dataclasses.replace(day, stations=stations)
    cached, direct = compile_request(req, visibility_cache=cache), compile_request(req)
    assert cache.misses == misses  # nothing computed again
    assert {w[1] for w in _windows(cached)} == set(range(1, len(stations) - 1))
    assert len(_windows(cached)) == len(_windows(direct))
    assert _log(cached) == _log(direct)
    assert any(code == ReasonCode.STATION_OFFLINE for v in _log(cached).values() for code, _ in v)


def test_memory_is_bounded_least_recently_used_first(day: PlanRequest) -> None:
    full = VisibilityCache(50_000_000)
    compile_request(day, visibility_cache=full)
    small = VisibilityCache(full.nbytes // 3)
    got = compile_request(day, visibility_cache=small)
    assert 0 < small.nbytes <= small.max_bytes and len(small) < len(full)
    assert _windows(got) == _windows(compile_request(day, visibility_cache=full))
    assert np.isfinite(got.problem.opportunities.start_s).all()


def test_adding_or_moving_a_station_computes_only_that_station(day: PlanRequest) -> None:
    """Blocks are kept per station geometry: the others' passes are reused, and the plan is the one without cache.
    The added station alone carries band X, as one satellite does: its reasons (no capable station before, a
    capable one after) are those of one direct call."""
    t0 = day.targets[0]
    assert isinstance(t0.target, SatelliteTarget)
    s_band = dataclasses.replace(t0, target=dataclasses.replace(t0.target, band="X"))
    base = dataclasses.replace(day, targets=(s_band, *day.targets[1:]), stations=day.stations[1:])
    cache = VisibilityCache(50_000_000)
    before = compile_request(base, visibility_cache=cache)
    assert _log(before) == _log(compile_request(base))
    assert any(code == ReasonCode.NO_CAPABLE_STATION for code, _ in _log(before)[0])
    n_blocks = cache.misses // len(base.targets)
    added_station = dataclasses.replace(day.stations[0], bands=("UHF", "X"))
    added = dataclasses.replace(base, stations=(*base.stations, added_station))
    misses = cache.station_misses
    got = compile_request(added, visibility_cache=cache)
    assert cache.station_misses - misses == n_blocks * len(base.targets)  # one station's passes, every satellite
    direct = compile_request(added)
    assert _windows(got) == _windows(compile_request(added, visibility_cache=VisibilityCache(0)))
    assert len(_windows(got)) == len(_windows(direct)) > len(_windows(before))
    assert _log(got) == _log(direct)
    # The added station moves; another is removed: again one station computed, the removed one's rows dropped.
    loc = added_station.location
    moved = dataclasses.replace(added_station, location=GeoLocation(loc.latitude_deg - 15, loc.longitude_deg, 0.0))
    req = dataclasses.replace(base, stations=(*base.stations[1:], moved))
    misses = cache.station_misses
    got = compile_request(req, visibility_cache=cache)
    assert cache.station_misses - misses == n_blocks * len(base.targets)
    assert _windows(got) == _windows(compile_request(req, visibility_cache=VisibilityCache(0)))
    assert _log(got) == _log(compile_request(req))
    plan = compute_plan(dataclasses.replace(req, solver=SolverKind.GREEDY), visibility_cache=cache)
    without = compute_plan(dataclasses.replace(req, solver=SolverKind.GREEDY), visibility_cache=VisibilityCache(0))
    assert plan.assignments == without.assignments and plan.unscheduled == without.unscheduled


def test_a_cache_too_small_for_a_plan_still_serves_part_of_it(day: PlanRequest) -> None:
    """Least-recently-used alone would drop each block just before the next plan asks for it (no hit ever, as
    500 stations x 3,000 satellites did with 256 MB): the blocks of the running plan are never dropped for it."""
    full = VisibilityCache(50_000_000)
    compile_request(day, visibility_cache=full)
    small = VisibilityCache(full.nbytes // 2)
    compile_request(day, visibility_cache=small)
    hits = small.hits
    compile_request(day, visibility_cache=small)
    assert small.hits - hits >= len(small) > 0
    assert small.nbytes <= small.max_bytes


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        VisibilityCache(-1)
    with pytest.raises(InvalidArgument) as exc:
        SchedulerServicer(isolate=False, visibility_cache_mb=float("nan"))
    assert exc.value.field == "visibility_cache_mb"


def test_a_cancelled_plan_stops_between_blocks_and_keeps_the_finished_ones(
    day: PlanRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skymesh.scheduler import viscache
    from skymesh.scheduler.isolation import CancelScope, SolveCancelled

    scope = CancelScope()
    computed: list[int] = []
    compute = viscache._compute_block

    def compute_then_cancel(*args: object, **kwargs: object) -> object:
        computed.append(1)
        scope.cancel()  # the caller goes away while the first block is computed
        return compute(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(viscache, "_compute_block", compute_then_cancel)
    cache = VisibilityCache(50_000_000)
    scope.enter()
    try:
        with pytest.raises(SolveCancelled):
            compile_request(day, visibility_cache=cache)
    finally:
        scope.exit()
    assert len(computed) == 1  # stopped at the next block
    monkeypatch.setattr(viscache, "_compute_block", compute)
    hits = cache.hits
    retried = compile_request(day, visibility_cache=cache)  # the retry: the finished block is not computed again
    assert cache.hits - hits == len(day.targets)
    assert _windows(retried) == _windows(compile_request(day, visibility_cache=VisibilityCache(50_000_000)))
