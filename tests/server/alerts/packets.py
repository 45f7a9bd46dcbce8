"""Alert packets for tests and benchmarks: fixture files, and ZTF/Rubin avro packets written with fastavro from the
committed schemas in `schemas/` (trimmed copies of the public ztf-avro-alert and lsst/alert_packet schemas: the
fields SkyMesh reads, with the public names and types)."""

from __future__ import annotations

import gzip
import io
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import numpy as np

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
SCHEMAS = HERE / "schemas"

_JD_UNIX = 2440587.5
_MJD_UNIX = 40587.0


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def schema(name: str) -> Any:
    return fastavro.parse_schema(json.loads((SCHEMAS / name).read_text()))


def _fits_stamp(seed: int, *, gz: bool) -> bytes:
    """A small FITS-shaped stamp (header block + 63x63 int16 data block), gzipped like ZTF's."""
    header = (
        "".join(
            card.ljust(80)
            for card in (
                f"{'SIMPLE':8}= {'T':>20}",
                f"{'BITPIX':8}= {16:20d}",
                f"{'NAXIS':8}= {2:20d}",
                f"{'NAXIS1':8}= {63:20d}",
                f"{'NAXIS2':8}= {63:20d}",
                f"{'SEED':8}= {seed:20d}",
                "END",
            )
        )
        .ljust(2880)
        .encode()
    )
    # Sky noise around 1000 counts: compresses about as well as a real stamp does.
    pixels = np.random.default_rng(seed).normal(1000.0, 20.0, (63, 63)).astype(">i2")
    data = pixels.tobytes().ljust(2880 * 3, b"\0")
    raw = header + data
    return gzip.compress(raw, mtime=0) if gz else raw


def ztf_record(
    object_id: str = "ZTF26aabcdef",
    candid: int = 2712345678901234567,
    *,
    ra_deg: float = 48.0352,
    dec_deg: float = 41.5034,
    magpsf: float = 18.61,
    at: datetime | None = None,
    with_cutouts: bool = True,
) -> dict[str, Any]:
    at = at or datetime(2026, 11, 27, 8, 15, 42, tzinfo=UTC)
    jd = at.timestamp() / 86400.0 + _JD_UNIX

    def cut(name: str) -> dict[str, Any]:
        return {"fileName": f"candid{candid}_{name}.fits.gz", "stampData": _fits_stamp(candid % 97, gz=True)}

    return {
        "schemavsn": "3.3",
        "publisher": "ZTF (www.ztf.caltech.edu)",
        "objectId": object_id,
        "candid": candid,
        "candidate": {
            "jd": jd,
            "fid": 2,
            "pid": 2712345678015,
            "diffmaglim": 20.4,
            "candid": candid,
            "isdiffpos": "t",
            "ra": ra_deg,
            "dec": dec_deg,
            "magpsf": magpsf,
            "sigmapsf": 0.08,
            "fwhm": 2.1,
            "elong": 1.05,
            "nbad": 0,
            "rb": 0.93,
            "drb": 0.998,
            "ssdistnr": None,
            "ssnamenr": None,
            "sgscore1": 0.02,
            "distpsnr1": 0.4,
            "ndethist": 3,
            "magzpsci": 26.3,
        },
        "prv_candidates": [
            {"jd": jd - 1.0, "fid": 2, "candid": candid - 1000, "magpsf": 19.2, "sigmapsf": 0.1, "diffmaglim": 20.3},
            {"jd": jd - 2.0, "fid": 1, "candid": None, "magpsf": None, "sigmapsf": None, "diffmaglim": 20.1},
        ],
        "cutoutScience": cut("scimref") if with_cutouts else None,
        "cutoutTemplate": cut("ref") if with_cutouts else None,
        "cutoutDifference": cut("diff") if with_cutouts else None,
    }


def ztf_packet(records: list[dict[str, Any]] | None = None) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, schema("ztf.alert.avsc"), records or [ztf_record()])
    return out.getvalue()


def rubin_record(
    version: str = "v7_4",
    *,
    dia_source_id: int = 3_068_394_735_216_000_123,
    dia_object_id: int = 3_068_394_735_216_000,
    ra_deg: float = 150.1192,
    dec_deg: float = 2.2058,
    flux_njy: float = 36_307.8,
    at: datetime | None = None,
) -> dict[str, Any]:
    at = at or datetime(2026, 11, 29, 4, 0, 0, tzinfo=UTC)
    mjd_tai = (at.timestamp() + 37.0) / 86400.0 + _MJD_UNIX
    band_key = "filterName" if version == "v3_0" else "band"
    source: dict[str, Any] = {
        "diaSourceId": dia_source_id,
        "visit": 2026112900123,
        "detector": 94,
        "diaObjectId": dia_object_id,
        "ssObjectId": None,
        "midpointMjdTai": mjd_tai,
        "ra": ra_deg,
        "raErr": 2.0e-5,
        "dec": dec_deg,
        "decErr": 2.5e-5,
        "snr": 42.0,
        "psfFlux": flux_njy,
        "psfFluxErr": 850.0,
        band_key: "r",
    }
    if version == "v11_0":
        source |= {"reliability": 0.97, "isDipole": False}
    first = "diaSourceId" if version == "v11_0" else "alertId"
    stamp = _fits_stamp(dia_source_id % 89, gz=False)
    return {
        first: dia_source_id,
        "diaSource": source,
        "prvDiaSources": None,
        "cutoutDifference": stamp,
        "cutoutScience": stamp,
        "cutoutTemplate": stamp,
    }


def rubin_packet(version: str = "v7_4", record: dict[str, Any] | None = None) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, schema(f"rubin.{version}.alert.avsc"), [record or rubin_record(version)])
    return out.getvalue()


def rubin_confluent_packet(schema_id: int, version: str = "v11_0", record: dict[str, Any] | None = None) -> bytes:
    """Rubin's Kafka framing: magic 0, big-endian schema id, schemaless Avro body."""
    out = io.BytesIO()
    out.write(b"\0" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(out, schema(f"rubin.{version}.alert.avsc"), record or rubin_record(version))
    return out.getvalue()


def gcn_notice(
    *,
    ra_deg: float,
    dec_deg: float,
    trigger_id: int,
    record_number: int = 1,
    alert_type: str = "initial",
    tense: str = "current",
    error_deg: float = 0.05,
    at: datetime | None = None,
) -> bytes:
    """A Swift BAT-GUANO notice at a chosen position (for end-to-end tests that need a target visible now)."""
    at = at or datetime.now(UTC)
    doc = json.loads(fixture("gcn_swift_bat_guano.json"))
    doc |= {
        "id": [trigger_id],
        "record_number": record_number,
        "alert_type": alert_type,
        "alert_tense": tense,
        "ra": ra_deg,
        "dec": dec_deg,
        "ra_dec_error": error_deg,
        "event_name": [f"GRB {trigger_id}"],
        "alert_datetime": at.isoformat().replace("+00:00", "Z"),
        "trigger_time": at.isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(doc).encode()
