"""Alert ingest: GCN (Unified Schema JSON, LVK JSON, VOEvent 2.0), TNS objects, ZTF and Rubin avro packets parsed into
one normalised `Alert`, and the server side that keeps every raw packet, deduplicates, honours retractions and test
alerts, turns alerts into targets by configurable rules and wakes the planner.

The parsers (`model`, `parse`, `gcn`, `tns`, `avro`, `units`, `jsonsafe`) are pure and import no grpc, protobuf or
database code; `ingest`, `watch` and `kafka` are the server's sources and use the repository.
"""

from __future__ import annotations

from skymesh.server.alerts.model import Alert, AlertFormat, AlertParseError, AlertRole, AlertStatus, Cutout
from skymesh.server.alerts.parse import ParseLimits, parse_alerts, sniff_format

__all__ = [
    "Alert",
    "AlertFormat",
    "AlertParseError",
    "AlertRole",
    "AlertStatus",
    "Cutout",
    "ParseLimits",
    "parse_alerts",
    "sniff_format",
]
