"""Generated TLEs: valid text, the geometry of their family, deterministic, and sane under SGP4 for days."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sgp4.api import SatrecArray

from skymesh.astro.tle import parse_tle
from skymesh.astro.tle_gen import (
    FAMILIES,
    FAMILY_NORAD_BASE,
    generate_catalog,
    generate_tles,
    sso_inclination_deg,
)
from skymesh.core.errors import InvalidArgument

EPOCH = datetime(2026, 11, 22, tzinfo=UTC)

# (perigee..apogee altitude km band, inclination band deg)
EXPECTED = {
    "iss": ((395.0, 440.0), (51.6, 51.7)),
    "sso": ((480.0, 820.0), (97.3, 98.7)),
    "starlink": ((540.0, 560.0), (52.99, 53.01)),
    "polar": ((765.0, 795.0), (86.39, 86.41)),
    "cubesat": ((420.0, 575.0), (97.3, 97.7)),
    "meo": ((19_500.0, 20_800.0), (53.9, 56.1)),
    "geo": ((35_750.0, 35_820.0), (0.0, 0.1)),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_geometry_and_validity(family: str) -> None:
    tles = generate_tles(family, 40, EPOCH, seed=7)
    assert len(tles) == 40
    assert tles[0].name == f"SKYM-{family.upper()}-001"
    assert [t.norad_id for t in tles] == list(range(FAMILY_NORAD_BASE[family], FAMILY_NORAD_BASE[family] + 40))
    (alt_lo, alt_hi), (inc_lo, inc_hi) = EXPECTED[family]
    for t in tles:
        assert parse_tle(t.line1, t.line2, t.name) == t
        assert t.epoch == EPOCH
        assert alt_lo < t.perigee_altitude_km <= t.apogee_altitude_km < alt_hi
        assert inc_lo <= t.inclination_deg <= inc_hi


@pytest.mark.parametrize("family", FAMILIES)
def test_propagates_sanely_for_three_days(family: str) -> None:
    tles = generate_tles(family, 25, EPOCH, seed=11)
    sats = SatrecArray([t.satrec() for t in tles])
    jd0 = tles[0].satrec().jdsatepoch
    fr = np.linspace(0.0, 3.0, 433)
    err, r, v = sats.sgp4(np.full(fr.shape, jd0), fr)
    assert not err.any()
    radius_km = np.linalg.norm(r, axis=2)
    speed_km_s = np.linalg.norm(v, axis=2)
    (alt_lo, alt_hi), _ = EXPECTED[family]
    assert radius_km.min() > 6378.0 + alt_lo - 15.0
    assert radius_km.max() < 6378.0 + alt_hi + 15.0
    # vis-viva: circular speed within a few percent
    circular = np.sqrt(398600.44 / radius_km)
    assert np.allclose(speed_km_s, circular, rtol=0.03)


def test_sso_inclination_matches_known_values() -> None:
    # Published: ~97.4 deg at 500 km, ~98.6 deg at 800 km.
    assert sso_inclination_deg(500.0) == pytest.approx(97.40, abs=0.05)
    assert sso_inclination_deg(800.0) == pytest.approx(98.60, abs=0.05)


def test_deterministic_in_seed() -> None:
    a = generate_tles("sso", 5, EPOCH, seed=1)
    b = generate_tles("sso", 5, EPOCH, seed=1)
    c = generate_tles("sso", 5, EPOCH, seed=2)
    assert a == b
    assert a != c


def test_starlink_has_several_planes() -> None:
    tles = generate_tles("starlink", 60, EPOCH, seed=3)
    planes = {round(t.raan_deg, 1) for t in tles}
    assert 3 <= len(planes) <= 72


def test_catalog_mix_and_unique_ids() -> None:
    tles = generate_catalog(300, EPOCH, seed=5)
    assert len(tles) == 300
    assert len({t.norad_id for t in tles}) == 300
    assert {t.name.split("-")[1].lower() for t in tles} == set(FAMILIES)


def test_custom_base_and_errors() -> None:
    tles = generate_tles("iss", 2, EPOCH, seed=0, norad_base=99999)
    assert [t.norad_id for t in tles] == [99999, 100000]
    assert tles[1].line1[2:7] == "A0000"
    with pytest.raises(InvalidArgument) as err:
        generate_tles("leo", 1, EPOCH, seed=0)
    assert err.value.field == "family"
    with pytest.raises(InvalidArgument):
        generate_tles("iss", 1, datetime(2026, 1, 1), seed=0)
    with pytest.raises(InvalidArgument):
        generate_tles("iss", 10, EPOCH, seed=0, norad_base=339995)
    assert generate_tles("geo", 0, EPOCH, seed=0) == []
