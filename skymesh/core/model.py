"""Domain values shared by every service: stations, targets, requirements, time windows, and the spacecraft profile
(battery, charging, draws, data rates) a satellite target may carry, with the simulator's forecast for it.

Frozen dataclasses with units in their names. No grpc, protobuf or database imports: converters to and from the wire
live in `skymesh.api.convert`, to and from SQL in `skymesh.server.db`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from skymesh.core.clock import ensure_utc
from skymesh.core.errors import InvalidArgument

if TYPE_CHECKING:  # a type only: the station agent imports this module and must not import numpy (core.rotator)
    from skymesh.core.rotator import RotatorModel

__all__ = [
    "WORK_DEVICES",
    "CelestialTarget",
    "GeoLocation",
    "HorizonMask",
    "SatelliteTarget",
    "SpacecraftForecast",
    "SpacecraftProfile",
    "Station",
    "StationKind",
    "StationState",
    "Target",
    "TargetKind",
    "ThermalParams",
    "TimeWindow",
    "Weather",
    "work_blocked_by",
]

# pykep.planet.jpl_lp("earth").radius: the R_b PASEOS's thermal model divides the distance by.
PYKEP_EARTH_RADIUS_M = 6_378_000.0

DEFAULT_ACTIVITY_POWER_W: Mapping[str, float] = MappingProxyType({"standby": 2.0, "payload": 20.0, "downlink": 15.0})


class StationKind(enum.IntEnum):
    GROUND_STATION = 1
    TELESCOPE = 2


class StationState(enum.IntEnum):
    """Liveness of a station's agent as the server sees it (DESIGN.md: ONLINE -> STALE -> DISCONNECTED -> OFFLINE),
    and DEGRADED: connected, but a device it needs is failing (its agent's health reports say which)."""

    ONLINE = 1
    STALE = 2
    DISCONNECTED = 3
    OFFLINE = 4
    DEGRADED = 5

    @property
    def schedulable(self) -> bool:
        # DISCONNECTED stations keep their accepted work (they run autonomously) but get no new work.
        # DEGRADED ones are schedulable only for work whose devices all work: see `work_blocked_by`.
        return self in (StationState.ONLINE, StationState.STALE)


# The devices (agent roles) each kind of station's work cannot do without. A failing device outside its kind's set
# (an all-sky camera at a ground station, a focuser, a weather sensor) takes no capability away from it.
WORK_DEVICES: Mapping[StationKind, frozenset[str]] = MappingProxyType(
    {
        StationKind.GROUND_STATION: frozenset({"rotator", "radio"}),
        StationKind.TELESCOPE: frozenset({"mount", "camera"}),
    }
)


def work_blocked_by(kind: StationKind, failing_roles: Iterable[str]) -> tuple[str, ...]:
    """The failing devices that take away the station's capability to do its kind of work (sorted; empty: none)."""
    return tuple(sorted(WORK_DEVICES[kind].intersection(failing_roles)))


class Weather(enum.IntEnum):
    """Weather at a station: telescopes observe only when CLEAR or UNSPECIFIED; ground stations stop when CLOSED."""

    UNSPECIFIED = 0
    CLEAR = 1
    CLOUDY = 2
    CLOSED = 3

    def allows(self, kind: StationKind) -> bool:
        if kind == StationKind.TELESCOPE:
            return self in (Weather.UNSPECIFIED, Weather.CLEAR)
        return self != Weather.CLOSED


class TargetKind(enum.IntEnum):
    SATELLITE = 1
    SIDEREAL = 2


@dataclass(frozen=True)
class GeoLocation:
    latitude_deg: float
    longitude_deg: float
    altitude_m: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latitude_deg) and -90.0 <= self.latitude_deg <= 90.0):
            raise InvalidArgument("must be within [-90, 90] degrees", field="latitude_deg")
        if not (math.isfinite(self.longitude_deg) and -180.0 <= self.longitude_deg <= 360.0):
            raise InvalidArgument("must be within [-180, 360] degrees", field="longitude_deg")
        if not (math.isfinite(self.altitude_m) and -500.0 <= self.altitude_m <= 10_000.0):
            raise InvalidArgument("must be within [-500, 10000] metres", field="altitude_m")


@dataclass(frozen=True)
class HorizonMask:
    """Minimum elevation by azimuth, linearly interpolated and wrapped at 360 degrees."""

    azimuth_deg: tuple[float, ...] = ()
    min_elevation_deg: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.azimuth_deg) != len(self.min_elevation_deg):
            raise InvalidArgument("azimuth and elevation lists differ in length", field="horizon_mask")
        if list(self.azimuth_deg) != sorted(self.azimuth_deg):
            raise InvalidArgument("azimuths must be increasing", field="horizon_mask.azimuth_deg")
        for az in self.azimuth_deg:
            if not 0.0 <= az < 360.0:
                raise InvalidArgument("azimuths must be within [0, 360)", field="horizon_mask.azimuth_deg")
        for el in self.min_elevation_deg:
            if not -10.0 <= el <= 90.0:
                raise InvalidArgument("elevations must be within [-10, 90]", field="horizon_mask.min_elevation_deg")


@dataclass(frozen=True)
class TimeWindow:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start, "start"))
        object.__setattr__(self, "end", ensure_utc(self.end, "end"))
        if self.end <= self.start:
            raise InvalidArgument("end must be after start", field="end")

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def overlaps(self, other: TimeWindow) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Station:
    """A site: a radio ground station (rotator + radio) or a telescope (mount + camera)."""

    station_id: str
    name: str
    kind: StationKind
    location: GeoLocation
    min_elevation_deg: float = 10.0
    horizon_mask: HorizonMask = field(default_factory=HorizonMask)
    # Ground stations
    bands: tuple[str, ...] = ()  # e.g. ("VHF", "UHF", "S")
    slew_rate_deg_s: float = 5.0  # rotator or mount
    # Telescopes
    aperture_m: float = 0.0
    filters: tuple[str, ...] = ()
    limiting_magnitude: float = 0.0
    fov_deg: float = 0.0
    state: StationState = StationState.OFFLINE
    unavailable: tuple[TimeWindow, ...] = ()
    weather: Weather = Weather.UNSPECIFIED
    # Per-axis rotator (mount) limits; None: both axes at `slew_rate_deg_s`, no acceleration limit.
    rotator: RotatorModel | None = None

    def __post_init__(self) -> None:
        if not self.station_id:
            raise InvalidArgument("must not be empty", field="station_id")
        if not 0.0 <= self.min_elevation_deg < 90.0:
            raise InvalidArgument("must be within [0, 90)", field="min_elevation_deg")
        if self.slew_rate_deg_s <= 0:
            raise InvalidArgument("must be positive", field="slew_rate_deg_s")


@dataclass(frozen=True)
class ThermalParams:
    """PASEOS `set_thermal_model` parameters; defaults for the central body are PASEOS's (Earth)."""

    mass_kg: float
    initial_temperature_k: float
    sun_absorptance: float
    infrared_absorptance: float
    sun_facing_area_m2: float
    body_facing_area_m2: float
    emissive_area_m2: float
    thermal_capacity_j_per_kg_k: float
    body_solar_irradiance_w_m2: float = 1360.0
    body_surface_temperature_k: float = 288.0
    body_emissivity: float = 0.6
    body_reflectance: float = 0.3
    heat_ratio: float = 0.5
    body_radius_m: float = PYKEP_EARTH_RADIUS_M

    def __post_init__(self) -> None:
        positive = ("mass_kg", "sun_facing_area_m2", "body_facing_area_m2", "emissive_area_m2",
                    "thermal_capacity_j_per_kg_k", "body_solar_irradiance_w_m2", "body_radius_m")  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise InvalidArgument("must be > 0", field=f"thermal.{name}")
        unit = ("sun_absorptance", "infrared_absorptance", "body_emissivity", "body_reflectance", "heat_ratio")
        for name in unit:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidArgument("must be in [0, 1]", field=f"thermal.{name}")
        if not self.initial_temperature_k >= 0:
            raise InvalidArgument("must be >= 0 K", field="thermal.initial_temperature_k")


@dataclass(frozen=True)
class SpacecraftProfile:
    """What the scheduler knows of a spacecraft: battery, charging, activity draws, storage and data rates.

    The simulator (`skymesh.sim.inloop`) runs it to value contacts and to check plans against `min_soc`. The
    spacecraft runs `idle_activity` (which fills storage at `payload_data_rate_bytes_per_s`) outside contacts and
    "downlink" inside them. Errors name the bare field ("min_soc"); callers prefix their path.
    """

    name: str
    battery_capacity_wh: float
    min_soc: float
    charge_power_w: float
    initial_soc: float = 1.0
    activity_power_w: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTIVITY_POWER_W))
    storage_capacity_bytes: float = math.inf
    initial_stored_bytes: float = 0.0
    payload_data_rate_bytes_per_s: float = 0.0
    downlink_rate_bytes_per_s: float = 0.0
    thermal: ThermalParams | None = None
    idle_activity: str = "payload"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.battery_capacity_wh) and self.battery_capacity_wh > 0):
            raise InvalidArgument("must be positive", field="battery_capacity_wh")
        for name in ("min_soc", "initial_soc"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidArgument("must be in [0, 1]", field=name)
        for name in ("charge_power_w", "payload_data_rate_bytes_per_s", "downlink_rate_bytes_per_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidArgument("must be a finite number >= 0", field=name)
        if not self.storage_capacity_bytes > 0:
            raise InvalidArgument("must be positive (inf: unlimited)", field="storage_capacity_bytes")
        if not 0.0 <= self.initial_stored_bytes <= self.storage_capacity_bytes:
            raise InvalidArgument("must be in [0, storage_capacity_bytes]", field="initial_stored_bytes")
        for key, value in self.activity_power_w.items():
            if not (math.isfinite(value) and value >= 0):
                raise InvalidArgument("draws must be finite numbers >= 0 W", field=f"activity_power_w[{key!r}]")
        for name in (self.idle_activity, "downlink"):
            if name not in self.activity_power_w:
                raise InvalidArgument(f"needs a power draw for {name!r}", field="activity_power_w")


@dataclass(frozen=True)
class SpacecraftForecast:
    """The simulated state of one spacecraft over a plan's window, with the plan's contacts taken."""

    target_id: str
    state_of_charge: float  # at `state_of_charge_time` (the end of the window)
    state_of_charge_time: datetime
    min_state_of_charge: float
    min_state_of_charge_time: datetime
    data_on_board_bytes: float  # at the end of the window
    below_min_soc: bool
    min_soc: float = 0.0  # the profile's floor
    detail: str = ""


@dataclass(frozen=True)
class SatelliteTarget:
    target_id: str
    name: str
    norad_id: int
    tle_line1: str
    tle_line2: str
    band: str = ""  # a ground station must list this band to observe it
    downlink_frequency_hz: float = 0.0
    priority: int = 5  # 1 (low) .. 10 (high)
    min_elevation_deg: float = 0.0
    kind: TargetKind = TargetKind.SATELLITE
    spacecraft: SpacecraftProfile | None = None  # set: the scheduler simulates its battery and data on board


@dataclass(frozen=True)
class CelestialTarget:
    target_id: str
    name: str
    ra_deg: float
    dec_deg: float
    magnitude: float = 10.0
    priority: int = 5
    filters: tuple[str, ...] = ()  # any of these will do
    exposure_s: float = 60.0
    exposure_count: int = 1
    max_airmass: float = 2.0
    min_moon_separation_deg: float = 20.0
    cadence_s: float = 0.0  # 0: observe once per plan
    aliases: Sequence[str] = ()
    kind: TargetKind = TargetKind.SIDEREAL
    max_hour_angle_h: float = 0.0  # observe only within this many hours of the meridian; 0: no limit
    max_moon_illumination: float = 0.0  # observe only while the Moon is at most this illuminated (0..1]; 0: no limit

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ra_deg) and 0.0 <= self.ra_deg < 360.0):
            raise InvalidArgument("must be within [0, 360) degrees", field="ra_deg")
        if not (math.isfinite(self.dec_deg) and -90.0 <= self.dec_deg <= 90.0):
            raise InvalidArgument("must be within [-90, 90] degrees", field="dec_deg")
        if self.exposure_s <= 0 or self.exposure_s > 3600:
            raise InvalidArgument("must be within (0, 3600] seconds", field="exposure_s")
        if self.max_airmass < 1.0:
            raise InvalidArgument("must be at least 1", field="max_airmass")
        if not (math.isfinite(self.max_hour_angle_h) and 0.0 <= self.max_hour_angle_h <= 12.0):
            raise InvalidArgument("must be within [0, 12] hours (0 = no limit)", field="max_hour_angle_h")
        if not (math.isfinite(self.max_moon_illumination) and 0.0 <= self.max_moon_illumination <= 1.0):
            raise InvalidArgument("must be within [0, 1] (0 = no limit)", field="max_moon_illumination")


Target = SatelliteTarget | CelestialTarget
