"""Wire messages -> the JSON the gateway returns. One function per resource, so the JSON API is written down in one
place: enums as lower-case names ("online", "running"), times as RFC 3339 UTC strings, units in field names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import auth_pb2, events_pb2, observations_pb2, targets_pb2
from skymesh.api.scheduler.v1 import scheduler_pb2

__all__ = [
    "audit_json",
    "campaign_json",
    "event_json",
    "explanation_json",
    "forecast_json",
    "iso",
    "job_json",
    "observation_json",
    "reduction_json",
    "station_json",
    "target_json",
]

JSON = dict[str, Any]


def iso(ts: Timestamp) -> str | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def iso_dt(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _enum(descriptor: Any, value: int, prefix: str) -> str:
    try:
        name: str = descriptor.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix).lower()


def station_state_name(value: int) -> str:
    return _enum(common_pb2.StationState, value, "STATION_STATE_")


def job_state_name(value: int) -> str:
    return _enum(common_pb2.JobState, value, "JOB_STATE_")


def station_json(s: common_pb2.Station) -> JSON:
    return {
        "site_id": s.station_id,
        "name": s.name,
        "kind": _enum(common_pb2.StationKind, s.kind, "STATION_KIND_"),
        "latitude_deg": s.location.latitude_deg,
        "longitude_deg": s.location.longitude_deg,
        "altitude_m": s.location.altitude_m,
        "min_elevation_deg": s.min_elevation_deg,
        "bands": list(s.bands),
        "aperture_m": s.aperture_m,
        "filters": list(s.filters),
        "limiting_magnitude": s.limiting_magnitude,
        "fov_deg": s.fov_deg,
        "state": station_state_name(s.state),
        "weather": _enum(common_pb2.Weather, s.weather, "WEATHER_"),
        "last_seen": iso(s.last_seen),
        "clock_offset_s": s.clock_offset_s,
    }


def target_json(t: common_pb2.Target) -> JSON:
    out: JSON = {
        "target_id": t.target_id,
        "name": t.name,
        "priority": t.priority,
        "aliases": list(t.aliases),
        "campaign_id": t.campaign_id,
    }
    kind = t.WhichOneof("kind")
    if kind == "satellite":
        out.update(
            kind="satellite",
            norad_id=t.satellite.norad_id,
            tle_line1=t.satellite.tle_line1,
            tle_line2=t.satellite.tle_line2,
            band=t.satellite.band,
            downlink_frequency_hz=t.satellite.downlink_frequency_hz,
        )
    elif kind == "celestial":
        c = t.celestial
        out.update(
            kind="celestial",
            ra_deg=c.ra_deg,
            dec_deg=c.dec_deg,
            magnitude=c.magnitude,
            filters=list(c.filters),
            exposure_s=c.exposure_s,
            exposure_count=c.exposure_count,
            cadence_s=c.cadence_s,
        )
    return out


def forecast_json(f: common_pb2.SpacecraftForecast) -> JSON:
    return {
        "state_of_charge": f.state_of_charge,
        "state_of_charge_time": iso(f.state_of_charge_time),
        "min_state_of_charge": f.min_state_of_charge,
        "min_state_of_charge_time": iso(f.min_state_of_charge_time),
        "min_soc": f.min_soc,
        "below_min_soc": f.below_min_soc,
        "data_on_board_bytes": f.data_on_board_bytes,
        "detail": f.detail,
    }


def campaign_json(c: targets_pb2.Campaign) -> JSON:
    return {
        "campaign_id": c.campaign_id,
        "name": c.name,
        "description": c.description,
        "priority_boost": c.priority_boost,
        "start": iso(c.start),
        "end": iso(c.end),
    }


def job_json(j: observations_pb2.Job) -> JSON:
    return {
        "job_id": j.job_id,
        "site_id": j.station_id,
        "target_id": j.target_id,
        "start": iso(j.window.start),
        "end": iso(j.window.end),
        "state": job_state_name(j.state),
        "cause": _enum(common_pb2.CauseCode, j.cause, "CAUSE_CODE_"),
        "detail": j.detail,
        "schedule_version": j.schedule_version,
        "updated_at": iso(j.updated_at),
    }


def observation_json(o: observations_pb2.Observation) -> JSON:
    r: agent_pb2.ObservationRecord = o.record
    out: JSON = {
        "observation_id": r.observation_id,
        "site_id": o.station_id,
        "job_id": r.job_id,
        "target_id": r.target_id,
        "start": iso(r.start),
        "end": iso(r.end),
        "exposure_s": r.exposure_s,
        "airmass": r.airmass,
        "seeing_arcsec": r.seeing_arcsec,
        "quality_flags": list(r.quality_flags),
        "headers": dict(r.headers),
        "artifacts": [
            {"artifact_id": a.artifact_id, "kind": a.kind, "size_bytes": a.size_bytes, "sha256": a.sha256}
            for a in r.artifacts
        ],
        "received_at": iso(o.received_at),
        "photometry": None,
        "astrometry": None,
    }
    if r.HasField("photometry"):
        p = r.photometry
        out["photometry"] = {
            "filter": p.filter,
            "magnitude": p.magnitude,
            "magnitude_error": p.magnitude_error,
            "flux": p.flux,
            "comparison_stars": p.comparison_stars,
        }
    if r.HasField("astrometry"):
        a = r.astrometry
        out["astrometry"] = {"ra_deg": a.ra_deg, "dec_deg": a.dec_deg, "rms_arcsec": a.rms_arcsec}
    out["reduction"] = reduction_json(o) if o.HasField("reduction") else None
    return out


def reduction_json(o: observations_pb2.Observation) -> JSON:
    """The server's reduction of an observation: its state, why uploads could not be reduced (`error`), the
    measurements, and the pass waterfall as a gateway download URL (the server's own path is never shown)."""
    red = o.reduction
    waterfall_url = None
    if red.waterfall_artifact_id:
        waterfall_url = (
            f"/api/v1/observations/{quote(o.record.observation_id, safe='')}"
            f"/artifacts/{quote(red.waterfall_artifact_id, safe='')}?product=waterfall"
        )
    return {
        "state": _enum(observations_pb2.ReductionState, red.state, "REDUCTION_STATE_"),
        "error": red.error,
        "quality_flags": list(red.quality_flags),
        "filter": red.filter,
        "magnitude": red.magnitude,
        "magnitude_error": red.magnitude_error,
        "fwhm_arcsec": red.fwhm_arcsec,
        "wcs_rms_arcsec": red.wcs_rms_arcsec,
        "pass_quality_score": red.pass_quality_score,
        "doppler_offset_hz": red.doppler_offset_hz,
        "peak_snr_db": red.peak_snr_db,
        "reduced_at": iso(red.reduced_at),
        "waterfall_artifact_id": red.waterfall_artifact_id or None,
        "waterfall_url": waterfall_url,
    }


def explanation_json(e: scheduler_pb2.Explanation) -> JSON:
    return {
        "target_id": e.target_id,
        "reasons": [
            {
                "code": _enum(scheduler_pb2.ReasonCode, r.code, "REASON_CODE_"),
                "detail": r.detail,
                "site_id": r.station_id,
                "winner_target_id": r.winner_target_id,
            }
            for r in e.reasons
        ],
    }


def audit_json(e: auth_pb2.AuditEntry) -> JSON:
    return {
        "id": e.id,
        "at": iso(e.at),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "detail": MessageToDict(e.detail),
    }


def event_json(e: events_pb2.WatchResponse) -> tuple[str, JSON]:
    """(SSE event name, data) for one server event."""
    kind = e.WhichOneof("event") or "unknown"
    data: JSON = {"cursor": e.cursor, "at": iso(e.at)}
    if kind == "station_state":
        s = e.station_state
        data.update(
            site_id=s.station_id,
            old_state=station_state_name(s.old_state),
            new_state=station_state_name(s.new_state),
        )
    elif kind == "job":
        j = e.job
        data.update(
            job_id=j.job_id,
            site_id=j.station_id,
            old_state=job_state_name(j.old_state),
            new_state=job_state_name(j.new_state),
        )
    elif kind == "observation":
        data.update(
            observation_id=e.observation.observation_id,
            site_id=e.observation.station_id,
            target_id=e.observation.target_id,
        )
    elif kind == "plan":
        data.update(
            assignments=e.plan.assignments,
            unscheduled=e.plan.unscheduled,
            changed_site_ids=list(e.plan.changed_station_ids),
        )
    elif kind == "telemetry":
        data.update(
            site_id=e.telemetry.station_id,
            samples=[{"at": iso(x.at), "values": dict(x.values)} for x in e.telemetry.samples],
        )
    elif kind == "resync":
        data.update(reason=e.resync.reason)
    return kind, data
