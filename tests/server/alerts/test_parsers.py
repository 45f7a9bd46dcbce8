"""Every alert format from bytes to the normalised Alert, on fixtures written from the public schemas; and every
kind of bad packet (malformed, truncated, wrong schema, huge, deeply nested, XML entity expansion) refused with an
AlertParseError that says what is wrong."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.server.alerts import AlertFormat, AlertParseError, AlertRole, ParseLimits, parse_alerts
from skymesh.server.alerts.jsonsafe import nesting_depth
from skymesh.server.alerts.units import ab_mag_from_njy, radius_to_90_deg
from tests.server.alerts.packets import (
    fixture,
    rubin_confluent_packet,
    rubin_packet,
    rubin_record,
    schema,
    ztf_packet,
    ztf_record,
)

ONE_ARCSEC_DEG = 1.0 / 3600.0


def one(packet: bytes, **kwargs: object) -> object:
    alerts = parse_alerts(packet, **kwargs)  # type: ignore[arg-type]
    assert len(alerts) == 1
    return alerts[0]


def test_swift_guano_initial_update_and_retraction_share_an_identity() -> None:
    initial = parse_alerts(fixture("gcn_swift_bat_guano.json"))[0]
    update = parse_alerts(fixture("gcn_swift_bat_guano_update.json"))[0]
    retraction = parse_alerts(fixture("gcn_swift_bat_guano_retraction.json"))[0]
    assert initial.source == "gcn" and initial.format == AlertFormat.GCN_JSON
    assert initial.alert_type == "swift.bat.guano"
    assert initial.external_id == update.external_id == retraction.external_id == "swift:786169265"
    assert (initial.revision, update.revision, retraction.revision) == (1, 2, 4)
    assert initial.event_name == "GRB 261130A"
    assert initial.role == AlertRole.OBSERVATION and not initial.retraction
    assert initial.ra_deg == pytest.approx(201.3651) and initial.dec_deg == pytest.approx(-43.0192)
    assert initial.error_radius_deg == pytest.approx(0.0525)  # already 90 %
    assert initial.event_time == datetime(2026, 11, 30, 3, 21, 5, 130000, tzinfo=UTC)
    assert update.error_radius_deg == pytest.approx(0.0167)
    assert retraction.retraction and not retraction.has_position
    assert len({initial.dedup_key, update.dedup_key, retraction.dedup_key}) == 3


def test_fermi_gbm_radius_rescaled_from_68_to_90_percent() -> None:
    alert = parse_alerts(fixture("gcn_fermi_gbm.json"))[0]
    expected = 8.32 * math.sqrt(math.log(10.0) / -math.log(1 - 0.68))
    assert alert.error_radius_deg == pytest.approx(expected, rel=1e-9)
    assert alert.error_radius_deg == pytest.approx(11.83, abs=0.01)
    assert alert.external_id == "fermi:786075285" and "bn261129094" in alert.aliases
    assert alert.flux_erg_s_cm2 == pytest.approx(3.2e-7)


def test_icecube_gold_track() -> None:
    alert = parse_alerts(fixture("gcn_icecube_gold.json"))[0]
    assert alert.alert_type == "icecube.gold_bronze_track_alerts"
    assert alert.event_name == "IceCube-261128A"
    assert alert.external_id == "icecube:140123_81234567"
    assert alert.ra_deg == pytest.approx(345.82) and alert.error_radius_deg == pytest.approx(0.5)
    # No record number: the alert time orders revisions.
    assert alert.revision == int(datetime(2026, 11, 28, 5, 42, tzinfo=UTC).timestamp())


def test_test_tense_and_voevent_test_role_are_test_alerts() -> None:
    assert parse_alerts(fixture("gcn_test_notice.json"))[0].role == AlertRole.TEST
    assert parse_alerts(fixture("voevent_test.xml"))[0].role == AlertRole.TEST


def test_lvk_preliminary_and_retraction() -> None:
    prelim = parse_alerts(fixture("lvk_preliminary.json"))[0]
    retraction = parse_alerts(fixture("lvk_retraction.json"))[0]
    assert prelim.alert_type == "lvk" and prelim.external_id == retraction.external_id == "lvk:S261130bm"
    assert not prelim.has_position  # a HEALPix map, not a point
    assert prelim.skymap.startswith(b"SIMPLE  =") and not retraction.skymap  # carried, read by the worker pool
    assert prelim.role == AlertRole.OBSERVATION and retraction.retraction
    assert prelim.event_time == datetime(2026, 11, 30, 12, 0, 3, 210000, tzinfo=UTC)
    mock = json.loads(fixture("lvk_preliminary.json"))
    mock["superevent_id"] = "MS261130a"
    assert parse_alerts(json.dumps(mock).encode())[0].role == AlertRole.TEST


def test_voevent_swift_bat_position() -> None:
    alert = parse_alerts(fixture("voevent_swift_bat.xml"))[0]
    assert alert.format == AlertFormat.VOEVENT and alert.alert_type == "voevent.swift"
    assert alert.external_id == "swift:1284519" and alert.revision == 1
    assert alert.ra_deg == pytest.approx(88.1214) and alert.dec_deg == pytest.approx(-12.4478)
    assert alert.error_radius_deg == pytest.approx(0.05)
    assert alert.event_time == datetime(2026, 11, 30, 7, 1, 30, 860000, tzinfo=UTC)
    assert "ivo://nasa.gsfc.gcn/SWIFT#BAT_GRB_Pos_1284519-259" in alert.aliases
    retraction = parse_alerts(fixture("voevent_retraction.xml"))[0]
    assert retraction.retraction and retraction.external_id == alert.external_id and not retraction.has_position


def test_voevent_energy_flux_in_si_becomes_cgs() -> None:
    packet = fixture("voevent_swift_bat.xml").replace(
        b'<Param name="Retraction" value="0"/>',
        b'<Param name="Retraction" value="0"/><Param name="Flux" value="2.5e-15" unit="W/m2" ucd="phot.flux"/>',
    )
    alert = parse_alerts(packet)[0]
    assert alert.flux_erg_s_cm2 == pytest.approx(2.5e-12)  # 1 W/m^2 = 1e3 erg/s/cm^2
    bad = packet.replace(b'unit="W/m2"', b'unit="Crab"')
    with pytest.raises(AlertParseError, match="unknown energy-flux unit 'Crab'"):
        parse_alerts(bad)


def test_voevent_fermi_gbm_one_sigma_radius() -> None:
    alert = parse_alerts(fixture("voevent_fermi_gbm.xml"))[0]
    assert alert.error_radius_deg == pytest.approx(4.0 * 2.146, rel=2e-3)


def test_tns_object() -> None:
    alert = parse_alerts(fixture("tns_object.json"))[0]
    assert alert.source == "tns" and alert.alert_type == "tns.sn"
    assert alert.event_name == "SN 2026xyz" and alert.external_id == "2026xyz"
    assert {"2026xyz", "ZTF26aabcdef", "ATLAS26qwe"} <= set(alert.aliases)
    assert alert.magnitude_ab == pytest.approx(18.42) and alert.filter == "r"
    assert alert.ra_deg == pytest.approx(48.03521) and alert.detail == "SN Ia"


def test_ztf_avro_with_cutouts() -> None:
    alert = parse_alerts(ztf_packet())[0]
    assert alert.format == AlertFormat.ZTF_AVRO and alert.source == "ztf"
    assert alert.external_id == "ZTF26aabcdef" and alert.revision == 2712345678901234567
    assert alert.magnitude_ab == pytest.approx(18.61, abs=1e-5) and alert.filter == "r"
    assert [c.name for c in alert.cutouts] == ["science", "template", "difference"]
    assert all(c.data[:2] == b"\x1f\x8b" for c in alert.cutouts)  # gzipped FITS, kept as sent
    assert alert.event_time is not None
    assert abs((alert.event_time - datetime(2026, 11, 27, 8, 15, 42, tzinfo=UTC)).total_seconds()) < 1e-3
    assert alert.schema_version == "3.3"


def test_ztf_container_with_several_alerts() -> None:
    packet = ztf_packet([ztf_record(candid=10 + i, object_id="ZTF26aabcdef") for i in range(3)])
    assert [a.revision for a in parse_alerts(packet)] == [10, 11, 12]


@pytest.mark.parametrize("version", ["v7_4", "v11_0"])
def test_rubin_avro_versions_nJy_to_AB(version: str) -> None:
    alert = parse_alerts(rubin_packet(version))[0]
    assert alert.source == "rubin" and alert.schema_version == version[1:].replace("_", ".")
    assert alert.magnitude_ab == pytest.approx(-2.5 * math.log10(36_307.8) + 31.4, abs=1e-4)
    assert alert.magnitude_ab == pytest.approx(20.0, abs=1e-3)  # 36.3 uJy is 20th AB magnitude
    assert alert.magnitude_error == pytest.approx(1.0857 * 850.0 / 36_307.8, rel=1e-3)
    assert alert.external_id == "LSST-3068394735216000" and alert.filter == "r"
    assert alert.error_radius_deg == pytest.approx(2.146 * 2.5e-5, rel=1e-5)
    assert alert.event_time is not None
    assert abs((alert.event_time - datetime(2026, 11, 29, 4, tzinfo=UTC)).total_seconds()) < 1e-3
    assert len(alert.cutouts) == 3


def test_rubin_confluent_framing_decodes_with_the_registered_schema() -> None:
    packet = rubin_confluent_packet(42)
    alert = parse_alerts(packet, schemas={42: schema("rubin.v11_0.alert.avsc")})[0]
    assert alert.schema_version == "11.0"
    with pytest.raises(AlertParseError, match="no schema registered under id 42"):
        parse_alerts(packet)


# ---------------------------------------------------------------------------------------------------- bad packets


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (fixture("truncated_gcn.json"), "malformed JSON"),
        (fixture("wrong_schema.json"), "not a GCN Unified Schema notice"),
        (fixture("hostile_billion_laughs.xml"), "hostile XML refused"),
        (fixture("hostile_external_entity.xml"), "hostile XML refused"),
        (b"", "empty packet"),
        (b"\x89PNG\r\n\x1a\n", "unrecognised packet"),
        (b"<html><body>hi</body></html>", "not VOEvent"),
        (b"<voe:VOEvent xmlns:voe='x' ivorn='ivo://a#1'><What>", "malformed XML"),
        (b"{" * 10_000 + b"}" * 10_000, "nested 10000 deep"),
        (b"[" * 200_000, "nested 200000 deep"),
        (b'{"a": NaN}', "constant NaN"),
        (b'{"data": {"objname": "not a name"}}', "invalid objname"),
        (b'{"$schema": "https://gcn.nasa.gov/schema/gcn/notices/x/y.schema.json", "id": [1], "ra": 400, "dec": 0}',
         "not a right ascension"),
        (b'{"$schema": "https://gcn.nasa.gov/schema/gcn/notices/x/y.schema.json", "id": [1], "ra": "1", "dec": 0}',
         "must be a number"),
        (b'{"superevent_id": "S1", "alert_type": "BOGUS"}', "unknown LVK alert_type"),
        (b'{"superevent_id": "S1", "alert_type": "INITIAL", "event": {"skymap": "not base64!"}}', "not valid base64"),
        (b'{"superevent_id": "S1", "alert_type": "INITIAL", "event": {"skymap": "PGh0bWw+"}}', "not a FITS file"),
        (b'{"superevent_id": "S1", "alert_type": "INITIAL", "event": {"skymap": 42}}', "must be a base64 string"),
    ],
)  # fmt: skip
def test_bad_packets_are_refused_clearly(packet: bytes, message: str) -> None:
    with pytest.raises(AlertParseError, match=message) as err:
        parse_alerts(packet)
    assert err.value.reason == "ALERT_REJECTED"


def test_huge_packets_are_refused_before_decoding() -> None:
    limits = ParseLimits(max_json_bytes=10_000, max_xml_bytes=10_000, max_avro_bytes=10_000)
    huge_json = b'{"pad": "' + b"x" * 20_000 + b'"}'
    with pytest.raises(AlertParseError, match="exceeds the 10000-byte limit"):
        parse_alerts(huge_json, limits=limits)
    with pytest.raises(AlertParseError, match="exceeds the 10000-byte limit"):
        parse_alerts(fixture("voevent_swift_bat.xml") + b" " * 10_000, limits=limits)
    with pytest.raises(AlertParseError, match="exceeds the 10000-byte limit"):
        parse_alerts(ztf_packet(), limits=limits)


@pytest.mark.parametrize("cut", [10, 100, 1000, -200, -20])
def test_truncated_avro_is_refused(cut: int) -> None:
    packet = ztf_packet()
    with pytest.raises(AlertParseError):
        parse_alerts(packet[:cut])


def test_wrong_avro_schemas_are_refused() -> None:
    import io

    out = io.BytesIO()
    fastavro.writer(out, {"type": "record", "name": "thing", "fields": [{"name": "x", "type": "int"}]}, [{"x": 1}])
    with pytest.raises(AlertParseError, match="neither a ZTF nor a Rubin alert"):
        parse_alerts(out.getvalue())
    with pytest.raises(AlertParseError, match="major version 3 is not supported"):
        parse_alerts(rubin_packet("v3_0", rubin_record("v3_0")))
    bad = ztf_record(object_id="not-ztf")
    with pytest.raises(AlertParseError, match="not a ZTF object id"):
        parse_alerts(ztf_packet([bad]))


def test_values_no_parser_foresaw_are_still_one_clear_error() -> None:
    far_future = ztf_record()
    far_future["candidate"]["jd"] = 1e30
    with pytest.raises(AlertParseError, match="unusable value: OverflowError"):
        parse_alerts(ztf_packet([far_future]))
    notice = json.loads(fixture("gcn_icecube_gold.json"))
    notice["trigger_time"] = "2026-13-45T99:00:00Z"
    with pytest.raises(AlertParseError, match="not an ISO 8601 time"):
        parse_alerts(json.dumps(notice).encode())


def test_units() -> None:
    assert radius_to_90_deg(3.0, "arcmin") == pytest.approx(0.05)
    assert radius_to_90_deg(1.0, "deg", 0.5) == pytest.approx(math.sqrt(math.log(10) / math.log(2)))
    assert ab_mag_from_njy(3631e9) == pytest.approx(0.0, abs=1e-9)
    assert ab_mag_from_njy(-5.0) is None
    with pytest.raises(AlertParseError, match="unknown angle unit"):
        radius_to_90_deg(1.0, "furlong")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_escape_as_anything_but_a_parse_error(packet: bytes) -> None:
    with contextlib.suppress(AlertParseError):
        parse_alerts(packet)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=3), c),
        max_leaves=30,
    )
)
def test_nesting_depth_matches_the_structure(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    assert nesting_depth(json.dumps(value).encode()) == depth(value)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(ztf_packet()) - 1))
def test_every_truncation_of_a_ztf_packet_is_refused_or_parsed(cut: int) -> None:
    try:
        alerts = parse_alerts(ztf_packet()[:cut])
    except AlertParseError:
        return
    assert all(a.source == "ztf" for a in alerts)


@settings(max_examples=150, deadline=None)
@given(
    ra=st.floats(0.0, 360.0),
    dec=st.floats(-90.0, 90.0),
    radius=st.floats(0.0, 20.0),
    containment=st.floats(0.05, 0.995),
    record=st.integers(0, 2**31),
)
def test_gcn_notices_normalise_any_valid_localisation(
    ra: float, dec: float, radius: float, containment: float, record: int
) -> None:
    notice = json.loads(fixture("gcn_icecube_gold.json"))
    notice |= {"ra": ra, "dec": dec, "ra_dec_error": radius, "containment_probability": containment,
               "record_number": record}  # fmt: skip
    alert = parse_alerts(json.dumps(notice).encode())[0]
    assert alert.ra_deg is not None and 0.0 <= alert.ra_deg < 360.0
    assert alert.dec_deg == dec and alert.revision == record
    assert alert.error_radius_deg is not None
    # Rescaling to 90 %: larger below 90 % containment, smaller above, equal at 90 %.
    if containment < 0.9:
        assert alert.error_radius_deg >= radius
    elif containment > 0.9:
        assert alert.error_radius_deg <= radius
    back = radius_to_90_deg(alert.error_radius_deg, "deg", 0.9)
    assert math.isclose(back, alert.error_radius_deg)
