"""ZTF and Rubin alert packets (Apache Avro, decoded with fastavro).

Two framings: an Avro object container file (the writer schema travels with it: ZTF's files and Rubin's samples),
and the Confluent wire format Rubin's Kafka uses (a zero byte, a 4-byte schema id, the schemaless body) decoded
with the schema registered under that id (`schemas`). Rubin's version comes from the schema's namespace
(`lsst.v7_4` -> "7.4"); majors outside `RUBIN_MAJORS` are refused. Rubin fluxes are nJy and become AB magnitudes;
ZTF's `magpsf` already is one (`fid` 1/2/3 = g/r/i). Imports no grpc, protobuf or database code.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from skymesh.server.alerts.model import Alert, AlertFormat, AlertParseError, Cutout
from skymesh.server.alerts.units import ab_mag_error_from_njy, ab_mag_from_njy

__all__ = ["AVRO_MAGIC", "RUBIN_MAJORS", "iter_avro_records", "parse_rubin", "parse_ztf"]

AVRO_MAGIC = b"Obj\x01"
RUBIN_MAJORS = frozenset({7, 8, 9, 10, 11})
_ZTF_FILTERS = {1: "g", 2: "r", 3: "i"}
_JD_UNIX_EPOCH = 2440587.5
_MJD_UNIX_EPOCH = 40587.0
_TAI_MINUS_UTC_S = 37.0  # since 2017-01-01; no leap second announced since


def _decode_errors() -> tuple[type[BaseException], ...]:
    return (ValueError, EOFError, TypeError, KeyError, IndexError, struct.error, SchemaResolutionError,
            UnicodeDecodeError, OverflowError, MemoryError)  # fmt: skip


def iter_avro_records(
    data: bytes, *, max_bytes: int, schemas: Mapping[int, Any] | None = None
) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield (record, schema namespace) for every record of a container file or one Confluent-framed packet."""
    if len(data) > max_bytes:
        raise AlertParseError(f"packet of {len(data)} bytes exceeds the {max_bytes}-byte limit", field="packet")
    try:
        if data.startswith(AVRO_MAGIC):
            reader = fastavro.reader(io.BytesIO(data))
            namespace = _namespace(reader.writer_schema)
            for record in reader:
                if not isinstance(record, dict):
                    raise AlertParseError("an alert record is an Avro record", field="packet")
                yield record, namespace
            return
        if len(data) >= 5 and data[0] == 0:
            schema_id = struct.unpack(">I", data[1:5])[0]
            schema = (schemas or {}).get(schema_id)
            if schema is None:
                raise AlertParseError(f"no schema registered under id {schema_id}", field="schema_id")
            record = fastavro.schemaless_reader(io.BytesIO(data[5:]), schema)
            if not isinstance(record, dict):
                raise AlertParseError("an alert record is an Avro record", field="packet")
            namespace = _namespace(schema)
            yield record, namespace
            return
    except AlertParseError:
        raise
    except _decode_errors() as exc:
        raise AlertParseError(f"truncated or corrupt Avro: {type(exc).__name__}: {exc}"[:300], field="packet") from None
    raise AlertParseError("not an Avro container file or a Confluent-framed packet", field="packet")


def _namespace(schema: Any) -> str:
    """The record's namespace ("lsst.v7_4"), whether the schema is as written or as fastavro parsed it."""
    if not isinstance(schema, dict):
        return ""
    if schema.get("namespace"):
        return str(schema["namespace"])
    name = str(schema.get("name", ""))
    return name.rsplit(".", 1)[0] if "." in name else ""


def _cutout(name: str, value: Any) -> Cutout | None:
    if isinstance(value, dict):  # ZTF: {"fileName": ..., "stampData": bytes}
        value = value.get("stampData")
    if not isinstance(value, bytes | bytearray) or not value:
        return None
    return Cutout(name, len(value), bytes(value))


def _cutouts(record: Mapping[str, Any]) -> tuple[Cutout, ...]:
    """The science, template and difference stamps a ZTF or Rubin alert carries (same field names in both)."""
    stamps = (
        _cutout("science", record.get("cutoutScience")),
        _cutout("template", record.get("cutoutTemplate")),
        _cutout("difference", record.get("cutoutDifference")),
    )
    return tuple(c for c in stamps if c is not None)


def _need(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AlertParseError(f"missing or not {getattr(kind, '__name__', kind)}", field=f"{where}{key}")
    return value


def parse_ztf(record: Mapping[str, Any], namespace: str = "") -> Alert:
    object_id = _need(record, "objectId", str, "")
    if not re.fullmatch(r"ZTF\d{2}[a-z]{7}", object_id):
        raise AlertParseError(f"{object_id!r} is not a ZTF object id", field="objectId")
    candid = _need(record, "candid", int, "")
    cand = _need(record, "candidate", dict, "")
    jd = float(_need(cand, "jd", (float, int), "candidate."))
    ra = float(_need(cand, "ra", (float, int), "candidate."))
    dec = float(_need(cand, "dec", (float, int), "candidate."))
    fid = int(_need(cand, "fid", int, "candidate."))
    magpsf = cand.get("magpsf")
    sigmapsf = cand.get("sigmapsf")
    positive = str(cand.get("isdiffpos", "t")) in ("t", "1")
    return Alert(
        source="ztf",
        alert_type="ztf",
        external_id=object_id,
        revision=candid,
        event_name=object_id,
        format=AlertFormat.ZTF_AVRO,
        event_time=datetime.fromtimestamp(0, UTC) + timedelta(days=jd - _JD_UNIX_EPOCH),
        ra_deg=ra,
        dec_deg=dec,
        error_radius_deg=None,
        magnitude_ab=float(magpsf) if isinstance(magpsf, float | int) and positive else None,
        magnitude_error=float(sigmapsf) if isinstance(sigmapsf, float | int) and positive else None,
        filter=_ZTF_FILTERS.get(fid, str(fid)),
        schema_version=str(record.get("schemavsn", namespace)),
        cutouts=_cutouts(record),
        detail=f"rb={cand.get('rb')} drb={cand.get('drb')}",
    )


def rubin_version(namespace: str) -> tuple[int, int]:
    match = re.fullmatch(r"lsst\.v(\d+)_(\d+)", namespace)
    if match is None:
        raise AlertParseError(f"schema namespace {namespace!r} is not lsst.vMAJOR_MINOR", field="schema")
    major, minor = int(match.group(1)), int(match.group(2))
    if major not in RUBIN_MAJORS:
        raise AlertParseError(f"Rubin schema major version {major} is not supported", field="schema")
    return major, minor


def parse_rubin(record: Mapping[str, Any], namespace: str) -> Alert:
    major, minor = rubin_version(namespace)
    source = _need(record, "diaSource", dict, "")
    source_id = _need(source, "diaSourceId", int, "diaSource.")
    object_id = source.get("diaObjectId") or source.get("ssObjectId")
    if object_id is not None and not isinstance(object_id, int):
        raise AlertParseError("must be an integer", field="diaSource.diaObjectId")
    mjd_tai = float(_need(source, "midpointMjdTai", (float, int), "diaSource."))
    ra = float(_need(source, "ra", (float, int), "diaSource."))
    dec = float(_need(source, "dec", (float, int), "diaSource."))
    ra_err = source.get("raErr")
    dec_err = source.get("decErr")
    flux = source.get("psfFlux")
    flux_err = source.get("psfFluxErr")
    band = source.get("band") or source.get("filterName") or ""
    error_deg = None
    if isinstance(ra_err, float | int) and isinstance(dec_err, float | int):
        # Rubin's errors are 1-sigma per axis in degrees; 90 % of a circular Gaussian is 2.146 sigma.
        error_deg = 2.146 * max(float(ra_err), float(dec_err))
    name = f"LSST-{object_id}" if object_id is not None else f"LSST-src-{source_id}"
    return Alert(
        source="rubin",
        alert_type="rubin",
        external_id=name,
        revision=source_id,
        event_name=name,
        format=AlertFormat.RUBIN_AVRO,
        event_time=datetime.fromtimestamp(0, UTC)
        + timedelta(days=mjd_tai - _MJD_UNIX_EPOCH, seconds=-_TAI_MINUS_UTC_S),
        ra_deg=ra,
        dec_deg=dec,
        error_radius_deg=error_deg,
        magnitude_ab=ab_mag_from_njy(float(flux)) if isinstance(flux, float | int) else None,
        magnitude_error=ab_mag_error_from_njy(float(flux), float(flux_err))
        if isinstance(flux, float | int) and isinstance(flux_err, float | int)
        else None,
        filter=str(band),
        schema_version=f"{major}.{minor}",
        cutouts=_cutouts(record),
        detail=f"reliability={source.get('reliability')} snr={source.get('snr')}",
    )
