"""Per-process metric handles: each kind of process gets its own registry; module-level names resolve to it."""

from __future__ import annotations

import urllib.request

from prometheus_client import REGISTRY

from skymesh.agent import metrics as agent_names
from skymesh.agent.metrics import AGENT_JOBS
from skymesh.observability.metrics import (
    COMMANDS,
    PLAN_RUNTIME,
    AgentMetrics,
    ProcessMetrics,
    SchedulerMetrics,
    ServerMetrics,
    serve_metrics,
)


def _families(handle: ProcessMetrics) -> set[str]:
    return {m.name for m in handle.registry.collect()}


def test_each_handle_holds_only_its_process_metrics_and_names_resolve_to_the_started_one() -> None:
    server, scheduler, agent = ServerMetrics.start(), SchedulerMetrics.start(), AgentMetrics.start()
    assert all(f.startswith(("skymesh_server_", "skymesh_build", "process_", "python_")) for f in _families(server))
    assert all(f.startswith(("skymesh_agent_", "skymesh_build", "process_", "python_")) for f in _families(agent))
    assert not any(f.startswith("skymesh_") for f in (m.name for m in REGISTRY.collect()))  # global stays clean
    COMMANDS.labels("queued").inc()
    AGENT_JOBS.labels(state="running").inc(2)
    PLAN_RUNTIME.labels("greedy").observe(0.2)
    assert server.registry.get_sample_value("skymesh_server_commands_total", {"state": "queued"}) == 1
    assert agent.registry.get_sample_value("skymesh_agent_jobs_total", {"state": "running"}) == 2
    assert (
        scheduler.registry.get_sample_value("skymesh_scheduler_plan_duration_seconds_count", {"solver": "greedy"}) == 1
    )
    fresh = ServerMetrics.start()  # a restart in the same process: a fresh registry, the names follow it
    COMMANDS.labels("queued").inc()
    assert fresh.registry.get_sample_value("skymesh_server_commands_total", {"state": "queued"}) == 1
    assert server.registry.get_sample_value("skymesh_server_commands_total", {"state": "queued"}) == 1


def test_every_agent_name_stands_for_a_metric_of_the_started_agent_handle() -> None:
    """`skymesh.agent.metrics` defines no metric of its own: each of its names is one of `AgentMetrics`'."""
    agent = AgentMetrics.start()
    defined = {id(m) for m in vars(agent).values()}
    for name in agent_names.__all__:
        assert id(getattr(agent_names, name).resolve()) in defined, name
    agent_names.AGENT_OUTBOX_DEPTH.set(7)
    agent_names.AGENT_RECONNECTS.labels(reason="unavailable").inc()
    assert agent.registry.get_sample_value("skymesh_agent_spool_messages") == 7
    assert agent.registry.get_sample_value("skymesh_agent_reconnects_total", {"reason": "unavailable"}) == 1


def test_serve_metrics_serves_the_last_started_handle() -> None:
    handle = AgentMetrics.start()
    handle.connected.set(1)
    port = serve_metrics(0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        body = reply.read().decode()
    assert "skymesh_agent_connected 1.0" in body and 'component="agent"' in body
