"""Server configuration: one frozen dataclass, loaded once at start from an optional YAML file plus SKYMESH_* env vars.

Precedence (lowest to highest): dataclass defaults, the YAML file, environment variables, explicit overrides (CLI
flags). Nothing here reads the environment at import time. Imports only the standard library, PyYAML, core and the
alert settings (`skymesh.server.alerts.config`, itself standard library and core only). The `alerts:` section is a
mapping (YAML only).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skymesh.core.errors import InvalidArgument
from skymesh.server.alerts.config import AlertsConfig

__all__ = ["ServerConfig", "load_config"]

_ENV_PREFIX = "SKYMESH_"


@dataclass(frozen=True)
class ServerConfig:
    """Everything `skymesh server` needs. Durations are in seconds (`_s`)."""

    # gRPC listen address. Loopback by default: exposing the server is an explicit decision (and wants TLS).
    listen: str = "127.0.0.1:50051"
    # SQLAlchemy async URL; the relative SQLite default lives under `data_dir`.
    database_url: str = ""
    data_dir: str = "var"
    # Where uploaded artifacts live; "" means `<data_dir>/uploads`. Replicas (docs/replicas.md) must all reach the
    # same directory (a shared filesystem, mounted at any path): an upload resumed on another replica continues there.
    artifacts_dir: str = ""
    # Run `alembic upgrade head` at start.
    migrate: bool = True
    scheduler_address: str = "127.0.0.1:50052"
    scheduler_timeout_s: float = 30.0
    # Liveness (docs/protocol.md rule 9).
    heartbeat_interval_s: float = 10.0
    stale_after_intervals: int = 3
    offline_grace_s: float = 120.0
    telemetry_batch_interval_s: float = 5.0
    # Open streams re-check their key this often, so a revocation made elsewhere (`skymesh keys revoke`, another
    # replica) ends them too; RevokeStationKey on this server ends them at once.
    key_recheck_s: float = 60.0
    max_unacked: int = 64
    # Hellos are group-committed (skymesh.server.groupcommit): at most `hello_group_max` per transaction; beyond
    # `hello_queue_max` waiting, a Hello is shed at once with UNAVAILABLE (reason CONNECT_OVERLOADED) and the advice
    # to retry after `hello_retry_after_s` (the agent adds jitter), instead of waiting in a queue it cannot leave.
    hello_group_max: int = 500
    hello_queue_max: int = 5000
    hello_retry_after_s: float = 2.0
    # Each station's stream is read at most this fast (a burst of `upstream_burst` first); the server paces, never
    # drops (docs/protocol.md rule 12).
    upstream_rate_per_s: float = 200.0
    upstream_burst: int = 400
    # Planning loop.
    replan_interval_s: float = 300.0
    replan_debounce_s: float = 1.0
    plan_horizon_s: float = 12 * 3600.0
    plan_solver: str = "greedy"  # "greedy" | "cpsat"
    plan_time_limit_s: float = 10.0
    plan_turnaround_s: float = 30.0
    # A plan whose response arrives more than this many seconds after its request was sent is discarded (the current
    # schedules stay and the planner asks again): it was computed for a world that has moved on.
    plan_apply_deadline_s: float = 60.0
    # Dispatched or running jobs starting within this many seconds are frozen (kept) by the planner.
    freeze_s: float = 300.0
    # Satellite demand, as `skymesh plan`'s TALOS scenario states it: at most this many passes of each satellite per
    # `plan_satellite_period_s` (anchored at the window start); 0: no limit (every visible pass has value).
    plan_satellite_max_per_period: int = 0
    plan_satellite_period_s: float = 7200.0
    # After the server starts, the planner waits up to this long for the stations that were connected before the
    # restart to reconnect before its first plan (it plans as soon as all of them are back).
    plan_startup_grace_s: float = 60.0
    # The largest scheduler response the server accepts (a 500 x 3,000 plan is ~6 MB; gRPC's default is 4 MiB).
    scheduler_max_message_mb: int = 256
    planning_enabled: bool = True
    # Prometheus /metrics port; None: no metrics server, 0: pick a free port.
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    # TLS: both or neither.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Mutual TLS: every client (agents, CLI, gateway) must present a certificate signed by this CA (PEM); an agent's
    # certificate must name its station (CN = station id), on top of the station's API key.
    tls_client_ca_file: str | None = None
    # Control API: require user tokens ("authorization: Bearer smu_...") on every address, loopback included (other
    # local users can reach loopback too). Turning it off is only allowed on loopback, for development.
    control_auth: bool = True
    # Where the first start writes the first admin's token (owner-only, 0600); "" means `<data_dir>/admin.token`.
    admin_token_file: str = ""
    # Listening beyond loopback without TLS must be asked for explicitly.
    allow_insecure_remote: bool = False
    # Shutdown: agents are told to come back after this long; in-flight RPCs get `shutdown_grace_s`.
    drain_retry_after_s: float = 5.0
    shutdown_grace_s: float = 5.0
    server_id: str = ""
    # Replicas (issue 8): on PostgreSQL, several servers may share the database behind a TCP load balancer. Each keeps
    # a presence connection (LISTEN/NOTIFY between replicas, the planner lock); the holder of a stream polls its
    # outbox heads every `replica_poll_s` as the fallback for a missed notification, and every `replica_sweep_s` a
    # replica looks for stations whose replica died. Off: a single server (no presence connection). SQLite: always
    # a single server.
    replicas: bool = True
    replica_poll_s: float = 5.0
    replica_sweep_s: float = 2.0
    # Alert ingest (skymesh.server.alerts.config): watch dir, Kafka, limits, cone radius, rules per source and type.
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    # Data products (skymesh.products): worker processes reducing uploaded FITS frames (0: off), quality thresholds
    # overriding `skymesh.products.QualityThresholds` defaults ({"max_fwhm_arcsec": 4.0, ...}), and the reference
    # catalogue (an ECSV file; empty: the shipped test fields).
    # Telemetry retention (issue 8; docs/runbook.md "Telemetry retention"): batches older than this many days are
    # removed (PostgreSQL: whole day partitions dropped; SQLite: rows deleted in bounded batches); 0 keeps all.
    # Every `telemetry_maintenance_interval_s` a replica also makes the next days' partitions (PostgreSQL).
    telemetry_retention_days: int = 30
    telemetry_maintenance_interval_s: float = 3600.0
    reduction_workers: int = 1
    quality_thresholds: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    reference_catalogue: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.alerts, Mapping):
            object.__setattr__(self, "alerts", AlertsConfig.from_mapping(self.alerts))
        elif not isinstance(self.alerts, AlertsConfig):
            raise InvalidArgument("must be a mapping (set it in the YAML file)", field="alerts")
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{Path(self.data_dir) / 'skymesh.sqlite3'}")
        if not self.server_id:
            object.__setattr__(self, "server_id", f"skymesh-server-{os.getpid()}")
        if self.heartbeat_interval_s <= 0:
            raise InvalidArgument("must be positive", field="heartbeat_interval_s")
        if self.stale_after_intervals < 1:
            raise InvalidArgument("must be at least 1", field="stale_after_intervals")
        if self.offline_grace_s < 0:
            raise InvalidArgument("must not be negative", field="offline_grace_s")
        if self.replan_interval_s <= 0:
            raise InvalidArgument("must be positive", field="replan_interval_s")
        if self.plan_horizon_s <= 0:
            raise InvalidArgument("must be positive", field="plan_horizon_s")
        if self.plan_apply_deadline_s <= 0:
            raise InvalidArgument("must be positive", field="plan_apply_deadline_s")
        # One time budget from request to push: the scheduler solves within plan_time_limit_s (visibility and
        # explanations included), the call is cut at scheduler_timeout_s, and a plan is applied only within
        # plan_apply_deadline_s; out of order, every plan would be cut or discarded and agents never get one.
        if not 0 < self.plan_time_limit_s < self.scheduler_timeout_s < self.plan_apply_deadline_s:
            raise InvalidArgument(
                "must satisfy 0 < plan_time_limit_s < scheduler_timeout_s < plan_apply_deadline_s (got "
                f"{self.plan_time_limit_s:g} < {self.scheduler_timeout_s:g} < {self.plan_apply_deadline_s:g})",
                field="plan_time_limit_s",
            )
        if self.plan_satellite_max_per_period < 0:
            raise InvalidArgument("must not be negative", field="plan_satellite_max_per_period")
        if not self.plan_satellite_period_s > 0:
            raise InvalidArgument("must be positive", field="plan_satellite_period_s")
        if self.plan_startup_grace_s < 0:
            raise InvalidArgument("must not be negative", field="plan_startup_grace_s")
        if not 4 <= self.scheduler_max_message_mb <= 2047:
            raise InvalidArgument("must be between 4 and 2047", field="scheduler_max_message_mb")
        if self.telemetry_retention_days < 0:
            raise InvalidArgument("must not be negative (0 keeps all telemetry)", field="telemetry_retention_days")
        if self.telemetry_maintenance_interval_s <= 0:
            raise InvalidArgument("must be positive", field="telemetry_maintenance_interval_s")
        if self.reduction_workers < 0:
            raise InvalidArgument("must not be negative", field="reduction_workers")
        if not isinstance(self.quality_thresholds, Mapping):
            raise InvalidArgument("must be a mapping of threshold names to values", field="quality_thresholds")
        if self.replica_poll_s <= 0:
            raise InvalidArgument("must be positive", field="replica_poll_s")
        if self.replica_sweep_s <= 0:
            raise InvalidArgument("must be positive", field="replica_sweep_s")
        if self.max_unacked < 1:
            raise InvalidArgument("must be at least 1", field="max_unacked")
        if self.hello_group_max < 1:
            raise InvalidArgument("must be at least 1", field="hello_group_max")
        if self.hello_queue_max < 1:
            raise InvalidArgument("must be at least 1", field="hello_queue_max")
        if self.hello_retry_after_s <= 0:
            raise InvalidArgument("must be positive", field="hello_retry_after_s")
        if self.upstream_rate_per_s <= 0:
            raise InvalidArgument("must be positive", field="upstream_rate_per_s")
        if self.upstream_burst < 1:
            raise InvalidArgument("must be at least 1", field="upstream_burst")
        if self.plan_solver not in ("greedy", "cpsat"):
            raise InvalidArgument("must be 'greedy' or 'cpsat'", field="plan_solver")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise InvalidArgument("tls_cert_file and tls_key_file go together", field="tls_cert_file")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise InvalidArgument(
                "mutual TLS needs the server's own tls_cert_file and tls_key_file", field="tls_client_ca_file"
            )
        if not _is_loopback(self.listen) and self.tls_cert_file is None and not self.allow_insecure_remote:
            raise InvalidArgument(
                "listening beyond loopback needs TLS (or allow_insecure_remote: true)", field="listen"
            )
        if not self.control_auth and not _is_loopback(self.listen):
            raise InvalidArgument("control_auth must be on when listening beyond loopback", field="control_auth")

    @property
    def stale_after_s(self) -> float:
        return self.heartbeat_interval_s * self.stale_after_intervals

    @property
    def admin_token_path(self) -> Path:
        return Path(self.admin_token_file) if self.admin_token_file else Path(self.data_dir) / "admin.token"

    @property
    def uploads_dir(self) -> Path:
        return Path(self.artifacts_dir) if self.artifacts_dir else Path(self.data_dir) / "uploads"

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)


def _is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _coerce(name: str, raw: Any, current: Any, annotation: str) -> Any:
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if "bool" in annotation:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise InvalidArgument(f"not a boolean: {raw!r}", field=name)
        if "None" in annotation and text.lower() in ("", "none", "null"):
            return None
        try:
            if annotation.startswith("int"):
                return int(text)
            if annotation.startswith("float"):
                return float(text)
        except ValueError as exc:
            raise InvalidArgument(f"not a number: {raw!r}", field=name) from exc
        return text
    return raw


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Build a `ServerConfig` from defaults, a YAML file, `SKYMESH_<FIELD>` env vars and explicit overrides."""
    import yaml

    fields = {f.name: f for f in dataclasses.fields(ServerConfig)}
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise InvalidArgument("must be a mapping", field=str(path))
        server_section = loaded.get("server", loaded)
        for key, value in server_section.items():
            if key not in fields:
                raise InvalidArgument("unknown setting", field=f"{path}:{key}")
            values[key] = _coerce(key, value, None, str(fields[key].type))
    environ = os.environ if env is None else env
    for name, f in fields.items():
        raw = environ.get(_ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, raw, None, str(f.type))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    return ServerConfig(**values)
