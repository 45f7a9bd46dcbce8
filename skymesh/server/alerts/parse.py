"""One entry point for every alert format: `parse_alerts(packet)` sniffs the format (or takes a hint), enforces the
size and depth limits, and returns the normalised alerts (an Avro container file may hold several).

Every failure is an `AlertParseError` with a clear message; nothing is written here (the caller keeps the raw packet
as rejected). Pure functions. Imports no grpc, protobuf or database code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skymesh.core.errors import InvalidArgument
from skymesh.server.alerts.avro import AVRO_MAGIC, iter_avro_records, parse_rubin, parse_ztf
from skymesh.server.alerts.gcn import parse_gcn_json, parse_lvk_json, parse_voevent
from skymesh.server.alerts.jsonsafe import DEFAULT_MAX_DEPTH, load_json
from skymesh.server.alerts.model import Alert, AlertFormat, AlertParseError
from skymesh.server.alerts.tns import parse_tns_json

__all__ = ["ParseLimits", "parse_alerts", "sniff_format"]

_MAX_RECORDS = 1000


@dataclass(frozen=True)
class ParseLimits:
    max_json_bytes: int = 1 << 20  # notices are a few kB
    max_xml_bytes: int = 1 << 20
    max_avro_bytes: int = 32 << 20  # ZTF packets with cutouts are ~100 kB, Rubin's a few hundred kB
    max_json_depth: int = DEFAULT_MAX_DEPTH


def sniff_format(packet: bytes) -> str:
    """ "avro", "xml" or "json" from the first bytes; AlertParseError otherwise."""
    if packet.startswith(AVRO_MAGIC) or (len(packet) >= 5 and packet[0] == 0):
        return "avro"
    head = packet[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "xml"
    if head.startswith((b"{", b"[")):
        return "json"
    if not packet:
        raise AlertParseError("empty packet", field="packet")
    raise AlertParseError("unrecognised packet: not Avro, VOEvent XML or JSON", field="packet")


def parse_alerts(
    packet: bytes,
    *,
    hint: AlertFormat | None = None,
    limits: ParseLimits = ParseLimits(),
    schemas: Mapping[int, Any] | None = None,
) -> tuple[Alert, ...]:
    """Every alert in `packet`, normalised; AlertParseError (and nothing else) for any packet that is not one."""
    try:
        return _parse(packet, hint=hint, limits=limits, schemas=schemas)
    except AlertParseError:
        raise
    except InvalidArgument as exc:  # a domain value refused what the packet said
        raise AlertParseError(exc.message, field=exc.field or "packet") from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        # Values a parser did not foresee (a Julian date past year 9999, a nested type where a number belongs):
        # still the packet's fault, still one clear error.
        raise AlertParseError(f"unusable value: {type(exc).__name__}: {exc}"[:300], field="packet") from None


def _parse(
    packet: bytes,
    *,
    hint: AlertFormat | None = None,
    limits: ParseLimits = ParseLimits(),
    schemas: Mapping[int, Any] | None = None,
) -> tuple[Alert, ...]:
    kind = sniff_format(packet)
    if kind == "avro":
        alerts = []
        for i, (record, namespace) in enumerate(
            iter_avro_records(packet, max_bytes=limits.max_avro_bytes, schemas=schemas)
        ):
            if i >= _MAX_RECORDS:
                raise AlertParseError(f"more than {_MAX_RECORDS} alerts in one packet", field="packet")
            if hint == AlertFormat.RUBIN_AVRO or "diaSource" in record or namespace.startswith("lsst."):
                alerts.append(parse_rubin(record, namespace))
            elif hint == AlertFormat.ZTF_AVRO or "candidate" in record:
                alerts.append(parse_ztf(record, namespace))
            else:
                raise AlertParseError("Avro record is neither a ZTF nor a Rubin alert (wrong schema)", field="packet")
        if not alerts:
            raise AlertParseError("Avro packet holds no alert", field="packet")
        return tuple(alerts)
    if kind == "xml":
        return (parse_voevent(packet, max_bytes=limits.max_xml_bytes),)
    doc = load_json(
        packet.removeprefix(b"\xef\xbb\xbf"), max_bytes=limits.max_json_bytes, max_depth=limits.max_json_depth
    )
    if hint == AlertFormat.TNS_JSON or (isinstance(doc, dict) and "data" in doc and "$schema" not in doc):
        return (parse_tns_json(doc),)
    if isinstance(doc, dict) and "superevent_id" in doc:
        return (parse_lvk_json(doc),)
    return (parse_gcn_json(doc),)
