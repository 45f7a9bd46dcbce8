"""Shared scenarios for the scheduler tests: small, seeded, real orbits and real sky."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skymesh.astro.tle_gen import generate_tles
from skymesh.core.model import GeoLocation, SatelliteTarget, Station, StationKind, StationState
from skymesh.scheduler.inputs import PlanRequest
from skymesh.scheduler.scenario import generate_talos

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def small_talos() -> PlanRequest:
    return generate_talos(stations=6, satellites=20, hours=6, seed=7, start=T0)


def ground_station(station_id: str, lat: float, lon: float, **kw: object) -> Station:
    defaults: dict[str, object] = {
        "kind": StationKind.GROUND_STATION,
        "bands": ("UHF",),
        "state": StationState.ONLINE,
        "min_elevation_deg": 10.0,
    }
    defaults.update(kw)
    return Station(station_id, station_id, location=GeoLocation(lat, lon, 0.0), **defaults)  # type: ignore[arg-type]


def iss_like(target_id: str, priority: int = 5, band: str = "UHF", seed: int = 1) -> SatelliteTarget:
    tle = generate_tles("iss", 1, T0, seed=seed)[0]
    l1, l2 = tle.lines()
    return SatelliteTarget(target_id, target_id, tle.norad_id, l1, l2, band=band, priority=priority)
