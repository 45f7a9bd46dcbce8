"""TLE parsing, validation, formatting, Alpha-5 and OMM, against hand-checked text and Hypothesis round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sgp4 import omm as sgp4_omm
from sgp4.api import Satrec
from sgp4.exporter import export_omm

from skymesh.astro.tle import (
    TLE,
    alpha5_to_int,
    format_tle,
    int_to_alpha5,
    parse_tle,
    parse_tle_file,
    tle_checksum,
    tle_from_omm,
)
from skymesh.core.errors import InvalidArgument, InvalidTLE

ISS_L1 = "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927"
ISS_L2 = "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537"


def _fix_checksum(line: str) -> str:
    return line[:68] + str(tle_checksum(line))


def test_parse_good_tle() -> None:
    tle = parse_tle(ISS_L1, ISS_L2, name="ISS (ZARYA)")
    assert tle.norad_id == 25544
    assert tle.name == "ISS (ZARYA)"
    assert tle.epoch == datetime(2008, 9, 20, 12, 25, 40, 104192, tzinfo=UTC)
    assert tle.inclination_deg == pytest.approx(51.6416)
    assert tle.eccentricity == pytest.approx(0.0006703)
    assert tle.mean_motion_rev_per_day == pytest.approx(15.72125391)
    assert tle.bstar_per_earth_radius == pytest.approx(-0.11606e-4)
    assert 300 < tle.perigee_altitude_km < 400
    assert tle.satrec().satnum == 25544


def test_bad_checksum_names_line_and_column() -> None:
    bad = ISS_L1[:68] + "0"
    with pytest.raises(InvalidTLE) as err:
        parse_tle(bad, ISS_L2)
    assert err.value.field == "line1[69]"
    assert "checksum" in str(err.value)
    assert isinstance(err.value, InvalidArgument)


@pytest.mark.parametrize(
    ("line1", "line2", "field", "words"),
    [
        (ISS_L1[:60], ISS_L2, "line1", "69 characters"),
        ("3" + ISS_L1[1:], ISS_L2, "line1[1]", "line number"),
        (ISS_L1, _fix_checksum("2 25545" + ISS_L2[7:]), "line2[3-7]", "catalog numbers differ"),
        (ISS_L1, _fix_checksum(ISS_L2[:8] + "191.6416" + ISS_L2[16:]), "line2[9-16]", "inclination"),
        (ISS_L1, _fix_checksum(ISS_L2[:52] + " 0.00000000" + ISS_L2[63:]), "line2[53-63]", "impossible orbit"),
        # 18 rev/day is a 250 km orbit; with e = 0.1 its perigee is far below ground.
        (
            ISS_L1,
            _fix_checksum(ISS_L2[:26] + "1000000" + ISS_L2[33:52] + "18.00000000" + ISS_L2[63:]),
            "line2[53-63]",
            "impossible orbit",
        ),
        (ISS_L1, _fix_checksum(ISS_L2[:43] + "3x5.0288" + ISS_L2[51:]), "line2[44-51]", "not a number"),
    ],
)
def test_bad_tles(line1: str, line2: str, field: str, words: str) -> None:
    with pytest.raises(InvalidTLE) as err:
        parse_tle(line1, line2)
    assert err.value.field == field
    assert words in str(err.value)


def test_alpha5_examples() -> None:
    assert alpha5_to_int("A0000") == 100000
    assert alpha5_to_int("Z9999") == 339999
    assert alpha5_to_int("J0001") == 180001  # I is skipped
    assert alpha5_to_int("P5000") == 235000  # I and O are skipped
    assert alpha5_to_int("25544") == 25544
    assert int_to_alpha5(100000) == "A0000"
    assert int_to_alpha5(339999) == "Z9999"
    assert int_to_alpha5(42) == "00042"
    for bad in ("I0000", "O1234", "A12", "1234x"):
        with pytest.raises(InvalidTLE):
            alpha5_to_int(bad)
    with pytest.raises(InvalidTLE):
        int_to_alpha5(340000)


@given(st.integers(min_value=0, max_value=339999))
def test_alpha5_round_trip_and_agrees_with_sgp4(n: int) -> None:
    from sgp4.alpha5 import from_alpha5, to_alpha5

    text = int_to_alpha5(n)
    assert len(text) == 5
    assert alpha5_to_int(text) == n
    assert text == to_alpha5(n)
    assert from_alpha5(text) == n


def test_alpha5_tle_parses_and_propagates() -> None:
    tle = format_tle(
        norad_id=270000,
        epoch=datetime(2026, 1, 1, tzinfo=UTC),
        inclination_deg=53.0,
        raan_deg=10.0,
        eccentricity=0.0001,
        arg_perigee_deg=0.0,
        mean_anomaly_deg=0.0,
        mean_motion_rev_per_day=15.06,
    )
    assert tle.line1[2:7] == "T0000"
    again = parse_tle(tle.line1, tle.line2)
    assert again.norad_id == 270000
    sat = again.satrec()
    err, r, _ = sat.sgp4(sat.jdsatepoch, sat.jdsatepochF + 0.1)
    assert err == 0 and 6700 < sum(x * x for x in r) ** 0.5 < 7000


def test_parse_file_two_and_three_line_with_blanks() -> None:
    text = f"\nISS (ZARYA)\n{ISS_L1}\n{ISS_L2}\n\n{ISS_L1}\r\n{ISS_L2}\r\n0 ISS AGAIN\n{ISS_L1}\n{ISS_L2}   \n"
    tles = parse_tle_file(text)
    assert [t.name for t in tles] == ["ISS (ZARYA)", "", "ISS AGAIN"]
    assert all(t.norad_id == 25544 for t in tles)


def test_parse_file_reports_file_line() -> None:
    text = f"GOOD\n{ISS_L1}\n{ISS_L2}\nBAD\n{ISS_L1}\n{ISS_L2[:68]}0\n"
    with pytest.raises(InvalidTLE) as err:
        parse_tle_file(text)
    assert err.value.field == "line 6"
    assert "line2[69]" in str(err.value)
    with pytest.raises(InvalidTLE):
        parse_tle_file(f"NAME ONLY\n{ISS_L1}\n")


def test_tle_from_omm_matches_sgp4_reader() -> None:
    src = parse_tle(ISS_L1, ISS_L2, name="ISS (ZARYA)")
    omm = export_omm(src.satrec(), "ISS (ZARYA)")
    tle = tle_from_omm(omm)
    assert tle.norad_id == 25544
    assert tle.name == "ISS (ZARYA)"
    assert tle.line2 == ISS_L2
    assert tle.line1[:62] == ISS_L1[:62]
    # And it propagates like the reference OMM reader does.
    ref = Satrec()
    sgp4_omm.initialize(ref, {k: str(v) for k, v in omm.items()})
    mine = tle.satrec()
    _, r1, _ = ref.sgp4(ref.jdsatepoch, ref.jdsatepochF + 0.5)
    _, r2, _ = mine.sgp4(mine.jdsatepoch, mine.jdsatepochF + 0.5)
    assert max(abs(a - b) for a, b in zip(r1, r2, strict=True)) < 0.01  # km


def test_tle_from_celestrak_json_strings_and_errors() -> None:
    omm = {
        "OBJECT_NAME": "STARLINK-1007",
        "OBJECT_ID": "2019-074A",
        "EPOCH": "2024-03-01T06:31:17.123456",
        "MEAN_MOTION": 15.06391174,
        "ECCENTRICITY": 0.0001398,
        "INCLINATION": 53.0548,
        "RA_OF_ASC_NODE": 187.2113,
        "ARG_OF_PERICENTER": 84.0381,
        "MEAN_ANOMALY": 276.077,
        "EPHEMERIS_TYPE": 0,
        "CLASSIFICATION_TYPE": "U",
        "NORAD_CAT_ID": 44713,
        "ELEMENT_SET_NO": 999,
        "REV_AT_EPOCH": 24440,
        "BSTAR": 0.00027852,
        "MEAN_MOTION_DOT": 4.051e-5,
        "MEAN_MOTION_DDOT": 0,
    }
    tle = tle_from_omm(omm)
    assert tle.line1.startswith("1 44713U 19074A   24061.27172597  .00004051  00000-0  27852-3 0  9990")
    assert abs((tle.epoch - datetime(2024, 3, 1, 6, 31, 17, 123456, tzinfo=UTC)).total_seconds()) < 1e-3
    with pytest.raises(InvalidTLE) as err:
        tle_from_omm({k: v for k, v in omm.items() if k != "MEAN_MOTION"})
    assert err.value.field == "MEAN_MOTION"
    with pytest.raises(InvalidTLE, match="impossible orbit"):
        tle_from_omm({**omm, "ECCENTRICITY": 1.2})


def test_format_rejects_naive_epoch() -> None:
    with pytest.raises(InvalidTLE) as err:
        format_tle(
            norad_id=1,
            epoch=datetime(2026, 1, 1),
            inclination_deg=0.0,
            raan_deg=0.0,
            eccentricity=0.0,
            arg_perigee_deg=0.0,
            mean_anomaly_deg=0.0,
            mean_motion_rev_per_day=15.0,
        )
    assert err.value.field == "epoch"


_angle = st.floats(min_value=0.0, max_value=359.9999, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    norad_id=st.integers(min_value=1, max_value=339999),
    epoch_s=st.floats(min_value=0.0, max_value=30 * 365.25 * 86400.0),
    inclination_deg=st.floats(min_value=0.0, max_value=180.0),
    raan_deg=_angle,
    eccentricity=st.floats(min_value=0.0, max_value=0.7),
    arg_perigee_deg=_angle,
    mean_anomaly_deg=_angle,
    mean_motion=st.floats(min_value=0.9, max_value=16.4),
    bstar=st.floats(min_value=-1e-2, max_value=1e-2),
    ndot=st.floats(min_value=-1e-3, max_value=1e-3),
    name=st.text(alphabet="ABCXYZ0123456789- ()", max_size=24),
)
def test_format_parse_round_trip(
    norad_id: int,
    epoch_s: float,
    inclination_deg: float,
    raan_deg: float,
    eccentricity: float,
    arg_perigee_deg: float,
    mean_anomaly_deg: float,
    mean_motion: float,
    bstar: float,
    ndot: float,
    name: str,
) -> None:
    # Keep the perigee above ground: eccentric orbits need a low mean motion.
    a_km = (398600.8 / (mean_motion * 2 * 3.141592653589793 / 86400.0) ** 2) ** (1 / 3)
    if a_km * (1 - eccentricity) < 6378.135 + 100:
        eccentricity = 0.0
    epoch = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch_s)
    tle = format_tle(
        norad_id=norad_id,
        epoch=epoch,
        inclination_deg=inclination_deg,
        raan_deg=raan_deg,
        eccentricity=eccentricity,
        arg_perigee_deg=arg_perigee_deg,
        mean_anomaly_deg=mean_anomaly_deg,
        mean_motion_rev_per_day=mean_motion,
        bstar_per_earth_radius=bstar,
        mean_motion_dot_rev_per_day2=ndot,
        name=name,
    )
    assert len(tle.line1) == len(tle.line2) == 69
    again = parse_tle(tle.line1, tle.line2, name=tle.name)
    assert again == tle
    assert again.norad_id == norad_id
    assert abs((again.epoch - epoch).total_seconds()) < 1e-3
    assert again.inclination_deg == pytest.approx(inclination_deg, abs=6e-5)
    assert again.eccentricity == pytest.approx(eccentricity, abs=6e-8)
    assert again.mean_motion_rev_per_day == pytest.approx(mean_motion, abs=6e-9)
    assert again.bstar_per_earth_radius == pytest.approx(bstar, rel=1e-4, abs=1e-9)
    for a, b in ((again.raan_deg, raan_deg), (again.mean_anomaly_deg, mean_anomaly_deg)):
        assert min(abs(a - b), 360 - abs(a - b)) < 6e-5
    sat = again.satrec()
    assert sat.error == 0
    assert sat.satnum == norad_id


def test_tle_is_frozen() -> None:
    tle = parse_tle(ISS_L1, ISS_L2)
    with pytest.raises(AttributeError):
        tle.name = "x"  # type: ignore[misc]
    assert isinstance(tle, TLE)
    assert tle.as_text() == f"{ISS_L1}\n{ISS_L2}\n"
