"""The hardware seams of a station: async protocols for a rotator, a radio, a mount and a camera.

The executor only ever talks to these protocols; each driver module (simulated, rotctld, rigctld, indi, alpaca)
implements some of them. Blocking I/O stays behind `async` methods. Every driver failure is a `DriverError`, so the
executor can fail a job with cause HARDWARE_FAULT without knowing which protocol broke.

Imports: stdlib and `skymesh.core` only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from skymesh.core.errors import SkyMeshError

__all__ = [
    "Backoff",
    "Camera",
    "DriverError",
    "DriverHealth",
    "Exposure",
    "ExposureRequest",
    "HealthTracker",
    "LinkGeometry",
    "Mount",
    "PhotometryResult",
    "Radio",
    "ReportsHealth",
    "ReportsTravel",
    "Rotator",
    "RotatorTravel",
    "SupportsLinkGeometry",
]


class DriverError(SkyMeshError):
    """Hardware or its daemon failed, refused, or did not answer in time."""

    default_reason = "HARDWARE_FAULT"


@dataclass(frozen=True)
class DriverHealth:
    """What a driver knows of its device right now: reachable or not, when it last answered, how often it failed."""

    connected: bool
    last_ok: datetime | None  # wall-clock time of the last successful exchange
    errors_total: int
    consecutive_errors: int
    last_error: str = ""

    @property
    def healthy(self) -> bool:
        return self.connected and self.consecutive_errors == 0


class HealthTracker:
    """Counts a driver's successes and failures (wall clock: health is about real exchanges, not simulated time)."""

    def __init__(self) -> None:
        self.last_ok: datetime | None = None
        self.errors_total = 0
        self.consecutive_errors = 0
        self.last_error = ""

    def ok(self) -> None:
        self.last_ok = datetime.now(UTC)
        self.consecutive_errors = 0

    def failed(self, error: str) -> None:
        self.errors_total += 1
        self.consecutive_errors += 1
        self.last_error = error

    def snapshot(self, connected: bool) -> DriverHealth:
        return DriverHealth(connected, self.last_ok, self.errors_total, self.consecutive_errors, self.last_error)


class Backoff:
    """Reconnect pacing: after a failed attempt the next one waits 0.5, 1, 2 ... up to `max_s` seconds (real time),
    and callers in between fail at once instead of each waiting for a connect timeout."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.delay_s = 0.0
        self._not_before = 0.0

    def wait_s(self) -> float:
        """Seconds until the next attempt is allowed (0: now)."""
        return max(self._not_before - time.monotonic(), 0.0)

    def failed(self) -> None:
        self.delay_s = min(self.delay_s * 2.0, self.max_s) if self.delay_s else self.initial_s
        self._not_before = time.monotonic() + self.delay_s

    def succeeded(self) -> None:
        self.delay_s = 0.0
        self._not_before = 0.0


@runtime_checkable
class ReportsHealth(Protocol):
    def health(self) -> DriverHealth: ...


class Rotator(Protocol):
    """An az/el antenna rotator."""

    name: str

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def set_position(self, azimuth_deg: float, elevation_deg: float) -> None:
        """Command a move (returns once the command is accepted, not when the move ends)."""
        ...

    async def get_position(self) -> tuple[float, float]:
        """Current (azimuth_deg, elevation_deg)."""
        ...

    async def stop(self) -> None: ...
    async def park(self) -> None: ...


@dataclass(frozen=True)
class RotatorTravel:
    """The travel a rotator (or its daemon) says it allows; mechanical degrees (azimuth may exceed 0..360)."""

    azimuth_min_deg: float
    azimuth_max_deg: float
    elevation_min_deg: float
    elevation_max_deg: float


@runtime_checkable
class ReportsTravel(Protocol):
    """A rotator that can say its own limits (rotctld's `\\dump_state`); None until it has been asked."""

    def reported_travel(self) -> RotatorTravel | None: ...


class Radio(Protocol):
    """A receiver whose frequency the agent steers for Doppler."""

    name: str

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def set_frequency(self, frequency_hz: float) -> None: ...
    async def get_frequency(self) -> float: ...
    async def snr_db(self) -> float:
        """Signal-to-noise ratio of what is being received now."""
        ...


class Mount(Protocol):
    """A telescope mount. `slew` takes catalogue (J2000) RA/Dec; each driver converts to what its protocol wants.
    `get_radec` answers in the mount's own frame: of date when `equinox_of_date` is set (INDI's EOD), else J2000."""

    name: str

    @property
    def equinox_of_date(self) -> bool: ...

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def slew(self, ra_deg: float, dec_deg: float) -> None:
        """Slew and start tracking; returns when the mount has arrived."""
        ...

    async def get_radec(self) -> tuple[float, float]: ...
    async def park(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ExposureRequest:
    """What the camera is asked to do, plus what the executor knows of the target (simulators use it)."""

    duration_s: float
    filter: str
    target_id: str
    target_name: str
    ra_deg: float
    dec_deg: float
    catalog_magnitude: float
    altitude_deg: float
    start: datetime
    binning: int = 1
    frame_type: str = "LIGHT"  # LIGHT, DARK, BIAS, FLAT
    job_id: str = ""
    station_id: str = ""


@dataclass(frozen=True)
class PhotometryResult:
    filter: str
    magnitude: float
    magnitude_error: float
    flux: float
    zero_point: float
    comparison_stars: int


@dataclass(frozen=True)
class Exposure:
    """One exposure's result: the image bytes (FITS where the camera gives one) and what is known about it."""

    start: datetime
    duration_s: float
    data: bytes = b""
    data_format: str = ""  # ".fits", ...
    photometry: PhotometryResult | None = None
    airmass: float = 0.0
    seeing_arcsec: float = 0.0
    quality_flags: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    # What the hardware reports it did ("" / 0: it does not say).
    filter_in_place: str = ""
    pixel_scale_arcsec: float = 0.0  # at the binning used
    width_px: int = 0
    height_px: int = 0


class Camera(Protocol):
    name: str

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def expose(self, request: ExposureRequest) -> Exposure: ...
    async def temperature_c(self) -> float: ...


class Focuser(Protocol):
    """An absolute focuser (positions in steps): read where it is, move and wait until it stands."""

    name: str

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def get_position(self) -> int: ...
    async def move_to(self, position_steps: int) -> int:
        """Move to `position_steps`; returns the position read back once the focuser has stopped."""
        ...


@dataclass(frozen=True)
class LinkGeometry:
    """Truth about the radio link right now, which only a simulator may be told."""

    range_km: float
    elevation_deg: float
    range_rate_km_s: float
    pointing_error_deg: float
    downlink_frequency_hz: float


@runtime_checkable
class SupportsLinkGeometry(Protocol):
    def update_geometry(self, geometry: LinkGeometry | None) -> None: ...
