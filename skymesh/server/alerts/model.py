"""The normalised alert: what every parser returns, whatever the format it came in (GCN JSON or VOEvent, TNS, ZTF
or Rubin avro), and the one error a parser raises.

Positions are ICRS degrees, error radii are degrees at 90 % containment, times are tz-aware UTC, magnitudes are AB
and fluxes erg/s/cm². Imports only the standard library and `skymesh.core`: no grpc, protobuf or database code.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime

from skymesh.core.clock import ensure_utc
from skymesh.core.errors import InvalidArgument

__all__ = ["Alert", "AlertFormat", "AlertParseError", "AlertRole", "AlertStatus", "Cutout"]


class AlertFormat(enum.Enum):
    GCN_JSON = "gcn-json"
    VOEVENT = "voevent"
    TNS_JSON = "tns-json"
    ZTF_AVRO = "ztf-avro"
    RUBIN_AVRO = "rubin-avro"


class AlertRole(enum.Enum):
    """VOEvent's role, and GCN JSON's `alert_tense` folded onto it: only OBSERVATION alerts are ever scheduled."""

    OBSERVATION = "observation"
    TEST = "test"  # VOEvent role="test", alert_tense test/injection: stored, never scheduled
    UTILITY = "utility"  # archival/planned/commanded notices and VOEvent role="utility": stored, never scheduled


class AlertStatus(enum.IntEnum):
    """What became of a stored alert; values match control.v1.AlertStatus."""

    ACCEPTED = 1  # a target was created or updated, the planner woken
    STORED = 2  # kept, no target (no rule, no position, region too large)
    TEST = 3
    RETRACTION = 4  # a retraction notice (it retracted the earlier revisions)
    RETRACTED = 5  # an earlier revision of a retracted event
    DUPLICATE = 6  # only in answers: already stored, nothing written
    REJECTED = 7  # did not parse; the raw packet is kept
    UTILITY = 8


class AlertParseError(InvalidArgument):
    """A packet that is not an alert this server understands: malformed, truncated, too large or too deep, hostile
    (XML entities or DTDs), or of the wrong schema. `field` names the offending part where there is one."""

    default_reason = "ALERT_REJECTED"


@dataclass(frozen=True)
class Cutout:
    """An image stamp carried by an avro alert (gzipped FITS for ZTF, FITS for Rubin)."""

    name: str  # "science" | "template" | "difference"
    size_bytes: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Alert:
    """One alert, normalised. `(source, external_id, revision)` is its identity (the dedup key)."""

    source: str  # "gcn" | "tns" | "ztf" | "rubin"
    alert_type: str  # rule key within the source: "swift.bat.guano", "fermi.gbm", "icecube.gold", "lvk", "tns.sn", ...
    external_id: str  # the trigger/event/object id the source uses (revisions share it)
    revision: int  # record number / serial / candid order; retractions carry the revision they were sent as
    event_name: str  # the name a target gets: "GRB 230101A", "SN 2024abc", "ZTF24aaabcde"
    format: AlertFormat
    role: AlertRole = AlertRole.OBSERVATION
    retraction: bool = False
    event_time: datetime | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    error_radius_deg: float | None = None  # 90 % containment
    magnitude_ab: float | None = None
    magnitude_error: float | None = None
    filter: str = ""
    flux_erg_s_cm2: float | None = None
    aliases: tuple[str, ...] = ()
    schema_version: str = ""
    cutouts: tuple[Cutout, ...] = ()
    detail: str = ""  # one human line: instrument, classification, significance...
    # LVK: the localisation as a HEALPix FITS file (multi-order, as `igwn.gwalert` embeds it), not parsed here: the
    # server's worker pool turns it into targets (`skymesh.products.skymap`).
    skymap: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        for name in ("source", "alert_type", "external_id", "event_name"):
            if not getattr(self, name):
                raise AlertParseError("must not be empty", field=name)
        if self.revision < 0:
            raise AlertParseError("must not be negative", field="revision")
        if (self.ra_deg is None) != (self.dec_deg is None):
            raise AlertParseError("ra and dec go together", field="ra_deg")
        if self.ra_deg is not None and self.dec_deg is not None:
            if not (math.isfinite(self.ra_deg) and 0.0 <= self.ra_deg <= 360.0):
                raise AlertParseError(f"{self.ra_deg} is not a right ascension in degrees", field="ra_deg")
            object.__setattr__(self, "ra_deg", self.ra_deg % 360.0)
            if not (math.isfinite(self.dec_deg) and -90.0 <= self.dec_deg <= 90.0):
                raise AlertParseError(f"{self.dec_deg} is not a declination in degrees", field="dec_deg")
        if self.error_radius_deg is not None and not (
            math.isfinite(self.error_radius_deg) and 0.0 <= self.error_radius_deg <= 180.0
        ):
            raise AlertParseError(f"{self.error_radius_deg} is not a radius in degrees", field="error_radius_deg")
        for name in ("magnitude_ab", "magnitude_error", "flux_erg_s_cm2"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise AlertParseError("must be finite", field=name)
        if self.event_time is not None:
            object.__setattr__(self, "event_time", ensure_utc(self.event_time, "event_time"))

    @property
    def dedup_key(self) -> str:
        return f"{self.source}:{self.external_id}:{self.revision}"

    @property
    def has_position(self) -> bool:
        return self.ra_deg is not None
