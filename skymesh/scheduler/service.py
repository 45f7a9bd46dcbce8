"""The `SchedulerService` gRPC servicer and `serve()`: health checking, reflection and Prometheus metrics included.

The service is stateless: every ComputePlan carries the whole problem (RankTargets may name a target list sent
before, kept in a small cache: an unknown one is asked for again). Planning is CPU-bound, so it runs in a
worker thread (the event loop keeps answering health checks) behind a semaphore sized for the machine, and CP-SAT
runs in a child process with a memory cap and a watchdog (`isolate=True`). Errors cross the wire only through
`skymesh.api.errors.grpc_errors`. Must not import skymesh.server, skymesh.agent or skymesh.web.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from skymesh.api.convert import station_from_proto, timestamp_to_datetime
from skymesh.api.errors import grpc_errors
from skymesh.api.guard import GuardInterceptor
from skymesh.api.scheduler.v1 import scheduler_pb2 as pb
from skymesh.api.scheduler.v1 import scheduler_pb2_grpc as pb_grpc
from skymesh.core.errors import FailedPrecondition, InvalidArgument
from skymesh.observability import tracing
from skymesh.observability.endpoint import start_endpoint
from skymesh.observability.grpc_tracing import TracingServerInterceptor
from skymesh.observability.metrics import SchedulerMetrics
from skymesh.scheduler.inputs import PlanRequest, PlanResult, PlanStats, PlanTarget
from skymesh.scheduler.isolation import CancelScope, SolveCancelled
from skymesh.scheduler.planning import ContactValuer
from skymesh.scheduler.rank import rank_targets
from skymesh.scheduler.spacecraft import explain_with_spacecraft, plan_with_spacecraft
from skymesh.scheduler.viscache import VisibilityCache
from skymesh.scheduler.wire import (
    assignments_from_proto,
    explain_response_to_proto,
    explanation_page_size,
    plan_request_from_proto,
    plan_response_to_proto,
    plan_target_from_proto,
    rank_response_to_proto,
)

__all__ = ["SERVICE_NAME", "RankCatalogues", "SchedulerServicer", "record_plan_stats", "serve", "start_server"]

log = logging.getLogger(__name__)

# The visibility cache's bound: a 200 x 1,000 x 24 h day's passes (832 k windows) take ~55 MB of it, 500 x 3,000
# (6.3 M windows, 7 blocks of 4 h) ~420 MB.
DEFAULT_VISIBILITY_CACHE_MB = 512.0

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SchedulerService"].full_name


def record_plan_stats(s: PlanStats) -> None:
    """Solve time, quality and phase timings of one plan, by solver; candidates are the visibility windows."""
    m = SchedulerMetrics.current()
    label = s.solver.value
    m.plan_duration.labels(label).observe(s.runtime_s)
    m.plan_objective.labels(label).set(s.objective)
    m.plan_gap.labels(label).set(s.gap)
    m.plan_candidates.labels(label).set(s.candidates)
    m.visibility_windows.inc(s.candidates)
    # Only the timings that are durations (`*_s`); the others are counts (iterations, windows, memory).
    for key, value in s.timings_s.items():
        if key.endswith("_s") and value == value and value >= 0:  # NaN-free
            m.plan_phase_duration.labels(label, key.removesuffix("_s")).observe(value)


def _annotate(span: Any, s: PlanStats, assignments: int, unscheduled: int) -> None:
    """The plan's numbers on its span: solver, candidates, objective, bound, gap, and each phase's seconds."""
    if span is None:
        return
    span.set_attributes(
        {
            "skymesh.plan.solver": s.solver.value,
            "skymesh.plan.candidates": s.candidates,
            "skymesh.plan.objective": s.objective,
            "skymesh.plan.bound": s.bound,
            "skymesh.plan.gap": s.gap,
            "skymesh.plan.optimal": s.optimal,
            "skymesh.plan.assignments": assignments,
            "skymesh.plan.unscheduled": unscheduled,
            **{f"skymesh.plan.phase.{k}": float(v) for k, v in s.timings_s.items()},
        }
    )


class SchedulerServicer(pb_grpc.SchedulerServiceServicer):
    def __init__(
        self,
        *,
        isolate: bool = True,
        max_concurrent: int = 1,
        valuer: ContactValuer | None = None,
        visibility_cache_mb: float = DEFAULT_VISIBILITY_CACHE_MB,
    ) -> None:
        self.isolate = isolate
        self.valuer = valuer
        # Satellite passes reused by the next plans (the horizon slides, elements rarely change); also used by
        # ExplainPlan, whose windows must be the plan's. 0 keeps nothing (every plan computes its passes).
        if not (math.isfinite(visibility_cache_mb) and visibility_cache_mb >= 0):
            raise InvalidArgument("must be a finite number of MB >= 0", field="visibility_cache_mb")
        self.visibility_cache = VisibilityCache(int(visibility_cache_mb * 1e6))
        self._slots = asyncio.Semaphore(max_concurrent)
        # Solves in progress by request id: a retried request joins its solve instead of starting another.
        self._inflight: dict[str, list[Any]] = {}  # [task, CancelScope, callers waiting]
        self._rank_catalogues = RankCatalogues()
        if isolate:
            # The solver children's fork server preloads OR-Tools once, now, not inside the first plan's deadline.
            from skymesh.scheduler.isolation import warm_up

            warm_up()

    @grpc_errors
    async def ComputePlan(
        self, request: pb.ComputePlanRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ComputePlanResponse:
        req = plan_request_from_proto(request)
        # One time budget: the caller's deadline bounds the whole call (visibility and explanations included), so a
        # time limit past it (or none) is cut to what is left of it, less a margin for the answer's transfer.
        remaining = context.time_remaining()
        if remaining is not None:
            cap = max(0.1, remaining * 0.9 - 0.5)
            if req.time_limit_s == 0 or req.time_limit_s > cap:
                req = dataclasses.replace(req, time_limit_s=cap)
        key = req.request_id
        entry = self._inflight.get(key) if key else None
        if entry is None:
            scope = CancelScope()
            entry = [asyncio.create_task(self._solve(req, scope)), scope, 0]
            # A cancelled solve ends in SolveCancelled with nobody left to read it: read here, not logged as lost.
            entry[0].add_done_callback(lambda t: t.cancelled() or t.exception())
            if key:
                self._inflight[key] = entry
                entry[0].add_done_callback(lambda _t: self._inflight.pop(key, None))
        task, scope = entry[0], entry[1]
        # A retry of the same request joins its solve in progress (shielded): at most one solve per request. When the
        # last caller waiting for it goes away (cancelled, deadline passed), the solve is cancelled: its solver
        # children are killed and it starts no more.
        entry[2] += 1
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            entry[2] -= 1
            if entry[2] == 0:
                scope.cancel()
                log.info("plan %s: cancelled by its caller; its solver children stopped", req.request_id or "-")
            raise
        entry[2] -= 1
        s = result.stats
        label = s.solver.value
        record_plan_stats(s)
        log.info(
            "plan %s: solver=%s objective=%.0f bound=%.0f gap=%.4f candidates=%d runtime=%.2fs (%s); "
            "visibility cache %.0f MB, %d hits, %d misses",
            req.request_id or "-",
            label,
            s.objective,
            s.bound,
            s.gap,
            s.candidates,
            s.runtime_s,
            ", ".join(f"{k} {v:.2f} s" for k, v in s.timings_s.items()),
            self.visibility_cache.nbytes / 1e6,
            self.visibility_cache.hits,
            self.visibility_cache.misses,
        )
        return plan_response_to_proto(result)

    async def _solve(self, req: PlanRequest, scope: CancelScope) -> PlanResult:
        def solve() -> PlanResult:
            scope.enter()
            try:
                if scope.cancelled.is_set():
                    raise SolveCancelled("the plan was cancelled before it started")
                return plan_with_spacecraft(
                    req, isolate=self.isolate, valuer=self.valuer, visibility_cache=self.visibility_cache
                )
            finally:
                scope.exit()

        async with self._slots:
            if scope.cancelled.is_set():  # cancelled while waiting for a slot: never starts
                raise SolveCancelled("the plan was cancelled before it started")
            # satellites with spacecraft profiles: contacts valued and the plan checked by the simulator
            with tracing.span("scheduler solve", attributes={"skymesh.plan.request_id": req.request_id}) as span:
                result = await asyncio.to_thread(solve)
                _annotate(span, result.stats, len(result.assignments), len(result.unscheduled))
        return result

    @grpc_errors
    async def ExplainPlan(
        self, request: pb.ExplainPlanRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ExplainPlanResponse:
        if not request.HasField("request"):
            raise InvalidArgument("is required", field="request")
        page_size = explanation_page_size(request.page_size, "page_size")
        try:
            req = plan_request_from_proto(request.request)
        except InvalidArgument as exc:
            exc.field = f"request.{exc.field}" if exc.field else "request"
            raise
        assignments = assignments_from_proto(request.assignments)
        async with self._slots:
            page = await asyncio.to_thread(
                explain_with_spacecraft,
                req,
                assignments,
                page_size=page_size,
                page_token=request.page_token,
                valuer=self.valuer,
                visibility_cache=self.visibility_cache,
            )
        return explain_response_to_proto(page)

    @grpc_errors
    async def RankTargets(
        self, request: pb.RankTargetsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RankTargetsResponse:
        if not request.HasField("station"):
            raise InvalidArgument("is required", field="station")
        station = station_from_proto(request.station, "station")
        at = timestamp_to_datetime(request.at, "at")
        if request.count < 0:
            raise InvalidArgument("must not be negative", field="count")
        if request.catalogue_id and request.targets:
            raise InvalidArgument("give targets or catalogue_id, not both", field="catalogue_id")
        if request.catalogue_id:
            catalogue_id = request.catalogue_id
            targets = self._rank_catalogues.get(catalogue_id)
        else:
            targets, catalogue_id = _rank_targets_from_proto(request.targets)
            if not self._rank_catalogues.put(catalogue_id, targets):
                catalogue_id = ""  # not held (too long to keep): an id the next call could not use is not given
        async with self._slots:
            ranked = await asyncio.to_thread(rank_targets, station, targets, at, request.count)
        out = rank_response_to_proto(ranked)
        out.catalogue_id = catalogue_id
        return out


class RankCatalogues:
    """The last few target lists RankTargets was sent, by content hash, least recently used out.

    A station's client asks for its ranked list every few seconds with the same catalogue (90 KB of element sets for
    500 satellites): it names the list by the id an earlier answer gave instead. The id is a hash of the targets'
    wire bytes, so a held list is exactly what sending it again would give; a list that failed its checks is never
    held. Each replica holds its own: an unknown id is FAILED_PRECONDITION (CATALOGUE_UNKNOWN), and the caller sends
    the list again.

    Bounded by lists (`size`) and by the targets they hold together (`max_targets`): a request may carry up to the
    message limit (256 MB, about a million targets), and eight such lists held would be gigabytes. A list longer than
    `max_targets` on its own is not held (`put` says so, and the answer's catalogue_id is empty)."""

    def __init__(self, size: int = 8, max_targets: int = 100_000) -> None:
        self._size, self._max_targets = size, max_targets
        self._held: OrderedDict[str, list[PlanTarget]] = OrderedDict()
        self._targets = 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def targets_held(self) -> int:
        return self._targets

    def put(self, catalogue_id: str, targets: list[PlanTarget]) -> bool:
        """Hold `targets` under `catalogue_id`; False (nothing held) for an empty id or a list over `max_targets`."""
        if not catalogue_id or len(targets) > self._max_targets:
            return False
        previous = self._held.pop(catalogue_id, None)
        if previous is not None:
            self._targets -= len(previous)
        self._held[catalogue_id] = targets
        self._targets += len(targets)
        while len(self._held) > self._size or self._targets > self._max_targets:
            _, evicted = self._held.popitem(last=False)
            self._targets -= len(evicted)
        return True

    def get(self, catalogue_id: str) -> list[PlanTarget]:
        held = self._held.get(catalogue_id)
        if held is None:
            raise FailedPrecondition(
                "this scheduler does not hold that target list (evicted or never sent): send the targets",
                reason="CATALOGUE_UNKNOWN",
                field="catalogue_id",
            )
        self._held.move_to_end(catalogue_id)
        return held


# Converted ranked-list targets by their wire bytes. A station polls for its list every few seconds and each call
# sends the same catalogue again; converting and checking 500 targets was about half the scheduler's time for a
# ground station. Equal bytes are an equal message, so a hit is exactly what converting again would give; a target
# that fails its checks is never stored, so bad input fails as it always did, naming the same field. Changed targets
# are new bytes (the old entries are evicted, least recently used first).
_MAX_CACHED_TARGETS = 20_000
_converted: OrderedDict[bytes, PlanTarget] = OrderedDict()


def _rank_targets_from_proto(msgs: Sequence[pb.PlanTarget]) -> tuple[list[PlanTarget], str]:
    """The targets, and the list's catalogue id (a hash of every target's wire bytes, in order; empty for none)."""
    out = []
    digest = hashlib.blake2b(digest_size=16)
    for i, msg in enumerate(msgs):
        key = msg.SerializeToString(deterministic=True)
        digest.update(len(key).to_bytes(4, "big"))
        digest.update(key)
        hit = _converted.get(key)
        if hit is None:
            hit = _converted[key] = plan_target_from_proto(msg, f"targets[{i}]")
            if len(_converted) > _MAX_CACHED_TARGETS:
                _converted.popitem(last=False)
        else:
            _converted.move_to_end(key)
        out.append(hit)
    return out, (digest.hexdigest() if out else "")


async def start_server(
    address: str = "127.0.0.1:50052", *, servicer: SchedulerServicer | None = None
) -> tuple[grpc.aio.Server, int]:
    """A started server with the scheduler, health and reflection services; returns it and the bound port."""
    server = grpc.aio.server(
        # Request limits and error mapping first (skymesh.api.guard), then the caller's trace context.
        interceptors=[GuardInterceptor(), TracingServerInterceptor()],
        options=[("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)],
    )
    pb_grpc.add_SchedulerServiceServicer_to_server(servicer or SchedulerServicer(), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise InvalidArgument(f"cannot bind {address!r}", field="listen")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def serve(
    address: str = "127.0.0.1:50052",
    *,
    metrics_port: int | None = None,
    isolate: bool = True,
    max_concurrent: int = 1,
    stop: asyncio.Event | None = None,
    visibility_cache_mb: float = DEFAULT_VISIBILITY_CACHE_MB,
) -> None:
    """Serve until cancelled or `stop` is set; then drain in-flight calls for up to 5 s."""
    metrics = SchedulerMetrics.start()  # this process's own registry
    server, port = await start_server(
        address,
        servicer=SchedulerServicer(
            isolate=isolate, max_concurrent=max_concurrent, visibility_cache_mb=visibility_cache_mb
        ),
    )
    log.info("scheduler listening on %s (port %d)", address, port)
    endpoint = None
    if metrics_port is not None:
        endpoint = start_endpoint(metrics.registry, port=metrics_port)
        log.info("metrics on http://127.0.0.1:%d/metrics (health: /healthz, /readyz)", endpoint.port)
    try:
        if stop is None:
            await server.wait_for_termination()
        else:
            await stop.wait()
    finally:
        await server.stop(grace=5.0)
        if endpoint is not None:
            await asyncio.to_thread(endpoint.close)
