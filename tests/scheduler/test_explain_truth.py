"""Every explanation of a TALOS-style plan checked against the plan itself, with an independent conflict rule.

For each reason about one opportunity: the occupants it names are exactly the plan's jobs at that station whose
windows, padded by turnaround and the per-axis rotator slew, conflict with the opportunity; each has the priority and
value the plan gives it; the code follows the real comparison. Every station where an unscheduled target had an
opportunity is explained, every opportunity there once; pages put back together are the whole list.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

import pytest

from skymesh.core.rotator import AxisLimits, RotatorModel, slew_time_s
from skymesh.scheduler.inputs import Explanation, PlanRequest, PlanResult, SolverKind
from skymesh.scheduler.opportunities import compile_request
from skymesh.scheduler.planning import compute_plan, explain_plan
from skymesh.scheduler.reasons import Reason, ReasonCode
from skymesh.scheduler.scenario import generate_talos

from .conftest import T0

Key = tuple[str, str, datetime]  # station, target, start


@pytest.fixture(scope="module")
def contended() -> PlanRequest:
    # Few stations, many satellites: most targets lose windows, several lose all of them.
    return generate_talos(stations=4, satellites=60, hours=8, seed=11, start=T0)


def _pointings(req: PlanRequest) -> dict[Key, tuple[float, float, float, float]]:
    c = compile_request(req)
    ops = c.problem.opportunities
    out = {}
    for i in range(len(ops)):
        key = (
            c.stations[int(ops.resource[i])].station_id,
            c.targets[int(ops.request[i])].target_id,
            c.t0 + timedelta(seconds=float(ops.start_s[i])),
        )
        out[key] = (float(ops.az0[i]), float(ops.el0[i]), float(ops.az1[i]), float(ops.el1[i]))
    return out


def _conflict(
    req: PlanRequest,
    point: dict[Key, tuple[float, float, float, float]],
    a: tuple[Key, datetime],
    b: tuple[Key, datetime],
) -> bool:
    """Independent of the kernel: turnaround plus the per-axis slew (both axes at the station's rate)."""
    station = next(s for s in req.stations if s.station_id == a[0][0])
    rate = station.slew_rate_deg_s
    model = RotatorModel(AxisLimits(0.0, 360.0, rate), AxisLimits(0.0, 90.0, rate))
    (first, first_end), (second, _) = sorted([a, b], key=lambda x: x[0][2])
    az1, el1 = point[first][2], point[first][3]
    az0, el0 = point[second][0], point[second][1]
    slew = float(slew_time_s(model, az1, el1, az0, el0))
    return (second[2] - first_end).total_seconds() < req.turnaround_s + slew


def _check_reason(
    req: PlanRequest,
    result: PlanResult,
    point: dict[Key, tuple[float, float, float, float]],
    target_id: str,
    reason: Reason,
) -> None:
    assert reason.start is not None and reason.end is not None
    priority = {t.target_id: float(t.target.priority) for t in req.targets}
    own = ((reason.station_id, target_id, reason.start), reason.end)
    plan_at_station = [
        ((a.station_id, a.target_id, a.window.start), a.window.end, a.score)
        for a in result.assignments
        if a.station_id == reason.station_id
    ]
    truly = {(k[1], k[2]): score for k, end, score in plan_at_station if _conflict(req, point, own, (k, end))}
    named = {(o.target_id, o.start): o.value for o in reason.occupants}
    assert named.keys() == truly.keys(), (target_id, reason.detail)
    for o in reason.occupants:
        assert o.value == pytest.approx(truly[(o.target_id, o.start)])
        assert o.priority == priority[o.target_id] and o.station_id == reason.station_id and not o.frozen
    higher = any(o.priority > priority[target_id] for o in reason.occupants)
    worth = sum(o.value for o in reason.occupants)
    mine = [a for a in result.assignments if a.target_id == target_id]
    if reason.code == ReasonCode.LOST_TO_SAME_SATELLITE_LIMIT:
        # Its own contacts: one in the same 2 h bin (TALOS asks one per bin), or one overlapping it.
        same_bin = [
            a for a in mine if (a.window.start - T0) // timedelta(hours=2) == (reason.start - T0) // timedelta(hours=2)
        ]
        overlapping = [a for a in mine if a.window.start < reason.end and reason.start < a.window.end]
        assert same_bin or overlapping, reason.detail
    elif reason.code == ReasonCode.LOST_TO_HIGHER_PRIORITY:
        assert higher, reason.detail
    elif reason.code == ReasonCode.LOST_TO_HIGHER_VALUE:
        assert not higher and reason.occupants and worth >= reason.value - 1e-6, reason.detail
    elif reason.code == ReasonCode.TIME_LIMIT:
        assert not higher and worth < reason.value and not result.stats.optimal, reason.detail
    else:
        pytest.fail(f"unexpected code {reason.code.name} for one opportunity: {reason.detail}")
    if reason.occupants:
        assert reason.winner_target_id == max(reason.occupants, key=lambda o: (o.value, o.target_id)).target_id


def _check_plan(req: PlanRequest, result: PlanResult) -> Counter[ReasonCode]:
    point = _pointings(req)
    codes: Counter[ReasonCode] = Counter()
    for e in (*result.unscheduled, *result.partially_met):
        for r in e.reasons:
            if r.start is not None:
                _check_reason(req, result, point, e.target_id, r)
                codes[r.code] += 1
    # Every opportunity of an unscheduled target, at every station, is explained once.
    opportunities = Counter((k[1], k[0]) for k in point)
    for e in result.unscheduled:
        explained = Counter((e.target_id, r.station_id) for r in e.reasons if r.start is not None)
        assert explained == Counter({k: n for k, n in opportunities.items() if k[0] == e.target_id})
    return codes


@pytest.mark.parametrize("solver", [SolverKind.GREEDY, SolverKind.CPSAT])
def test_every_explanation_matches_the_plan(contended: PlanRequest, solver: SolverKind) -> None:
    from dataclasses import replace

    result = compute_plan(replace(contended, solver=solver, time_limit_s=6.0))
    assert result.unscheduled and result.partially_met
    codes = _check_plan(contended, result)
    # The workload exercises the comparisons, not only one of them (own-limit losses are rare in short periods:
    # `test_explain.py` has a constructed case).
    assert codes[ReasonCode.LOST_TO_HIGHER_PRIORITY] and codes[ReasonCode.LOST_TO_HIGHER_VALUE]


def test_pages_put_back_together_are_the_whole_list(contended: PlanRequest) -> None:
    from dataclasses import replace

    full = compute_plan(contended)
    paged = compute_plan(replace(contended, explanation_page_size=25))
    assert paged.assignments == full.assignments
    assert paged.explanation_reasons_total == full.explanation_reasons_total
    # The first page names every target, with its target-level reasons (an unscheduled one's summary first).
    assert [e.target_id for e in paged.unscheduled] == [e.target_id for e in full.unscheduled]
    assert [e.target_id for e in paged.partially_met] == [e.target_id for e in full.partially_met]
    for e in paged.unscheduled:
        assert e.reasons and e.reasons[0].start is None

    def by_target(items: tuple[Explanation, ...], into: dict[str, list[Reason]]) -> None:
        for e in items:
            into.setdefault(e.target_id, []).extend(e.reasons)

    got_u: dict[str, list[Reason]] = {}
    got_p: dict[str, list[Reason]] = {}
    by_target(paged.unscheduled, got_u)
    by_target(paged.partially_met, got_p)
    token = paged.next_explanation_page_token
    pages = 1
    while token:
        page = explain_plan(contended, full.assignments, page_size=25, page_token=token)
        windows = [r for e in (*page.unscheduled, *page.partially_met) for r in e.reasons]
        assert 0 < len(windows) <= 25 and all(r.start is not None for r in windows)
        by_target(page.unscheduled, got_u)
        by_target(page.partially_met, got_p)
        token = page.next_page_token
        pages += 1
    n_windows = sum(1 for e in (*full.unscheduled, *full.partially_met) for r in e.reasons if r.start is not None)
    assert n_windows > 25 and pages == math.ceil(n_windows / 25)

    # ExplainPlan does not know whether the plan was proven optimal: only that wording may differ.
    def key(r: Reason) -> tuple[object, ...]:
        return (r.code, r.station_id, r.start, r.occupants)

    assert {t: [key(r) for r in rs] for t, rs in got_u.items()} == {
        e.target_id: [key(r) for r in e.reasons] for e in full.unscheduled
    }
    assert {t: [key(r) for r in rs] for t, rs in got_p.items()} == {
        e.target_id: [key(r) for r in e.reasons] for e in full.partially_met
    }


def test_a_page_token_of_another_plan_is_refused(contended: PlanRequest) -> None:
    from dataclasses import replace

    from skymesh.core.errors import InvalidArgument

    paged = compute_plan(replace(contended, explanation_page_size=10))
    assert paged.next_explanation_page_token
    with pytest.raises(InvalidArgument, match="another plan"):
        explain_plan(contended, paged.assignments[1:], page_size=10, page_token=paged.next_explanation_page_token)
