"""Frozen records the repository returns and accepts: core dataclasses plus the few facts only the server keeps.

No SQLAlchemy and no protobuf here: these cross from the persistence layer into the services and back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from skymesh.core.jobs import JobState
from skymesh.core.model import SpacecraftForecast, Station, StationState, Target, TimeWindow
from skymesh.server.db.telemetry_blob import TelemetryColumns, from_json, pack

__all__ = [
    "OPEN_COMMAND_STATES",
    "ArtifactRecord",
    "CampaignRecord",
    "CommandRecord",
    "CommandStateValue",
    "CommandUpdateIn",
    "HealthEventRecord",
    "HelloClaim",
    "HelloIn",
    "IssuedKey",
    "JobCancel",
    "JobChange",
    "JobRecord",
    "JobUpdateIn",
    "LightCurvePointRecord",
    "ObservationIn",
    "ObservationReduction",
    "PlanOutcome",
    "PlannedJob",
    "Role",
    "ScheduleSnapshot",
    "StationDeletion",
    "StationRecord",
    "StoredObservation",
    "TargetCatalogue",
    "TargetRecord",
    "TelemetryIn",
    "TleRecord",
    "UpstreamResult",
    "UserListing",
    "UserRecord",
    "UserTokenRecord",
]


class Role(enum.IntEnum):
    """User roles, ordered: each can do everything the ones below it can."""

    OBSERVER = 1
    OPERATOR = 2
    ADMIN = 3


class CommandStateValue(enum.IntEnum):
    """Outbox states; values match agent.v1.CommandState (0: queued, not yet acknowledged by the agent)."""

    QUEUED = 0
    RECEIVED = 1
    REJECTED = 2
    STARTED = 3
    PROGRESS = 4
    SUCCEEDED = 5
    FAILED = 6
    EXPIRED = 7
    CANCELLED = 8

    @property
    def terminal(self) -> bool:
        return self in (
            CommandStateValue.REJECTED,
            CommandStateValue.SUCCEEDED,
            CommandStateValue.FAILED,
            CommandStateValue.EXPIRED,
            CommandStateValue.CANCELLED,
        )

    @property
    def rank(self) -> int:
        if self.terminal:
            return 4
        return {0: 0, 1: 1, 3: 2, 4: 3}[int(self)]


# Commands still to be delivered or finished (what a reconnect replays).
OPEN_COMMAND_STATES = tuple(int(c) for c in CommandStateValue if not c.terminal)


@dataclass(frozen=True)
class StationRecord:
    station: Station
    last_seen: datetime | None
    clock_offset_s: float
    agent_version: str
    state_changed_at: datetime


@dataclass(frozen=True)
class StationDeletion:
    """What DeleteStation did: the keys it revoked (their streams must end) and the work it ended."""

    station_id: str
    revoked_key_ids: tuple[str, ...]
    ended_jobs: int
    cancelled_commands: int


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    station_id: str
    api_key: str  # "smk_<key_id>_<secret>", shown once


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    role: Role


@dataclass(frozen=True)
class UserTokenRecord:
    token_id: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class UserListing:
    """A user as an admin sees it: role, creation time and every token (ids and times only, never secrets)."""

    user_id: str
    role: Role
    created_at: datetime
    tokens: tuple[UserTokenRecord, ...]


@dataclass(frozen=True)
class TleRecord:
    line1: str
    line2: str
    epoch: datetime
    source: str
    received_at: datetime


@dataclass(frozen=True)
class TargetRecord:
    target: Target
    campaign_id: str
    elements_source: str
    elements_epoch: datetime | None
    updated_at: datetime
    spacecraft_forecast: SpacecraftForecast | None = None  # the latest plan's, for satellites with a profile


@dataclass(frozen=True)
class TargetCatalogue:
    """Every live target by id (`ids` the same order) as of catalogue `version` (`Repository.target_catalogue`)."""

    version: int
    records: tuple[TargetRecord, ...]
    ids: tuple[str, ...]


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: str
    name: str
    description: str
    priority_boost: float
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    station_id: str
    target_id: str
    window: TimeWindow
    state: JobState
    cause: int
    detail: str
    schedule_version: int
    updated_at: datetime
    tca: datetime | None = None
    max_elevation_deg: float = 0.0
    filter: str = ""
    exposure_s: float = 0.0
    exposure_count: int = 0
    priority: int = 5
    score: float = 0.0


@dataclass(frozen=True)
class JobChange:
    job_id: str
    station_id: str
    old: JobState
    new: JobState
    applied: bool


@dataclass(frozen=True)
class CommandRecord:
    command_id: str
    station_id: str
    seq: int
    kind: str
    payload: bytes
    not_before: datetime
    expires_at: datetime
    priority: int
    state: CommandStateValue
    cause: int = 0
    detail: str = ""
    job_id: str | None = None


@dataclass(frozen=True)
class CommandUpdateIn:
    """An agent's report on one command (CommandUpdate), as the repository applies it."""

    command_id: str
    state: CommandStateValue
    cause: int = 0
    detail: str = ""


@dataclass(frozen=True)
class JobCancel:
    """What one cancel did, in its one transaction: the job's state before and after, the station's new schedule
    version (an unstarted job left an agent's schedule), or the AbortJob command queued (a running job)."""

    before: JobState
    job: JobRecord
    version: int | None = None
    command: CommandRecord | None = None


@dataclass(frozen=True)
class ScheduleSnapshot:
    station_id: str
    version: int
    generated_at: datetime
    jobs: tuple[tuple[JobRecord, TargetRecord], ...]


@dataclass(frozen=True)
class PlannedJob:
    """One assignment from the scheduler, as the planner hands it to the repository."""

    station_id: str
    target_id: str
    window: TimeWindow
    job_id: str = ""  # set when the scheduler kept a frozen job
    tca: datetime | None = None
    max_elevation_deg: float = 0.0
    filter: str = ""
    exposure_s: float = 0.0
    exposure_count: int = 0
    priority: int = 5
    score: float = 0.0


@dataclass(frozen=True)
class PlanOutcome:
    # Stations whose job set changed, with their new schedule version.
    versions: dict[str, int]
    created: int
    kept: int
    cancelled: int


@dataclass(frozen=True)
class JobUpdateIn:
    job_id: str
    state: JobState
    cause: int
    detail: str
    at: datetime | None


@dataclass(frozen=True)
class TelemetryIn:
    """One telemetry batch as received: its first sample's time, the batch columnar, and `data`, its stored blob
    (`skymesh.server.db.telemetry_blob`)."""

    at: datetime
    columns: TelemetryColumns
    data: bytes

    @classmethod
    def of(cls, columns: TelemetryColumns) -> TelemetryIn:
        if not len(columns):
            raise ValueError("a telemetry batch holds at least one sample")
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=columns.times_us[0])
        return cls(at, columns, pack(columns.times_us, columns.columns))

    @classmethod
    def from_samples(cls, samples: Sequence[Mapping[str, Any]]) -> TelemetryIn:
        """From samples in the JSON form (`[{"at": iso, "values": {channel: value}}]`)."""
        return cls.of(from_json(samples))


@dataclass(frozen=True)
class ObservationIn:
    observation_id: str
    job_id: str | None
    target_id: str | None
    start: datetime
    end: datetime
    raw: bytes
    exposure_s: float = 0.0
    airmass: float = 0.0
    seeing_arcsec: float = 0.0
    filter: str = ""
    magnitude: float | None = None
    magnitude_error: float | None = None
    flux: float | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    astrometry_rms_arcsec: float | None = None
    quality_flags: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpstreamResult:
    committed_seq: int
    duplicate: bool
    job_change: JobChange | None = None


@dataclass(frozen=True)
class HelloIn:
    """One agent Hello, as its transaction records it (`Repository.record_hellos`). `state`: the liveness state the
    station goes to with it (ONLINE or DEGRADED), written in the same transaction; None leaves the state alone."""

    agent_version: str
    capabilities: dict[str, Any]
    clock_offset_s: float
    boot_ids: tuple[str, ...] = ()
    replica: str = ""
    session_id: str = ""
    state: StationState | None = None


@dataclass(frozen=True)
class HelloClaim:
    """What a Hello's transaction returns: the committed seq per boot id, the epoch this session now holds the
    station with, and the station's stored state before this Hello (another replica may have written it since this
    one looked); its schedule version and the highest seq of its open commands (0: none), so a reconnect that has
    nothing to catch up on costs no further transaction."""

    cursors: dict[str, int]
    epoch: int
    state: StationState
    schedule_version: int = 0
    open_command_head: int = 0


@dataclass(frozen=True)
class StoredObservation:
    observation_id: str
    station_id: str
    raw: bytes
    received_at: datetime
    start: datetime
    reduction: ObservationReduction | None = None


@dataclass(frozen=True)
class ObservationReduction:
    """The server's reduction of an observation's frames (skymesh.products), aggregated over them."""

    state: str  # good | bad | error
    filter: str
    magnitude: float | None
    magnitude_error: float | None
    zero_point_mag: float | None
    zero_point_error_mag: float | None
    airmass: float | None
    fwhm_arcsec: float | None
    wcs_rms_arcsec: float | None
    quality_flags: tuple[str, ...]
    reduced_at: datetime | None
    pass_quality_score: float | None = None
    doppler_offset_hz: float | None = None
    peak_snr_db: float | None = None
    error: str = ""  # why uploads could not be reduced ("; "-joined)
    waterfall_path: str = ""  # the best pass recording's waterfall PNG, relative to the server's data directory


@dataclass(frozen=True)
class LightCurvePointRecord:
    at: datetime
    magnitude: float
    magnitude_error: float
    station_id: str
    quality_flags: tuple[str, ...]
    airmass: float = 0.0
    filter: str = ""
    reduced: bool = False  # the server's calibrated magnitude (else what the agent reported)
    observation_id: str = ""


@dataclass(frozen=True)
class ArtifactRecord:
    resource_name: str
    observation_id: str
    artifact_id: str
    station_id: str
    path: str
    committed_size_bytes: int
    total_size_bytes: int
    sha256: str
    complete: bool
    kind: str = ""


@dataclass(frozen=True)
class HealthEventRecord:
    """A station health event: a telemetry detector's anomaly, open until `closed_at`, with its evidence window."""

    event_id: str
    station_id: str
    detector: str
    opened_at: datetime
    closed_at: datetime | None
    peak_z: float
    evidence: dict[str, Any]
