"""OpenTelemetry tracing for SkyMesh processes: setup, W3C trace context in and out of messages, spans.

One trace follows a piece of work across processes: the W3C `traceparent` travels in gRPC metadata on unary calls
(`skymesh.observability.grpc_tracing`) and in the `trace_context` map of the agent stream's messages (Command,
Schedule going down; CommandUpdate, ScheduleAck, JobUpdate coming up), where per-call metadata cannot carry it.

`configure_tracing(service)` is called once at process start. It exports by OTLP/gRPC when `SKYMESH_OTLP_ENDPOINT`
or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and installs nothing when neither is (spans are then
non-recording and cost a context lookup). Sampling: `SKYMESH_TRACE_SAMPLE_RATIO` (0..1, default 1), parent-based,
so a sampled request stays sampled in every process it reaches.

OpenTelemetry is optional: the station agent runs on a Raspberry Pi with the base dependencies only. Without the
`opentelemetry` packages every function here is a no-op (`AVAILABLE` is False). Imports the standard library only;
OpenTelemetry lazily.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

__all__ = [
    "AVAILABLE",
    "TracingSettings",
    "configure_tracing",
    "continued",
    "current_ids",
    "inject",
    "inject_body",
    "span",
]

log = logging.getLogger(__name__)

try:
    from opentelemetry import context as _otel_context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace

    AVAILABLE = True
except ImportError:  # the agent's base install
    AVAILABLE = False

_TRACER_NAME = "skymesh"


class TracingSettings:
    """What `configure_tracing` read from the environment (kept for logs and tests)."""

    def __init__(self, endpoint: str | None, sample_ratio: float) -> None:
        self.endpoint = endpoint
        self.sample_ratio = sample_ratio

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TracingSettings:
        env = os.environ if env is None else env
        endpoint = env.get("SKYMESH_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
        raw = env.get("SKYMESH_TRACE_SAMPLE_RATIO", "1")
        try:
            ratio = float(raw)
        except ValueError:
            raise ValueError(f"SKYMESH_TRACE_SAMPLE_RATIO must be a number in [0, 1], not {raw!r}") from None
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"SKYMESH_TRACE_SAMPLE_RATIO must be in [0, 1], not {ratio}")
        return cls(endpoint, ratio)


def configure_tracing(
    service_name: str,
    *,
    env: Mapping[str, str] | None = None,
    exporter: Any = None,
    sample_ratio: float | None = None,
    batch: bool = False,
) -> Any:
    """Install this process's tracer provider; returns it, or None when tracing stays off.

    `exporter` (an OpenTelemetry SpanExporter) overrides the OTLP exporter the environment asks for; tests pass an
    in-memory one, exported span by span unless `batch` (the OTLP exporter always batches). Off when OpenTelemetry
    is not installed, or when no endpoint and no exporter is given.
    """
    settings = TracingSettings.from_env(env)
    if not AVAILABLE:
        if settings.endpoint:
            log.warning("tracing requested (%s) but OpenTelemetry is not installed: off", settings.endpoint)
        return None
    if exporter is None and settings.endpoint is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from skymesh.observability.metrics import skymesh_version

    ratio = settings.sample_ratio if sample_ratio is None else sample_ratio
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"skymesh-{service_name}", "service.version": skymesh_version()}),
        sampler=ParentBased(TraceIdRatioBased(ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.endpoint, insecure=True)))
    _trace.set_tracer_provider(provider)
    log.info("tracing: %s, sample ratio %.3g", settings.endpoint or "custom exporter", ratio)
    return provider


def inject(carrier: MutableMapping[str, str]) -> None:
    """Write the current trace context (W3C `traceparent`, `tracestate`) into `carrier` (a proto map or dict)."""
    if AVAILABLE:
        _propagate.inject(carrier)


@contextlib.contextmanager
def span(
    name: str,
    parent: Mapping[str, str] | None = None,
    *,
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A span named `name`, current inside the block; child of the trace context in `parent` when it has one.

    `kind`: "internal", "server", "client", "producer" or "consumer". Yields the span (None without OpenTelemetry).
    """
    if not AVAILABLE:
        yield None
        return
    token = None
    if parent:
        token = _otel_context.attach(_propagate.extract(dict(parent)))
    try:
        tracer = _trace.get_tracer(_TRACER_NAME)
        with tracer.start_as_current_span(
            name, kind=getattr(_trace.SpanKind, kind.upper()), attributes=dict(attributes or {})
        ) as current:
            yield current
    finally:
        if token is not None:
            _otel_context.detach(token)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current recording span, for logs; None outside one."""
    if not AVAILABLE:
        return None
    ctx = _trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


@contextlib.contextmanager
def continued(name: str, carrier: Mapping[str, str], *, kind: str = "consumer", **attributes: Any) -> Iterator[Any]:
    """A span continuing the trace in `carrier` (a stream message's `trace_context`); no span when it carries none.

    Stream messages without trace context (heartbeats, telemetry, untraced work) must not each start a trace.
    """
    if not AVAILABLE or "traceparent" not in carrier:
        yield None
        return
    with span(name, carrier, kind=kind, attributes=attributes) as current:
        yield current


def inject_body(message: Any, bodies: frozenset[str]) -> None:
    """Put the current trace context into the `trace_context` map of `message`'s oneof body, if one of `bodies`."""
    if not AVAILABLE:
        return
    body = message.WhichOneof("body")
    if body in bodies:
        inject(getattr(message, body).trace_context)
