"""Converters between the server's records and protobuf messages, with validation of what agents send.

General domain converters live in `skymesh.api.convert`; this module adds the server-only ones (schedules,
commands, jobs, campaigns, upstream messages). Every InvalidArgument names the field ("observation.end: ...").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import observations_pb2, targets_pb2
from skymesh.api.convert import (
    job_state_to_proto,
    target_to_proto,
    time_window_to_proto,
    timestamp_from_datetime,
    timestamp_to_datetime,
)
from skymesh.api.validation import check_items, telemetry_columns
from skymesh.core.errors import InvalidArgument
from skymesh.core.jobs import JobState
from skymesh.core.model import SatelliteTarget
from skymesh.server.db.records import (
    CampaignRecord,
    CommandRecord,
    JobRecord,
    JobUpdateIn,
    ObservationIn,
    ScheduleSnapshot,
    TargetRecord,
    TelemetryIn,
)
from skymesh.server.db.telemetry_blob import TelemetryColumns

__all__ = [
    "campaign_from_proto",
    "campaign_to_proto",
    "command_message",
    "job_to_proto",
    "job_update_from_proto",
    "observation_from_proto",
    "schedule_message",
    "target_record_to_proto",
    "telemetry_from_proto",
]

_MAX_ID_LEN = 64
_CAUSES = frozenset(common_pb2.CauseCode.values())
# States an agent may report; the ones before RECEIVED belong to the server.
_AGENT_JOB_STATES = frozenset(
    {
        JobState.RECEIVED,
        JobState.RUNNING,
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.ABORTED,
        JobState.REJECTED,
        JobState.EXPIRED,
    }
)


def _optional_time(ts: Timestamp, field: str) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return timestamp_to_datetime(ts, field)


def _finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise InvalidArgument("must be a finite number", field=field)
    return value


def _identifier(value: str, field: str, *, required: bool = True) -> str:
    if not value:
        if required:
            raise InvalidArgument("must not be empty", field=field)
        return ""
    if len(value) > _MAX_ID_LEN:
        raise InvalidArgument(f"must be at most {_MAX_ID_LEN} characters", field=field)
    return value


def target_record_to_proto(rec: TargetRecord) -> common_pb2.Target:
    msg = target_to_proto(rec.target, rec.campaign_id)
    if isinstance(rec.target, SatelliteTarget):
        msg.satellite.elements_source = rec.elements_source
    return msg


def schedule_message(
    snapshot: ScheduleSnapshot, targets: dict[str, common_pb2.Target] | None = None
) -> agent_pb2.Schedule:
    """The agent's schedule message. `targets`: each target's message by id, built once and shared by every job of
    it (a plan's push: 36,000 jobs of 3,000 targets at 500 x 3,000); missing ones are built and added."""
    targets = {} if targets is None else targets
    jobs = []
    for job, target in snapshot.jobs:
        target_msg = targets.get(target.target.target_id)
        if target_msg is None:
            target_msg = targets[target.target.target_id] = target_record_to_proto(target)
        scheduled = agent_pb2.ScheduledJob(
            job_id=job.job_id,
            target=target_msg,
            start=timestamp_from_datetime(job.window.start),
            end=timestamp_from_datetime(job.window.end),
            max_elevation_deg=job.max_elevation_deg,
            filter=job.filter,
            exposure_s=job.exposure_s,
            exposure_count=job.exposure_count,
            priority=job.priority,
        )
        if job.tca is not None:
            scheduled.tca.CopyFrom(timestamp_from_datetime(job.tca))
        jobs.append(scheduled)
    return agent_pb2.Schedule(
        version=snapshot.version, generated_at=timestamp_from_datetime(snapshot.generated_at), jobs=jobs
    )


def command_message(rec: CommandRecord) -> agent_pb2.Command:
    msg = agent_pb2.Command()
    msg.ParseFromString(rec.payload)
    msg.seq = rec.seq
    msg.command_id = rec.command_id
    msg.not_before.CopyFrom(timestamp_from_datetime(rec.not_before))
    msg.expires_at.CopyFrom(timestamp_from_datetime(rec.expires_at))
    msg.priority = agent_pb2.CommandPriority.ValueType(rec.priority)
    return msg


def job_to_proto(job: JobRecord) -> observations_pb2.Job:
    return observations_pb2.Job(
        job_id=job.job_id,
        station_id=job.station_id,
        target_id=job.target_id,
        window=time_window_to_proto(job.window),
        state=job_state_to_proto(job.state),
        cause=common_pb2.CauseCode.ValueType(job.cause),
        detail=job.detail,
        schedule_version=job.schedule_version,
        updated_at=timestamp_from_datetime(job.updated_at),
    )


def campaign_to_proto(c: CampaignRecord) -> targets_pb2.Campaign:
    msg = targets_pb2.Campaign(
        campaign_id=c.campaign_id, name=c.name, description=c.description, priority_boost=c.priority_boost
    )
    if c.start is not None:
        msg.start.CopyFrom(timestamp_from_datetime(c.start))
    if c.end is not None:
        msg.end.CopyFrom(timestamp_from_datetime(c.end))
    return msg


def campaign_from_proto(msg: targets_pb2.Campaign) -> CampaignRecord:
    _identifier(msg.campaign_id, "campaign.campaign_id")
    return CampaignRecord(
        campaign_id=msg.campaign_id,
        name=msg.name or msg.campaign_id,
        description=msg.description,
        priority_boost=_finite(msg.priority_boost, "campaign.priority_boost"),
        start=_optional_time(msg.start, "campaign.start"),
        end=_optional_time(msg.end, "campaign.end"),
    )


# ------------------------------------------------------------------------------------------------ upstream


def _cause(value: int, field: str) -> int:
    if value not in _CAUSES:
        raise InvalidArgument(f"unknown cause code {value}", field=field)
    return value


def job_update_from_proto(msg: agent_pb2.JobUpdate) -> JobUpdateIn:
    _identifier(msg.job_id, "job_update.job_id")
    try:
        state = JobState(msg.state)
    except ValueError:
        raise InvalidArgument(f"unknown job state {msg.state}", field="job_update.state") from None
    if state not in _AGENT_JOB_STATES:
        raise InvalidArgument(f"an agent cannot report {state.name}", field="job_update.state")
    if not (math.isfinite(msg.progress) and 0.0 <= msg.progress <= 1.0):
        raise InvalidArgument("must be within [0, 1]", field="job_update.progress")
    return JobUpdateIn(
        job_id=msg.job_id,
        state=state,
        cause=_cause(msg.cause, "job_update.cause"),
        detail=msg.detail[:2000],
        at=_optional_time(msg.at, "job_update.at"),
    )


def telemetry_from_proto(msg: agent_pb2.TelemetryBatch, boot_id: str) -> TelemetryIn:
    # The agent-stream hot path (issue 8): the samples are checked (the server's guard leaves them to this, see
    # `skymesh.api.validation.CHECKED_WHEN_CONVERTED`) and made columnar in ONE pass, straight into the stored form
    # (an int per time, a float per value: `skymesh.server.db.telemetry_blob`). A batch the one pass is not sure of
    # is checked by the guard's own rules (naming the field exactly as they do) and converted the general way.
    samples = msg.samples
    columnar = telemetry_columns(samples)
    if columnar is None:
        check_items(msg, "samples", "telemetry.samples")
        columnar = _columns(samples)
    if msg.boot_id and msg.boot_id != boot_id:
        raise InvalidArgument("differs from the message's boot_id", field="telemetry.boot_id")
    if not samples:
        raise InvalidArgument("must not be empty", field="telemetry.samples")
    return TelemetryIn.of(TelemetryColumns(*columnar))


def _columns(samples: Iterable[agent_pb2.TelemetrySample]) -> tuple[list[int], dict[str, list[float]]]:
    """Any batch that passed the guard's rules, columnar: channels that come and go (NaN where a sample has none);
    a missing time or an empty channel name refused naming the field (no datetime, dict or f-string per sample unless
    something is wrong)."""
    times: list[int] = []
    columns: dict[str, list[float]] = {}
    for i, sample in enumerate(samples):
        ts = sample.at
        seconds, nanos = ts.seconds, ts.nanos
        if _TS_MIN_S <= seconds <= _TS_MAX_S and 0 <= nanos < 1_000_000_000 and (seconds or nanos):
            times.append(seconds * 1_000_000 + nanos // 1000)
        else:
            at = timestamp_to_datetime(ts, f"telemetry.samples[{i}].at")
            times.append((at - _EPOCH_UTC) // _MICROSECOND)
        values = dict(sample.values)
        if "" in values or not _all_finite(values.values()):
            _check_sample_values(values, i)
        for name, value in values.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [math.nan] * i  # a channel that starts after the first sample
            column.append(value)
        if len(values) != len(columns):  # channels this sample lacks: NaN (no value)
            for column in columns.values():
                if len(column) == i:
                    column.append(math.nan)
    return times, columns


# google.protobuf.Timestamp's valid range (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z).
_TS_MIN_S = -62_135_596_800
_TS_MAX_S = 253_402_300_799
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _all_finite(values: Iterable[float]) -> bool:
    try:
        return math.isfinite(math.fsum(values))
    except (OverflowError, ValueError):  # huge finite values overflow the sum; inf + -inf
        return False


def _check_sample_values(values: dict[str, float], i: int) -> None:
    for name, value in values.items():
        if not name:
            raise InvalidArgument("channel names must not be empty", field=f"telemetry.samples[{i}].values")
        _finite(value, f"telemetry.samples[{i}].values[{name}]")


def observation_from_proto(msg: agent_pb2.ObservationRecord) -> ObservationIn:
    p = "observation"
    _identifier(msg.observation_id, f"{p}.observation_id")
    _identifier(msg.job_id, f"{p}.job_id", required=False)
    _identifier(msg.target_id, f"{p}.target_id", required=False)
    start = timestamp_to_datetime(msg.start, f"{p}.start")
    end = timestamp_to_datetime(msg.end, f"{p}.end")
    if end < start:
        raise InvalidArgument("must not be before start", field=f"{p}.end")
    if not (math.isfinite(msg.exposure_s) and msg.exposure_s >= 0):
        raise InvalidArgument("must be a non-negative number of seconds", field=f"{p}.exposure_s")
    if not (math.isfinite(msg.airmass) and (msg.airmass == 0 or msg.airmass >= 1.0)):
        raise InvalidArgument("must be 0 (unknown) or at least 1", field=f"{p}.airmass")
    if not (math.isfinite(msg.seeing_arcsec) and msg.seeing_arcsec >= 0):
        raise InvalidArgument("must not be negative", field=f"{p}.seeing_arcsec")
    magnitude = magnitude_error = flux = None
    filter_name = ""
    if msg.HasField("photometry"):
        ph = msg.photometry
        magnitude = _finite(ph.magnitude, f"{p}.photometry.magnitude")
        magnitude_error = _finite(ph.magnitude_error, f"{p}.photometry.magnitude_error")
        if magnitude_error < 0:
            raise InvalidArgument("must not be negative", field=f"{p}.photometry.magnitude_error")
        flux = _finite(ph.flux, f"{p}.photometry.flux")
        filter_name = ph.filter
    ra = dec = rms = None
    if msg.HasField("astrometry"):
        a = msg.astrometry
        if not (math.isfinite(a.ra_deg) and 0.0 <= a.ra_deg < 360.0):
            raise InvalidArgument("must be within [0, 360) degrees", field=f"{p}.astrometry.ra_deg")
        if not (math.isfinite(a.dec_deg) and -90.0 <= a.dec_deg <= 90.0):
            raise InvalidArgument("must be within [-90, 90] degrees", field=f"{p}.astrometry.dec_deg")
        ra, dec, rms = a.ra_deg, a.dec_deg, _finite(a.rms_arcsec, f"{p}.astrometry.rms_arcsec")
    for i, artifact in enumerate(msg.artifacts):
        _identifier(artifact.artifact_id, f"{p}.artifacts[{i}].artifact_id")
    return ObservationIn(
        observation_id=msg.observation_id,
        job_id=msg.job_id or None,
        target_id=msg.target_id or None,
        start=start,
        end=end,
        raw=msg.SerializeToString(),
        exposure_s=msg.exposure_s,
        airmass=msg.airmass,
        seeing_arcsec=msg.seeing_arcsec,
        filter=filter_name,
        magnitude=magnitude,
        magnitude_error=magnitude_error,
        flux=flux,
        ra_deg=ra,
        dec_deg=dec,
        astrometry_rms_arcsec=rms,
        quality_flags=tuple(msg.quality_flags),
        headers=dict(msg.headers),
    )
