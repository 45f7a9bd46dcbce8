"""Every Prometheus metric SkyMesh exports, named once, grouped by the process that owns it.

Each process builds its own `CollectorRegistry` at start holding only its metrics (`ServerMetrics`,
`SchedulerMetrics`, `AgentMetrics`), plus `skymesh_build_info` and the standard `process_*`/`python_*` collectors,
and installs it as the process's metrics handle (`ServerMetrics.start()`), the way a Temporal worker gets its
metrics handle from its runtime. So the server never exports an agent's `skymesh_agent_connected 0`, and a test can
scrape one process and see exactly what that process owns.

The module-level names (`COMMANDS`, `PLAN_RUNTIME`, ...) are typed references that resolve, at each use, to the
installed handle of their process; call sites keep `COMMANDS.labels("queued").inc()`. The agent's names live in
`skymesh.agent.metrics`, which resolves them to `AgentMetrics.current()` the same way without importing this module.
Used before any `start()` (a library or test that never started a process), a handle with a private registry is
built on first use, so nothing is ever written to prometheus_client's global default registry.

Conventions (https://prometheus.io/docs/practices/naming/): `skymesh_<process>_<what>_<unit>`, counters end in
`_total`, durations are histograms in `_seconds`, sizes in `_bytes`, moments as `_timestamp_seconds`; label values
are lower_snake_case on every process (`state="running"`, never `RUNNING`). Label sets are bounded: states, reasons,
message kinds, solvers, DB operations and phases are enumerations in the code. The only `station_id` labels are on
the server's per-connected-station gauges (one series per stream open on that replica, removed when it ends, so
bounded by the stations registered: about 10,000 at the design scale) and on an agent's own one-series info metric.

Imports only the standard library and prometheus_client (the agent runs it on a Raspberry Pi).
"""

from __future__ import annotations

import platform
import threading
from importlib import metadata
from typing import Any, ClassVar, Generic, Self, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "COMMANDS",
    "COMMAND_DELIVERY",
    "DB_LATENCY",
    "JOBS",
    "PLAN_CANDIDATES",
    "PLAN_GAP",
    "PLAN_OBJECTIVE",
    "PLAN_RUNTIME",
    "SERVER_ACK_LAG",
    "SERVER_ALERTS",
    "SERVER_ALERT_INGEST",
    "SERVER_DEDUP_HITS",
    "SERVER_GC_PAUSE",
    "SERVER_INGESTED",
    "SERVER_LOOP_LAG",
    "SERVER_PLANS",
    "SERVER_RECONNECTS",
    "SERVER_STREAMS",
    "SERVER_STREAM_DURATION",
    "STATIONS_BY_STATE",
    "STREAM_MESSAGES",
    "UPLOAD_BYTES",
    "VISIBILITY_PASSES",
    "AgentMetrics",
    "ProcessMetrics",
    "SchedulerMetrics",
    "ServerMetrics",
    "WebMetrics",
    "serve_metrics",
    "skymesh_version",
]

# Latency buckets from 1 ms to 2 min: stream hot path, DB transactions and plans all land inside.
_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Event-loop lateness: a healthy loop is a millisecond late; the goal is never more than 100 ms.
_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Stream lifetimes: a flapping link lives seconds, a healthy one days.
_LIFETIME_BUCKETS_S = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400)


def skymesh_version() -> str:
    try:
        return metadata.version("skymesh")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


class ProcessMetrics:
    """A process's own registry: its metrics, `skymesh_build_info`, and the process/platform/GC collectors."""

    component: ClassVar[str] = "process"
    _current: ClassVar[ProcessMetrics | None] = None
    _last_started: ClassVar[ProcessMetrics | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.build_info = Info("skymesh_build", "SkyMesh build and the process that exports it", registry=reg)
        self.build_info.info(
            {
                "version": skymesh_version(),
                "component": self.component,
                "python_version": platform.python_version(),
            }
        )
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        if GC_COLLECTOR is not None:
            GCCollector(registry=reg)

    @classmethod
    def start(cls, registry: CollectorRegistry | None = None) -> Self:
        """Build this process's handle with a fresh registry and make the module-level names resolve to it."""
        handle = cls(registry)
        with cls._lock:
            cls._current = handle
            ProcessMetrics._last_started = handle
        return handle

    @staticmethod
    def started() -> ProcessMetrics:
        """The handle this process started last (of any kind); a bare one (build info, process collectors) if none."""
        with ProcessMetrics._lock:
            if ProcessMetrics._last_started is None:
                ProcessMetrics._last_started = ProcessMetrics()
            return ProcessMetrics._last_started

    @classmethod
    def current(cls) -> Self:
        """The installed handle of this kind of process; one with a private registry if none was started."""
        handle = cls._current
        if handle is None:
            with cls._lock:
                if cls._current is None:
                    cls._current = cls()
                handle = cls._current
        assert isinstance(handle, cls)
        return handle


class WebMetrics(ProcessMetrics):
    """The web gateway's own registry: HTTP requests by route template (bounded: the app's routes, never raw paths),
    their latency, and the live event streams it relays to browsers."""

    component = "web"
    _current: ClassVar[ProcessMetrics | None] = None

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        reg = self.registry
        self.requests = Counter(
            "skymesh_web_http_requests_total",
            "HTTP requests answered, by method, route template and status class (2xx, 4xx, 5xx)",
            ["method", "route", "status"],
            registry=reg,
        )
        self.request_duration = Histogram(
            "skymesh_web_http_request_duration_seconds",
            "Time to the response's first byte, by route template",
            ["route"],
            buckets=_BUCKETS_S,
            registry=reg,
        )
        self.live_streams = Gauge(
            "skymesh_web_live_streams", "Browser event streams (SSE) open on this gateway", registry=reg
        )
        self.live_events = Counter(
            "skymesh_web_live_events_total", "Events relayed from the server's Watch to browsers", registry=reg
        )


class ServerMetrics(ProcessMetrics):
    component = "server"
    _current: ClassVar[ProcessMetrics | None] = None

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        reg = self.registry
        self.stations = Gauge(
            "skymesh_server_stations", "Registered stations by liveness state", ["state"], registry=reg
        )
        self.streams = Gauge("skymesh_server_streams", "Agent streams open on this server process", registry=reg)
        self.stream_messages = Counter(
            "skymesh_server_stream_messages_total",
            "Messages on agent streams by direction (up, down) and message kind",
            ["direction", "type"],
            registry=reg,
        )
        self.stream_ends = Counter(
            "skymesh_server_stream_ends_total", "Agent streams ended or refused, by reason", ["reason"], registry=reg
        )
        self.stream_duration = Histogram(
            "skymesh_server_stream_duration_seconds",
            "Lifetime of agent streams that ended on this process",
            buckets=_LIFETIME_BUCKETS_S,
            registry=reg,
        )
        self.commands = Counter(
            "skymesh_server_commands_total", "Command state changes recorded by the server", ["state"], registry=reg
        )
        self.command_delivery = Histogram(
            "skymesh_server_command_delivery_seconds",
            "Time from a command's creation to the agent reporting it RECEIVED",
            buckets=_BUCKETS_S,
            registry=reg,
        )
        self.jobs = Counter(
            "skymesh_server_jobs_total", "Job state changes recorded by the server", ["state"], registry=reg
        )
        self.dedup_hits = Counter(
            "skymesh_server_dedup_hits_total", "Upstream messages already stored, by kind", ["type"], registry=reg
        )
        self.ack_lag = Histogram(
            "skymesh_server_ack_lag_seconds",
            "Time from receiving upstream data to acking it after commit",
            buckets=_BUCKETS_S,
            registry=reg,
        )
        self.ingested = Counter(
            "skymesh_server_ingested_total",
            "Upstream items committed (not duplicates), by kind: job_update, telemetry, observation",
            ["type"],
            registry=reg,
        )
        self.db_duration = Histogram(
            "skymesh_server_db_query_duration_seconds",
            "Database transaction latency by repository operation",
            ["operation"],
            buckets=_BUCKETS_S,
            registry=reg,
        )
        self.upload_bytes = Counter(
            "skymesh_server_upload_bytes_total", "Artifact bytes committed by uploads", registry=reg
        )
        self.alerts = Counter(
            "skymesh_server_alerts_total",
            "Alerts ingested, by source and what became of them",
            ["source", "status"],
            registry=reg,
        )
        self.alert_ingest = Histogram(
            "skymesh_server_alert_ingest_seconds",
            "Parse, store and apply one alert packet",
            buckets=_BUCKETS_S,
            registry=reg,
        )
        self.plans = Counter(
            "skymesh_server_plans_total", "Planning rounds of the server's rolling planner", ["outcome"], registry=reg
        )
        self.plan_last_success = Gauge(
            "skymesh_server_plan_last_success_timestamp_seconds",
            "When the last planning round was applied (Unix time); 0 before the first",
            registry=reg,
        )
        self.plan_objective = Gauge("skymesh_server_plan_objective", "Objective of the last applied plan", registry=reg)
        self.plan_gap = Gauge(
            "skymesh_server_plan_gap_ratio", "Relative gap to the bound of the last applied plan", registry=reg
        )
        self.plan_unscheduled = Gauge(
            "skymesh_server_plan_unscheduled_requests",
            "Requests the last applied plan could not schedule",
            registry=reg,
        )
        self.health_events = Counter(
            "skymesh_server_station_health_events_total",
            "Station health events opened by the telemetry anomaly detectors, by detector",
            ["detector"],
            registry=reg,
        )
        self.health_open = Gauge(
            "skymesh_server_station_health_open",
            "Station health events open now on this replica, by detector",
            ["detector"],
            registry=reg,
        )
        self.replan_interval = Gauge(
            "skymesh_server_replan_interval_seconds", "Configured interval between planning rounds", registry=reg
        )
        self.loop_lag = Histogram(
            "skymesh_server_event_loop_lag_seconds",
            "How much later than asked a 20 ms sleep on the server's event loop wakes (a stall's lower bound)",
            buckets=_LAG_BUCKETS_S,
            registry=reg,
        )
        self.gc_pause = Histogram(
            "skymesh_server_gc_pause_seconds",
            "Full (generation 2) garbage collections of the server process: each holds the event loop",
            buckets=_LAG_BUCKETS_S,
            registry=reg,
        )
        self.plan_loop_lag_max = Gauge(
            "skymesh_server_plan_event_loop_lag_max_seconds",
            "Worst event-loop lateness during the last planning round (read, scheduler call, apply, push): "
            "part=late, all of it; part=busy, what the loop thread's own CPU time can account for; part=gc, the "
            "longest full garbage collection",
            ["part"],
            registry=reg,
        )


class SchedulerMetrics(ProcessMetrics):
    component = "scheduler"
    _current: ClassVar[ProcessMetrics | None] = None

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        reg = self.registry
        self.plan_duration = Histogram(
            "skymesh_scheduler_plan_duration_seconds",
            "ComputePlan solve time by solver",
            ["solver"],
            buckets=_BUCKETS_S,
            registry=reg,
        )
        self.plan_phase_duration = Histogram(
            "skymesh_scheduler_plan_phase_duration_seconds",
            "Time in each planning phase (visibility, compile, cpsat, search, ...) by solver",
            ["solver", "phase"],
            buckets=_BUCKETS_S,
            registry=reg,
        )
        self.plan_objective = Gauge(
            "skymesh_scheduler_plan_objective", "Objective of the last plan", ["solver"], registry=reg
        )
        self.plan_gap = Gauge(
            "skymesh_scheduler_plan_gap_ratio", "Relative gap to the bound of the last plan", ["solver"], registry=reg
        )
        self.plan_candidates = Gauge(
            "skymesh_scheduler_plan_candidates", "Candidate opportunities in the last plan", ["solver"], registry=reg
        )
        self.visibility_windows = Counter(
            "skymesh_scheduler_visibility_windows_total",
            "Visibility windows (candidate opportunities) computed for plans",
            registry=reg,
        )


class AgentMetrics(ProcessMetrics):
    component = "agent"
    _current: ClassVar[ProcessMetrics | None] = None

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        reg = self.registry
        self.station_info = Info(
            "skymesh_agent_station", "The station this agent speaks for", registry=reg
        )  # one series per agent process: the only place an agent exports its station id
        self.connected = Gauge("skymesh_agent_connected", "1 while the agent's stream is up", registry=reg)
        self.reconnects = Counter(
            "skymesh_agent_reconnects_total", "Agent reconnect attempts, by reason", ["reason"], registry=reg
        )
        self.refused_messages = Counter(
            "skymesh_agent_refused_messages_total",
            "Spooled upstream messages the server refused as invalid, set aside",
            registry=reg,
        )
        self.spool_messages = Gauge(
            "skymesh_agent_spool_messages",
            "Upstream messages spooled, not yet acknowledged by the server",
            registry=reg,
        )
        self.schedule_version = Gauge(
            "skymesh_agent_schedule_version", "Schedule version the agent is executing", registry=reg
        )
        self.jobs = Counter("skymesh_agent_jobs_total", "Job state changes made by the agent", ["state"], registry=reg)
        self.commands = Counter(
            "skymesh_agent_commands_total", "Command state changes made by the agent", ["state"], registry=reg
        )
        self.upstream_sent = Counter(
            "skymesh_agent_upstream_sent_total", "Reliable upstream messages sent (resends count)", registry=reg
        )


# ------------------------------------------------------------------------------------------ module-level names

_H = TypeVar("_H", bound=ProcessMetrics)
_MAX_CACHED_CHILDREN = 1024  # label values per metric name kept (a bound, in case a label is ever unbounded)


class _Ref(Generic[_H]):
    """A name that resolves to one metric of the installed handle of its process at each use."""

    def __init__(self, kind: type[_H], attr: str) -> None:
        self._kind = kind
        self._attr = attr
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def _metric(self) -> Any:
        return getattr(self._kind.current(), self._attr)

    def _child(self, values: tuple[str, ...], labels: dict[str, str]) -> Any:
        """The labelled child, cached per label values: the stream hot path counts every message, and
        `labels()` takes a lock and builds its key each time. A handle installed since is looked up afresh."""
        metric = self._metric()
        if labels:
            return metric.labels(*values, **labels)
        hit = self._children.get(values)
        if hit is not None and hit[0] is metric:
            return hit[1]
        child = metric.labels(*values)
        if len(self._children) >= _MAX_CACHED_CHILDREN:
            self._children.clear()
        self._children[values] = (metric, child)
        return child


class _CounterRef(_Ref[_H]):
    def labels(self, *values: str, **labels: str) -> Counter:
        child: Counter = self._child(values, labels)
        return child

    def inc(self, amount: float = 1.0) -> None:
        self._metric().inc(amount)


class _GaugeRef(_Ref[_H]):
    def labels(self, *values: str, **labels: str) -> Gauge:
        child: Gauge = self._child(values, labels)
        return child

    def set(self, value: float) -> None:
        self._metric().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._metric().inc(amount)


class _HistogramRef(_Ref[_H]):
    def labels(self, *values: str, **labels: str) -> Histogram:
        child: Histogram = self._child(values, labels)
        return child

    def observe(self, value: float) -> None:
        self._metric().observe(value)

    def time(self) -> Any:
        return self._metric().time()


# --- server ---
STATIONS_BY_STATE = _GaugeRef(ServerMetrics, "stations")
SERVER_STREAMS = _GaugeRef(ServerMetrics, "streams")
STREAM_MESSAGES = _CounterRef(ServerMetrics, "stream_messages")
SERVER_RECONNECTS = _CounterRef(ServerMetrics, "stream_ends")
SERVER_STREAM_DURATION = _HistogramRef(ServerMetrics, "stream_duration")
SERVER_INGESTED = _CounterRef(ServerMetrics, "ingested")
COMMANDS = _CounterRef(ServerMetrics, "commands")
COMMAND_DELIVERY = _HistogramRef(ServerMetrics, "command_delivery")
JOBS = _CounterRef(ServerMetrics, "jobs")
SERVER_DEDUP_HITS = _CounterRef(ServerMetrics, "dedup_hits")
SERVER_ACK_LAG = _HistogramRef(ServerMetrics, "ack_lag")
DB_LATENCY = _HistogramRef(ServerMetrics, "db_duration")
UPLOAD_BYTES = _CounterRef(ServerMetrics, "upload_bytes")
SERVER_PLANS = _CounterRef(ServerMetrics, "plans")
SERVER_ALERTS = _CounterRef(ServerMetrics, "alerts")
SERVER_ALERT_INGEST = _HistogramRef(ServerMetrics, "alert_ingest")
SERVER_LOOP_LAG = _HistogramRef(ServerMetrics, "loop_lag")
SERVER_GC_PAUSE = _HistogramRef(ServerMetrics, "gc_pause")

# --- scheduler ---
PLAN_RUNTIME = _HistogramRef(SchedulerMetrics, "plan_duration")
PLAN_OBJECTIVE = _GaugeRef(SchedulerMetrics, "plan_objective")
PLAN_GAP = _GaugeRef(SchedulerMetrics, "plan_gap")
PLAN_CANDIDATES = _GaugeRef(SchedulerMetrics, "plan_candidates")
VISIBILITY_PASSES = _CounterRef(SchedulerMetrics, "visibility_windows")

# --- agent: in `skymesh.agent.metrics` (which loads no prometheus_client unless the agent exports metrics) ---


def serve_metrics(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> int:
    """Serve /metrics, /healthz and /readyz on `addr:port` (0 picks a free port); returns the bound port.

    `registry` defaults to the registry of the handle this process started (`ServerMetrics.start()`, ...). Kept for
    callers that need no readiness check and never stop the endpoint; see `endpoint.start_endpoint`.
    """
    from skymesh.observability.endpoint import start_endpoint

    return start_endpoint(registry or ProcessMetrics.started().registry, port=port, addr=addr).port
