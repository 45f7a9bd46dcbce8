"""A tiny SchedulerService for tests, served over real gRPC: it answers ComputePlan with whatever `plan` returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from skymesh.api.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc


class FakeScheduler(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self) -> None:
        self.requests: list[scheduler_pb2.ComputePlanRequest] = []
        self.delay_s = 0.0  # answer this late (to test the planner's apply deadline)
        self.plan: Callable[[scheduler_pb2.ComputePlanRequest], list[scheduler_pb2.Assignment]] = lambda _r: []

    async def ComputePlan(  # type: ignore[override]
        self, request: scheduler_pb2.ComputePlanRequest, context: Any
    ) -> scheduler_pb2.ComputePlanResponse:
        self.requests.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        assignments = self.plan(request)
        return scheduler_pb2.ComputePlanResponse(
            request_id=request.request_id,
            assignments=assignments,
            stats=scheduler_pb2.PlanStats(solver=request.solver, objective=float(len(assignments)), gap=0.0),
        )


@asynccontextmanager
async def fake_scheduler() -> AsyncIterator[tuple[FakeScheduler, str, grpc.aio.Server]]:
    servicer = FakeScheduler()
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}", server
    finally:
        await server.stop(None)
