"""Agents coming back after their server is killed and restarted (issue 8 part 6), and the backoff's shape.

The server is a separate process (the protocol double, one port per station) killed with SIGKILL and started again
on the same ports: the agents' gRPC state is the real one, including the subchannel backoff that used to keep them
failing with a stale "Connection refused" for up to two minutes after the server was back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import time
from pathlib import Path

import grpc

from skymesh.agent.link import _CallFailed, _retry_after_s, backoff_wait_s, channel_options
from skymesh.agent.runtime import Agent
from tests.agent.conftest import API_KEY, running, telescope_config

_ROOT = str(Path(__file__).resolve().parents[2])
AGENTS = 4
RECONNECT_MAX_S = 2.0
OUTAGE_S = 15.0  # long enough for gRPC's own subchannel backoff (1 s x 1.6^n) to pass 10 s

_SERVER = """
import asyncio, sys, time
from tests.agent.fake_server import FakeAgentService
from grpc import aio
from skymesh.api.agent.v1 import agent_pb2_grpc

async def main():
    servers = []
    for arg in sys.argv[2:]:
        station, port = arg.split("=")
        service = FakeAgentService(station, sys.argv[1])
        service.on_hello = lambda hello, s=station: print("hello", s, time.time(), flush=True) or []
        server = aio.server()
        agent_pb2_grpc.add_AgentServiceServicer_to_server(service, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        servers.append(server)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.hellos: list[tuple[str, float]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        args = [f"{s}={p}" for s, p in self.ports.items()]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SERVER, API_KEY, *args,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": _ROOT},
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line.strip() == b"ready", line
        self._reader = asyncio.create_task(self._read(self.proc.stdout))

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        async for line in stdout:
            _, station, at = line.decode().split()
            self.hellos.append((station, float(at)))

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


async def _until(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_every_agent_is_back_within_its_cap_after_a_server_restart(tmp_path: Path) -> None:
    ports = {f"st-{i}": _free_port() for i in range(AGENTS)}
    server = _Server(ports)
    await server.start()
    agents = [
        Agent(
            telescope_config(
                tmp_path / station, port, station_id=station, reconnect_initial_s=0.5, reconnect_max_s=RECONNECT_MAX_S
            )
        )
        for station, port in ports.items()
    ]
    try:
        async with contextlib.AsyncExitStack() as stack:
            for agent in agents:
                await stack.enter_async_context(running(agent))
            await _until(lambda: {s for s, _ in server.hellos} == set(ports), 20, "first connects")
            await server.kill()
            await asyncio.sleep(OUTAGE_S)
            restarted = server.hellos.copy()
            await server.start()
            started_at = time.time()
            await _until(
                lambda: {s for s, _ in server.hellos[len(restarted) :]} == set(ports),
                RECONNECT_MAX_S + 5.0 + 5.0,
                "every agent back",
            )
            back = {s: at - started_at for s, at in reversed(server.hellos[len(restarted) :])}
            print(f"back after restart (s): {sorted(round(v, 2) for v in back.values())}")
            assert max(back.values()) <= RECONNECT_MAX_S + 5.0, back
    finally:
        if server.proc is not None and server.proc.returncode is None:
            await server.kill()


def test_full_jitter_spreads_over_the_whole_cap() -> None:
    rng = random.Random(7)
    waits = [backoff_wait_s(30.0, rng) for _ in range(2000)]
    assert min(waits) >= 0.3 and max(waits) <= 30.0
    below_a_third = sum(w < 10.0 for w in waits) / len(waits)
    assert 0.28 < below_a_third < 0.39  # uniform over [0, 30]: a third below 10 s (the old "equal jitter": none)


def test_retry_after_is_read_from_trailing_metadata() -> None:
    shed = _CallFailed(grpc.StatusCode.UNAVAILABLE, "overloaded", (("retry-after", "12.5"),))
    assert _retry_after_s(shed) == 12.5
    legacy = _CallFailed(grpc.StatusCode.UNAVAILABLE, "db", (("skymesh-error-retry-after-s", "2"),))
    assert _retry_after_s(legacy) == 2.0
    exhausted = _CallFailed(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", (("retry-after", "3"),))
    assert _retry_after_s(exhausted) == 3.0
    assert _retry_after_s(_CallFailed(grpc.StatusCode.UNAVAILABLE, "x", (("retry-after", "soon"),))) is None
    assert _retry_after_s(_CallFailed(grpc.StatusCode.UNAVAILABLE, "x", (("retry-after", "-1"),))) is None
    assert _retry_after_s(_CallFailed(grpc.StatusCode.INTERNAL, "x", (("retry-after", "5"),))) is None
    assert ("grpc.use_local_subchannel_pool", 1) in channel_options()
