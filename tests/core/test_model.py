from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skymesh.core.errors import InvalidArgument, status_for
from skymesh.core.model import CelestialTarget, GeoLocation, TimeWindow


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latitude_deg": 91.0, "longitude_deg": 0.0}, "latitude_deg"),
        ({"latitude_deg": float("nan"), "longitude_deg": 0.0}, "latitude_deg"),
        ({"latitude_deg": 0.0, "longitude_deg": 400.0}, "longitude_deg"),
        ({"latitude_deg": 0.0, "longitude_deg": 0.0, "altitude_m": 1e6}, "altitude_m"),
    ],
)
def test_location_rejects_out_of_range_values_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        GeoLocation(**kwargs)
    assert info.value.field == field
    assert status_for(info.value).grpc_code_name == "INVALID_ARGUMENT"


def test_time_window_requires_aware_ordered_times() -> None:
    with pytest.raises(InvalidArgument, match="timezone"):
        TimeWindow(datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(InvalidArgument) as info:
        TimeWindow(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert info.value.field == "end"


def test_celestial_target_units() -> None:
    with pytest.raises(InvalidArgument) as info:
        CelestialTarget("t", "t", ra_deg=360.0, dec_deg=0.0)
    assert info.value.field == "ra_deg"
    with pytest.raises(InvalidArgument) as info:
        CelestialTarget("t", "t", ra_deg=10.0, dec_deg=0.0, exposure_s=-1)
    assert info.value.field == "exposure_s"
