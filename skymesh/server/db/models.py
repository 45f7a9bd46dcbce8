"""SQLAlchemy 2 ORM models: the server's tables. Private to `skymesh.server.db`; nothing outside it imports these.

Portable across SQLite and PostgreSQL: generic types only, times as `UTCDateTime` (always tz-aware UTC in Python),
JSON columns for small lists and maps. The Alembic revisions in `skymesh/server/migrations` are generated from here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = ["Base"]


class UTCDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC datetime on both dialects (SQLite stores no zone, so it is re-attached on load)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class StationRow(Base):
    __tablename__ = "stations"
    station_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[int] = mapped_column(Integer)
    latitude_deg: Mapped[float] = mapped_column(Float)
    longitude_deg: Mapped[float] = mapped_column(Float)
    altitude_m: Mapped[float] = mapped_column(Float)
    min_elevation_deg: Mapped[float] = mapped_column(Float)
    horizon_azimuth_deg: Mapped[list[Any]] = mapped_column(JSON)
    horizon_min_elevation_deg: Mapped[list[Any]] = mapped_column(JSON)
    bands: Mapped[list[Any]] = mapped_column(JSON)
    slew_rate_deg_s: Mapped[float] = mapped_column(Float)
    aperture_m: Mapped[float] = mapped_column(Float)
    filters: Mapped[list[Any]] = mapped_column(JSON)
    limiting_magnitude: Mapped[float] = mapped_column(Float)
    fov_deg: Mapped[float] = mapped_column(Float)
    unavailable: Mapped[list[Any]] = mapped_column(JSON)  # [[start_iso, end_iso], ...]
    state: Mapped[int] = mapped_column(Integer)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clock_offset_s: Mapped[float] = mapped_column(Float, default=0.0)
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    weather: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Per-axis rotator limits ({"azimuth": {...}, "elevation": {...}}, skymesh.core.rotator); null = none given.
    rotator: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Last command seq handed out for this station (the outbox allocates with UPDATE ... RETURNING).
    command_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by DeleteStation: the row stays so the station's history keeps its id, and the id is never reused.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StationKeyRow(Base):
    __tablename__ = "station_keys"
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserRow(Base):
    __tablename__ = "users"
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | observer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)  # argon2id; None: no login


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # set on login sessions
    label: Mapped[str] = mapped_column(String(100), default="", server_default="")


class CampaignRow(Base):
    __tablename__ = "campaigns"
    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    priority_boost: Mapped[float] = mapped_column(Float, default=0.0)
    start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TargetRow(Base):
    __tablename__ = "targets"
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[int] = mapped_column(Integer)  # skymesh.core.model.TargetKind
    priority: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.campaign_id"), nullable=True, index=True)
    # Satellites (the elements themselves live in tle_history).
    norad_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    band: Mapped[str] = mapped_column(String(32), default="")
    downlink_frequency_hz: Mapped[float] = mapped_column(Float, default=0.0)
    min_elevation_deg: Mapped[float] = mapped_column(Float, default=0.0)
    # SpacecraftProfile as a JSON object (None: no profile) and the latest plan's SpacecraftForecast (revision 0002).
    spacecraft: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    spacecraft_forecast: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Sidereal targets.
    ra_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    dec_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    magnitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    filters: Mapped[list[Any]] = mapped_column(JSON, default=list)
    exposure_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    exposure_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_airmass: Mapped[float | None] = mapped_column(Float, nullable=True)
    min_moon_separation_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    cadence_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Observing limits (revision 0003); NULL or 0: no limit.
    max_hour_angle_h: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_moon_illumination: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Soft delete: jobs and observations keep pointing at it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TargetAliasRow(Base):
    __tablename__ = "target_aliases"
    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.target_id"), index=True)


class TleRow(Base):
    """Every element set ever received for a satellite target; the newest row (highest id) is current."""

    __tablename__ = "tle_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.target_id"), index=True)
    line1: Mapped[str] = mapped_column(String(80))
    line2: Mapped[str] = mapped_column(String(80))
    epoch: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CatalogueVersionRow(Base):
    """One row: a counter that every committed change to `targets`, `target_aliases` or `tle_history` increments
    (database triggers, revision 0017), whatever wrote it and on whichever replica. A server keeps the target list it
    last read with the version it read first, and reads the list again only when the version has moved."""

    __tablename__ = "catalogue_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class JobRow(Base):
    __tablename__ = "jobs"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.target_id"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    tca: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    max_elevation_deg: Mapped[float] = mapped_column(Float, default=0.0)
    filter: Mapped[str] = mapped_column(String(32), default="")
    exposure_s: Mapped[float] = mapped_column(Float, default=0.0)
    exposure_count: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[int] = mapped_column(Integer)  # skymesh.core.jobs.JobState
    cause: Mapped[int] = mapped_column(Integer, default=0)  # common.v1.CauseCode
    detail: Mapped[str] = mapped_column(Text, default="")
    schedule_version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_jobs_station_state", "station_id", "state"), Index("ix_jobs_start", "start"))


class ScheduleRow(Base):
    """The current schedule version of each station (its jobs are the live jobs with that station)."""

    __tablename__ = "schedules"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acked_version: Mapped[int] = mapped_column(BigInteger, default=0)
    ack_error: Mapped[str] = mapped_column(Text, default="")


class CommandRow(Base):
    """The command outbox: per-station seq, unique UUID, serialized payload, delivery state."""

    __tablename__ = "commands"
    command_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer, default=0)  # agent.v1.CommandState; 0 = queued
    cause: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("station_id", "seq", name="uq_commands_station_seq"),)


class UpstreamCursorRow(Base):
    __tablename__ = "upstream_cursors"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), primary_key=True)
    boot_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    committed_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StationSessionRow(Base):
    """Which replica holds each station's stream, fenced by an epoch (issue 8, replicas).

    Every Hello takes the next epoch in the transaction that returns its resume cursors; every write made as the
    station (upstream ingest, cursor moves, command and schedule acks, liveness transitions) checks the epoch its
    stream was given, so a replica that lost the station gets FENCED instead of writing. `replica` is the holder's
    PostgreSQL application_name (its presence connection): a holder whose connection is gone has died, and another
    replica adopts its stations (marks them DISCONNECTED, then OFFLINE)."""

    __tablename__ = "station_sessions"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    replica: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LatestPlanRow(Base):
    """The last applied plan's GetLatestPlanResponse (one row, id 1), so every replica answers GetLatestPlan."""

    __tablename__ = "latest_plan"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    response: Mapped[bytes] = mapped_column(LargeBinary)


class UpstreamRefusalRow(Base):
    """A reliable upstream message refused for its content; the cursor moved past it (docs/protocol.md rule 4)."""

    __tablename__ = "upstream_refusals"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), primary_key=True)
    boot_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    error: Mapped[str] = mapped_column(Text)
    refused_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TelemetryRow(Base):
    __tablename__ = "telemetry"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    boot_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The batch, columnar (skymesh.server.db.telemetry_blob; migration 0018). Rows written before 0018 have NULL
    # here and their samples as JSON in `samples` ([{"at": iso, "values": {channel: value}}, ...]).
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    samples: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)

    # On PostgreSQL the table is partitioned by day on `at` (migration 0019; skymesh.server.db.telemetry_partitions)
    # and its primary key there is (id, at): a unique key must hold the partition key. So must the dedup key: `at` is
    # the batch's own first sample time, the same on every resend of it.
    __table_args__ = (
        UniqueConstraint("station_id", "boot_id", "seq", "at", name="uq_telemetry_station_boot_seq_at"),
        # ListTelemetry: one station's batches in time order (migration 0013).
        Index("ix_telemetry_station_at", "station_id", "at", "id"),
    )


class ObservationRow(Base):
    __tablename__ = "observations"
    observation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.job_id"), nullable=True, index=True)
    target_id: Mapped[str | None] = mapped_column(ForeignKey("targets.target_id"), nullable=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    exposure_s: Mapped[float] = mapped_column(Float, default=0.0)
    airmass: Mapped[float] = mapped_column(Float, default=0.0)
    seeing_arcsec: Mapped[float] = mapped_column(Float, default=0.0)
    filter: Mapped[str] = mapped_column(String(32), default="")
    magnitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    magnitude_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    flux: Mapped[float | None] = mapped_column(Float, nullable=True)
    ra_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    dec_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    astrometry_rms_arcsec: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The record as received (agent.v1.ObservationRecord bytes): nothing the agent said is lost.
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    boot_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The server's own reduction of the observation's frames (revision 0007; `skymesh.products`), aggregated over
    # its frames: "" (nothing to reduce yet), "good", "bad" (failed quality: done but its demand is not met), "error".
    reduction_state: Mapped[str] = mapped_column(String(16), default="", server_default="")
    reduced_magnitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    reduced_magnitude_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    reduced_filter: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reduced_airmass: Mapped[float | None] = mapped_column(Float, nullable=True)
    zero_point_mag: Mapped[float | None] = mapped_column(Float, nullable=True)
    zero_point_error_mag: Mapped[float | None] = mapped_column(Float, nullable=True)
    fwhm_arcsec: Mapped[float | None] = mapped_column(Float, nullable=True)
    wcs_rms_arcsec: Mapped[float | None] = mapped_column(Float, nullable=True)
    reduction_flags: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    reduced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Passes (IQ recordings): the best recording's quality score, Doppler residual and peak SNR.
    pass_quality_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    doppler_offset_hz: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_snr_db: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Revision 0018: why uploads could not be reduced ("; "-joined), and the best pass's waterfall PNG relative to
    # the server's data directory.
    reduction_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    waterfall_path: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (Index("ix_observations_target_start", "target_id", "start"),)


class FrameReductionRow(Base):
    """The pipeline's result for one uploaded FITS frame (revision 0007)."""

    __tablename__ = "frame_reductions"
    resource_name: Mapped[str] = mapped_column(String(300), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), index=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    state: Mapped[str] = mapped_column(String(16))  # good | bad | error
    error: Mapped[str] = mapped_column(Text, default="")
    filter: Mapped[str] = mapped_column(String(32), default="")
    date_obs: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exposure_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    airmass: Mapped[float | None] = mapped_column(Float, nullable=True)
    magnitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    magnitude_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    instrumental_magnitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    zero_point_mag: Mapped[float | None] = mapped_column(Float, nullable=True)
    zero_point_error_mag: Mapped[float | None] = mapped_column(Float, nullable=True)
    zero_point_airmass1_mag: Mapped[float | None] = mapped_column(Float, nullable=True)
    comparison_stars: Mapped[int] = mapped_column(Integer, default=0)
    comparison_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    target_ra_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    target_dec_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    wcs_rms_arcsec: Mapped[float | None] = mapped_column(Float, nullable=True)
    matched_stars: Mapped[int] = mapped_column(Integer, default=0)
    star_count: Mapped[int] = mapped_column(Integer, default=0)
    fwhm_arcsec: Mapped[float | None] = mapped_column(Float, nullable=True)
    ellipticity: Mapped[float | None] = mapped_column(Float, nullable=True)
    sky_e_per_s_px: Mapped[float | None] = mapped_column(Float, nullable=True)
    saturated_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    wcs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reduced_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_frame_reductions_station_filter", "station_id", "filter"),)


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    resource_name: Mapped[str] = mapped_column(String(300), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), index=True)
    artifact_id: Mapped[str] = mapped_column(String(64))
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    kind: Mapped[str] = mapped_column(String(32), default="")
    path: Mapped[str] = mapped_column(Text)
    committed_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    total_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditRow(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AlertRow(Base):
    """Every alert packet received, as received (`raw`), with what the server made of it (revision 0006).

    `dedup_key` is "source:external_id:revision" (NULL for a packet that did not parse, so rejected packets never
    collide); `status` is control.v1.AlertStatus; `created_target` says the target exists because of this event (a
    retraction deletes such a target). The time-critical window and boost feed the planner while ACCEPTED.
    """

    __tablename__ = "alerts"
    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedup_key: Mapped[str | None] = mapped_column(String(400), nullable=True, unique=True)
    source: Mapped[str] = mapped_column(String(16))
    alert_type: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(250))
    revision: Mapped[int] = mapped_column(BigInteger)
    event_name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    retraction: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer)
    target_id: Mapped[str | None] = mapped_column(ForeignKey("targets.target_id"), nullable=True, index=True)
    created_target: Mapped[bool] = mapped_column(Boolean)
    event_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ra_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    dec_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    error_radius_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    magnitude_ab: Mapped[float | None] = mapped_column(Float, nullable=True)
    magnitude_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    filter: Mapped[str] = mapped_column(String(32))
    flux_erg_s_cm2: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(300))
    error: Mapped[str] = mapped_column(Text)
    schema_version: Mapped[str] = mapped_column(String(300))
    cutouts: Mapped[list[Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer)
    # The matched target's priority before this alert raised it (NULL when the alert created the target): a
    # retraction puts it back.
    target_priority_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    window_boost: Mapped[float] = mapped_column(Float)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    raw_sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_alerts_source_external_id", "source", "external_id"),)


class AlertTargetRow(Base):
    """The targets an alert with a sky map (LVK) made: one per field-of-view tile of its credible region, `rank` 1
    the most probable, `probability` the share of the map inside it (revision 0015). Like `alerts.target_id` with
    `created_target`: the event owns them, a retraction cancels their jobs and deletes them."""

    __tablename__ = "alert_targets"
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), primary_key=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("targets.target_id"), primary_key=True, index=True)
    rank: Mapped[int] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float)


class PassReductionRow(Base):
    """The pass analysis of one uploaded IQ recording (SigMF) (revision 0007)."""

    __tablename__ = "pass_reductions"
    resource_name: Mapped[str] = mapped_column(String(300), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), index=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    state: Mapped[str] = mapped_column(String(16))  # good | bad | error
    error: Mapped[str] = mapped_column(Text, default="")
    captures: Mapped[int] = mapped_column(Integer, default=0)
    detected: Mapped[int] = mapped_column(Integer, default=0)
    max_elevation_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_snr_db: Mapped[float | None] = mapped_column(Float, nullable=True)
    mean_snr_db: Mapped[float | None] = mapped_column(Float, nullable=True)
    snr_elevation_correlation: Mapped[float | None] = mapped_column(Float, nullable=True)
    doppler_offset_hz: Mapped[float | None] = mapped_column(Float, nullable=True)
    doppler_rms_hz: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    waterfall_path: Mapped[str] = mapped_column(Text, default="")
    reduced_at: Mapped[datetime] = mapped_column(UTCDateTime)
