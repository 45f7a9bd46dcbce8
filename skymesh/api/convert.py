"""Converters between protobuf messages and `skymesh.core` domain values, with validation.

Every message that crosses into the domain goes through here, so bad input is rejected at one place with an
`InvalidArgument` naming the field (e.g. "station.location.latitude_deg: must be within [-90, 90] degrees").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.protobuf.timestamp_pb2 import Timestamp

from skymesh.api.common.v1 import common_pb2
from skymesh.core.errors import InvalidArgument, SkyMeshError
from skymesh.core.jobs import JobState
from skymesh.core.model import (
    CelestialTarget,
    GeoLocation,
    HorizonMask,
    SatelliteTarget,
    SpacecraftForecast,
    SpacecraftProfile,
    Station,
    StationKind,
    StationState,
    Target,
    ThermalParams,
    TimeWindow,
    Weather,
)

if TYPE_CHECKING:  # imported where used: the station agent uses this module and must not import numpy
    from skymesh.core.rotator import AxisLimits, RotatorModel

__all__ = [
    "job_state_from_proto",
    "job_state_to_proto",
    "rotator_from_proto",
    "rotator_to_proto",
    "spacecraft_forecast_from_proto",
    "spacecraft_forecast_to_proto",
    "spacecraft_profile_from_proto",
    "spacecraft_profile_to_proto",
    "station_from_proto",
    "station_to_proto",
    "target_from_proto",
    "target_to_proto",
    "time_window_from_proto",
    "time_window_to_proto",
    "timestamp_from_datetime",
    "timestamp_to_datetime",
]


def timestamp_from_datetime(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def timestamp_to_datetime(ts: Timestamp, field: str = "time", *, required: bool = True) -> datetime:
    if ts.seconds == 0 and ts.nanos == 0:
        if required:
            raise InvalidArgument("is required", field=field)
        return datetime.fromtimestamp(0, UTC)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f"is not a valid timestamp ({exc})", field=field) from exc


def time_window_to_proto(window: TimeWindow) -> common_pb2.TimeWindow:
    return common_pb2.TimeWindow(start=timestamp_from_datetime(window.start), end=timestamp_from_datetime(window.end))


def time_window_from_proto(msg: common_pb2.TimeWindow, field: str = "window") -> TimeWindow:
    with _prefix(field):
        return TimeWindow(timestamp_to_datetime(msg.start, "start"), timestamp_to_datetime(msg.end, "end"))


def job_state_to_proto(state: JobState) -> common_pb2.JobState.ValueType:
    return common_pb2.JobState.ValueType(int(state))


def job_state_from_proto(value: int, field: str = "state") -> JobState:
    try:
        return JobState(value)
    except ValueError as exc:
        raise InvalidArgument(f"unknown job state {value}", field=field) from exc


class _prefix:
    """Context manager that prefixes the field of an InvalidArgument raised inside it ("station." + "name")."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, SkyMeshError) and self.prefix:
            exc.field = f"{self.prefix}.{exc.field}" if exc.field else self.prefix


def _finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise InvalidArgument("must be a finite number", field=field)
    return value


def station_to_proto(station: Station) -> common_pb2.Station:
    return common_pb2.Station(
        station_id=station.station_id,
        name=station.name,
        kind=common_pb2.StationKind.ValueType(int(station.kind)),
        location=common_pb2.GeoLocation(
            latitude_deg=station.location.latitude_deg,
            longitude_deg=station.location.longitude_deg,
            altitude_m=station.location.altitude_m,
        ),
        min_elevation_deg=station.min_elevation_deg,
        horizon_mask=common_pb2.HorizonMask(
            azimuth_deg=list(station.horizon_mask.azimuth_deg),
            min_elevation_deg=list(station.horizon_mask.min_elevation_deg),
        ),
        bands=list(station.bands),
        slew_rate_deg_s=station.slew_rate_deg_s,
        aperture_m=station.aperture_m,
        filters=list(station.filters),
        limiting_magnitude=station.limiting_magnitude,
        fov_deg=station.fov_deg,
        state=common_pb2.StationState.ValueType(int(station.state)),
        unavailable=[time_window_to_proto(w) for w in station.unavailable],
        weather=common_pb2.Weather.ValueType(int(station.weather)),
        rotator=None if station.rotator is None else rotator_to_proto(station.rotator),
    )


def rotator_to_proto(model: RotatorModel) -> common_pb2.RotatorLimits:
    def axis(a: AxisLimits) -> common_pb2.AxisLimits:
        return common_pb2.AxisLimits(
            min_deg=a.min_deg, max_deg=a.max_deg, rate_deg_s=a.rate_deg_s, accel_deg_s2=a.accel_deg_s2
        )

    return common_pb2.RotatorLimits(azimuth=axis(model.azimuth), elevation=axis(model.elevation))


def rotator_from_proto(msg: common_pb2.RotatorLimits, field: str = "rotator") -> RotatorModel:
    """Both axes are required; a rate of 0 is refused (an axis that cannot move is no rotator)."""
    from skymesh.core.rotator import AxisLimits, RotatorModel

    with _prefix(field):
        axes = []
        for name in ("azimuth", "elevation"):
            if not msg.HasField(name):
                raise InvalidArgument("is required", field=name)
            a = getattr(msg, name)
            with _prefix(name):
                axes.append(
                    AxisLimits(
                        _finite(a.min_deg, "min_deg"),
                        _finite(a.max_deg, "max_deg"),
                        _finite(a.rate_deg_s, "rate_deg_s"),
                        _finite(a.accel_deg_s2, "accel_deg_s2"),
                    )
                )
        return RotatorModel(azimuth=axes[0], elevation=axes[1])


def station_from_proto(msg: common_pb2.Station, field: str = "station") -> Station:
    with _prefix(field):
        if msg.kind not in (common_pb2.STATION_KIND_GROUND_STATION, common_pb2.STATION_KIND_TELESCOPE):
            raise InvalidArgument("must be GROUND_STATION or TELESCOPE", field="kind")
        if not msg.HasField("location"):
            raise InvalidArgument("is required", field="location")
        with _prefix("location"):
            location = GeoLocation(
                _finite(msg.location.latitude_deg, "latitude_deg"),
                _finite(msg.location.longitude_deg, "longitude_deg"),
                _finite(msg.location.altitude_m, "altitude_m"),
            )
        with _prefix("horizon_mask"):
            mask = HorizonMask(tuple(msg.horizon_mask.azimuth_deg), tuple(msg.horizon_mask.min_elevation_deg))
        state = StationState(msg.state) if msg.state else StationState.OFFLINE
        if msg.weather not in common_pb2.Weather.values():
            raise InvalidArgument(f"unknown weather {msg.weather}", field="weather")
        return Station(
            station_id=msg.station_id,
            name=msg.name or msg.station_id,
            kind=StationKind(msg.kind),
            location=location,
            min_elevation_deg=_finite(msg.min_elevation_deg, "min_elevation_deg"),
            horizon_mask=mask,
            bands=tuple(msg.bands),
            slew_rate_deg_s=_finite(msg.slew_rate_deg_s or 5.0, "slew_rate_deg_s"),
            aperture_m=_finite(msg.aperture_m, "aperture_m"),
            filters=tuple(msg.filters),
            limiting_magnitude=_finite(msg.limiting_magnitude, "limiting_magnitude"),
            fov_deg=_finite(msg.fov_deg, "fov_deg"),
            state=state,
            unavailable=tuple(time_window_from_proto(w, f"unavailable[{i}]") for i, w in enumerate(msg.unavailable)),
            weather=Weather(msg.weather),
            rotator=rotator_from_proto(msg.rotator) if msg.HasField("rotator") else None,
        )


def target_to_proto(target: Target, campaign_id: str = "") -> common_pb2.Target:
    msg = common_pb2.Target(
        target_id=target.target_id, name=target.name, priority=target.priority, campaign_id=campaign_id
    )
    if isinstance(target, SatelliteTarget):
        msg.satellite.CopyFrom(
            common_pb2.SatelliteTarget(
                norad_id=target.norad_id,
                tle_line1=target.tle_line1,
                tle_line2=target.tle_line2,
                band=target.band,
                downlink_frequency_hz=target.downlink_frequency_hz,
                min_elevation_deg=target.min_elevation_deg,
            )
        )
        if target.spacecraft is not None:
            msg.satellite.spacecraft.CopyFrom(spacecraft_profile_to_proto(target.spacecraft))
    else:
        msg.aliases.extend(target.aliases)
        msg.celestial.CopyFrom(
            common_pb2.CelestialTarget(
                ra_deg=target.ra_deg,
                dec_deg=target.dec_deg,
                magnitude=target.magnitude,
                filters=list(target.filters),
                exposure_s=target.exposure_s,
                exposure_count=target.exposure_count,
                max_airmass=target.max_airmass,
                min_moon_separation_deg=target.min_moon_separation_deg,
                cadence_s=target.cadence_s,
                max_hour_angle_h=target.max_hour_angle_h,
                max_moon_illumination=target.max_moon_illumination,
            )
        )
    return msg


def target_from_proto(msg: common_pb2.Target, field: str = "target") -> Target:
    with _prefix(field):
        if not msg.target_id:
            raise InvalidArgument("must not be empty", field="target_id")
        if not 1 <= msg.priority <= 10:
            raise InvalidArgument("must be within [1, 10]", field="priority")
        kind = msg.WhichOneof("kind")
        if kind == "satellite":
            sat = msg.satellite
            with _prefix("satellite"):
                if not sat.tle_line1 or not sat.tle_line2:
                    raise InvalidArgument("both TLE lines are required", field="tle_line1")
                if not 0.0 <= sat.min_elevation_deg < 90.0:
                    raise InvalidArgument("must be within [0, 90)", field="min_elevation_deg")
                if sat.downlink_frequency_hz < 0 or not math.isfinite(sat.downlink_frequency_hz):
                    raise InvalidArgument("must be a non-negative frequency in Hz", field="downlink_frequency_hz")
                spacecraft = (
                    spacecraft_profile_from_proto(sat.spacecraft, msg.target_id, "spacecraft")
                    if sat.HasField("spacecraft")
                    else None
                )
                return SatelliteTarget(
                    target_id=msg.target_id,
                    name=msg.name or msg.target_id,
                    norad_id=sat.norad_id,
                    tle_line1=sat.tle_line1,
                    tle_line2=sat.tle_line2,
                    band=sat.band,
                    downlink_frequency_hz=sat.downlink_frequency_hz,
                    priority=msg.priority,
                    min_elevation_deg=sat.min_elevation_deg,
                    spacecraft=spacecraft,
                )
        if kind == "celestial":
            cel = msg.celestial
            with _prefix("celestial"):
                return CelestialTarget(
                    target_id=msg.target_id,
                    name=msg.name or msg.target_id,
                    ra_deg=_finite(cel.ra_deg, "ra_deg"),
                    dec_deg=_finite(cel.dec_deg, "dec_deg"),
                    magnitude=_finite(cel.magnitude, "magnitude"),
                    priority=msg.priority,
                    filters=tuple(cel.filters),
                    exposure_s=_finite(cel.exposure_s or 60.0, "exposure_s"),
                    exposure_count=max(1, cel.exposure_count),
                    max_airmass=_finite(cel.max_airmass or 2.0, "max_airmass"),
                    min_moon_separation_deg=_finite(cel.min_moon_separation_deg, "min_moon_separation_deg"),
                    cadence_s=_finite(cel.cadence_s, "cadence_s"),
                    aliases=tuple(msg.aliases),
                    max_hour_angle_h=_finite(cel.max_hour_angle_h, "max_hour_angle_h"),
                    max_moon_illumination=_finite(cel.max_moon_illumination, "max_moon_illumination"),
                )
        raise InvalidArgument("must be a satellite or a celestial target", field="kind")


_THERMAL_FIELDS = tuple(ThermalParams.__dataclass_fields__)
_THERMAL_DEFAULTS = ThermalParams(1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)  # only its central-body defaults are read
_THERMAL_BODY_FIELDS = _THERMAL_FIELDS[8:]  # body_solar_irradiance_w_m2 onwards: 0 on the wire = PASEOS's Earth


def spacecraft_profile_to_proto(profile: SpacecraftProfile) -> common_pb2.SpacecraftProfile:
    msg = common_pb2.SpacecraftProfile(
        battery_capacity_wh=profile.battery_capacity_wh,
        min_soc=profile.min_soc,
        charge_power_w=profile.charge_power_w,
        initial_soc=profile.initial_soc,
        activity_power_w=dict(profile.activity_power_w),
        storage_capacity_bytes=profile.storage_capacity_bytes if math.isfinite(profile.storage_capacity_bytes) else 0,
        initial_stored_bytes=profile.initial_stored_bytes,
        payload_data_rate_bytes_per_s=profile.payload_data_rate_bytes_per_s,
        downlink_rate_bytes_per_s=profile.downlink_rate_bytes_per_s,
        idle_activity=profile.idle_activity,
    )
    if profile.thermal is not None:
        th = profile.thermal
        msg.thermal.CopyFrom(common_pb2.SpacecraftThermal(**{k: getattr(th, k) for k in _THERMAL_FIELDS}))
    return msg


def spacecraft_profile_from_proto(
    msg: common_pb2.SpacecraftProfile, name: str, field: str = "spacecraft"
) -> SpacecraftProfile:
    """A profile named `name` (the target id); zero storage means unlimited, empty draws mean the defaults."""
    with _prefix(field):
        for key in (
            "battery_capacity_wh",
            "min_soc",
            "charge_power_w",
            "storage_capacity_bytes",
            "initial_stored_bytes",
            "payload_data_rate_bytes_per_s",
            "downlink_rate_bytes_per_s",
        ):
            _finite(getattr(msg, key), key)
        if not msg.battery_capacity_wh > 0:
            raise InvalidArgument("must be positive", field="battery_capacity_wh")
        if msg.storage_capacity_bytes < 0:
            raise InvalidArgument("must be >= 0 (0: unlimited)", field="storage_capacity_bytes")
        initial_soc = _finite(msg.initial_soc, "initial_soc") if msg.HasField("initial_soc") else 1.0
        thermal = None
        if msg.HasField("thermal"):
            th = msg.thermal
            values = {k: _finite(getattr(th, k), f"thermal.{k}") for k in _THERMAL_FIELDS}
            for k in _THERMAL_BODY_FIELDS:
                if values[k] == 0:
                    values[k] = getattr(_THERMAL_DEFAULTS, k)
            thermal = ThermalParams(**values)
        kwargs: dict[str, Any] = {}
        if msg.activity_power_w:
            kwargs["activity_power_w"] = {
                k: _finite(v, f"activity_power_w[{k!r}]") for k, v in msg.activity_power_w.items()
            }
        return SpacecraftProfile(
            name=name,
            battery_capacity_wh=msg.battery_capacity_wh,
            min_soc=msg.min_soc,
            charge_power_w=msg.charge_power_w,
            initial_soc=initial_soc,
            storage_capacity_bytes=msg.storage_capacity_bytes or math.inf,
            initial_stored_bytes=msg.initial_stored_bytes,
            payload_data_rate_bytes_per_s=msg.payload_data_rate_bytes_per_s,
            downlink_rate_bytes_per_s=msg.downlink_rate_bytes_per_s,
            thermal=thermal,
            idle_activity=msg.idle_activity or "payload",
            **kwargs,
        )


def spacecraft_forecast_to_proto(forecast: SpacecraftForecast) -> common_pb2.SpacecraftForecast:
    return common_pb2.SpacecraftForecast(
        target_id=forecast.target_id,
        state_of_charge=forecast.state_of_charge,
        state_of_charge_time=timestamp_from_datetime(forecast.state_of_charge_time),
        min_state_of_charge=forecast.min_state_of_charge,
        min_state_of_charge_time=timestamp_from_datetime(forecast.min_state_of_charge_time),
        data_on_board_bytes=forecast.data_on_board_bytes,
        below_min_soc=forecast.below_min_soc,
        detail=forecast.detail,
        min_soc=forecast.min_soc,
    )


def spacecraft_forecast_from_proto(
    msg: common_pb2.SpacecraftForecast, field: str = "spacecraft_forecast"
) -> SpacecraftForecast:
    with _prefix(field):
        if not msg.target_id:
            raise InvalidArgument("must not be empty", field="target_id")
        for key in ("state_of_charge", "min_state_of_charge", "min_soc"):
            if not (math.isfinite(getattr(msg, key)) and 0.0 <= getattr(msg, key) <= 1.0):
                raise InvalidArgument("must be in [0, 1]", field=key)
        if not (math.isfinite(msg.data_on_board_bytes) and msg.data_on_board_bytes >= 0):
            raise InvalidArgument("must be a finite number >= 0", field="data_on_board_bytes")
        return SpacecraftForecast(
            target_id=msg.target_id,
            state_of_charge=msg.state_of_charge,
            state_of_charge_time=timestamp_to_datetime(msg.state_of_charge_time, "state_of_charge_time"),
            min_state_of_charge=msg.min_state_of_charge,
            min_state_of_charge_time=timestamp_to_datetime(msg.min_state_of_charge_time, "min_state_of_charge_time"),
            data_on_board_bytes=msg.data_on_board_bytes,
            below_min_soc=msg.below_min_soc,
            min_soc=msg.min_soc,
            detail=msg.detail,
        )
