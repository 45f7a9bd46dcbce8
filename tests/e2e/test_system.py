"""The backbone's acceptance criteria, end to end, with real processes and SIGKILL.

Every test runs the real commands, as a deployment does: `python -m skymesh scheduler`, `python -m skymesh server
--config` on its own PostgreSQL database (skymesh_e2e_<random>, dropped afterwards) and `python -m skymesh agent
--config` with the built-in simulator, talking gRPC on loopback. Stations, targets and keys go through the public
control API (as `skymesh demo` does); the checks read the control API, the server's tables and the agents' SQLite
stores. Satellite passes are real: a generated satellite of a real orbit family whose next pass over the station
starts within a minute is found by propagation (the pipeline of `skymesh.sim.fleet._soon_passing`), and the
scheduler plans it like any other.

1. `test_agent_killed_mid_job_finishes_or_reports_it`: SIGKILL an agent while its pass job is RUNNING, restart it on
   the same state dir: the job ends SUCCEEDED (exactly one observation stored) or FAILED/AGENT_RESTARTED, never
   stays RUNNING.
2. `test_server_killed_mid_stream_loses_nothing_and_runs_no_command_twice`: SIGKILL the server while agents stream
   1 Hz telemetry, restart it: every acked message is stored once, cursors equal the agents' last seqs, outboxes
   drain; then CancelJob on a RUNNING job (an urgent AbortJob) and SIGKILL the server right after, at the worst
   moment (frozen as soon as the agent holds the command, killed once the agent executed it, so none of the
   agent's reports on it were read): after the restart the command was executed exactly once and is terminal on
   the server, the job ABORTED once.
3. `test_wrong_key_and_foreign_station_are_refused_and_write_nothing`: UNAUTHENTICATED for a wrong key,
   PERMISSION_DENIED for a valid key of another station; the agents log it clearly; the server's tables are
   untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
import numpy as np
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from skymesh.api import convert
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.channel import control_channel
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import (
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
)
from skymesh.core.model import GeoLocation, SatelliteTarget, Station, StationKind
from skymesh.server.db.telemetry_blob import unpack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PG_ADMIN_DSN = os.environ.get("SKYMESH_E2E_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO_ROOT = Path(__file__).resolve().parents[2]

_T = TypeVar("_T")

JOB = common_pb2.JobState
TERMINAL_JOB_STATES = {
    JOB.JOB_STATE_SUCCEEDED,
    JOB.JOB_STATE_FAILED,
    JOB.JOB_STATE_ABORTED,
    JOB.JOB_STATE_REJECTED,
    JOB.JOB_STATE_CANCELLED,
    JOB.JOB_STATE_EXPIRED,
}
TERMINAL_COMMAND_STATES = {
    agent_pb2.COMMAND_STATE_SUCCEEDED,
    agent_pb2.COMMAND_STATE_FAILED,
    agent_pb2.COMMAND_STATE_REJECTED,
    agent_pb2.COMMAND_STATE_EXPIRED,
}


# ---------------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One `python -m skymesh ...` child in its own session (so the whole group can be signalled)."""

    def __init__(self, name: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.address = ""
        self._log = open(log_path, "ab")  # noqa: SIM115 - the child writes it for its lifetime
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "skymesh", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the whole group and reap it: no shutdown code runs."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()

    def freeze(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def stop(self, timeout_s: float = 8.0) -> None:
        if self.alive():
            self._signal_group(signal.SIGCONT)
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout_s)
        # Whatever is left of the group (the leader included) goes now.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join([line for line in text if "alembic.runtime.plugins" not in line][-lines:])


async def wait_serving(address: str, timeout_s: float = 60.0, proc: Proc | None = None) -> None:
    """Until the gRPC health service at `address` says SERVING (fails early if `proc` died)."""
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc is not None and not proc.alive():
                raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}:\n{tail(proc.log_path)}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing SERVING at {address} after {timeout_s:.0f} s")
            await asyncio.sleep(0.2)


async def eventually(
    probe: Callable[[], Awaitable[_T | None]], timeout_s: float, what: str, interval_s: float = 0.25
) -> _T:
    """Poll `probe` until it returns something other than None/False; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(interval_s)


# ---------------------------------------------------------------------------------------------------- database


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this test (the server migrates it), dropped afterwards."""
    name = f"skymesh_e2e_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class ServerDb:
    """Read-only look at the server's tables (what the acceptance criteria are about)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def cursors(self, station_id: str) -> dict[str, int]:
        rows = await self.fetch("SELECT boot_id, committed_seq FROM upstream_cursors WHERE station_id = $1", station_id)
        return {r["boot_id"]: int(r["committed_seq"]) for r in rows}

    async def telemetry_keys(self, station_id: str) -> list[tuple[str, int]]:
        rows = await self.fetch("SELECT boot_id, seq FROM telemetry WHERE station_id = $1", station_id)
        return [(r["boot_id"], int(r["seq"])) for r in rows]


# ---------------------------------------------------------------------------------------------------- agent store


@dataclass(frozen=True)
class AgentState:
    outbox: list[tuple[str, int]]
    boots: dict[str, int]  # boot_id -> highest seq assigned (next_seq - 1)
    jobs: dict[str, tuple[int, str]]  # job_id -> (state, boot_id)
    commands: dict[str, tuple[int, int]]  # command_id -> (seq, state)


def read_agent_store(state_dir: Path) -> AgentState:
    """One consistent read of the agent's SQLite store (WAL: readers never block its writer)."""
    db = sqlite3.connect(f"file:{state_dir / 'agent.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        db.execute("BEGIN")
        outbox = [(str(b), int(s)) for b, s in db.execute("SELECT boot_id, seq FROM outbox ORDER BY boot_id, seq")]
        boots = {str(b): int(n) - 1 for b, n in db.execute("SELECT boot_id, next_seq FROM boots")}
        jobs = {str(j): (int(s), str(b)) for j, s, b in db.execute("SELECT job_id, state, boot_id FROM jobs")}
        commands = {str(c): (int(q), int(s)) for c, q, s in db.execute("SELECT command_id, seq, state FROM commands")}
        db.execute("COMMIT")
    finally:
        db.close()
    return AgentState(outbox, boots, jobs, commands)


# ---------------------------------------------------------------------------------------------------- passes


@dataclass(frozen=True)
class Pass:
    station: Station
    satellite: SatelliteTarget
    aos: datetime
    los: datetime


def find_soon_pass(
    *,
    aos_within_s: tuple[float, float] = (20.0, 35.0),
    duration_s: tuple[float, float] = (90.0, 150.0),
    station_prefix: str = "e2e",
) -> Pass:
    """A real pass over one of the demo ground sites that starts within `aos_within_s` and lasts `duration_s`.

    Same pipeline as `skymesh.sim.fleet._soon_passing` (generated elements of real orbit families, all propagated
    at once, passes found by the scheduler's `find_passes`), but it asks for a pass long enough to kill something in
    the middle of it (`_soon_passing` prefers the shortest).
    """
    from skymesh.astro.passes import find_passes
    from skymesh.astro.propagate import SatelliteBatch
    from skymesh.astro.tle_gen import generate_tles
    from skymesh.sim.fleet import GROUND_SITES

    sites = [site for site, _bands in GROUND_SITES]
    min_el = 10.0
    for _attempt in range(8):
        now = datetime.now(UTC)
        seed = random.randrange(1_000_000)
        candidates = []
        for i, family in enumerate(("cubesat", "sso", "iss", "starlink")):
            candidates += generate_tles(family, 1500, now, seed=seed + i, norad_base=200000 + 20000 * i)
        batch = SatelliteBatch(candidates)
        table = find_passes(
            batch,
            np.array([s.latitude_deg for s in sites]),
            np.array([s.longitude_deg for s in sites]),
            np.array([s.altitude_m for s in sites]),
            now,
            now + timedelta(seconds=aos_within_s[1] + duration_s[1] + 300),
            np.full(len(sites), min_el),
            step_s=30.0,
        )
        options = [
            p
            for p in table.to_list()
            if aos_within_s[0] <= (p.aos - now).total_seconds() <= aos_within_s[1]
            and duration_s[0] <= (p.los - p.aos).total_seconds() <= duration_s[1]
        ]
        if not options:
            continue
        best = min(options, key=lambda p: p.los)
        site = sites[best.station_index]
        tle = candidates[best.sat_index]
        station = Station(
            station_id=f"{station_prefix}-{site.site_id}",
            name=f"{site.name} (e2e)",
            kind=StationKind.GROUND_STATION,
            location=GeoLocation(site.latitude_deg, site.longitude_deg, site.altitude_m),
            min_elevation_deg=min_el,
            bands=("UHF",),
            slew_rate_deg_s=6.0,
        )
        satellite = SatelliteTarget(
            target_id=f"sat-{tle.norad_id}",
            name=f"{tle.name} (over {site.name})",
            norad_id=tle.norad_id,
            tle_line1=tle.line1,
            tle_line2=tle.line2,
            band="UHF",
            downlink_frequency_hz=437.5e6,
            priority=10,
        )
        return Pass(station, satellite, best.aos, best.los)
    raise AssertionError(f"no pass starting within {aos_within_s} s and lasting {duration_s} s found")


# ---------------------------------------------------------------------------------------------------- the system


class System:
    """One server (restartable on the same database and port), its agents, and control-API helpers."""

    def __init__(self, root: Path, database_url: str, scheduler_address: str, **server_overrides: Any) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        (root / "agents").mkdir(exist_ok=True)
        self.db = ServerDb(database_url)
        self.server_address = f"127.0.0.1:{free_port()}"
        self.server: Proc | None = None
        self.server_starts = 0
        self.agents: dict[str, Proc] = {}
        self.agent_starts: dict[str, int] = {}
        self.agent_configs: dict[str, Path] = {}
        self.agent_metrics: dict[str, int] = {}
        self.all_procs: list[Proc] = []
        self.extra_logs: list[Path] = []
        config = {
            "listen": self.server_address,
            "database_url": database_url.replace("postgresql://", "postgresql+asyncpg://", 1),
            "scheduler_address": scheduler_address,
            "data_dir": str(root / "server-data"),
            "heartbeat_interval_s": 1.0,
            "offline_grace_s": 4.0,
            "telemetry_batch_interval_s": 1.0,
            "replan_interval_s": 5.0,
            "replan_debounce_s": 0.5,
            "plan_horizon_s": 1800.0,
            "plan_time_limit_s": 5.0,
            "shutdown_grace_s": 1.0,
            "drain_retry_after_s": 0.5,
            "key_recheck_s": 5.0,
            **server_overrides,
        }
        self.server_config = root / "server.yaml"
        self.server_config.write_text(yaml.safe_dump(config))
        self._channel: grpc.aio.Channel | None = None

    # ------------------------------------------------------------------------------------------------ processes

    async def start_server(self) -> Proc:
        assert self.server is None or not self.server.alive()
        self.server_starts += 1
        proc = Proc(
            "server",
            ["server", "--config", str(self.server_config)],
            self.logs / f"server.{self.server_starts}.log",
        )
        self.server = proc
        self.all_procs.append(proc)
        await wait_serving(self.server_address, proc=proc)
        return proc

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.kill9()

    def write_agent_config(self, station_id: str, api_key: str, station: Station, **extra: Any) -> Path:
        self.agent_metrics[station_id] = free_port()
        config = {
            "station_id": station_id,
            "server_address": self.server_address,
            "api_key": api_key,
            "state_dir": str(self.state_dir(station_id)),
            "kind": "ground_station",
            "location": {
                "latitude_deg": station.location.latitude_deg,
                "longitude_deg": station.location.longitude_deg,
                "altitude_m": station.location.altitude_m,
            },
            "bands": list(station.bands),
            "heartbeat_interval_s": 1.0,
            "telemetry_rate_hz": 1.0,
            "telemetry_batch_interval_s": 1.0,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "metrics_port": self.agent_metrics[station_id],
            "limits": {"elevation_min_deg": 0.0, "slew_rate_deg_s": station.slew_rate_deg_s},
            "seed": 1,
            **extra,
        }
        path = self.root / "agents" / f"{station_id}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.agent_configs[station_id] = path
        return path

    def state_dir(self, station_id: str) -> Path:
        return self.root / "agents" / station_id

    def start_agent(self, station_id: str) -> Proc:
        assert station_id not in self.agents or not self.agents[station_id].alive()
        n = self.agent_starts[station_id] = self.agent_starts.get(station_id, 0) + 1
        proc = Proc(
            f"agent-{station_id}",
            ["agent", "--config", str(self.agent_configs[station_id])],
            self.logs / f"agent-{station_id}.{n}.log",
        )
        self.agents[station_id] = proc
        self.all_procs.append(proc)
        return proc

    def agent_log(self, station_id: str) -> str:
        """Everything every incarnation of this agent logged."""
        n = self.agent_starts.get(station_id, 0)
        return "".join((self.logs / f"agent-{station_id}.{i}.log").read_text(errors="replace") for i in range(1, n + 1))

    def agent_metric(self, station_id: str, name: str, labels: str = "") -> float:
        """One sample of the running agent's Prometheus metrics (0 when absent)."""
        port = self.agent_metrics[station_id]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{{re.escape(labels)}\}})? ([0-9.e+-]+)$", re.M)
        match = pattern.search(text)
        return float(match.group(1)) if match else 0.0

    def stop_all(self) -> None:
        # Agents first, then the server (it drains).
        for proc in sorted(self.all_procs, key=lambda p: p.name == "server"):
            proc.stop()

    def log_tails(self) -> str:
        parts = []
        for path in [*sorted(self.logs.glob("*.log")), *self.extra_logs]:
            parts.append(f"===== {path.name} (last lines)\n{tail(path, 50)}")
        return "\n".join(parts)

    # ------------------------------------------------------------------------------------------------ control API

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            # As an operator would: with the first admin's token the server wrote on its fresh database.
            token = (self.server_config.parent / "server-data" / "admin.token").read_text().strip()
            self._channel = control_channel(self.server_address, token=token)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def create_station(self, station: Station) -> str:
        """Register the station and issue its key; returns the API key."""
        api = stations_pb2_grpc.StationServiceStub(self.channel)
        await api.CreateStation(
            stations_pb2.CreateStationRequest(station=convert.station_to_proto(station)), timeout=10
        )
        key = await api.IssueStationKey(stations_pb2.IssueStationKeyRequest(station_id=station.station_id), timeout=10)
        return str(key.api_key)

    async def create_target(self, target: SatelliteTarget) -> None:
        api = targets_pb2_grpc.TargetServiceStub(self.channel)
        await api.CreateTarget(targets_pb2.CreateTargetRequest(target=convert.target_to_proto(target)), timeout=10)

    async def jobs(self, station_id: str) -> list[observations_pb2.Job]:
        api = observations_pb2_grpc.JobServiceStub(self.channel)
        reply = await api.ListJobs(observations_pb2.ListJobsRequest(station_id=station_id), timeout=5)
        return list(reply.jobs)

    async def job(self, job_id: str, station_id: str) -> observations_pb2.Job:
        return next(j for j in await self.jobs(station_id) if j.job_id == job_id)

    async def running_job(self, station_id: str, target_id: str) -> observations_pb2.Job | None:
        """The station's RUNNING job for `target_id`, as the control API shows it (None while there is none)."""
        with contextlib.suppress(grpc.aio.AioRpcError):  # the server may be restarting
            for job in await self.jobs(station_id):
                if job.target_id == target_id and job.state == JOB.JOB_STATE_RUNNING:
                    return job
        return None

    async def cancel_job(self, job_id: str, reason: str) -> observations_pb2.Job:
        api = observations_pb2_grpc.JobServiceStub(self.channel)
        reply = await api.CancelJob(observations_pb2.CancelJobRequest(job_id=job_id, reason=reason), timeout=10)
        return reply.job

    async def observations(self, station_id: str) -> list[observations_pb2.Observation]:
        api = observations_pb2_grpc.ObservationServiceStub(self.channel)
        reply = await api.ListObservations(
            observations_pb2.ListObservationsRequest(station_id=station_id, page_size=1000), timeout=10
        )
        return list(reply.observations)

    async def wait_connected(self, station_id: str, sessions: int, timeout_s: float = 30.0) -> None:
        """Until the agent's logs (all incarnations) show `sessions` Welcomes in total."""

        async def probe() -> bool:
            proc = self.agents[station_id]
            if not proc.alive():
                raise AssertionError(f"agent {station_id} exited:\n{tail(proc.log_path)}")
            return self.agent_log(station_id).count(f"as {station_id} (session") >= sessions

        await eventually(probe, timeout_s, f"agent {station_id} to hold session #{sessions}")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """One real `skymesh scheduler` for the module (it is stateless); `.address` is where it listens."""
    logs = tmp_path_factory.mktemp("scheduler")
    address = f"127.0.0.1:{free_port()}"
    proc = Proc("scheduler", ["scheduler", "--listen", address], logs / "scheduler.log")
    proc.address = address
    try:
        asyncio.run(wait_serving(address, proc=proc))
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def make_system(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, scheduler: Proc
) -> AsyncIterator[Callable[..., System]]:
    systems: list[System] = []
    request.node.skymesh_systems = systems  # conftest.py adds their logs to a failing test's report

    def make(**server_overrides: Any) -> System:
        system = System(tmp_path, pg_url, scheduler.address, **server_overrides)
        system.extra_logs.append(scheduler.log_path)
        systems.append(system)
        return system

    try:
        yield make
    finally:
        for system in systems:
            await system.close()
            await asyncio.to_thread(system.stop_all)


async def prepare_pass(system: System, **find: Any) -> tuple[Pass, str]:
    """Find a pass starting soon, register its station and satellite, start the station's agent."""
    soon = await asyncio.to_thread(find_soon_pass, **find)
    api_key = await system.create_station(soon.station)
    await system.create_target(soon.satellite)
    system.write_agent_config(soon.station.station_id, api_key, soon.station)
    system.start_agent(soon.station.station_id)
    return soon, api_key


async def wait_running(system: System, soon: Pass, slack_s: float = 30.0) -> observations_pb2.Job:
    station_id, target_id = soon.station.station_id, soon.satellite.target_id
    budget = (soon.aos - datetime.now(UTC)).total_seconds() + slack_s
    return await eventually(
        lambda: system.running_job(station_id, target_id),
        budget,
        f"the pass of {target_id} over {station_id} (AOS {soon.aos:%H:%M:%S}) to be RUNNING",
    )


# ---------------------------------------------------------------------------------------------------- 1. agent kill


async def test_agent_killed_mid_job_finishes_or_reports_it(make_system: Callable[..., System]) -> None:
    system = make_system()
    await system.start_server()
    soon, _key = await prepare_pass(system)
    station_id = soon.station.station_id
    state_dir = system.state_dir(station_id)

    job = await wait_running(system, soon)
    await asyncio.sleep(2.0)  # well inside the pass: tracking, telemetry and progress flowing
    assert datetime.now(UTC) < soon.los - timedelta(seconds=20), "the pass must still have time left"
    system.agents[station_id].kill9()

    # The kill left the job RUNNING in the agent's own store, owned by the dead boot.
    before = read_agent_store(state_dir)
    assert before.jobs[job.job_id][0] == int(JOB.JOB_STATE_RUNNING), before.jobs
    dead_boot = before.jobs[job.job_id][1]
    assert dead_boot in before.boots

    system.start_agent(station_id)
    await system.wait_connected(station_id, sessions=2)

    async def terminal() -> observations_pb2.Job | None:
        current = await system.job(job.job_id, station_id)
        return current if current.state in TERMINAL_JOB_STATES else None

    budget = (soon.los - datetime.now(UTC)).total_seconds() + 45.0
    final = await eventually(terminal, budget, f"job {job.job_id} to end (LOS {soon.los:%H:%M:%S})")
    assert final.state in (JOB.JOB_STATE_SUCCEEDED, JOB.JOB_STATE_FAILED), final
    if final.state == JOB.JOB_STATE_FAILED:
        assert final.cause == common_pb2.CAUSE_CODE_AGENT_RESTARTED, final

    # Whatever happened is final and agreed on by both ends: nothing is left RUNNING anywhere.
    await asyncio.sleep(2.0)
    assert (await system.job(job.job_id, station_id)).state == final.state
    assert not [j for j in await system.jobs(station_id) if j.state == JOB.JOB_STATE_RUNNING]
    after = read_agent_store(state_dir)
    assert after.jobs[job.job_id][0] == int(final.state), after.jobs
    assert not [j for j, (s, _b) in after.jobs.items() if s == int(JOB.JOB_STATE_RUNNING)], after.jobs

    observations = [o for o in await system.observations(station_id) if o.record.job_id == job.job_id]
    stored = await system.db.fetch("SELECT observation_id FROM observations WHERE job_id = $1", job.job_id)
    if final.state == JOB.JOB_STATE_SUCCEEDED:
        assert len(observations) == 1, observations
        assert len(stored) == 1, stored
    else:
        assert observations == [] and stored == []
    log = system.agent_log(station_id)
    assert f"job {job.job_id} -> RUNNING resumed after agent restart" in log or final.state == JOB.JOB_STATE_FAILED


# ---------------------------------------------------------------------------------------------------- 2. server kill


@dataclass(frozen=True)
class Snapshot:
    agent: AgentState
    cursors: dict[str, int]  # the server's upstream cursors of the station
    telemetry: list[tuple[str, int]]  # the server's telemetry rows of the station, (boot_id, seq)


async def quiesced(system: System, station_id: str) -> Snapshot:
    """Freeze the agent, then read its store and the server's tables; retry until nothing is in flight.

    The agent batches telemetry every second, so the snapshot is taken with the agent stopped (SIGSTOP) after the
    server had a moment to commit what it already received; one with a batch caught on the wire is retried.
    """
    proc = system.agents[station_id]

    async def probe() -> Snapshot | None:
        proc.freeze()
        try:
            await asyncio.sleep(0.5)
            state = await asyncio.to_thread(read_agent_store, system.state_dir(station_id))
            cursors = await system.db.cursors(station_id)
            telemetry = await system.db.telemetry_keys(station_id)
        finally:
            proc.thaw()
        if state.outbox:
            return None
        if any(cursors.get(boot, 0) != last for boot, last in state.boots.items() if last > 0):
            return None
        return Snapshot(state, cursors, telemetry)

    return await eventually(probe, 30.0, f"{station_id}'s outbox to drain and the cursors to catch up", 0.7)


async def agent_command_state_is_terminal(probe: Callable[[], Awaitable[int]]) -> bool:
    return await probe() in TERMINAL_COMMAND_STATES


async def test_server_killed_mid_stream_loses_nothing_and_runs_no_command_twice(
    make_system: Callable[..., System],
) -> None:
    system = make_system()
    await system.start_server()
    # A station that can never get work (no satellite in its band): everything it sends upstream is telemetry.
    quiet = Station(
        station_id="e2e-telemetry-only",
        name="Telemetry only",
        kind=StationKind.GROUND_STATION,
        location=GeoLocation(-33.92, 18.42, 20.0),
        min_elevation_deg=10.0,
        bands=("S",),
        slew_rate_deg_s=6.0,
    )
    quiet_key = await system.create_station(quiet)
    system.write_agent_config(quiet.station_id, quiet_key, quiet)
    system.start_agent(quiet.station_id)
    # A station with a pass starting soon, for the command half.
    soon, _key = await prepare_pass(system)
    busy = soon.station.station_id
    stations = (quiet.station_id, busy)
    for station_id in stations:
        await system.wait_connected(station_id, sessions=1)

    async def streaming() -> bool:
        keys = await system.db.telemetry_keys(quiet.station_id)
        return len(keys) >= 3

    await eventually(streaming, 20.0, "telemetry batches from the quiet station")

    # --- SIGKILL the server mid-stream; the agents spool; restart it on the same database.
    killed_at = datetime.now(UTC)
    system.kill_server()
    await asyncio.sleep(3.0)
    await system.start_server()
    back_at = datetime.now(UTC)
    for station_id in stations:
        await system.wait_connected(station_id, sessions=2)

    snapshots = {}
    for station_id in stations:
        snap = snapshots[station_id] = await quiesced(system, station_id)
        # Everything was acked (the outbox is empty) and the server's cursor for each boot is exactly the last seq
        # the agent assigned in it.
        assert snap.agent.outbox == []
        assert snap.agent.boots, snap
        for boot, last in snap.agent.boots.items():
            assert snap.cursors.get(boot, 0) == last, (station_id, boot, snap.cursors, snap.agent.boots)
        assert len(snap.telemetry) == len(set(snap.telemetry)), f"duplicate telemetry rows for {station_id}"
        for boot, seq in snap.telemetry:
            assert seq <= snap.cursors[boot], "a telemetry row above the committed cursor"
    dups = await system.db.fetch(
        "SELECT station_id, boot_id, seq, COUNT(*) FROM telemetry GROUP BY station_id, boot_id, seq HAVING COUNT(*) > 1"
    )
    assert dups == []

    # The quiet station sent nothing but telemetry: every seq the server acked (1..cursor) is a stored batch.
    snap = snapshots[quiet.station_id]
    ((boot, committed),) = snap.cursors.items()
    seqs = sorted(seq for b, seq in snap.telemetry if b == boot)
    assert seqs == list(range(1, committed + 1)), f"acked 1..{committed}, stored {seqs}"
    # ... including the batches spooled while the server was dead.
    rows = await system.db.fetch("SELECT data FROM telemetry WHERE station_id = $1", quiet.station_id)
    sample_times = [at for r in rows for _, at, _values in unpack(bytes(r["data"])).samples()]
    outage = [t for t in sample_times if killed_at + timedelta(seconds=0.5) < t < back_at - timedelta(seconds=0.5)]
    assert outage, f"no samples from the outage {killed_at:%T} .. {back_at:%T}"

    # --- Cancel the running pass (an URGENT AbortJob) and SIGKILL the server right after, at the worst moment:
    # the command has reached the agent, but the server (frozen with SIGSTOP as soon as the agent stored it)
    # reads none of the agent's reports on it before it dies.
    job = await wait_running(system, soon)
    cancelled = await system.cancel_job(job.job_id, "e2e: abort while the server dies")
    assert cancelled.state == JOB.JOB_STATE_RUNNING  # a running job stays RUNNING until the agent reports
    assert system.server is not None
    server = system.server

    (command,) = await system.db.fetch(  # committed before CancelJob answered
        "SELECT command_id, seq, kind, state FROM commands WHERE job_id = $1", job.job_id
    )
    assert command["kind"] == "abort_job"

    async def agent_command_state() -> int:
        state = await asyncio.to_thread(read_agent_store, system.state_dir(busy))
        return state.commands.get(command["command_id"], (0, 0))[1]

    with contextlib.suppress(AssertionError):  # if it never arrives, it is replayed after the restart
        await eventually(agent_command_state, 2.0, "the agent to store the abort command", 0.01)
    server.freeze()
    with contextlib.suppress(AssertionError):
        await eventually(
            lambda: agent_command_state_is_terminal(agent_command_state), 3.0, "the agent to execute the abort", 0.05
        )
    print(
        f"abort command state on the agent when the server died: {await agent_command_state()}; "
        f"on the server: {(await system.db.fetch('SELECT state FROM commands WHERE job_id = $1', job.job_id))[0][0]}"
    )
    system.kill_server()
    await system.start_server()
    await system.wait_connected(busy, sessions=3)

    async def settled() -> bool:
        rows = await system.db.fetch("SELECT state FROM commands WHERE command_id = $1", command["command_id"])
        current = await system.job(job.job_id, busy)
        return rows[0]["state"] in TERMINAL_COMMAND_STATES and current.state in TERMINAL_JOB_STATES

    try:
        await eventually(settled, 30.0, f"command {command['command_id']} and job {job.job_id} to be terminal")
    except AssertionError as exc:
        rows = await system.db.fetch("SELECT * FROM commands WHERE command_id = $1", command["command_id"])
        agent_side = read_agent_store(system.state_dir(busy))
        raise AssertionError(
            f"{exc}\nserver command row: {[{k: v for k, v in dict(r).items() if k != 'payload'} for r in rows]}\n"
            f"server job: {await system.job(job.job_id, busy)}\n"
            f"agent command: {agent_side.commands.get(command['command_id'])}, "
            f"agent job: {agent_side.jobs.get(job.job_id)}"
        ) from None
    (row,) = await system.db.fetch("SELECT state, detail FROM commands WHERE command_id = $1", command["command_id"])
    assert row["state"] == agent_pb2.COMMAND_STATE_SUCCEEDED, row
    final = await system.job(job.job_id, busy)
    assert final.state == JOB.JOB_STATE_ABORTED, final
    assert final.cause == common_pb2.CAUSE_CODE_ABORTED_BY_OPERATOR, final
    assert len(await system.db.fetch("SELECT 1 FROM commands WHERE job_id = $1", job.job_id)) == 1

    # Executed exactly once on the agent: one stored command, one STARTED, one ABORTED transition.
    state = (await quiesced(system, busy)).agent
    assert state.commands[command["command_id"]] == (command["seq"], agent_pb2.COMMAND_STATE_SUCCEEDED)
    assert state.jobs[job.job_id][0] == int(JOB.JOB_STATE_ABORTED)
    assert system.agent_metric(busy, "skymesh_agent_commands_total", 'state="started"') == 1.0
    assert system.agent_metric(busy, "skymesh_agent_commands_total", 'state="succeeded"') == 1.0
    assert system.agent_metric(busy, "skymesh_agent_jobs_total", 'state="aborted"') == 1.0
    assert system.agent_log(busy).count(f"job {job.job_id} -> ABORTED") == 1
    assert (await system.job(job.job_id, busy)).state == JOB.JOB_STATE_ABORTED
    # Through every kill the agents saw clear statuses (UNAVAILABLE while the server was down), never UNKNOWN.
    for station_id in stations:
        log = system.agent_log(station_id)
        assert "ended: UNKNOWN" not in log and "StatusCode.UNKNOWN" not in log, station_id


# ---------------------------------------------------------------------------------------------------- 3. auth


async def test_wrong_key_and_foreign_station_are_refused_and_write_nothing(
    make_system: Callable[..., System],
) -> None:
    system = make_system(planning_enabled=False)
    await system.start_server()

    def station(station_id: str, lat: float, lon: float) -> Station:
        return Station(
            station_id=station_id,
            name=station_id,
            kind=StationKind.GROUND_STATION,
            location=GeoLocation(lat, lon, 0.0),
            min_elevation_deg=10.0,
            bands=("UHF",),
        )

    a, b, c = station("e2e-a", 37.98, 23.73), station("e2e-b", 53.08, 8.80), station("e2e-c", 40.0, -105.0)
    key_a = await system.create_station(a)
    await system.create_station(b)
    key_c = await system.create_station(c)
    key_id_c = key_c.split("_")[1]
    wrong_key = f"smk_{key_id_c}_{'0' * 32}"  # a real key id with a wrong secret
    before = await system.db.fetch("SELECT * FROM stations ORDER BY station_id")

    # c with a wrong secret; b claiming to be itself with a's valid key.
    system.write_agent_config(c.station_id, wrong_key, c)
    system.write_agent_config(b.station_id, key_a, b)
    system.start_agent(c.station_id)
    system.start_agent(b.station_id)

    async def refused(station_id: str, code: str) -> bool:
        return f"refused station {station_id}: {code}" in system.agent_log(station_id)

    await eventually(lambda: refused(c.station_id, "UNAUTHENTICATED"), 30.0, "the wrong key to be refused")
    await eventually(lambda: refused(b.station_id, "PERMISSION_DENIED"), 30.0, "the foreign station to be refused")
    assert f"belongs to station {a.station_id!r}" in system.agent_log(b.station_id)
    await asyncio.sleep(2.0)  # their telemetry keeps being spooled locally; none of it may reach the server
    for station_id in (b.station_id, c.station_id):
        assert system.agents[station_id].alive(), "a refused agent keeps running (and retries later)"
        assert "connected to" not in system.agent_log(station_id)

    after = await system.db.fetch("SELECT * FROM stations ORDER BY station_id")
    assert [dict(r) for r in after] == [dict(r) for r in before], "station rows changed"
    assert await system.db.fetch("SELECT * FROM telemetry") == []
    assert await system.db.fetch("SELECT * FROM upstream_cursors") == []
    assert await system.db.fetch("SELECT * FROM observations") == []
    assert await system.db.fetch("SELECT * FROM jobs") == []
    assert await system.db.fetch("SELECT * FROM commands") == []
    # The agents kept their data: it waits in their outboxes for a valid key.
    for station_id in (b.station_id, c.station_id):
        assert read_agent_store(system.state_dir(station_id)).outbox
