"""The server's event loop: uvloop's when importable, asyncio's when not; a real server answers on either."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
import pytest

from skymesh.server import ServerConfig, serve
from skymesh.server.runloop import loop_factory, run


async def _health_over_grpc(tmp: Path) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    config = ServerConfig(
        listen="127.0.0.1:0",
        database_url=f"sqlite+aiosqlite:///{tmp / 'loop.sqlite3'}",
        data_dir=str(tmp),
        planning_enabled=False,
        scheduler_address="127.0.0.1:9",
        reduction_workers=0,
    )
    server = await serve(config)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(grace_s=0.5)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return f"{type(asyncio.get_running_loop()).__module__}:{status}"


def test_server_runs_on_uvloop_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    assert loop_factory() is not None
    assert run(_health_over_grpc(tmp_path)) == "uvloop:SERVING"


def test_server_runs_on_asyncio_without_uvloop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert loop_factory() is None
    loop, status = run(_health_over_grpc(tmp_path)).split(":")
    assert loop.startswith("asyncio.") and status == "SERVING"
