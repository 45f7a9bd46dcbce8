"""Configuration loading, health checking and reflection, metrics, and the `skymesh server|keys|status` commands."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from skymesh.cli.main import main
from skymesh.cli.status import collect, render
from skymesh.core.errors import InvalidArgument
from skymesh.server import ServerConfig, load_config
from tests.server.conftest import StartServer, add_station


def test_config_file_env_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("server:\n  heartbeat_interval_s: 5\n  replan_interval_s: 60\n  metrics_port: 9100\n")
    config = load_config(
        path,
        env={"SKYMESH_REPLAN_INTERVAL_S": "30", "SKYMESH_CONTROL_AUTH": "true", "SKYMESH_METRICS_PORT": "none"},
        overrides={"data_dir": str(tmp_path), "listen": None},
    )
    assert (config.heartbeat_interval_s, config.replan_interval_s) == (5.0, 30.0)
    assert config.control_auth is True
    assert config.metrics_port is None
    assert config.listen == "127.0.0.1:50051"
    assert config.stale_after_s == 15.0
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path / 'skymesh.sqlite3'}"
    with pytest.raises(InvalidArgument, match="TLS"):
        ServerConfig(listen="0.0.0.0:50051", control_auth=True)
    with pytest.raises(InvalidArgument, match="control_auth"):
        ServerConfig(listen="0.0.0.0:50051", allow_insecure_remote=True, control_auth=False)
    assert ServerConfig().control_auth is True  # authenticated by default, loopback included
    with pytest.raises(InvalidArgument, match="unknown setting"):
        path.write_text("nonsense: 1\n")
        load_config(path, env={})


async def test_health_reflection_and_metrics(start_server: StartServer) -> None:
    server = await start_server(metrics_port=0)
    async with grpc.aio.insecure_channel(server.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="skymesh.api.agent.v1.AgentService")
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert server.metrics_port

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as response:
            return str(response.read().decode())

    body = await asyncio.to_thread(fetch)
    assert "skymesh_server_streams" in body


async def test_status_report(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs1")
    report = await collect(server.address, None)
    assert [s["station_id"] for s in report["stations"]] == ["gs1"]
    assert report["stations"][0]["state"] == "OFFLINE"
    assert "gs1" in render(report)


def test_keys_cli_issues_and_revokes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'k.sqlite3'}"
    assert main(["keys", "--db", db, "user", "ada", "--role", "admin"]) == 0
    assert capsys.readouterr().out.startswith("token: smu_")
    assert main(["keys", "--db", db, "issue", "nope"]) == 2  # unknown station: a clear error, not a traceback


async def test_server_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skymesh.cli.main",
        "server",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SKYMESH_PLANNING_ENABLED": "false"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "listening on 127.0.0.1:" in line, line
        address = line.rsplit(" ", 1)[-1].strip()
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert (tmp_path / "skymesh.sqlite3").exists()
    token_file = tmp_path / "admin.token"  # authentication is on by default: the first admin's token, owner-only
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token_file.read_text().startswith("smu_")
