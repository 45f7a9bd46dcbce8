"""Every unscheduled target says why: constructed cases for each kind of reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, StationState, TimeWindow
from skymesh.scheduler.explain import explain_partial, explain_unscheduled
from skymesh.scheduler.inputs import PlanRequest, PlanTarget, SolverKind
from skymesh.scheduler.kernel import FrozenPlacement, Opportunity, OpportunitySet, Problem, Request, Resource
from skymesh.scheduler.planning import compute_plan
from skymesh.scheduler.reasons import FilterLog, ReasonCode

from .conftest import T0, ground_station, iss_like

NIGHT0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _scope(station_id: str, lat: float, lon: float, **kw: object) -> Station:
    defaults: dict[str, object] = {
        "kind": StationKind.TELESCOPE,
        "min_elevation_deg": 20.0,
        "aperture_m": 0.4,
        "filters": ("V", "R"),
        "limiting_magnitude": 17.0,
        "state": StationState.ONLINE,
    }
    defaults.update(kw)
    return Station(station_id, station_id, location=GeoLocation(lat, lon, 2000.0), **defaults)  # type: ignore[arg-type]


def _codes(result_reasons: tuple) -> set[ReasonCode]:  # type: ignore[type-arg]
    return {r.code for r in result_reasons}


def test_celestial_reasons_faint_daylight_never_visible_airmass_filter() -> None:
    stations = [_scope("chile", -30.17, -70.8), _scope("tenerife", 28.3, -16.5)]
    targets = [
        PlanTarget(CelestialTarget("m42", "M42", 83.8, -5.4, magnitude=4.0, priority=8, filters=("V",))),
        PlanTarget(CelestialTarget("faint", "faint", 150.0, -20.0, magnitude=22.0)),
        # Close to the Sun on 1 March: up only in daylight.
        PlanTarget(CelestialTarget("by-sun", "by-sun", 341.0, -7.0, magnitude=5.0)),
        # Polaris: never above 20 deg from Chile; from Tenerife (28 deg N) only at airmass ~2.1 > 2.
        PlanTarget(CelestialTarget("polaris", "Polaris", 37.95, 89.26, magnitude=2.0)),
        PlanTarget(CelestialTarget("infrared", "infrared", 10.0, 10.0, magnitude=5.0, filters=("K",))),
    ]
    res = compute_plan(PlanRequest(TimeWindow(NIGHT0, NIGHT0 + timedelta(hours=24)), stations, targets))
    assert [a.target_id for a in res.assignments] == ["m42"]
    why = {e.target_id: e.reasons for e in res.unscheduled}
    assert set(why) == {"faint", "by-sun", "polaris", "infrared"}
    assert _codes(why["faint"]) == {ReasonCode.TOO_FAINT}
    assert _codes(why["by-sun"]) == {ReasonCode.DAYLIGHT}
    assert {(r.code, r.station_id) for r in why["polaris"]} == {
        (ReasonCode.NEVER_VISIBLE, "chile"),
        (ReasonCode.AIRMASS, "tenerife"),
    }
    assert _codes(why["infrared"]) == {ReasonCode.NO_CAPABLE_STATION}
    assert res.assignments[0].filter == "V" and res.assignments[0].exposure_count == 1


def test_a_target_never_visible_from_the_network() -> None:
    res = compute_plan(
        PlanRequest(
            TimeWindow(T0, T0 + timedelta(hours=12)),
            [ground_station("pole", -89.9, 0.0)],
            [PlanTarget(iss_like("iss"))],
        )
    )
    assert res.assignments == ()
    [e] = res.unscheduled
    assert [(r.code, r.station_id) for r in e.reasons] == [(ReasonCode.NEVER_VISIBLE, "pole")]


def test_losing_to_a_higher_priority_target_names_the_winner() -> None:
    # Two satellites on the same orbit: every pass of one is a pass of the other, one antenna.
    low, high = PlanTarget(iss_like("low", priority=3)), PlanTarget(iss_like("high", priority=9))
    for solver in (SolverKind.GREEDY, SolverKind.CPSAT):
        res = compute_plan(
            PlanRequest(
                TimeWindow(T0, T0 + timedelta(hours=24)),
                [ground_station("gs", 48.0, 11.0)],
                [low, high],
                solver=solver,
                time_limit_s=5.0,
            )
        )
        assert {a.target_id for a in res.assignments} == {"high"}
        [e] = res.unscheduled
        assert e.target_id == "low"
        # A summary, then one reason per pass of "low": each names the pass of "high" that takes the antenna then.
        summary, *windows = e.reasons
        assert (summary.code, summary.winner_target_id, summary.start) == (
            ReasonCode.LOST_TO_HIGHER_PRIORITY,
            "high",
            None,
        )
        assert summary.detail.startswith(f"{len(windows)} windows at 1 stations")
        assert len(windows) == len(res.assignments) >= 2
        for reason in windows:
            assert reason.code == ReasonCode.LOST_TO_HIGHER_PRIORITY
            assert (reason.winner_target_id, reason.station_id) == ("high", "gs")
            assert "priority 9" in reason.detail
            [occupant] = reason.occupants
            assert (occupant.target_id, occupant.priority) == ("high", 9)
            assert reason.start is not None and reason.end is not None
            assert occupant.start < reason.end and reason.start < occupant.end


def test_kernel_level_reasons_frozen_winner_demand_and_time_limit() -> None:
    reqs = [Request("a", 5, max_per_period=1, period_s=3600), Request("b", 5), Request("c", 2)]
    ops = OpportunitySet.from_opportunities(
        [Opportunity(0, 1, 100, 400, 1500), Opportunity(1, 0, 100, 400, 1500), Opportunity(2, 1, 2000, 2100, 200)]
    )
    frozen = [FrozenPlacement(0, 0, 1000, 1300, job_id="j"), FrozenPlacement(0, -1, 50, 600, job_id="k")]
    p = Problem(reqs, [Resource("gs0"), Resource("gs1")], ops, frozen)
    log = FilterLog()
    log.add(2, ReasonCode.TOO_SHORT, "gs9")
    out = explain_unscheduled(p, [], log, t0=T0, frozen_target_ids=["a", "mystery"], optimal=False)
    assert set(out) == {1, 2}  # "a" has a frozen job
    summary, b = out[1]
    assert (summary.code, summary.winner_target_id) == (ReasonCode.LOST_TO_FROZEN_JOB, "mystery")
    # The frozen job of an unknown target (priority 0) holds gs0: lost to a dispatched job, not to a priority.
    assert (b.code, b.winner_target_id, b.station_id) == (ReasonCode.LOST_TO_FROZEN_JOB, "mystery", "gs0")
    assert [(o.target_id, o.job_id, o.frozen) for o in b.occupants] == [("mystery", "k", True)]
    assert {r.code for r in out[2]} == {ReasonCode.TIME_LIMIT, ReasonCode.TOO_SHORT}


def test_a_contact_valuer_drops_unaffordable_contacts_with_a_reason() -> None:
    # The hook skymesh.sim plugs into: a factor per opportunity; 0 = the spacecraft cannot afford the contact.
    from skymesh.scheduler.opportunities import Compiled

    def valuer(c: Compiled) -> list[float]:
        ids = [c.targets[int(r)].target_id for r in c.problem.opportunities.request]
        return [0.0 if t == "flat-battery" else 2.0 for t in ids]

    flat, fine = PlanTarget(iss_like("flat-battery", priority=9)), PlanTarget(iss_like("fine", priority=1, seed=2))
    req = PlanRequest(TimeWindow(T0, T0 + timedelta(hours=24)), [ground_station("gs", 48.0, 11.0)], [flat, fine])
    base = compute_plan(req)
    res = compute_plan(req, valuer=valuer)
    assert {a.target_id for a in res.assignments} == {"fine"}
    [e] = res.unscheduled
    assert e.target_id == "flat-battery"
    assert [(r.code, r.station_id) for r in e.reasons] == [(ReasonCode.SPACECRAFT_POWER, "gs")]
    fine_base = sum(a.score for a in base.assignments if a.target_id == "fine")
    assert res.stats.objective >= 2 * fine_base - 1e-6


def test_simulator_valuer_keeps_power_positive_contacts() -> None:
    from skymesh.scheduler.spacecraft import sim_contact_valuer
    from skymesh.sim.inloop import SpacecraftProfile

    healthy = SpacecraftProfile(
        "ok",
        battery_capacity_wh=80,
        min_soc=0.2,
        charge_power_w=40,
        payload_data_rate_bytes_per_s=5e4,
        downlink_rate_bytes_per_s=1e6,
    )
    starving = SpacecraftProfile(
        "dead",
        battery_capacity_wh=5,
        min_soc=0.9,
        charge_power_w=0.0,
        initial_soc=0.9,
        activity_power_w={"payload": 50.0, "downlink": 50.0, "standby": 1.0},
    )
    ok, dead = PlanTarget(iss_like("ok", seed=2)), PlanTarget(iss_like("dead", seed=3))
    req = PlanRequest(TimeWindow(T0, T0 + timedelta(hours=12)), [ground_station("gs", 48.0, 11.0)], [ok, dead])
    res = compute_plan(req, valuer=sim_contact_valuer({"ok": healthy, "dead": starving}))
    assert {a.target_id for a in res.assignments} == {"ok"}
    why = {e.target_id: {r.code for r in e.reasons} for e in res.unscheduled}
    assert ReasonCode.SPACECRAFT_POWER in why["dead"]


def test_partly_met_target_explains_its_short_periods_own_limit_and_higher_value() -> None:
    # "a" wants one contact per hour over 2 h. It has one in hour 0 (gs0); in hour 1 its window at gs1 overlaps its
    # own contact (one at a time) and its window at gs0 is taken by "b", of equal priority and worth more.
    reqs = [Request("a", 5, max_per_period=1, period_s=3600), Request("b", 5)]
    ops = OpportunitySet.from_opportunities(
        [
            Opportunity(0, 0, 3000, 3700, 700),  # a, hour 0, selected
            Opportunity(0, 1, 3650, 4000, 350),  # a, hour 1, overlaps its own contact
            Opportunity(0, 0, 5000, 5300, 300),  # a, hour 1, taken by b
            Opportunity(1, 0, 4900, 5500, 600),  # b, selected
            Opportunity(0, 0, 1000, 1100, 100),  # a, hour 0: that hour is met, not explained
        ]
    )
    p = Problem(reqs, [Resource("gs0", 0.0), Resource("gs1", 0.0)], ops)
    out = explain_partial(p, [0, 3], 7200.0, t0=T0)
    assert set(out) == {0}
    summary, *windows = out[0]
    assert summary.code == ReasonCode.PARTIALLY_MET and summary.detail.startswith("1 of 2 wanted")
    by_station = {r.station_id: r for r in windows}
    assert set(by_station) == {"gs0", "gs1"}
    own = by_station["gs1"]
    assert own.code == ReasonCode.LOST_TO_SAME_SATELLITE_LIMIT and own.occupants == ()
    assert own.start == T0 + timedelta(seconds=3650)
    lost = by_station["gs0"]
    assert lost.code == ReasonCode.LOST_TO_HIGHER_VALUE and lost.winner_target_id == "b"
    assert [(o.target_id, o.priority, o.value) for o in lost.occupants] == [("b", 5, 600)]


def test_explanations_past_the_deadline_count_the_lost_windows_instead_of_listing_them() -> None:
    reqs = [Request("a", 5, max_per_period=1, period_s=3600), Request("b", 5), Request("c", 2)]
    ops = OpportunitySet.from_opportunities(
        [
            Opportunity(0, 0, 3000, 3700, 700),  # a, hour 0, selected
            Opportunity(0, 1, 5000, 5300, 300),  # a, hour 1, not placed
            Opportunity(1, 0, 100, 400, 300),  # b, not placed
            Opportunity(1, 1, 200, 500, 300),  # b, not placed
        ]
    )
    p = Problem(reqs, [Resource("gs0"), Resource("gs1")], ops)
    out = explain_unscheduled(p, [0], FilterLog(), t0=T0, deadline=0.0)  # the budget ran out before they started
    assert set(out) == {1, 2}
    [b] = out[1]
    assert b.code == ReasonCode.TIME_LIMIT and b.start is None
    assert b.detail.startswith("2 windows at 2 stations not placed; not explained one by one")
    assert out[2][0].code == ReasonCode.NEVER_VISIBLE  # no window at all: still said
    [a] = explain_partial(p, [0], 7200.0, t0=T0, deadline=0.0)[0]
    assert a.code == ReasonCode.PARTIALLY_MET
    assert a.detail == "1 of 2 wanted (1 per 3600 s): 1 windows in its short periods were not placed (not listed: " + (
        "the plan's time budget ran out first)"
    )
