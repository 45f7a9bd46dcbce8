"""Load generator: K thin agents against one real `skymesh server` process (issue 8, part 5).

The server runs in a child process (this script's `serve` mode) on SQLite in a temporary directory or on a fresh
PostgreSQL database, so its own CPU and RSS can be read from /proc. It registers K stations and issues each a real
API key. The agents are raw stubs generated from `skymesh.api.agent.v1` (not the project's agent classes), run in
`--procs` processes, several streams per HTTP/2 connection (`--per-channel`): each sends Hello, waits for Welcome,
then one telemetry batch (3 channels x 10 samples) every second (the first `--fast` agents) or every 10 s (the rest),
a heartbeat every 10 s, and counts the acks. After the run every agent's acked seq is compared with the rows stored
(no loss: every acked message is stored; no duplicates: one row per (station, boot, seq)).

Reported per run: connects, Hello->Welcome p50/p99, ack p50/p99 (measured window only), stored/s, server CPU % and
RSS, server CPU-us per stored message, lost and duplicate rows.

`--commands R`: the server also writes RUNNING jobs (SQL, on random stations) before the run, and R CancelJob calls a
second go through the control API during the measured window; each agent records when each AbortJob arrives and
reports the command RECEIVED then SUCCEEDED. Reported: CancelJob (sent) -> AbortJob (at the agent) p50/p99/max,
commands sent and delivered (a missing one is a failure), and outbox commands left short of SUCCEEDED.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/stream.py --db sqlite --stations 100 --seconds 20
    PYTHONPATH=$PWD .venv/bin/python benchmarks/stream.py --db postgresql --stations 1000 --fast 1000 --procs 2
    PYTHONPATH=$PWD .venv/bin/python benchmarks/stream.py --db postgresql --stations 1000 --storm --seconds 10
    PYTHONPATH=$PWD .venv/bin/python benchmarks/stream.py --stations 1000 --warmup 20 --procs 2 --commands 10

`--storm` measures a reconnect storm of all K streams at once, then a steady-state window (see `run_storm`).

`--server-path DIR` runs the server from another source tree (for a before/after comparison of the server alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PG_DSN = os.environ.get("SKYMESH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------------- server side


async def _serve(database_url: str, data_dir: str, stations: int, out: str, jobs: int) -> None:
    from skymesh.core.model import GeoLocation, Station, StationKind
    from skymesh.server import ServerConfig, serve

    config = ServerConfig(
        listen="127.0.0.1:0",
        database_url=database_url,
        data_dir=data_dir,
        planning_enabled=False,
        scheduler_address="127.0.0.1:9",
        control_auth=False,
        reduction_workers=0,
        offline_grace_s=600.0,
        # `SKYMESH_BENCH_HELLO_QUEUE_MAX`: the server's Hello admission limit (shedding with UNAVAILABLE beyond it)
        **(
            {"hello_queue_max": int(os.environ["SKYMESH_BENCH_HELLO_QUEUE_MAX"])}
            if os.environ.get("SKYMESH_BENCH_HELLO_QUEUE_MAX")
            else {}
        ),
    )
    server = await serve(config)
    keys = {}
    for i in range(stations):
        sid = f"load-{i:05d}"
        await server.repo.create_station(Station(sid, sid, StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        keys[sid] = (await server.repo.issue_station_key(sid)).api_key
    running = await _running_jobs(server.repo, sorted(keys), jobs)
    info = {"address": server.address, "keys": keys, "jobs": running}
    await asyncio.to_thread(Path(out).write_text, json.dumps(info))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    _profile_window(os.environ.get("SKYMESH_BENCH_PROFILE_STORM", ""))
    await stop.wait()
    committer = server.committer
    if committer is not None:  # how many messages a group commit shared (whole run)
        stats = {"groups": committer.groups, "messages": committer.messages}
        await asyncio.to_thread(Path(out + ".groups").write_text, json.dumps(stats))
    await server.stop(grace_s=1.0)


def _profile_window(path: str) -> None:
    """`SKYMESH_BENCH_PROFILE_STORM=FILE`: cProfile of the server's event-loop thread from the storm's cut (SIGUSR1,
    sent by the generator) to its last Welcome (SIGUSR2), dumped to FILE: what a reconnect costs, without the setup
    and the steady state (`ncalls` of SQLAlchemy's `_commit_impl` there is the storm's transactions)."""
    if not path:
        return
    import cProfile

    profile = cProfile.Profile(time.thread_time)  # CPU time: the event loop's idle waits are nobody's cost
    loop = asyncio.get_running_loop()

    def stop() -> None:
        profile.disable()
        profile.dump_stats(path)

    loop.add_signal_handler(signal.SIGUSR1, profile.enable)
    loop.add_signal_handler(signal.SIGUSR2, stop)


async def _running_jobs(repo: Any, stations: list[str], count: int) -> dict[str, str]:
    """`count` RUNNING jobs, each on a random station, written straight into `jobs` (a planned job needs a scheduler
    and a pass; `--commands` measures delivery, as tests/e2e/test_replicas.py does). Returns job -> station."""
    if count <= 0:
        return {}
    import random
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from skymesh.core.jobs import JobState
    from skymesh.core.model import CelestialTarget
    from skymesh.server.db.models import JobRow

    await repo.create_target(CelestialTarget("bench-vega", "Vega", 279.2, 38.8, magnitude=0.0, exposure_s=10.0))
    now = datetime.now(UTC)
    chosen = {f"bench-job-{i:05d}": random.choice(stations) for i in range(count)}
    async with async_sessionmaker(repo.engine)() as s, s.begin():
        s.add_all(
            JobRow(
                job_id=job_id,
                station_id=sid,
                target_id="bench-vega",
                start=now - timedelta(seconds=30),
                end=now + timedelta(hours=2),
                exposure_s=10.0,
                exposure_count=1,
                state=int(JobState.RUNNING),
                created_at=now,
                updated_at=now,
            )
            for job_id, sid in chosen.items()
        )
    return chosen


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _proc_rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE / 1e6


# ------------------------------------------------------------------------------------------------- agent side


def _batch(seq: int, boot_id: str, at_s: float) -> Any:
    from skymesh.api.agent.v1 import agent_pb2

    request = agent_pb2.ConnectRequest(seq=seq, boot_id=boot_id)
    for i in range(10):
        sample = request.telemetry.samples.add(values={"az": 1.0 * i, "el": 2.0 * i, "snr": 3.0 * i})
        sample.at.FromNanoseconds(int((at_s + i * 0.1) * 1e9))
    return request


async def _agent(
    stub: Any,
    key: str,
    sid: str,
    interval_s: float,
    start_at: float,
    window: tuple[float, float],
    end_at: float,
    linger_s: float = 0.0,
) -> dict[str, Any]:
    """One agent's stream. It also takes commands: each AbortJob's arrival time is recorded (job -> time.time()), and
    every command is reported RECEIVED then SUCCEEDED, as the protocol asks (else the outbox resends it). `linger_s`:
    how long it keeps reading after `end_at` (for commands sent at the end of the window)."""
    import grpc

    from skymesh.api.agent.v1 import agent_pb2

    grpc_eof = grpc.aio.EOF  # type: ignore[attr-defined]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    boot = str(uuid.uuid4())
    sent: dict[int, float] = {}
    acks: list[float] = []
    aborts: dict[str, float] = {}
    acked = 0
    t0 = time.perf_counter()
    call = stub.Connect(metadata=(("authorization", f"Bearer {key}"),))
    lock = asyncio.Lock()  # one write at a time: the reader reports commands while the loop sends

    async def write(message: Any) -> None:
        async with lock:
            await call.write(message)

    try:
        await call.write(
            agent_pb2.ConnectRequest(
                hello=agent_pb2.Hello(station_id=sid, agent_version="bench", protocol_version=1, boot_id=boot)
            )
        )
        welcome = await call.read()
        if welcome is None or welcome.WhichOneof("body") != "welcome":
            return {"sid": sid, "connected": False, "error": "no welcome"}
        hello_s = time.perf_counter() - t0

        async def read() -> None:
            nonlocal acked
            while True:
                response = await call.read()
                if response is grpc_eof or response is None:
                    return
                body = response.WhichOneof("body")
                if body == "upstream_ack":
                    now = time.time()
                    committed = response.upstream_ack.committed_seq
                    for seq in range(acked + 1, committed + 1):
                        at = sent.pop(seq, None)
                        if at is not None and window[0] <= at < window[1]:
                            acks.append(now - at)
                    acked = max(acked, committed)
                elif body == "command":
                    command = response.command
                    if command.HasField("abort_job"):
                        aborts.setdefault(command.abort_job.job_id, time.time())
                    for state in (agent_pb2.COMMAND_STATE_RECEIVED, agent_pb2.COMMAND_STATE_SUCCEEDED):
                        update = agent_pb2.CommandUpdate(command_id=command.command_id, state=state)
                        await write(agent_pb2.ConnectRequest(command_update=update))

        reader = asyncio.create_task(read())
        seq = 0
        # Spread the agents over the interval, as real stations are.
        next_at = time.time() + interval_s * (hash(sid) % 1000) / 1000
        next_beat = time.time() + 10.0
        while time.time() < end_at and not reader.done():
            now = time.time()
            if now >= next_beat:
                await write(agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat()))
                next_beat += 10.0
            if now >= next_at:
                seq += 1
                sent[seq] = now
                await write(_batch(seq, boot, now))
                next_at += interval_s
            await asyncio.sleep(max(0.0, min(next_at, next_beat, end_at) - time.time()))
        # Give the last acks (and commands) a moment, then leave.
        deadline = time.time() + max(5.0, linger_s)
        linger_until = end_at + linger_s
        while (acked < seq or time.time() < linger_until) and time.time() < deadline and not reader.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        call.cancel()
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            return {"sid": sid, "connected": False, "error": f"reader: {reader.exception()!r}"[:200]}
        return {
            "sid": sid,
            "boot": boot,
            "connected": True,
            "hello_s": hello_s,
            "acks": acks,
            "acked": acked,
            "aborts": aborts,
        }
    except Exception as exc:
        call.cancel()
        return {"sid": sid, "connected": False, "error": f"{type(exc).__name__}: {exc}"[:200]}


def _worker(
    args: tuple[str, list[tuple[str, str, float]], float, tuple[float, float], float, int, float],
) -> list[Any]:
    address, agents, start_at, window, end_at, per_channel, linger_s = args

    async def run() -> list[Any]:
        import grpc

        from skymesh.api.agent.v1 import agent_pb2_grpc

        channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(0, len(agents), per_channel)
        ]
        stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
        ramp = max(1.0, len(agents) / 500)  # connects spread over a ramp, not one wave
        tasks = [
            _agent(
                stubs[i // per_channel], key, sid, interval, start_at + ramp * i / len(agents), window, end_at, linger_s
            )
            for i, (sid, key, interval) in enumerate(agents)
        ]
        results = await asyncio.gather(*tasks)
        for c in channels:
            await c.close(None)
        return results

    return asyncio.run(run())


# ------------------------------------------------------------------------------------------------- one run


async def _database(kind: str, tmp: str) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{Path(tmp) / 'stream.sqlite3'}", ""
    import asyncpg

    name = f"skymesh_stream_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", name


async def _commands_open(database_url: str) -> int:
    """Commands in the outbox that the agents' reports have not made SUCCEEDED (the benchmark's agents report each)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from skymesh.api.agent.v1 import agent_pb2

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = text("SELECT count(*) FROM commands WHERE state != :done")
            return int((await conn.execute(query, {"done": agent_pb2.COMMAND_STATE_SUCCEEDED})).scalar_one())
    finally:
        await engine.dispose()


async def _stored(database_url: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(station, boot) -> (rows, distinct seqs, max seq) as stored."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT station_id, boot_id, count(*), count(DISTINCT seq), max(seq) FROM telemetry"
                    " GROUP BY station_id, boot_id"
                )
            )
            return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in rows}
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _server(
    db: str, tmp: str, stations: int, server_path: str, jobs: int = 0
) -> Iterator[tuple[subprocess.Popen[bytes], Any, str]]:
    """A fresh database and the server process on it, with K stations and their keys (and `jobs` RUNNING jobs to
    cancel); stopped and dropped after."""
    database_url, pg_name = asyncio.run(_database(db, tmp))
    out = Path(tmp) / "server.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = server_path or env.get("PYTHONPATH", "")
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", database_url, tmp, str(stations), str(out), str(jobs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(Path(tmp) / "server.log", "w"),  # noqa: SIM115 - closed with the directory
    )
    try:
        deadline = time.time() + 60 + stations * 0.05
        while not out.exists():
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server did not start: {(Path(tmp) / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield server, json.loads(out.read_text()), database_url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        keep = os.environ.get("SKYMESH_BENCH_SERVER_LOG", "")
        if keep:  # the server's log survives the temporary directory
            Path(keep).write_text((Path(tmp) / "server.log").read_text())
        if pg_name:
            asyncio.run(_drop(pg_name))


async def _cancel_at_rate(address: str, jobs: list[str], rate_per_s: float, window: tuple[float, float]) -> Any:
    """CancelJob through the control API at `rate_per_s` over `window` (each call on its own schedule, not after the
    previous reply). Returns job -> time.time() just before its call, job -> the reply's delay (s), and the errors."""
    import grpc

    from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc

    sent: dict[str, float] = {}
    replied_s: dict[str, float] = {}
    errors: list[str] = []
    async with grpc.aio.insecure_channel(address) as channel:
        api = observations_pb2_grpc.JobServiceStub(channel)

        async def cancel(job_id: str, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.time()))
            sent[job_id] = time.time()
            try:
                await api.CancelJob(observations_pb2.CancelJobRequest(job_id=job_id, reason="bench"), timeout=30)
                replied_s[job_id] = time.time() - sent[job_id]
            except grpc.aio.AioRpcError as exc:
                errors.append(f"{exc.code().name}: {exc.details()}"[:200])

        count = min(len(jobs), int(rate_per_s * (window[1] - window[0])))
        await asyncio.gather(*(cancel(jobs[i], window[0] + i / rate_per_s) for i in range(count)))
    return sent, replied_s, errors


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def run(
    *,
    db: str,
    stations: int,
    fast: int,
    seconds: float,
    warmup_s: float,
    procs: int,
    per_channel: int,
    server_path: str = "",
    commands_per_s: float = 0.0,
) -> dict[str, Any]:
    jobs = int(commands_per_s * seconds) + 1 if commands_per_s > 0 else 0
    with tempfile.TemporaryDirectory() as tmp, _server(db, tmp, stations, server_path, jobs) as (server, info, url):
        keys = info["keys"]
        agents = [(sid, keys[sid], 1.0 if i < fast else 10.0) for i, sid in enumerate(sorted(keys))]
        start_at = time.time() + 2.0
        ramp = max(1.0, stations / procs / 500)
        window = (start_at + ramp + warmup_s, start_at + ramp + warmup_s + seconds)
        end_at = window[1]
        shares = [agents[i::procs] for i in range(procs)]
        linger_s = 10.0 if jobs else 0.0  # a CancelJob sent at the window's end under load: its AbortJob, reports
        cancels: tuple[dict[str, float], dict[str, float], list[str]] = ({}, {}, [])
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(procs) as pool:
            pending = pool.map_async(
                _worker, [(info["address"], s, start_at, window, end_at, per_channel, linger_s) for s in shares]
            )
            time.sleep(max(0.0, window[0] - time.time()))
            if os.environ.get("SKYMESH_BENCH_PROFILE"):
                server.send_signal(signal.SIGUSR1)
            cpu0, t0 = _proc_cpu_s(server.pid), time.time()
            if jobs:
                cancels = asyncio.run(_cancel_at_rate(info["address"], sorted(info["jobs"]), commands_per_s, window))
            time.sleep(max(0.0, window[1] - time.time()))
            cpu1, t1 = _proc_cpu_s(server.pid), time.time()
            if os.environ.get("SKYMESH_BENCH_PROFILE"):
                server.send_signal(signal.SIGUSR2)
            rss = _proc_rss_mb(server.pid)
            results = [r for part in pending.get() for r in part]
        time.sleep(1.0)
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        groups_file = Path(tmp) / "server.json.groups"
        groups = json.loads(groups_file.read_text()) if groups_file.exists() else {}
        stored = asyncio.run(_stored(url))
        commands_open = asyncio.run(_commands_open(url)) if jobs else 0
    connected = [r for r in results if r["connected"]]
    acks = [a for r in connected for a in r["acks"]]
    lost = sum(max(0, r["acked"] - stored.get((r["sid"], r["boot"]), (0, 0, 0))[1]) for r in connected)
    duplicates = sum(rows - distinct for rows, distinct, _ in stored.values())
    stored_in_window = len(acks)
    cpu_s = cpu1 - cpu0
    errors = sorted({r["error"] for r in results if not r["connected"]})
    sent_at, replied_s, cancel_errors = cancels
    received_at = {job: at for r in connected for job, at in r["aborts"].items()}
    delivery = [received_at[job] - at for job, at in sent_at.items() if job in received_at]
    commands = {
        "commands_sent": len(sent_at),
        "commands_delivered": len(delivery),
        "command_p50_s": _pct(delivery, 0.5),
        "command_p99_s": _pct(delivery, 0.99),
        "command_max_s": _pct(delivery, 1.0),
        "commands_not_succeeded": commands_open,
        "cancel_reply_p50_s": _pct(
            list(replied_s.values()), 0.5
        ),  # the RPC's own time: its transactions, then the push
        "cancel_reply_p99_s": _pct(list(replied_s.values()), 0.99),
        "command_errors": sorted(set(cancel_errors))[:3],
    }
    return {
        "db": db,
        "stations": stations,
        "fast": fast,
        "procs": procs,
        "per_channel": per_channel,
        "connected": len(connected),
        "hello_p50_s": _pct([r["hello_s"] for r in connected], 0.5),
        "hello_p99_s": _pct([r["hello_s"] for r in connected], 0.99),
        "ack_p50_s": _pct(acks, 0.5),
        "ack_p99_s": _pct(acks, 0.99),
        "offered_per_s": round(fast + (stations - fast) / 10, 1),
        "stored_per_s": round(stored_in_window / (t1 - t0), 1),
        "server_cpu_pct": round(100 * cpu_s / (t1 - t0), 1),
        "server_rss_mb": round(rss, 1),
        "server_cpu_us_per_msg": round(1e6 * cpu_s / stored_in_window) if stored_in_window else None,
        "acked_total": sum(r["acked"] for r in connected),
        "messages_per_group": round(groups["messages"] / groups["groups"], 2) if groups.get("groups") else None,
        "lost": lost,
        "duplicates": duplicates,
        **(commands if jobs else {}),
        "errors": errors[:3],
        "loadavg": os.getloadavg()[0],
    }


# ------------------------------------------------------------------------------------------------- reconnect storm
#
# `--storm`: every agent connects (spread over the ramp) and sends as above; once ALL K are connected (a barrier
# across the generator processes), every stream is cut at the same moment and every agent reconnects at once with
# the same boot (resending from its Welcome's cursor, as a real agent does). Measured: Hello->Welcome of the storm
# (from the first attempt; an agent told UNAVAILABLE waits the advised retry-after and tries again, which counts),
# server CPU from the cut to the last Welcome divided by K (CPU-us per connect), and then a steady-state window that
# starts `--warmup` s after the last Welcome.

_RETRY_KEYS = ("retry-after", "skymesh-error-retry-after-s")


class _StormAgent:
    def __init__(self, stub: Any, key: str, sid: str, interval_s: float) -> None:
        self.stub, self.key, self.sid, self.interval_s = stub, key, sid, interval_s
        self.boot = str(uuid.uuid4())
        self.seq = 0  # last seq sent on the current stream
        self.acked = 0
        self.sent: dict[int, float] = {}
        self.acks: list[float] = []
        self.hello_s: list[float] = []  # first connect, then the storm's
        self.welcome_at = 0.0
        self.retries = 0
        self.error = ""

    async def connect(self, deadline: float, *, persist: bool = False) -> Any:
        """Hello until Welcome (honouring a shed's retry-after; `persist`: retrying any failure after 1 s, as an
        agent does, for the first connects before the storm); resend from the Welcome's cursor. Returns the call."""
        import grpc

        from skymesh.api.agent.v1 import agent_pb2

        t0 = time.perf_counter()
        while True:
            call = self.stub.Connect(metadata=(("authorization", f"Bearer {self.key}"),))
            try:
                await call.write(
                    agent_pb2.ConnectRequest(
                        hello=agent_pb2.Hello(
                            station_id=self.sid, agent_version="bench", protocol_version=1, boot_id=self.boot
                        )
                    )
                )
                welcome = await call.read()
                if welcome is None or welcome is grpc.aio.EOF:  # type: ignore[attr-defined]
                    await call.wait_for_connection()
                    raise RuntimeError(f"stream ended before Welcome: {await call.code()}")
            except grpc.aio.AioRpcError as exc:
                trailing = dict(exc.trailing_metadata() or ())
                advised = next((float(trailing[k]) for k in _RETRY_KEYS if k in trailing), None)
                shed = exc.code() == grpc.StatusCode.UNAVAILABLE and advised is not None
                if not (shed or persist) or time.time() > deadline:
                    raise
                self.retries += 1
                await asyncio.sleep(advised if advised is not None else 1.0)
                continue
            self.hello_s.append(time.perf_counter() - t0)
            self.welcome_at = time.time()
            resume = {r.boot_id: r.committed_seq for r in welcome.welcome.resume}
            self.seq = self.acked = max(self.acked, resume.get(self.boot, 0))
            self.sent = {s: t for s, t in self.sent.items() if s > self.seq}  # the rest are resent with new seqs
            return call

    async def run(self, call: Any, window: tuple[float, float], until: asyncio.Event, end_at: float) -> None:
        """Send telemetry and heartbeats on `call` until `until` is set (the storm's cut) or `end_at`."""
        import grpc

        from skymesh.api.agent.v1 import agent_pb2

        async def read() -> None:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF or response is None:  # type: ignore[attr-defined]
                    return
                if response.WhichOneof("body") == "upstream_ack":
                    now = time.time()
                    committed = response.upstream_ack.committed_seq
                    for seq in range(self.acked + 1, committed + 1):
                        at = self.sent.pop(seq, None)
                        if at is not None and window[0] <= at < window[1]:
                            self.acks.append(now - at)
                    self.acked = max(self.acked, committed)

        reader = asyncio.create_task(read())
        stop = asyncio.create_task(until.wait())
        try:
            next_at = time.time() + self.interval_s * (hash(self.sid) % 1000) / 1000
            next_beat = time.time() + 10.0
            while time.time() < end_at and not reader.done() and not until.is_set():
                now = time.time()
                if now >= next_beat:
                    await call.write(agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat()))
                    next_beat += 10.0
                if now >= next_at:
                    self.seq += 1
                    self.sent[self.seq] = now
                    await call.write(_batch(self.seq, self.boot, now))
                    next_at += self.interval_s
                pause = max(0.0, min(next_at, next_beat, end_at) - time.time())
                await asyncio.wait([stop, reader], timeout=pause, return_when=asyncio.FIRST_COMPLETED)
            if not until.is_set():  # the end: give the last acks a moment
                deadline = time.time() + 5.0
                while self.acked < self.seq and time.time() < deadline and not reader.done():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        finally:
            stop.cancel()
            call.cancel()
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader


def _storm_worker(args: tuple[Any, ...]) -> dict[str, Any]:
    address, agents, start_at, per_channel, barrier, lead, server_pid, warmup_s, seconds = args

    async def run() -> dict[str, Any]:
        import grpc

        from skymesh.api.agent.v1 import agent_pb2_grpc

        channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(0, len(agents), per_channel)
        ]
        stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
        fleet = [_StormAgent(stubs[i // per_channel], key, sid, iv) for i, (sid, key, iv) in enumerate(agents)]
        ramp = max(1.0, len(agents) / 500)
        cut = asyncio.Event()
        far = time.time() + 3600.0
        no_window = (0.0, 0.0)
        marks: dict[str, float] = {}
        debug_sample: list[str] = []

        async def first(i: int, agent: _StormAgent) -> Any:
            await asyncio.sleep(max(0.0, start_at + ramp * i / len(fleet) - time.time()))
            call = await agent.connect(time.time() + 600, persist=True)
            return call, asyncio.create_task(agent.run(call, no_window, cut, far))

        async def sync() -> None:
            await asyncio.to_thread(barrier.wait, 900)

        try:
            firsts = await asyncio.gather(*(first(i, a) for i, a in enumerate(fleet)))
        except Exception:
            barrier.abort()
            raise
        await sync()  # every process's agents are connected
        if lead:
            marks["cpu_cut"], marks["cut"] = _proc_cpu_s(server_pid), time.time()
            if os.environ.get("SKYMESH_BENCH_PROFILE_STORM"):
                os.kill(server_pid, signal.SIGUSR1)
        cut.set()
        await asyncio.gather(*(task for _call, task in firsts))
        first_retries = sum(a.retries for a in fleet)
        for agent in fleet:
            agent.retries = 0  # from here: the storm's retries after a shed
        calls = await asyncio.gather(*(a.connect(time.time() + 600) for a in fleet), return_exceptions=True)
        await sync()  # every agent holds its storm Welcome
        if lead:
            marks["cpu_storm_end"], marks["storm_end"] = _proc_cpu_s(server_pid), time.time()
            if os.environ.get("SKYMESH_BENCH_PROFILE_STORM"):
                os.kill(server_pid, signal.SIGUSR2)
        window_start = time.time() + warmup_s
        window = (window_start, window_start + seconds)
        done = asyncio.Event()
        runs = [
            asyncio.create_task(a.run(c, window, done, window[1]))
            for a, c in zip(fleet, calls, strict=True)
            if not isinstance(c, BaseException)
        ]
        for agent, c in zip(fleet, calls, strict=True):
            if isinstance(c, BaseException):
                agent.error = f"{type(c).__name__}: {c}"[:200]
                debug = getattr(c, "debug_error_string", None)
                if callable(debug) and not debug_sample:
                    debug_sample.append(str(debug())[:2000])
        if lead:
            await asyncio.sleep(max(0.0, window[0] - time.time()))
            marks["cpu_w0"], marks["w0"] = _proc_cpu_s(server_pid), time.time()
            await asyncio.sleep(max(0.0, window[1] - time.time()))
            marks["cpu_w1"], marks["w1"] = _proc_cpu_s(server_pid), time.time()
            marks["rss_mb"] = _proc_rss_mb(server_pid)
        await asyncio.gather(*runs)
        for c in channels:
            await c.close(None)
        return {
            "marks": marks,
            "first_retries": first_retries,
            "debug": debug_sample,
            "agents": [
                {
                    "sid": a.sid,
                    "boot": a.boot,
                    "hello_s": a.hello_s,
                    "welcome_at": a.welcome_at,
                    "acks": a.acks,
                    "acked": a.acked,
                    "retries": a.retries,
                    "error": a.error,
                }
                for a in fleet
            ],
        }

    return asyncio.run(run())


def run_storm(
    *,
    db: str,
    stations: int,
    fast: int,
    seconds: float,
    warmup_s: float,
    procs: int,
    per_channel: int,
    server_path: str,
) -> dict[str, Any]:
    """One reconnect-storm run (see the section comment above)."""
    with tempfile.TemporaryDirectory() as tmp, _server(db, tmp, stations, server_path) as (server, info, url):
        keys = info["keys"]
        agents = [(sid, keys[sid], 1.0 if i < fast else 10.0) for i, sid in enumerate(sorted(keys))]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager, ctx.Pool(procs) as pool:
            barrier = manager.Barrier(procs)
            start_at = time.time() + 2.0
            parts = pool.map(
                _storm_worker,
                [
                    (
                        info["address"],
                        agents[i::procs],
                        start_at,
                        per_channel,
                        barrier,
                        i == 0,
                        server.pid,
                        warmup_s,
                        seconds,
                    )
                    for i in range(procs)
                ],
            )
        time.sleep(1.0)
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        stored = asyncio.run(_stored(url))
    marks = parts[0]["marks"]
    fleet = [a for p in parts for a in p["agents"]]
    ok = [a for a in fleet if not a["error"] and len(a["hello_s"]) == 2]
    acks = [x for a in ok for x in a["acks"]]
    lost = sum(max(0, a["acked"] - stored.get((a["sid"], a["boot"]), (0, 0, 0))[1]) for a in fleet)
    window_s = marks["w1"] - marks["w0"]
    return {
        "mode": "storm",
        "db": db,
        "stations": stations,
        "fast": fast,
        "procs": procs,
        "reconnected": len(ok),
        "first_hello_p50_s": _pct([a["hello_s"][0] for a in fleet if a["hello_s"]], 0.5),
        "storm_hello_p50_s": _pct([a["hello_s"][1] for a in ok], 0.5),
        "storm_hello_p99_s": _pct([a["hello_s"][1] for a in ok], 0.99),
        "storm_hello_max_s": _pct([a["hello_s"][1] for a in ok], 1.0),
        "storm_s": round(marks["storm_end"] - marks["cut"], 2),
        "shed_retries": sum(a["retries"] for a in fleet),
        # Agents shed at least once in the storm (each came back after the advised retry-after), and the
        # Hello->Welcome of the others, answered at their first attempt: what admission keeps bounded.
        "shed_agents": sum(1 for a in fleet if a["retries"]),
        "served_first": len(first := [a["hello_s"][1] for a in ok if not a["retries"]]),
        "served_first_p99_s": _pct(first, 0.99) if first else None,
        "first_connect_retries": sum(p["first_retries"] for p in parts),
        "server_cpu_us_per_connect": round(1e6 * (marks["cpu_storm_end"] - marks["cpu_cut"]) / stations),
        "steady_ack_p50_s": _pct(acks, 0.5),
        "steady_ack_p99_s": _pct(acks, 0.99),
        "steady_stored_per_s": round(len(acks) / window_s, 1),
        "steady_server_cpu_pct": round(100 * (marks["cpu_w1"] - marks["cpu_w0"]) / window_s, 1),
        "steady_cpu_us_per_msg": round(1e6 * (marks["cpu_w1"] - marks["cpu_w0"]) / len(acks)) if acks else None,
        "server_rss_mb": round(marks["rss_mb"], 1),
        "lost": lost,
        "duplicates": sum(rows - distinct for rows, distinct, _ in stored.values()),
        "errors": sorted({a["error"] for a in fleet if a["error"]})[:3],
        "failed": sum(1 for a in fleet if a["error"]),
        "error_debug": [d for p in parts for d in p["debug"]][:2],
        "loadavg": os.getloadavg(),
    }


async def _drop(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _run_server(main: Any) -> None:
    """The server's coroutine on the event loop `skymesh server` uses (uvloop when the tree being measured picks
    it, `skymesh.server.runloop`; a tree from before that module runs on asyncio's, as its `skymesh server` did)."""
    try:
        from skymesh.server.runloop import run as run_loop
    except ImportError:
        asyncio.run(main)
        return
    run_loop(main)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        profile_to = os.environ.get("SKYMESH_BENCH_PROFILE", "")
        if profile_to:  # cProfile of the server's event-loop thread over the measured window, written at its exit
            import cProfile

            # The event-loop thread's CPU time, not wall time: on a shared machine a wall-clock profile charges
            # whatever frame was running when the process was descheduled.
            profile = cProfile.Profile(time.thread_time)
            # The generator signals the window's start (SIGUSR1) and end (SIGUSR2): setup (K stations, K argon2
            # keys) and the connect ramp stay out of the profile.
            signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
            signal.signal(signal.SIGUSR2, lambda *_: profile.disable())
            _run_server(_serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])))
            profile.disable()
            profile.dump_stats(profile_to)
            return
        _run_server(_serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--stations", type=int, default=100, help="K agent streams")
    parser.add_argument("--fast", type=int, default=-1, help="agents sending 1 batch/s (default all); rest 1/10 s")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--per-channel", type=int, default=10, help="agent streams per HTTP/2 connection")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--server-path", default="", help="PYTHONPATH for the server process (baseline tree)")
    parser.add_argument("--storm", action="store_true", help="measure a reconnect storm of all K, then steady state")
    parser.add_argument(
        "--commands",
        type=float,
        default=0.0,
        help="CancelJob calls per second over the measured window, each on a RUNNING job of a random agent; reports "
        "CancelJob -> AbortJob-at-the-agent p50/p99/max and delivered/sent (default 0: off; not with --storm)",
    )
    args = parser.parse_args()
    if args.storm and args.commands:
        parser.error("--commands measures steady state: not with --storm")
    fast = args.stations if args.fast < 0 else args.fast
    for _ in range(args.runs):
        common: dict[str, Any] = {
            "db": args.db,
            "stations": args.stations,
            "fast": fast,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "procs": args.procs,
            "per_channel": args.per_channel,
            "server_path": args.server_path,
        }
        result = run_storm(**common) if args.storm else run(**common, commands_per_s=args.commands)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
