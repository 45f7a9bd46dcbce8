"""The station agent's configuration: one frozen `AgentConfig`, loaded once at start from YAML plus environment.

`load_config(path)` reads a YAML file, applies `SKYMESH_AGENT_<FIELD>` environment overrides for the top-level
scalar fields (station_id, server_address, api_key, api_key_file, state_dir, tls_ca_file, telemetry_rate_hz,
telemetry_batch_interval_s, metrics_port, ...), and validates everything with errors that name the field
("drivers.rotator.port: must be an integer in [1, 65535]"). Nothing here reads the environment at import time.

Imports only the standard library, PyYAML and `skymesh.core`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from skymesh.core.errors import InvalidArgument
from skymesh.core.model import GeoLocation, StationKind

__all__ = [
    "DRIVER_KINDS",
    "AgentConfig",
    "DriverConfig",
    "DriversConfig",
    "HardwareLimits",
    "load_config",
]

# Which driver implementations each role accepts.
DRIVER_KINDS: Mapping[str, tuple[str, ...]] = {
    "rotator": ("simulated", "rotctld", "none"),
    "radio": ("simulated", "rigctld", "none"),
    "mount": ("simulated", "indi", "alpaca", "none"),
    "camera": ("simulated", "indi", "alpaca", "none"),
    "focuser": ("indi", "alpaca", "none"),
}

_DEFAULT_PORTS = {"rotctld": 4533, "rigctld": 4532, "indi": 7624, "alpaca": 11111}


@dataclass(frozen=True)
class DriverConfig:
    """One hardware role's driver. `kind` picks the implementation; `params` holds its extra knobs."""

    kind: str = "simulated"
    host: str = "127.0.0.1"
    port: int = 0  # 0: the protocol's default port
    device: str = ""  # INDI device name, e.g. "Telescope Simulator"
    url: str = ""  # Alpaca base URL, e.g. "http://127.0.0.1:11111"
    device_number: int = 0  # Alpaca device number
    timeout_s: float = 5.0
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS.get(self.kind, 0)


@dataclass(frozen=True)
class DriversConfig:
    rotator: DriverConfig = field(default_factory=DriverConfig)
    radio: DriverConfig = field(default_factory=DriverConfig)
    mount: DriverConfig = field(default_factory=lambda: DriverConfig(kind="none"))
    camera: DriverConfig = field(default_factory=lambda: DriverConfig(kind="none"))
    focuser: DriverConfig = field(default_factory=lambda: DriverConfig(kind="none"))


@dataclass(frozen=True)
class HardwareLimits:
    """What the rotator or mount may do; also sent to the server in `Hello.capabilities`."""

    azimuth_min_deg: float = 0.0
    azimuth_max_deg: float = 360.0
    elevation_min_deg: float = 0.0
    elevation_max_deg: float = 90.0
    slew_rate_deg_s: float = 6.0
    # Park position for Stow.
    park_azimuth_deg: float = 0.0
    park_elevation_deg: float = 90.0

    def __post_init__(self) -> None:
        if not self.azimuth_min_deg < self.azimuth_max_deg:
            raise InvalidArgument("azimuth_min_deg must be below azimuth_max_deg", field="limits.azimuth_min_deg")
        if not -90.0 <= self.elevation_min_deg < self.elevation_max_deg <= 180.0:
            raise InvalidArgument(
                "need -90 <= elevation_min_deg < elevation_max_deg <= 180", field="limits.elevation_min_deg"
            )
        if not self.slew_rate_deg_s > 0:
            raise InvalidArgument("must be positive", field="limits.slew_rate_deg_s")


@dataclass(frozen=True)
class AgentConfig:
    """Everything one station agent needs. Build it with `load_config`, or directly in Python (demos, tests)."""

    station_id: str
    server_address: str = "127.0.0.1:50051"
    api_key: str = ""
    state_dir: Path = Path("./agent-state")
    tls_ca_file: Path | None = None
    # Mutual TLS: this station's client certificate (CN = station id) and key, PEM.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    kind: StationKind = StationKind.GROUND_STATION
    location: GeoLocation = field(default_factory=lambda: GeoLocation(0.0, 0.0, 0.0))
    telemetry_rate_hz: float = 1.0
    telemetry_batch_interval_s: float = 5.0
    heartbeat_interval_s: float = 10.0  # until the server's Welcome says otherwise
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    auth_retry_s: float = 300.0  # back off this long after UNAUTHENTICATED / PERMISSION_DENIED
    tracking_interval_s: float = 1.0
    drivers: DriversConfig = field(default_factory=DriversConfig)
    limits: HardwareLimits = field(default_factory=HardwareLimits)
    bands: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    aperture_m: float = 0.0
    metrics_port: int | None = None
    seed: int | None = None  # simulated drivers' random seed (None: random)

    def __post_init__(self) -> None:
        if not self.station_id:
            raise InvalidArgument("must not be empty", field="station_id")
        if ":" not in self.server_address:
            raise InvalidArgument("must be host:port", field="server_address")
        for name in ("telemetry_rate_hz", "telemetry_batch_interval_s", "heartbeat_interval_s"):
            if not getattr(self, name) > 0:
                raise InvalidArgument("must be positive", field=name)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise InvalidArgument("tls_cert_file and tls_key_file go together", field="tls_cert_file")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise InvalidArgument("need 0 < reconnect_initial_s <= reconnect_max_s", field="reconnect_initial_s")
        if self.tracking_interval_s <= 0:
            raise InvalidArgument("must be positive", field="tracking_interval_s")
        for role in DRIVER_KINDS:
            driver: DriverConfig = getattr(self.drivers, role)
            if driver.kind not in DRIVER_KINDS[role]:
                raise InvalidArgument(f"must be one of {', '.join(DRIVER_KINDS[role])}", field=f"drivers.{role}.kind")
            if not 0 <= driver.port <= 65535:
                raise InvalidArgument("must be an integer in [0, 65535]", field=f"drivers.{role}.port")
            if driver.kind == "alpaca" and not driver.url:
                raise InvalidArgument("is required for the alpaca driver", field=f"drivers.{role}.url")

    @property
    def database_path(self) -> Path:
        return self.state_dir / "agent.sqlite"


# ---------------------------------------------------------------------------------------------------- loading

_ENV_PREFIX = "SKYMESH_AGENT_"
_ENV_FIELDS = (
    "station_id",
    "server_address",
    "api_key",
    "api_key_file",
    "state_dir",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "telemetry_rate_hz",
    "telemetry_batch_interval_s",
    "heartbeat_interval_s",
    "metrics_port",
    "auth_retry_s",
)


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read `path` (YAML; None for environment only) and the `SKYMESH_AGENT_*` overrides in `env` (os.environ)."""
    import yaml

    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        file = Path(path)
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidArgument(f"cannot read config file ({exc.strerror})", field=str(file)) from exc
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"is not valid YAML ({exc})", field=str(file)) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise InvalidArgument("must be a mapping at the top level", field=str(file))
        raw = dict(loaded)
        base = file.resolve().parent
    environ = os.environ if env is None else env
    for name in _ENV_FIELDS:
        value = environ.get(_ENV_PREFIX + name.upper())
        if value is not None:
            raw[name] = value
    return config_from_mapping(raw, base_dir=base)


def config_from_mapping(raw: Mapping[str, Any], base_dir: Path | None = None) -> AgentConfig:
    """Validate a plain mapping (parsed YAML) into an `AgentConfig`; relative paths are taken from `base_dir`."""
    base = base_dir or Path.cwd()
    known = {f.name for f in fields(AgentConfig)} | {"api_key_file"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidArgument(f"unknown field (known: {', '.join(sorted(known))})", field=unknown[0])
    api_key = _str(raw, "api_key", "")
    key_file = raw.get("api_key_file")
    if key_file and not api_key:
        key_path = _path(key_file, base, "api_key_file")
        try:
            api_key = key_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvalidArgument(f"cannot read ({exc.strerror})", field="api_key_file") from exc
    kind_text = _str(raw, "kind", "ground_station").lower().replace("-", "_")
    kinds = {"ground_station": StationKind.GROUND_STATION, "telescope": StationKind.TELESCOPE}
    if kind_text not in kinds:
        raise InvalidArgument("must be ground_station or telescope", field="kind")
    loc = _mapping(raw, "location")
    location = GeoLocation(
        _float(loc, "latitude_deg", 0.0, "location."),
        _float(loc, "longitude_deg", 0.0, "location."),
        _float(loc, "altitude_m", 0.0, "location."),
    )
    drv = _mapping(raw, "drivers")
    known_roles = set(DRIVER_KINDS)
    for role in drv:
        if role not in known_roles:
            raise InvalidArgument(f"unknown driver role (known: {', '.join(DRIVER_KINDS)})", field=f"drivers.{role}")
    kind = kinds[kind_text]
    ground = kind == StationKind.GROUND_STATION
    drivers = DriversConfig(
        rotator=_driver(drv, "rotator", "simulated" if ground else "none"),
        radio=_driver(drv, "radio", "simulated" if ground else "none"),
        mount=_driver(drv, "mount", "none" if ground else "simulated"),
        camera=_driver(drv, "camera", "none" if ground else "simulated"),
        focuser=_driver(drv, "focuser", "none"),
    )
    lim = _mapping(raw, "limits")
    limit_fields = {f.name for f in fields(HardwareLimits)}
    for key in lim:
        if key not in limit_fields:
            raise InvalidArgument("unknown limit", field=f"limits.{key}")
    limits = HardwareLimits(**{k: _float(lim, k, 0.0, "limits.") for k in lim})
    metrics = raw.get("metrics_port")
    tls = raw.get("tls_ca_file")
    seed = raw.get("seed")
    return AgentConfig(
        station_id=_str(raw, "station_id", ""),
        server_address=_str(raw, "server_address", "127.0.0.1:50051"),
        api_key=api_key,
        state_dir=_path(raw.get("state_dir", "./agent-state"), base, "state_dir"),
        tls_ca_file=_path(tls, base, "tls_ca_file") if tls else None,
        tls_cert_file=_path(raw["tls_cert_file"], base, "tls_cert_file") if raw.get("tls_cert_file") else None,
        tls_key_file=_path(raw["tls_key_file"], base, "tls_key_file") if raw.get("tls_key_file") else None,
        kind=kind,
        location=location,
        telemetry_rate_hz=_float(raw, "telemetry_rate_hz", 1.0),
        telemetry_batch_interval_s=_float(raw, "telemetry_batch_interval_s", 5.0),
        heartbeat_interval_s=_float(raw, "heartbeat_interval_s", 10.0),
        reconnect_initial_s=_float(raw, "reconnect_initial_s", 0.5),
        reconnect_max_s=_float(raw, "reconnect_max_s", 30.0),
        auth_retry_s=_float(raw, "auth_retry_s", 300.0),
        tracking_interval_s=_float(raw, "tracking_interval_s", 1.0),
        drivers=drivers,
        limits=limits,
        bands=_strings(raw, "bands"),
        filters=_strings(raw, "filters"),
        aperture_m=_float(raw, "aperture_m", 0.0),
        metrics_port=_int(metrics, "metrics_port") if metrics is not None else None,
        seed=_int(seed, "seed") if seed is not None else None,
    )


def with_overrides(config: AgentConfig, **changes: Any) -> AgentConfig:
    """A copy of `config` with some fields changed (validated again)."""
    return replace(config, **changes)


# ---------------------------------------------------------------------------------------------------- helpers


def _mapping(raw: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise InvalidArgument("must be a mapping", field=prefix + key)
    return value


def _str(raw: Mapping[str, Any], key: str, default: str, prefix: str = "") -> str:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidArgument("must be a string", field=prefix + key)
    return str(value)


def _float(raw: Mapping[str, Any], key: str, default: float, prefix: str = "") -> float:
    value = raw.get(key, default)
    try:
        if isinstance(value, bool):
            raise TypeError
        result = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"must be a number, got {value!r}", field=prefix + key) from exc
    if result != result or result in (float("inf"), float("-inf")):
        raise InvalidArgument("must be a finite number", field=prefix + key)
    return result


def _int(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"must be an integer, got {value!r}", field=name) from exc


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key) or ()
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument("must be a list of strings", field=key)
    return tuple(value)


def _path(value: Any, base: Path, name: str) -> Path:
    if not isinstance(value, str | Path):
        raise InvalidArgument("must be a path", field=name)
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _driver(drivers: Mapping[str, Any], role: str, default_kind: str) -> DriverConfig:
    prefix = f"drivers.{role}."
    raw = _mapping(drivers, role, "drivers.")
    known = {f.name for f in fields(DriverConfig)}
    # Unknown keys are the driver's own parameters (e.g. a simulated rotator's noise).
    params = dict(_mapping(raw, "params", prefix))
    params.update({k: v for k, v in raw.items() if k not in known})
    port = raw.get("port", 0)
    return DriverConfig(
        kind=_str(raw, "kind", default_kind, prefix),
        host=_str(raw, "host", "127.0.0.1", prefix),
        port=_int(port, prefix + "port"),
        device=_str(raw, "device", "", prefix),
        url=_str(raw, "url", "", prefix).rstrip("/"),
        device_number=_int(raw.get("device_number", 0), prefix + "device_number"),
        timeout_s=_float(raw, "timeout_s", 5.0, prefix),
        params=params,
    )
