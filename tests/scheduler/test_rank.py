"""Ranked target lists: the pre-filtered fast path ranks exactly like compiling every target over the horizon."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from skymesh.astro.tle_gen import FAMILIES, generate_tles
from skymesh.core.errors import InvalidArgument
from skymesh.core.model import (
    CelestialTarget,
    GeoLocation,
    HorizonMask,
    SatelliteTarget,
    Station,
    StationKind,
    StationState,
)
from skymesh.scheduler.inputs import Demand, PlanTarget
from skymesh.scheduler.rank import RankedTarget, rank_targets
from tests.scheduler.conftest import T0, ground_station


def _targets(rng: random.Random) -> list[PlanTarget]:
    out: list[PlanTarget] = []
    for f, family in enumerate(FAMILIES):
        for tle in generate_tles(family, 18, T0, seed=100 + f):
            sat = SatelliteTarget(
                f"sat-{tle.norad_id}",
                tle.name,
                tle.norad_id,
                tle.line1,
                tle.line2,
                band=rng.choice(["", "UHF", "S"]),
                priority=rng.randint(1, 10),
                min_elevation_deg=rng.choice([0.0, 0.0, 15.0, 30.0]),
            )
            boost = rng.choice([0.0, 0.0, 2.0])
            out.append(PlanTarget(sat, Demand(campaign_boost=boost)))
    for k in range(150):
        star = CelestialTarget(
            f"star-{k:03d}",
            f"Star {k}",
            rng.uniform(0.0, 359.9),
            rng.uniform(-89.0, 89.0),
            magnitude=rng.uniform(5.0, 16.0),
            priority=rng.randint(1, 10),
            filters=rng.choice([(), ("V",), ("R",), ("V", "B")]),
            exposure_s=rng.choice([30.0, 120.0, 600.0]),
            exposure_count=rng.randint(1, 3),
            max_airmass=rng.choice([1.5, 2.0, 3.0]),
            min_moon_separation_deg=rng.choice([0.0, 20.0, 60.0]),
            max_hour_angle_h=rng.choice([0.0, 0.0, 3.0]),
        )
        out.append(PlanTarget(star))
    rng.shuffle(out)
    return out


def _stations(rng: random.Random) -> list[Station]:
    mask = HorizonMask((0.0, 90.0, 180.0, 270.0), (5.0, 25.0, 12.0, 40.0))
    out = []
    for i in range(4):
        out.append(
            ground_station(
                f"gs-{i}",
                rng.uniform(-70.0, 70.0),
                rng.uniform(-180.0, 180.0),
                bands=rng.choice([("UHF",), ("UHF", "S")]),
                min_elevation_deg=rng.choice([0.0, 10.0, 20.0]),
                horizon_mask=mask if i % 2 else HorizonMask(),
            )
        )
    for i in range(3):
        where = GeoLocation(rng.uniform(-60.0, 60.0), rng.uniform(-180.0, 180.0), 2000.0)
        out.append(
            Station(
                f"scope-{i}",
                f"scope-{i}",
                StationKind.TELESCOPE,
                where,
                min_elevation_deg=rng.choice([10.0, 20.0]),
                filters=("V", "R"),
                aperture_m=0.4,
                state=StationState.ONLINE,
                horizon_mask=mask if i == 1 else HorizonMask(),
            )
        )
    return out


def _same(fast: list[RankedTarget], full: list[RankedTarget]) -> None:
    assert [r.target_id for r in fast] == [r.target_id for r in full]
    for a, b in zip(fast, full, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-9)
        assert a.remaining_s == pytest.approx(b.remaining_s, rel=1e-9)
        assert a.altitude_deg == pytest.approx(b.altitude_deg, abs=1e-9)
        assert a.airmass == pytest.approx(b.airmass, rel=1e-9)


def test_fast_path_ranks_like_the_full_computation_on_a_random_set() -> None:
    rng = random.Random(20261203)
    targets = _targets(rng)
    kinds_seen: set[str] = set()
    for station in _stations(rng):
        # Telescopes near their local midnight (so stars are up at night), ground stations at any hour.
        local_midnight = T0 - timedelta(hours=station.location.longitude_deg / 15.0)
        for _ in range(2):
            at = local_midnight + timedelta(minutes=rng.uniform(-240.0, 240.0))
            full = rank_targets(station, targets, at, 0, prefilter=False)
            _same(rank_targets(station, targets, at, 0), full)
            _same(rank_targets(station, targets, at, 7), full[:7])
            kinds_seen |= {r.target_id.split("-")[0] for r in full}
    assert kinds_seen == {"sat", "star"}  # both paths were exercised with something to rank


def test_fast_path_rejects_what_the_full_computation_rejects() -> None:
    gs = ground_station("gs", 48.0, 11.0)
    scope = Station("scope", "scope", StationKind.TELESCOPE, GeoLocation(30.0, 0.0, 0.0), state=StationState.ONLINE)
    tle = generate_tles("iss", 1, T0, seed=3)[0]
    bad = SatelliteTarget("bad", "bad", tle.norad_id, tle.line1[:-1] + "0", tle.line2)  # checksum broken
    star = PlanTarget(CelestialTarget("star", "star", 10.0, 20.0))
    # A telescope never tracks the satellite, but its element set is still checked, as the mapping checks it.
    for prefilter in (True, False):
        with pytest.raises(InvalidArgument) as err:
            rank_targets(scope, [star, PlanTarget(bad)], T0, 5, prefilter=prefilter)
        assert err.value.field is not None and err.value.field.startswith("targets[1].target.satellite.")
        with pytest.raises(InvalidArgument) as err:
            rank_targets(gs, [star, star], T0, 5, prefilter=prefilter)
        assert err.value.field == "targets[1].target.target_id"
