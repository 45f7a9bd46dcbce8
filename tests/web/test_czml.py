"""The CZML document: satellites sampled from SGP4 agree with the map's sub-satellite point, stations carry state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skymesh.api.common.v1 import common_pb2
from skymesh.web.czml import czml_document
from skymesh.web.sky import sky_json
from tests.server.conftest import ISS_LINE1, ISS_LINE2


def test_czml_satellite_samples_and_stations() -> None:
    iss = common_pb2.Target(
        target_id="iss", name="ISS", satellite=common_pb2.SatelliteTarget(tle_line1=ISS_LINE1, tle_line2=ISS_LINE2)
    )
    station = common_pb2.Station(
        station_id="gs-athens",
        location=common_pb2.GeoLocation(latitude_deg=37.98, longitude_deg=23.73, altitude_m=100.0),
        state=common_pb2.STATION_STATE_ONLINE,
    )
    start = datetime(2008, 9, 20, 12, 0, tzinfo=UTC)
    doc = czml_document([station], [iss], start, hours=1.0, step_s=60.0)
    assert doc[0]["id"] == "document" and doc[0]["clock"]["interval"] == "2008-09-20T12:00:00Z/2008-09-20T13:00:00Z"
    st = next(p for p in doc if p["id"] == "station/gs-athens")
    assert st["position"]["cartographicDegrees"] == [23.73, 37.98, 100.0]
    assert st["point"]["color"]["rgba"] == [46, 204, 113, 255]
    sat = next(p for p in doc if p["id"] == "satellite/iss")
    samples = sat["position"]["cartographicDegrees"]
    assert len(samples) == 61 * 4 and samples[0] == 0.0 and samples[-4] == 3600.0
    now = sky_json([iss], start, tracks=False)["satellites"][0]
    assert samples[1] == pytest.approx(now["lon_deg"], abs=1e-3)
    assert samples[2] == pytest.approx(now["lat_deg"], abs=1e-3)
    assert 330_000 < samples[3] < 420_000  # ISS altitude in metres
