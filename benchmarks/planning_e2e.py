"""Benchmark: planning through the server, end to end, with real processes.

`skymesh scheduler` and `skymesh server` run as their own processes on one database (SQLite in a temporary directory,
or PostgreSQL with --pg URL of an empty database). N stations and M satellites of the seeded TALOS workload are
registered through the control API (the admin token the server wrote), one raw agent stream per station connects
(Hello, a heartbeat every 5 s, nothing else: a thin client, not the project's agent), and then:

- first plan: the streams' connects ask for a plan; timed from the last Welcome to the first and to the last agent
  holding a schedule with jobs (every agent that gets work);
- steady state: `Replan` while nothing changed, timed until it returns (the plan applied and pushed);
- drop: a fifth of the streams end (their stations go DISCONNECTED, their agents would keep running their jobs),
  `Replan`, and once the new schedules have arrived (none for 3 s) every schedule the agents hold is checked: the
  same satellite must never be booked at two stations at overlapping times;
- all the while a health check every 50 ms measures how long the server's event loop keeps it waiting (the worst
  answer time is an upper bound of the worst loop stall, plus one loopback round trip);
- the server's own event-loop lag monitor, scraped from its /metrics: the worst lateness during the plan a Replan
  ran (`skymesh_server_plan_event_loop_lag_max_seconds`, a lower bound of the worst stall within 20 ms) and the part
  of it the loop thread's own CPU accounts for ("busy": the rest is the OS running other processes), and per phase
  how many of its 20 ms wake-ups were more than 100 ms late (`skymesh_server_event_loop_lag_seconds`) and the
  histogram bucket the worst of them fell in;
- peak resident memory of the server and of the scheduler with its solver children (sampled from /proc every 0.5 s).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/planning_e2e.py --size 50x200 --runs 2
    PYTHONPATH=$PWD .venv/bin/python benchmarks/planning_e2e.py --size 200x1000 --pg postgresql+asyncpg://...

Prints one JSON line per run. `tests/e2e/test_planning_e2e.py` runs a reduced size with assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from skymesh.api import convert
from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.channel import control_channel
from skymesh.api.control.v1 import (
    observations_pb2,
    observations_pb2_grpc,
    stations_pb2,
    stations_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, ()))
    return total


@dataclass
class Held:
    """What one raw agent holds: its latest schedule, and when each schedule arrived."""

    station_id: str
    version: int = 0
    jobs: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)  # job, target, start, end
    arrivals: list[float] = field(default_factory=list)
    welcomed: float = 0.0


async def _agent(address: str, key: str, held: Held, stop: asyncio.Event, channel: grpc.aio.Channel) -> None:
    boot = str(uuid.uuid4())
    call = agent_pb2_grpc.AgentServiceStub(channel).Connect(metadata=(("authorization", f"Bearer {key}"),))
    hello = agent_pb2.Hello(station_id=held.station_id, agent_version="bench", protocol_version=1, boot_id=boot)
    await call.write(agent_pb2.ConnectRequest(hello=hello))

    async def beat() -> None:
        while True:
            await asyncio.sleep(5.0)
            await call.write(agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat()))

    beater = asyncio.create_task(beat())
    reader = asyncio.ensure_future(call.read())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while True:
            done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                break
            message = reader.result()
            if message is grpc.aio.EOF:
                break
            kind = message.WhichOneof("body")
            if kind == "welcome":
                held.welcomed = time.monotonic()
            elif kind == "schedule":
                held.version = message.schedule.version
                held.jobs = [
                    (j.job_id, j.target.target_id, j.start.ToDatetime(), j.end.ToDatetime())
                    for j in message.schedule.jobs
                ]
                held.arrivals.append(time.monotonic())
                ack = agent_pb2.ScheduleAck(version=message.schedule.version)
                await call.write(agent_pb2.ConnectRequest(schedule_ack=ack))
            reader = asyncio.ensure_future(call.read())
    finally:
        beater.cancel()
        reader.cancel()
        stopper.cancel()
        call.cancel()


def double_bookings(holdings: list[Held]) -> list[tuple[str, str, str]]:
    """(target, station, station) for every satellite held by two stations at overlapping times."""
    by_target: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for h in holdings:
        for _job, target, start, end in h.jobs:
            by_target.setdefault(target, []).append((start, end, h.station_id))
    clashes = []
    for target, spans in by_target.items():
        spans.sort()
        latest_end, latest_station = spans[0][1], spans[0][2]
        for start, end, station in spans[1:]:
            if start < latest_end and station != latest_station:
                clashes.append((target, latest_station, station))
            if end > latest_end:
                latest_end, latest_station = end, station
    return clashes


class Probe:
    """A health check every 50 ms: the worst answer time while the server plans."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self.worst_s = 0.0
        self.answered = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.worst_s, self.answered, self.failed = 0.0, 0, 0

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            try:
                await self._stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
                self.answered += 1
            except grpc.aio.AioRpcError:
                self.failed += 1
            self.worst_s = max(self.worst_s, time.monotonic() - t)
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._channel.close()


class LagScrape:
    """The server's event-loop lag metrics, scraped from its /metrics endpoint."""

    def __init__(self, port: int) -> None:
        self._url = f"http://127.0.0.1:{port}/metrics"
        self._start: dict[float, float] = {}

    async def _scrape(self) -> tuple[dict[float, float], dict[str, float]]:
        """(cumulative lag histogram: bucket bound -> count, the last plan's worst lateness and busy part, s)."""

        def get() -> str:
            with urllib.request.urlopen(self._url, timeout=30) as reply:
                return str(reply.read().decode())

        buckets: dict[float, float] = {}
        plan_worst = {"late": math.nan, "busy": math.nan, "gc": math.nan}
        for family in text_string_to_metric_families(await asyncio.to_thread(get)):
            for sample in family.samples:
                if sample.name == "skymesh_server_event_loop_lag_seconds_bucket":
                    buckets[float(sample.labels["le"])] = sample.value
                elif sample.name == "skymesh_server_plan_event_loop_lag_max_seconds":
                    plan_worst[sample.labels["part"]] = sample.value
        return buckets, plan_worst

    async def reset(self) -> None:
        self._start, _ = await self._scrape()

    async def phase(self) -> dict[str, float]:
        """Since `reset`: wake-ups more than 100 ms late, the bucket bound of the latest one, and the last plan's
        worst lateness."""
        now, plan_worst = await self._scrape()
        diff = {le: n - self._start.get(le, 0.0) for le, n in now.items()}
        total = diff.get(math.inf, 0.0)
        bound = min((le for le, n in diff.items() if n >= total), default=math.nan)
        return {
            "over_100ms": int(total - diff.get(0.1, 0.0)),
            "worst_bucket_s": bound,
            "plan_worst_s": round(plan_worst["late"], 3),
            "plan_busy_s": round(plan_worst["busy"], 3),
            "plan_gc_s": round(plan_worst["gc"], 3),
        }


class RssSampler:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], await asyncio.to_thread(_tree_rss_bytes, pid))
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _spawn(args: list[str], log: Any, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m skymesh ARGS` in its own session (so its solver children can be signalled with it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "skymesh", *args], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


async def _wait_serving(address: str, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{address} not serving after {timeout_s} s")


async def _until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout_s} s")
        await asyncio.sleep(0.1)


async def run(
    stations: int,
    satellites: int,
    hours: float,
    *,
    database_url: str = "",
    solver: str = "greedy",
    time_limit_s: float = 10.0,
    seed: int = 1,
    workdir: Path | None = None,
    wait_s: float = 300.0,
    visibility_cache_mb: float | None = None,
) -> dict[str, Any]:
    """One run of the whole sequence; returns its measurements (see the module's docstring)."""
    from skymesh.core.model import SatelliteTarget
    from skymesh.scheduler.scenario import generate_talos

    req = generate_talos(stations=stations, satellites=satellites, hours=hours, seed=seed)
    sats = [t.target for t in req.targets if isinstance(t.target, SatelliteTarget)]
    with tempfile.TemporaryDirectory() as tmp_name:
        root = workdir or Path(tmp_name)
        root.mkdir(parents=True, exist_ok=True)
        sched_addr = f"127.0.0.1:{free_port()}"
        server_addr = f"127.0.0.1:{free_port()}"
        metrics_port = free_port()
        config = {
            "listen": server_addr,
            "database_url": database_url or f"sqlite+aiosqlite:///{root / 'bench.sqlite3'}",
            "scheduler_address": sched_addr,
            "data_dir": str(root / "server-data"),
            "plan_horizon_s": hours * 3600.0,
            "plan_solver": solver,
            "plan_time_limit_s": time_limit_s,
            "scheduler_timeout_s": time_limit_s * 3 + 30.0,
            "plan_apply_deadline_s": time_limit_s * 3 + 60.0,
            "replan_interval_s": 3600.0,
            "replan_debounce_s": 1.0,
            "freeze_s": 0.0,
            "heartbeat_interval_s": 10.0,
            "metrics_port": metrics_port,
            # The TALOS scenario's demand (as `skymesh plan` and benchmarks/planning.py send it): one pass per
            # satellite per 2 h, so the reported gap is the same measure.
            "plan_satellite_max_per_period": 1,
            "plan_satellite_period_s": 7200.0,
        }
        (root / "server.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
        logs = {name: (root / f"{name}.log").open("wb") for name in ("scheduler", "server")}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            cache = [] if visibility_cache_mb is None else ["--visibility-cache-mb", str(visibility_cache_mb)]
            procs["scheduler"] = _spawn(["scheduler", "--listen", sched_addr, *cache], logs["scheduler"], env)
            procs["server"] = _spawn(["server", "--config", str(root / "server.yaml")], logs["server"], env)
            await _wait_serving(sched_addr, procs["scheduler"])
            await _wait_serving(server_addr, procs["server"])
            rss = RssSampler({name: p.pid for name, p in procs.items()})
            rss.start()
            token = (root / "server-data" / "admin.token").read_text().strip()
            result: dict[str, Any] = {"stations": stations, "satellites": satellites, "hours": hours, "solver": solver}
            async with control_channel(server_addr, token=token) as api_channel:
                station_api = stations_pb2_grpc.StationServiceStub(api_channel)
                target_api = targets_pb2_grpc.TargetServiceStub(api_channel)
                limit = asyncio.Semaphore(16)
                keys: dict[str, str] = {}

                async def add_station(st: Any) -> None:
                    async with limit:
                        msg = stations_pb2.CreateStationRequest(station=convert.station_to_proto(st))
                        await station_api.CreateStation(msg, timeout=60)
                        key = await station_api.IssueStationKey(
                            stations_pb2.IssueStationKeyRequest(station_id=st.station_id), timeout=60
                        )
                        keys[st.station_id] = key.api_key

                async def add_target(t: Any) -> None:
                    async with limit:
                        msg = targets_pb2.CreateTargetRequest(target=convert.target_to_proto(t))
                        await target_api.CreateTarget(msg, timeout=60)

                lag = LagScrape(metrics_port)
                await lag.reset()
                t0 = time.monotonic()
                await asyncio.gather(*(add_station(s) for s in req.stations), *(add_target(t) for t in sats))
                result["register_s"] = round(time.monotonic() - t0, 1)
                register_lag = await lag.phase()
                result["register_loop_lag_over_100ms"] = register_lag["over_100ms"]
                result["register_loop_lag_bucket_s"] = register_lag["worst_bucket_s"]

                probe = Probe(server_addr)
                probe.start()
                await lag.reset()
                holdings = [Held(s.station_id) for s in req.stations]
                stops = [asyncio.Event() for _ in holdings]
                channels = [grpc.aio.insecure_channel(server_addr) for _ in range(max(1, stations // 50))]
                agents = [
                    asyncio.create_task(_agent(server_addr, keys[h.station_id], h, stop, channels[i % len(channels)]))
                    for i, (h, stop) in enumerate(zip(holdings, stops, strict=True))
                ]
                try:
                    # First plan: asked for by the connects (debounced).
                    await _until(lambda: all(h.welcomed for h in holdings), wait_s, "every Welcome")
                    last_welcome = max(h.welcomed for h in holdings)
                    await _until(
                        lambda: sum(1 for h in holdings if h.jobs) >= 0.9 * stations, wait_s, "schedules at agents"
                    )
                    await asyncio.sleep(3.0)  # the stragglers of that plan (and any debounced follow-up)
                    with_jobs = [h for h in holdings if h.jobs]
                    firsts = [next(t for t in h.arrivals if t >= last_welcome) for h in with_jobs if h.arrivals]
                    result["first_plan_first_s"] = round(min(firsts) - last_welcome, 1)
                    result["first_plan_last_s"] = round(max(firsts) - last_welcome, 1)
                    result["agents_with_jobs"] = len(with_jobs)
                    result["jobs_held"] = sum(len(h.jobs) for h in holdings)
                    result["first_plan_worst_health_s"] = round(probe.worst_s, 3)
                    result["health_answered"] = probe.answered
                    result["health_failed"] = probe.failed
                    first_lag = await lag.phase()
                    result["first_plan_loop_lag_over_100ms"] = first_lag["over_100ms"]
                    result["first_plan_loop_lag_bucket_s"] = first_lag["worst_bucket_s"]

                    plan_api = observations_pb2_grpc.JobServiceStub(api_channel)
                    probe.reset()
                    await lag.reset()
                    t = time.monotonic()
                    reply = await plan_api.Replan(observations_pb2.ReplanRequest(), timeout=wait_s)
                    result["steady_replan_s"] = round(time.monotonic() - t, 1)
                    result["steady_worst_health_s"] = round(probe.worst_s, 3)
                    steady_lag = await lag.phase()
                    result["steady_worst_loop_lag_s"] = steady_lag["plan_worst_s"]
                    result["steady_worst_loop_busy_s"] = steady_lag["plan_busy_s"]
                    result["steady_worst_gc_s"] = steady_lag["plan_gc_s"]
                    result["steady_loop_lag_over_100ms"] = steady_lag["over_100ms"]
                    result["steady_loop_lag_bucket_s"] = steady_lag["worst_bucket_s"]
                    result["gap"] = round(reply.gap, 4)
                    result["assignments"] = reply.assignments
                    result["unscheduled"] = reply.unscheduled

                    # Drop a fifth of the streams, replan, and check nothing is held twice.
                    dropped = holdings[: max(1, stations // 5)]
                    for h, stop in zip(holdings, stops, strict=False):
                        if h in dropped:
                            stop.set()
                    await asyncio.sleep(2.0)  # the server sees the streams end (DISCONNECTED)
                    probe.reset()
                    await lag.reset()
                    t = time.monotonic()
                    await plan_api.Replan(observations_pb2.ReplanRequest(), timeout=wait_s)
                    result["drop_replan_s"] = round(time.monotonic() - t, 1)
                    drop_plan = await lag.phase()
                    result["drop_worst_loop_lag_s"] = drop_plan["plan_worst_s"]
                    result["drop_worst_loop_busy_s"] = drop_plan["plan_busy_s"]
                    result["drop_worst_gc_s"] = drop_plan["plan_gc_s"]
                    # Replan returns once the schedules are queued to the streams: the check reads what the agents
                    # hold once the last of them arrived (none for 3 s), not a mix of old and new schedules.
                    await asyncio.sleep(2.0)
                    await _until(
                        lambda: time.monotonic() - max((a for h in holdings for a in h.arrivals), default=0.0) > 3.0,
                        wait_s,
                        "the new schedules at the agents",
                    )
                    result["drop_worst_health_s"] = round(probe.worst_s, 3)
                    drop_lag = await lag.phase()  # the Replan and the schedules' arrival after it
                    result["drop_loop_lag_over_100ms"] = drop_lag["over_100ms"]
                    result["drop_loop_lag_bucket_s"] = drop_lag["worst_bucket_s"]
                    result["double_bookings"] = len(double_bookings(holdings))
                finally:
                    for stop in stops:
                        stop.set()
                    await asyncio.gather(*agents, return_exceptions=True)
                    for ch in channels:
                        await ch.close()
                    await probe.close()
            await rss.close()
            result["server_rss_mb"] = round(rss.peak["server"] / 1e6)
            result["scheduler_rss_mb"] = round(rss.peak["scheduler"] / 1e6)
            return result
        finally:
            for p in procs.values():
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            for f in logs.values():
                f.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", action="append", default=[], help="STATIONSxSATELLITES (repeatable)")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--solver", default="greedy", choices=("greedy", "cpsat"))
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--pg", default="", help="a PostgreSQL asyncpg URL of an empty database (default SQLite)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the processes' config and logs here")
    parser.add_argument(
        "--visibility-cache-mb",
        type=float,
        default=None,
        help="the scheduler's visibility cache (default: its own); 1,000 x 5,000 x 12 h needs ~1024",
    )
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for each phase's schedules")
    args = parser.parse_args()
    for size in args.size or ["50x200"]:
        n, m = (int(x) for x in size.lower().split("x"))
        for i in range(args.runs):
            load_start = round(os.getloadavg()[0], 2)
            out = asyncio.run(
                run(
                    n,
                    m,
                    args.hours,
                    database_url=args.pg,
                    solver=args.solver,
                    time_limit_s=args.time_limit,
                    seed=i + 1,
                    workdir=args.workdir / f"{size}-{i + 1}" if args.workdir else None,
                    wait_s=args.wait,
                    visibility_cache_mb=args.visibility_cache_mb,
                )
            )
            out["loadavg_1m_start"] = load_start
            out["loadavg_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
