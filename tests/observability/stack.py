"""Real SkyMesh processes for observability tests: `skymesh scheduler`, `skymesh server` (SQLite, control API
authenticated), and one `skymesh agent` with simulated hardware, each serving its own metrics endpoint."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from skymesh.api import convert
from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.core.model import GeoLocation, Station, StationKind

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


class Proc:
    def __init__(self, name: str, args: list[str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "skymesh", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(probe: Callable[[], bool], timeout_s: float, what: str, procs: Sequence[Proc] = ()) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        for p in procs:
            assert p.alive(), f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}"
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.2)


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Stack:
    """Scheduler, server and one agent; `metrics[name]` is each process's metrics `host:port`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, Proc] = {}
        self.metrics: dict[str, str] = {}
        self.scheduler_address = f"127.0.0.1:{free_port()}"
        self.server_address = f"127.0.0.1:{free_port()}"
        self.station_id = "gs-obs"

    def start(self) -> None:
        sched_metrics, server_metrics, agent_metrics = free_port(), free_port(), free_port()
        self.metrics = {
            "scheduler": f"127.0.0.1:{sched_metrics}",
            "server": f"127.0.0.1:{server_metrics}",
            "agent": f"127.0.0.1:{agent_metrics}",
        }
        self.procs["scheduler"] = Proc(
            "scheduler",
            ["scheduler", "--listen", self.scheduler_address, "--metrics-port", str(sched_metrics)],
            self.logs,
        )
        config = {
            "listen": self.server_address,
            "database_url": f"sqlite+aiosqlite:///{self.root / 'skymesh.sqlite3'}",
            "scheduler_address": self.scheduler_address,
            "data_dir": str(self.root / "server-data"),
            "metrics_port": server_metrics,
            "heartbeat_interval_s": 1.0,
            "offline_grace_s": 4.0,
            "replan_interval_s": 5.0,
            "replan_debounce_s": 0.2,
            "plan_horizon_s": 1800.0,
            "shutdown_grace_s": 1.0,
        }
        (self.root / "server.yaml").write_text(yaml.safe_dump(config))
        self.procs["server"] = Proc("server", ["server", "--config", str(self.root / "server.yaml")], self.logs)
        procs = list(self.procs.values())
        wait_until(lambda: _serving(self.scheduler_address), 60, "the scheduler", procs)
        wait_until(lambda: _serving(self.server_address), 60, "the server", procs)
        key = self._create_station()
        agent = {
            "station_id": self.station_id,
            "server_address": self.server_address,
            "api_key": key,
            "state_dir": str(self.root / "agent"),
            "kind": "ground_station",
            "location": {"latitude_deg": 52.0, "longitude_deg": 4.4, "altitude_m": 10.0},
            "bands": ["UHF"],
            "heartbeat_interval_s": 1.0,
            "telemetry_batch_interval_s": 1.0,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "metrics_port": agent_metrics,
        }
        (self.root / "agent.yaml").write_text(yaml.safe_dump(agent))
        self.procs["agent"] = Proc("agent", ["agent", "--config", str(self.root / "agent.yaml")], self.logs)
        wait_until(self.agent_connected, 60, "the agent's stream", list(self.procs.values()))

    def _create_station(self) -> str:
        token = (self.root / "server-data" / "admin.token").read_text().strip()
        auth = (("authorization", f"Bearer {token}"),)
        station = Station(
            self.station_id,
            "Observability GS",
            StationKind.GROUND_STATION,
            GeoLocation(52.0, 4.4, 10.0),
            bands=("UHF",),
        )
        with grpc.insecure_channel(self.server_address) as channel:
            api = stations_pb2_grpc.StationServiceStub(channel)
            api.CreateStation(
                stations_pb2.CreateStationRequest(station=convert.station_to_proto(station)), metadata=auth, timeout=10
            )
            key = api.IssueStationKey(
                stations_pb2.IssueStationKeyRequest(station_id=self.station_id), metadata=auth, timeout=10
            )
        return str(key.api_key)

    def scrape(self, name: str) -> str:
        status, body = http_get(f"http://{self.metrics[name]}/metrics")
        assert status == 200, (status, body)
        return body

    def agent_connected(self) -> bool:
        with contextlib.suppress(OSError):
            return "skymesh_agent_connected 1.0" in self.scrape("agent")
        return False

    def stop(self) -> None:
        for name in ("agent", "server", "scheduler"):
            if name in self.procs:
                self.procs[name].stop()

    def log_tails(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.tail()}" for p in self.procs.values())
