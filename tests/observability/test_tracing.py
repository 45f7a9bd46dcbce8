"""One trace follows a piece of work across every hop, on real gRPC: a control call (Replan) -> server -> database
-> scheduler ComputePlan (solve span with the plan's numbers) -> the schedule pushed down the agent stream -> the
agent applying it -> its ScheduleAck back at the server; and a command -> the agent -> its CommandUpdate and the
job updates it causes. Server, scheduler and agent run in this process, so one in-memory exporter sees every span.

Also: OTLP export to a real OTLP/gRPC receiver, the logs' trace ids, and tracing that is off by default."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from skymesh.agent.config import load_config
from skymesh.agent.runtime import run_agent
from skymesh.api import convert
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.control.v1 import (
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
)
from skymesh.observability import tracing
from skymesh.observability.grpc_tracing import TracingClientInterceptor
from skymesh.observability.logs import JsonFormatter, TraceContextFilter
from skymesh.scheduler.service import SchedulerServicer, start_server
from skymesh.server import ServerConfig, serve
from skymesh.sim.fleet import build_demo_fleet

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    # The process's tracer provider can be set once; later calls are ignored by OpenTelemetry.
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):  # set earlier in this session: add our exporter to it
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    else:
        assert tracing.configure_tracing("test", env={}, exporter=EXPORTER) is not None
    yield EXPORTER


async def _wait_for(probe: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def system(tmp_path: Path, exporter: InMemorySpanExporter) -> AsyncIterator[dict[str, Any]]:
    sched_server, sched_port = await start_server("127.0.0.1:0", servicer=SchedulerServicer(isolate=False))
    config = ServerConfig(
        listen="127.0.0.1:0",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'skymesh.sqlite3'}",
        data_dir=str(tmp_path / "data"),
        scheduler_address=f"127.0.0.1:{sched_port}",
        control_auth=False,
        heartbeat_interval_s=1.0,
        # Only the Replan RPC plans in this test (the background loop waits out its debounce).
        replan_debounce_s=3600.0,
        replan_interval_s=3600.0,
        plan_horizon_s=12 * 3600.0,
        shutdown_grace_s=0.2,
    )
    server = await serve(config)
    channel = grpc.aio.insecure_channel(server.address, interceptors=[TracingClientInterceptor()])  # type: ignore[list-item]
    agent_task: asyncio.Task[None] | None = None
    try:
        fleet = build_demo_fleet(datetime.now(UTC), ground_stations=1, telescopes=0, satellites=8)
        station = fleet.stations[0]
        await stations_pb2_grpc.StationServiceStub(channel).CreateStation(
            stations_pb2.CreateStationRequest(station=convert.station_to_proto(station))
        )
        key = await stations_pb2_grpc.StationServiceStub(channel).IssueStationKey(
            stations_pb2.IssueStationKeyRequest(station_id=station.station_id)
        )
        for target in fleet.satellites:
            await targets_pb2_grpc.TargetServiceStub(channel).CreateTarget(
                targets_pb2.CreateTargetRequest(target=convert.target_to_proto(target))
            )
        path = tmp_path / "agent.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "station_id": station.station_id,
                    "server_address": server.address,
                    "api_key": key.api_key,
                    "state_dir": str(tmp_path / "agent"),
                    "kind": "ground_station",
                    "location": {
                        "latitude_deg": station.location.latitude_deg,
                        "longitude_deg": station.location.longitude_deg,
                        "altitude_m": station.location.altitude_m,
                    },
                    "bands": list(station.bands),
                    "heartbeat_interval_s": 1.0,
                    "reconnect_initial_s": 0.2,
                    "reconnect_max_s": 1.0,
                }
            )
        )
        agent_task = asyncio.create_task(run_agent(load_config(path, env={})))
        await _wait_for(lambda: server.hub.connected(station.station_id), 30, "the agent's stream")
        yield {"server": server, "channel": channel, "station_id": station.station_id}
    finally:
        if agent_task is not None:
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
        await channel.close()
        await server.stop(grace_s=0.1)
        await sched_server.stop(grace=None)


def _in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id]


def _names(spans: list[ReadableSpan]) -> set[str]:
    return {s.name for s in spans}


async def test_one_trace_follows_replan_to_the_agent_and_back(
    system: dict[str, Any], exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    with tracing.span("operator replans") as root:
        reply = await observations_pb2_grpc.JobServiceStub(system["channel"]).Replan(observations_pb2.ReplanRequest())
    assert reply.assignments > 0, "the demo fleet's satellites should give the station work"
    trace_id = root.get_span_context().trace_id
    names = await _wait_for(
        lambda: (n := _names(_in_trace(exporter, trace_id))) and "agent schedule_ack" in n and n,
        30,
        "the agent's ScheduleAck span at the server",
    )
    assert {
        "operator replans",
        "skymesh.api.control.v1.JobService/Replan",  # client and server spans
        "skymesh.api.scheduler.v1.SchedulerService/ComputePlan",  # client and server spans
        "scheduler solve",
        "scheduler visibility",  # the solve's phases, as its children
        "scheduler model and search",
        "scheduler explain",
        "db apply_plan",
        "agent schedule",  # at the agent: the Schedule message's trace context continued
        "agent schedule_ack",  # back at the server: the ScheduleAck's trace context continued
    } <= names, names
    spans = _in_trace(exporter, trace_id)
    kinds = {(s.name, s.kind) for s in spans}
    assert ("skymesh.api.control.v1.JobService/Replan", trace.SpanKind.CLIENT) in kinds
    assert ("skymesh.api.control.v1.JobService/Replan", trace.SpanKind.SERVER) in kinds
    solve = next(s for s in spans if s.name == "scheduler solve")
    attrs = dict(solve.attributes or {})
    assert attrs["skymesh.plan.solver"] == "greedy" and int(attrs["skymesh.plan.candidates"]) > 0  # type: ignore[call-overload]
    assert attrs["skymesh.plan.assignments"] == reply.assignments and "skymesh.plan.gap" in attrs
    phases = [s for s in spans if s.name in ("scheduler visibility", "scheduler model and search", "scheduler explain")]
    assert len(phases) == 3 and all(s.parent is not None and s.parent.span_id == solve.context.span_id for s in phases)
    assert (
        int(
            dict(next(s for s in phases if s.name == "scheduler visibility").attributes or {})[
                "skymesh.plan.candidates"
            ]
        )
        > 0
    )  # type: ignore[call-overload]
    # Parentage, not just a shared id: the agent's span is a child of a server-side span of this trace.
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    agent_span = next(s for s in spans if s.name == "agent schedule")
    assert agent_span.parent is not None and agent_span.parent.span_id in by_id


async def test_one_trace_follows_a_command_to_the_agent_and_back(
    system: dict[str, Any], exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    server = system["server"]
    with tracing.span("operator stows") as root:
        await server.dispatcher.send_command(system["station_id"], agent_pb2.Command(stow=agent_pb2.Stow()))
    trace_id = root.get_span_context().trace_id
    names = await _wait_for(
        lambda: (n := _names(_in_trace(exporter, trace_id))) and "agent command_update" in n and n,
        30,
        "the agent's CommandUpdate span at the server",
    )
    assert {"operator stows", "db enqueue_command", "agent command", "agent command_update"} <= names, names
    # The same round trip is the command-delivery SLI: created -> RECEIVED at the agent, observed once.
    delivered = server.metrics.registry.get_sample_value("skymesh_server_command_delivery_seconds_count")
    assert delivered == 1, delivered
    assert (
        server.metrics.registry.get_sample_value("skymesh_server_command_delivery_seconds_bucket", {"le": "1.0"}) == 1
    )
    await _wait_for(
        lambda: "agent execute command" in _names(_in_trace(exporter, trace_id)), 30, "the agent executing it"
    )


def test_logs_carry_trace_and_span_ids(exporter: InMemorySpanExporter) -> None:
    record = logging.LogRecord("skymesh.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    with tracing.span("logged") as current:
        TraceContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    ctx = current.get_span_context()
    assert line["message"] == "hello world"
    assert line["trace_id"] == f"{ctx.trace_id:032x}" and line["span_id"] == f"{ctx.span_id:016x}"
    outside = logging.LogRecord("skymesh.test", logging.INFO, __file__, 1, "plain", (), None)
    TraceContextFilter().filter(outside)
    assert "trace_id" not in json.loads(JsonFormatter().format(outside))


def test_otlp_export_reaches_a_real_otlp_receiver() -> None:
    """A child process configured only by SKYMESH_OTLP_ENDPOINT exports its spans to an OTLP/gRPC receiver here."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received: list[trace_service_pb2.ExportTraceServiceRequest] = []

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        code = (
            "from skymesh.observability import tracing\n"
            "provider = tracing.configure_tracing('probe')\n"
            "assert provider is not None\n"
            "with tracing.span('probe work', attributes={'k': 'v'}):\n"
            "    pass\n"
            "provider.shutdown()\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"SKYMESH_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
        assert out.returncode == 0, out.stderr
    finally:
        server.stop(None)
    spans = [s for r in received for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s.name for s in spans] == ["probe work"]
    services = {
        a.value.string_value
        for r in received
        for rs in r.resource_spans
        for a in rs.resource.attributes
        if a.key == "service.name"
    }
    assert services == {"skymesh-probe"}


def test_tracing_is_off_without_an_endpoint_and_sampling_is_validated() -> None:
    assert tracing.TracingSettings.from_env({}).endpoint is None
    assert (
        tracing.TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}).endpoint == "http://c:4317"
    )
    assert tracing.TracingSettings.from_env({"SKYMESH_TRACE_SAMPLE_RATIO": "0.01"}).sample_ratio == 0.01
    with pytest.raises(ValueError, match="SKYMESH_TRACE_SAMPLE_RATIO"):
        tracing.TracingSettings.from_env({"SKYMESH_TRACE_SAMPLE_RATIO": "2"})
    code = "from skymesh.observability import tracing; print(tracing.configure_tracing('x', env={}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.stdout.strip() == "None", out.stderr


def test_agent_side_tracing_is_a_no_op_without_opentelemetry() -> None:
    """The Raspberry Pi install has no OpenTelemetry: every tracing call still works (and does nothing)."""
    code = (
        "import sys\n"
        "for name in ('opentelemetry',):\n"
        "    sys.modules[name] = None\n"
        "from skymesh.observability import tracing\n"
        "from skymesh.api.agent.v1 import agent_pb2\n"
        "assert not tracing.AVAILABLE\n"
        "assert tracing.configure_tracing('agent', env={'SKYMESH_OTLP_ENDPOINT': 'http://x:4317'}) is None\n"
        "msg = agent_pb2.ConnectRequest(schedule_ack=agent_pb2.ScheduleAck(version=1))\n"
        "with tracing.span('a'), tracing.continued('b', {'traceparent': 'x'}):\n"
        "    tracing.inject_body(msg, frozenset({'schedule_ack'}))\n"
        "assert not msg.schedule_ack.trace_context and tracing.current_ids() is None\n"
        "import skymesh.agent.link, skymesh.agent.store, skymesh.agent.executor\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
