"""The mapping from stations and targets to opportunities agrees with skymesh.astro and logs what it drops."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from skymesh.astro.passes import find_passes
from skymesh.astro.propagate import SatelliteBatch
from skymesh.astro.tle import parse_tle
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import HorizonMask, SatelliteTarget, StationState, TimeWindow
from skymesh.scheduler.inputs import Demand, FrozenJob, PlanRequest, PlanTarget
from skymesh.scheduler.opportunities import compile_request
from skymesh.scheduler.reasons import ReasonCode

from .conftest import T0, ground_station, iss_like


def test_satellite_opportunities_are_the_astro_passes(small_talos: PlanRequest) -> None:
    compiled = compile_request(small_talos)
    ops = compiled.problem.opportunities
    sats = [pt.target for pt in small_talos.targets]
    assert all(isinstance(t, SatelliteTarget) for t in sats)
    batch = SatelliteBatch([parse_tle(t.tle_line1, t.tle_line2) for t in sats])  # type: ignore[union-attr]
    st = small_talos.stations
    table = find_passes(
        batch,
        [s.location.latitude_deg for s in st],
        [s.location.longitude_deg for s in st],
        [s.location.altitude_m for s in st],
        small_talos.window.start,
        small_talos.window.end,
        [s.min_elevation_deg for s in st],
    )
    keep = table.duration_s >= small_talos.options.min_pass_s
    assert len(ops) == int(keep.sum()) > 50
    jd0 = table.aos_jd[keep][0] - ops.start_s.min() / 86400.0  # same epoch on both sides
    expected = sorted(
        zip(
            table.sat_index[keep].tolist(),
            table.station_index[keep].tolist(),
            np.round(table.aos_jd[keep], 8).tolist(),
            strict=True,
        )
    )
    got = sorted(
        zip(ops.request.tolist(), ops.resource.tolist(), np.round(jd0 + ops.start_s / 86400.0, 8).tolist(), strict=True)
    )
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in expected]
    assert np.allclose([c for *_, c in got], [c for *_, c in expected], atol=2e-5)  # ~1 s
    # Value = priority x duration (no boosts in TALOS).
    prio = np.asarray([t.priority for t in sats])[ops.request]
    assert np.allclose(ops.value, prio * (ops.end_s - ops.start_s))
    assert np.all(compiled.max_elevation_deg >= 10.0)


def _req(stations: list, targets: list, hours: float = 24.0, **kw: object) -> PlanRequest:  # type: ignore[type-arg]
    return PlanRequest(TimeWindow(T0, T0 + timedelta(hours=hours)), stations, targets, **kw)  # type: ignore[arg-type]


def test_band_mismatch_offline_station_and_never_visible_are_logged() -> None:
    sat = PlanTarget(iss_like("iss", band="S"))
    c = compile_request(_req([ground_station("uhf-only", 48.0, 11.0)], [sat]))
    assert len(c.problem.opportunities) == 0
    assert (ReasonCode.NO_CAPABLE_STATION, "") in c.log.for_target(0)

    c = compile_request(
        _req([ground_station("down", 48.0, 11.0, state=StationState.OFFLINE)], [PlanTarget(iss_like("iss"))])
    )
    assert (ReasonCode.STATION_OFFLINE, "down") in c.log.for_target(0)

    # A 51.6 deg orbit never rises at the South Pole.
    c = compile_request(_req([ground_station("pole", -89.9, 0.0)], [PlanTarget(iss_like("iss"))]))
    assert len(c.problem.opportunities) == 0
    assert c.log.for_target(0) == {(ReasonCode.NEVER_VISIBLE, "pole"): 1}


def test_horizon_mask_and_unavailability_are_logged() -> None:
    wall = HorizonMask((0.0, 180.0), (89.5, 89.5))
    c = compile_request(_req([ground_station("walled", 48.0, 11.0, horizon_mask=wall)], [PlanTarget(iss_like("iss"))]))
    assert len(c.problem.opportunities) == 0
    assert c.log.for_target(0) == {(ReasonCode.BELOW_HORIZON_MASK, "walled"): 1}

    busy = (TimeWindow(T0 - timedelta(hours=1), T0 + timedelta(hours=25)),)
    c = compile_request(_req([ground_station("busy", 48.0, 11.0, unavailable=busy)], [PlanTarget(iss_like("iss"))]))
    assert len(c.problem.opportunities) == 0
    assert c.log.for_target(0)[(ReasonCode.STATION_UNAVAILABLE, "busy")] >= 2


def test_demand_boosts_and_frozen_jobs_map_onto_the_kernel() -> None:
    tc = (TimeWindow(T0, T0 + timedelta(hours=12)),)
    sat = PlanTarget(iss_like("iss", priority=4), Demand(1, 7200.0, time_critical=tc, time_critical_boost=3.0))
    frozen = FrozenJob("job-1", "gs", "iss", TimeWindow(T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=5)))
    c = compile_request(_req([ground_station("gs", 48.0, 11.0)], [sat], frozen=[frozen]))
    ops, rq = c.problem.opportunities, c.problem.requests[0]
    assert (rq.max_per_period, rq.period_s) == (1, 7200.0)
    factor = ops.value / (ops.end_s - ops.start_s)
    assert set(np.round(factor, 6).tolist()) <= {4.0, 12.0}
    assert np.all(factor[ops.end_s <= 12 * 3600] == pytest.approx(12.0))
    assert [(f.resource, f.request, f.start_s, f.job_id) for f in c.problem.frozen] == [(0, 0, 3600.0, "job-1")]

    with pytest.raises(InvalidArgument) as err:
        compile_request(_req([ground_station("gs", 48.0, 11.0)], [sat], frozen=[replace(frozen, station_id="nope")]))
    assert err.value.field == "frozen[0].station_id"
    with pytest.raises(InvalidArgument) as err:
        compile_request(_req([ground_station("gs", 48.0, 11.0), ground_station("gs", 1.0, 1.0)], [sat]))
    assert err.value.field == "stations[1].station_id"


def test_rank_targets_for_a_ground_station_mid_pass() -> None:
    from skymesh.scheduler.rank import rank_targets

    gs = ground_station("gs", 48.0, 11.0)
    low, high = PlanTarget(iss_like("low", priority=2)), PlanTarget(iss_like("high", priority=8))
    c = compile_request(_req([gs], [low]))
    ops = c.problem.opportunities
    k = int(np.argmax(ops.end_s - ops.start_s))
    at = T0 + timedelta(seconds=float(ops.start_s[k] + 60.0))
    ranked = rank_targets(gs, [low, high], at, 5)
    assert [r.target_id for r in ranked] == ["high", "low"]  # same pass, scored priority x remaining duration
    assert ranked[0].score == pytest.approx(4 * ranked[1].score)
    assert ranked[0].remaining_s == pytest.approx(float(ops.end_s[k] - ops.start_s[k]) - 60.0, abs=2.0)
    assert ranked[0].altitude_deg > 10.0
    with pytest.raises(InvalidArgument):
        rank_targets(gs, [low], at, -1)


def test_preemptible_frozen_job_stays_unless_beaten() -> None:
    from skymesh.scheduler.planning import compute_plan

    gs = ground_station("gs", 48.0, 11.0)
    low = PlanTarget(iss_like("low", priority=3))
    c = compile_request(_req([gs], [low]))
    ops = c.problem.opportunities
    k = int(np.argmax(ops.end_s - ops.start_s))
    w = TimeWindow(T0 + timedelta(seconds=float(ops.start_s[k])), T0 + timedelta(seconds=float(ops.end_s[k])))
    job = FrozenJob("job-7", "gs", "low", w, preemptible=True)
    res = compute_plan(_req([gs], [low], frozen=[job]))
    kept = [a for a in res.assignments if a.job_id == "job-7"]
    assert len(kept) == 1 and kept[0].window == w
    # A priority-9 satellite on the same orbit takes the slot; the preemptible job is dropped, not duplicated.
    res = compute_plan(_req([gs], [low, PlanTarget(iss_like("high", priority=9))], frozen=[job]))
    assert not [a for a in res.assignments if a.job_id == "job-7"]
    assert {a.target_id for a in res.assignments} == {"high"}
