"""TNS objects as `api/get/object` returns them: `{"id_code": 200, "data": {...}}` (older replies nest the object
in `data.reply`). Fields used: `objname`, `name_prefix` (SN, AT, ...), `radeg`/`decdeg`, `discoverydate`,
`discoverymag` with `discmagfilter`, `internal_names` (comma separated: become aliases), `object_type`,
`lastmodified` (orders revisions). Pure: decoded JSON in, `Alert` out. Imports no grpc, protobuf or database code.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from skymesh.server.alerts.model import Alert, AlertFormat, AlertParseError

__all__ = ["parse_tns_json"]

_OBJNAME = re.compile(r"\d{4}[a-z]{2,4}")


def _time(value: Any, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace(" ", "T"))
    except ValueError:
        raise AlertParseError(f"{value!r} is not a time", field=field) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _num(obj: dict[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AlertParseError(f"{value!r} is not a number", field=f"data.{key}") from None
    if not math.isfinite(number):
        raise AlertParseError("must be finite", field=f"data.{key}")
    return number


def parse_tns_json(doc: Any) -> Alert:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise AlertParseError("a TNS reply is an object with a 'data' object", field="data")
    code = doc.get("id_code", 200)
    if code != 200:
        raise AlertParseError(f"TNS reply id_code {code}: {doc.get('id_message', '')}", field="id_code")
    obj = doc["data"].get("reply", doc["data"])
    if not isinstance(obj, dict):
        raise AlertParseError("must be an object", field="data.reply")
    objname = obj.get("objname")
    if not isinstance(objname, str) or not _OBJNAME.fullmatch(objname.strip()):
        raise AlertParseError("missing or invalid objname (e.g. 2024abc)", field="data.objname")
    objname = objname.strip()
    prefix = str(obj.get("name_prefix") or "AT").strip()
    if not re.fullmatch(r"[A-Za-z]{1,8}", prefix):
        raise AlertParseError(f"invalid name_prefix {prefix!r}", field="data.name_prefix")
    internal = obj.get("internal_names") or ""
    if not isinstance(internal, str):
        raise AlertParseError("must be a comma-separated string", field="data.internal_names")
    aliases = tuple(dict.fromkeys(a.strip() for a in internal.split(",") if a.strip()))
    if any(len(a) > 100 for a in aliases) or len(aliases) > 50:
        raise AlertParseError("too many or too long internal names", field="data.internal_names")
    modified = _time(obj.get("lastmodified"), "data.lastmodified")
    mag_filter = obj.get("discmagfilter")
    object_type = obj.get("object_type")
    type_name = object_type.get("name") if isinstance(object_type, dict) else None
    return Alert(
        source="tns",
        alert_type=f"tns.{prefix.lower()}",
        external_id=objname,
        revision=int(modified.timestamp()) if modified else 0,
        event_name=f"{prefix} {objname}",
        format=AlertFormat.TNS_JSON,
        event_time=_time(obj.get("discoverydate"), "data.discoverydate"),
        ra_deg=_num(obj, "radeg"),
        dec_deg=_num(obj, "decdeg"),
        magnitude_ab=_num(obj, "discoverymag"),
        filter=str(mag_filter.get("name", "")) if isinstance(mag_filter, dict) else "",
        aliases=(objname, *aliases),
        schema_version="tns-api-object",
        detail=str(type_name or ""),
    )
