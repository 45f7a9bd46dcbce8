"""GCN notices: Unified Schema JSON (the `gcn.notices.*` Kafka topics, Swift/Fermi/IceCube/...), the LVK JSON
alerts of `igwn.gwalert`, and classic VOEvent 2.0 XML (`gcn.classic.voevent.*`).

JSON fields follow nasa-gcn/gcn-schema (`core/Alert`, `core/Localization`, `core/Event`): `$schema`, `mission`,
`id`, `event_name`, `record_number`, `alert_datetime`, `alert_tense`, `alert_type` (`retraction` retracts), `ra`,
`dec`, `ra_dec_error` at `containment_probability` (default 0.9), `trigger_time`, `energy_flux` (erg/cm²/s,
`core/spectral/GammaRay`). VOEvent is parsed with defusedxml (no DTDs, no entities, no network), position from
`WhereWhen/.../Position2D`, role from the root, a `Retraction` Param retracts. Pure functions: bytes in, `Alert`
out. Imports no grpc, protobuf or database code.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from skymesh.server.alerts.model import Alert, AlertFormat, AlertParseError, AlertRole
from skymesh.server.alerts.units import energy_flux_to_erg_s_cm2, radius_to_90_deg

__all__ = ["parse_gcn_json", "parse_lvk_json", "parse_voevent"]

_TENSE_ROLE = {
    "current": AlertRole.OBSERVATION,
    "test": AlertRole.TEST,
    "injection": AlertRole.TEST,
    "archival": AlertRole.UTILITY,
    "planned": AlertRole.UTILITY,
    "commanded": AlertRole.UTILITY,
}
# Containment of VOEvent Error2Radius by stream (the rest state 90 %): Fermi GBM quotes a 1-sigma statistical
# radius, i.e. 39.3 % of a circular Gaussian (GROWTH's growth/too/gcn.py treats it the same way).
_VOEVENT_CONTAINMENT = {"ivo://nasa.gsfc.gcn/Fermi#GBM": 0.3935, "ivo://nasa.gsfc.gcn/AMON": 0.5}


def _time(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AlertParseError("must be an ISO 8601 string", field=field)
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise AlertParseError(f"{value!r} is not an ISO 8601 time", field=field) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _number(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertParseError(f"must be a number, not {type(value).__name__}", field=key)
    return float(value)


def _text(value: Any, field: str, max_len: int = 200) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise AlertParseError("must be a string", field=field)
    text: str = value.strip()
    if len(text) > max_len:
        raise AlertParseError(f"longer than {max_len} characters", field=field)
    return text


def parse_gcn_json(doc: Any) -> Alert:
    """A GCN Unified Schema notice (already decoded JSON) -> Alert."""
    if not isinstance(doc, dict):
        raise AlertParseError("a GCN notice is a JSON object", field="packet")
    schema = doc.get("$schema")
    if not isinstance(schema, str) or "/gcn/notices/" not in schema:
        raise AlertParseError("not a GCN Unified Schema notice (no gcn/notices $schema)", field="$schema")
    kind = schema.split("/gcn/notices/", 1)[1].removesuffix(".schema.json").replace("/", ".").lower()
    if not re.fullmatch(r"[a-z0-9_.\-]{1,100}", kind):
        raise AlertParseError(f"unrecognised schema path {kind!r}", field="$schema")
    mission = _text(doc.get("mission", kind.split(".")[0]), "mission", 64) or kind.split(".")[0]
    ids = doc.get("id")
    id_list = ids if isinstance(ids, list) else ([ids] if ids is not None else [])
    first_id = _text(id_list[0], "id[0]") if id_list else ""
    names = doc.get("event_name")
    event_name = _text(names, "event_name") if names else ""
    if not first_id and not event_name:
        raise AlertParseError("a notice needs an id or an event_name", field="id")
    external_id = f"{mission.lower()}:{first_id or event_name}"
    alert_type = str(doc.get("alert_type", "initial")).lower()
    tense = str(doc.get("alert_tense", "current")).lower()
    if tense not in _TENSE_ROLE:
        raise AlertParseError(f"unknown alert_tense {tense!r}", field="alert_tense")
    alert_time = _time(doc.get("alert_datetime"), "alert_datetime")
    record = doc.get("record_number")
    if record is not None and (isinstance(record, bool) or not isinstance(record, int)):
        raise AlertParseError("must be an integer", field="record_number")
    # No record number: the alert time orders the revisions (gcn-schema's dedup advice: id + type + datetime).
    revision = record if record is not None else (int(alert_time.timestamp()) if alert_time else 0)
    ra, dec = _number(doc, "ra"), _number(doc, "dec")
    error = _number(doc, "ra_dec_error")
    containment = _number(doc, "containment_probability") or 0.9
    flux = _number(doc, "energy_flux")  # core/spectral/GammaRay: erg/cm2/s already
    return Alert(
        source="gcn",
        alert_type=kind,
        external_id=external_id,
        revision=revision,
        event_name=event_name or f"{mission} {first_id}",
        format=AlertFormat.GCN_JSON,
        role=_TENSE_ROLE[tense],
        retraction=alert_type == "retraction",
        event_time=_time(doc.get("trigger_time"), "trigger_time") or alert_time,
        ra_deg=ra,
        dec_deg=dec,
        error_radius_deg=radius_to_90_deg(error, "deg", containment) if error is not None else None,
        flux_erg_s_cm2=flux,
        aliases=tuple(_text(i, f"id[{n}]") for n, i in enumerate(id_list[1:], 1)),
        schema_version=schema,
        detail=" ".join(str(doc.get(k, "")) for k in ("instrument", "alert_type") if doc.get(k)),
    )


def _skymap(event: dict[str, Any]) -> bytes:
    """`event.skymap`: the multi-order FITS file, base64 in the JSON (igwn.gwalert); checked to be FITS (or gzip)
    here, read in the worker pool. The packet's size limit bounds it."""
    value = event.get("skymap")
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise AlertParseError("must be a base64 string", field="event.skymap")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AlertParseError("not valid base64", field="event.skymap") from None
    if not data.startswith((b"SIMPLE  =", b"\x1f\x8b")):
        raise AlertParseError("not a FITS file (nor gzip)", field="event.skymap")
    return data


def parse_lvk_json(doc: Any) -> Alert:
    """An `igwn.gwalert` notice (LIGO/Virgo/KAGRA). Its sky map is a multi-order HEALPix FITS file: no single
    position, so the alert carries the map (`Alert.skymap`) for the server's workers to tile; MS-prefixed ids are
    mock events."""
    if not isinstance(doc, dict) or not isinstance(doc.get("superevent_id"), str):
        raise AlertParseError("an LVK alert needs a superevent_id", field="superevent_id")
    superevent = _text(doc["superevent_id"], "superevent_id", 32)
    kind = str(doc.get("alert_type", "")).upper()
    if kind not in ("EARLYWARNING", "PRELIMINARY", "INITIAL", "UPDATE", "RETRACTION"):
        raise AlertParseError(f"unknown LVK alert_type {kind!r}", field="alert_type")
    created = _time(doc.get("time_created"), "time_created")
    event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
    mock = superevent.startswith(("M", "T"))  # MS...: mock (MDC) events; T...: test instances
    return Alert(
        source="gcn",
        alert_type="lvk",
        external_id=f"lvk:{superevent}",
        revision=int(created.timestamp()) if created else 0,
        event_name=superevent,
        format=AlertFormat.GCN_JSON,
        role=AlertRole.TEST if mock else AlertRole.OBSERVATION,
        retraction=kind == "RETRACTION",
        event_time=_time(event.get("time"), "event.time") if event else created,
        schema_version="igwn.gwalert",
        detail=f"{kind} {event.get('group', '') if event else ''}".strip(),
        skymap=_skymap(event) if event else b"",
    )


# ---------------------------------------------------------------------------------------------------- VOEvent


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: Element | None, *names: str) -> Element | None:
    for name in names:
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == name), None)
    return node


def _float(node: Element | None, field: str) -> float | None:
    if node is None or node.text is None:
        return None
    try:
        value = float(node.text)
    except ValueError:
        raise AlertParseError(f"{node.text!r} is not a number", field=field) from None
    if not math.isfinite(value):
        raise AlertParseError("must be finite", field=field)
    return value


def parse_voevent(data: bytes, *, max_bytes: int) -> Alert:
    """A VOEvent 2.0 packet -> Alert. DTDs, entities and external references are refused."""
    if len(data) > max_bytes:
        raise AlertParseError(f"packet of {len(data)} bytes exceeds the {max_bytes}-byte limit", field="packet")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise AlertParseError(f"hostile XML refused: {type(exc).__name__}", field="packet") from None
    except ParseError as exc:
        raise AlertParseError(f"malformed XML: {exc}", field="packet") from None
    if _local(root.tag) != "VOEvent":
        raise AlertParseError(f"root element is {_local(root.tag)!r}, not VOEvent", field="packet")
    ivorn = (root.get("ivorn") or "").strip()
    if not ivorn.startswith("ivo://") or len(ivorn) > 300:
        raise AlertParseError("missing or invalid ivorn", field="ivorn")
    role_text = (root.get("role") or "observation").lower()
    try:
        role = AlertRole(role_text)
    except ValueError:
        raise AlertParseError(f"unknown role {role_text!r}", field="role") from None
    stream, _, local_id = ivorn.partition("#")
    params: dict[str, tuple[str, str]] = {}
    for el in root.iter():
        if _local(el.tag) == "Param" and el.get("name"):
            params[str(el.get("name"))] = (el.get("value") or "", el.get("unit") or "")
    trig = params.get("TrigID", ("", ""))[0] or params.get("Trigger_ID", ("", ""))[0]
    retraction = params.get("Retraction", ("0", ""))[0].strip() in ("1", "true", "True")
    revision_text = params.get("Pkt_Ser_Num", ("", ""))[0] or params.get("Sequence_Num", ("", ""))[0]
    try:
        revision = int(revision_text) if revision_text else 0
    except ValueError:
        raise AlertParseError(f"{revision_text!r} is not an integer", field="Pkt_Ser_Num") from None
    mission = stream.removeprefix("ivo://nasa.gsfc.gcn/").split("_")[0].split("/")[0] or "voevent"
    obs = _child(root, "WhereWhen", "ObsDataLocation", "ObservationLocation")
    astro = _child(obs, "AstroCoords")
    position = _child(astro, "Position2D")
    ra = _float(_child(position, "Value2", "C1"), "Position2D.C1")
    dec = _float(_child(position, "Value2", "C2"), "Position2D.C2")
    radius = _float(_child(position, "Error2Radius"), "Error2Radius")
    unit = (position.get("unit") if position is not None else None) or "deg"
    containment = next((c for prefix, c in _VOEVENT_CONTAINMENT.items() if ivorn.startswith(prefix)), 0.9)
    iso = _child(astro, "Time", "TimeInstant", "ISOTime")
    event_time = _time(iso.text, "ISOTime") if iso is not None and iso.text else None
    flux = None
    for name, (value, flux_unit) in params.items():
        if name.lower() in ("flux", "energy_flux") and flux_unit:
            try:
                flux = energy_flux_to_erg_s_cm2(float(value), flux_unit)
            except ValueError:
                raise AlertParseError(f"{value!r} is not a number", field=name) from None
    if ra == 0.0 and dec == 0.0 and radius == 0.0:
        ra = dec = radius = None  # classic notices without a position fill zeros
    event_id = trig or local_id or ivorn
    return Alert(
        source="gcn",
        alert_type=f"voevent.{mission.lower()}",
        external_id=f"{mission.lower()}:{event_id}",
        revision=revision,
        event_name=f"{mission} {event_id}",
        format=AlertFormat.VOEVENT,
        role=role,
        retraction=retraction,
        event_time=event_time,
        ra_deg=ra,
        dec_deg=dec,
        error_radius_deg=radius_to_90_deg(radius, unit, containment) if radius is not None else None,
        flux_erg_s_cm2=flux,
        aliases=(ivorn,),
        schema_version=(root.get("version") or "2.0"),
        detail=stream,
    )
