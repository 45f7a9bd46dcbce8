"""Every Prometheus metric SkyMesh exports, named once. Services import these objects; nothing defines its own.

Each process serves them with `serve_metrics(port)` (prometheus_client's own HTTP server). Names follow Prometheus
conventions: `skymesh_<component>_<what>_<unit>`; counters end in `_total`.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = [
    "AGENT_COMMANDS",
    "AGENT_JOBS",
    "AGENT_OUTBOX_DEPTH",
    "AGENT_RECONNECTS",
    "AGENT_REFUSED_MESSAGES",
    "AGENT_SCHEDULE_VERSION",
    "AGENT_STREAM_CONNECTED",
    "AGENT_UPSTREAM_SENT",
    "COMMANDS",
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
    "SERVER_PLANS",
    "SERVER_RECONNECTS",
    "SERVER_STREAMS",
    "STATIONS_BY_STATE",
    "STREAM_MESSAGES",
    "UPLOAD_BYTES",
    "VISIBILITY_PASSES",
    "serve_metrics",
]

_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120)

# --- server ---
STATIONS_BY_STATE = Gauge("skymesh_stations", "Registered stations by liveness state", ["state"])
SERVER_STREAMS = Gauge("skymesh_server_streams", "Agent streams open on this server process")
STREAM_MESSAGES = Counter(
    "skymesh_stream_messages_total", "Messages on agent streams by direction and type", ["direction", "type"]
)
SERVER_RECONNECTS = Counter("skymesh_server_stream_ends_total", "Agent streams ended, by reason", ["reason"])
COMMANDS = Counter("skymesh_commands_total", "Command state changes", ["state"])
JOBS = Counter("skymesh_jobs_total", "Job state changes", ["state"])
SERVER_DEDUP_HITS = Counter("skymesh_server_dedup_hits_total", "Upstream messages already stored", ["type"])
SERVER_ACK_LAG = Histogram(
    "skymesh_server_ack_lag_seconds", "Time from receiving upstream data to acking it after commit", buckets=_BUCKETS_S
)
DB_LATENCY = Histogram("skymesh_db_latency_seconds", "Database transaction latency", ["operation"], buckets=_BUCKETS_S)
UPLOAD_BYTES = Counter("skymesh_upload_bytes_total", "Artifact bytes committed")
SERVER_PLANS = Counter("skymesh_server_plans_total", "Planning rounds of the server's rolling planner", ["outcome"])
SERVER_ALERTS = Counter(
    "skymesh_server_alerts_total", "Alerts ingested, by source and what became of them", ["source", "status"]
)
SERVER_ALERT_INGEST = Histogram(
    "skymesh_server_alert_ingest_seconds", "Parse, store and apply one alert packet", buckets=_BUCKETS_S
)

# --- scheduler ---
PLAN_RUNTIME = Histogram("skymesh_plan_runtime_seconds", "Plan computation time", ["solver"], buckets=_BUCKETS_S)
PLAN_OBJECTIVE = Gauge("skymesh_plan_objective", "Objective of the last plan", ["solver"])
PLAN_GAP = Gauge("skymesh_plan_gap_ratio", "Relative gap to the bound of the last plan", ["solver"])
PLAN_CANDIDATES = Gauge("skymesh_plan_candidates", "Candidate opportunities in the last plan", ["solver"])
VISIBILITY_PASSES = Counter("skymesh_visibility_windows_total", "Visibility windows computed")

# --- agent ---
AGENT_STREAM_CONNECTED = Gauge("skymesh_agent_connected", "1 while the agent's stream is up")
AGENT_RECONNECTS = Counter("skymesh_agent_reconnects_total", "Agent reconnect attempts, by reason", ["reason"])
AGENT_REFUSED_MESSAGES = Counter(
    "skymesh_agent_refused_messages_total", "Spooled upstream messages the server refused as invalid, set aside"
)
AGENT_OUTBOX_DEPTH = Gauge("skymesh_agent_outbox_depth", "Upstream messages not yet acknowledged by the server")
AGENT_SCHEDULE_VERSION = Gauge("skymesh_agent_schedule_version", "Schedule version the agent is executing")
AGENT_JOBS = Counter("skymesh_agent_jobs_total", "Job state changes made by the agent", ["state"])
AGENT_COMMANDS = Counter("skymesh_agent_commands_total", "Command state changes made by the agent", ["state"])
AGENT_UPSTREAM_SENT = Counter("skymesh_agent_upstream_sent_total", "Reliable upstream messages sent (resends count)")


def serve_metrics(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> int:
    """Serve /metrics on `addr:port` (port 0 picks a free one). Returns the bound port."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return int(server.server_port)
