"""The gRPC floor under the agent stream (issue 8): server CPU per message with no SkyMesh code at all.

A server process answers every `ConnectRequest` on `AgentService.Connect` with an `UpstreamAck` at once (no
validation, no database, no sessions), either on grpc.aio (the event loop `skymesh server` uses: uvloop when
installed) or on the synchronous grpc server with one thread per open stream (`--mode sync`). K streams, 10 per
HTTP/2 connection, each send the benchmark's telemetry batch (3 channels x 10 samples) once a second and read
the acks. Reported: the server's own CPU time over the window divided by the messages answered in it, and its RSS.
What `benchmarks/stream.py` measures above this is SkyMesh's own cost per message.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/grpc_floor.py --mode aio|sync --streams 1000 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream import _batch, _proc_cpu_s, _proc_rss_mb  # the same message and /proc readings

_PENDING = [("grpc.server.max_pending_requests", 20_000), ("grpc.server.max_pending_requests_hard_limit", 20_000)]


def _serve(mode: str, streams: int, out: str) -> None:
    import grpc

    from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc

    def ack(request: Any) -> Any:
        return agent_pb2.ConnectResponse(
            upstream_ack=agent_pb2.UpstreamAck(boot_id=request.boot_id, committed_seq=request.seq)
        )

    if mode == "sync":
        from concurrent.futures import ThreadPoolExecutor

        class SyncEcho(agent_pb2_grpc.AgentServiceServicer):
            def Connect(self, request_iterator: Any, context: Any) -> Any:  # type: ignore[override]
                for request in request_iterator:
                    yield ack(request)

        server = grpc.server(ThreadPoolExecutor(max_workers=streams + 16), maximum_concurrent_rpcs=None)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(SyncEcho(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        Path(out).write_text(json.dumps({"address": f"127.0.0.1:{port}"}))
        stopping: list[int] = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        while not stopping:
            time.sleep(0.2)
        server.stop(0.5)
        return

    eof = grpc.aio.EOF  # type: ignore[attr-defined]

    class AioEcho(agent_pb2_grpc.AgentServiceServicer):
        async def Connect(self, request_iterator: Any, context: Any) -> None:  # type: ignore[override]
            while True:
                request = await context.read()
                if request is eof:
                    return
                await context.write(ack(request))

    async def main() -> None:
        server = grpc.aio.server(options=_PENDING)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(AioEcho(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await asyncio.to_thread(Path(out).write_text, json.dumps({"address": f"127.0.0.1:{port}"}))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(0.5)

    from skymesh.server.runloop import run

    run(main())


def _clients(args: tuple[str, int, float, float, tuple[float, float]]) -> tuple[int, int]:
    """(streams acked at least once, acks in the window)."""
    address, streams, start_at, end_at, window = args

    async def run() -> tuple[int, int]:
        import grpc

        from skymesh.api.agent.v1 import agent_pb2_grpc

        channels = [grpc.aio.insecure_channel(address) for _ in range(0, streams, 10)]
        stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
        counted = 0
        alive = 0

        async def one(i: int) -> None:
            nonlocal counted, alive
            await asyncio.sleep(max(0.0, start_at + i / max(1, streams) - time.time()))
            call = stubs[i // 10].Connect()
            seq = 0
            seen = False
            while time.time() < end_at:
                seq += 1
                sent = time.time()
                await call.write(_batch(seq, "boot", sent))
                await call.read()
                if not seen:
                    seen, alive = True, alive + 1
                if window[0] <= sent < window[1]:
                    counted += 1
                await asyncio.sleep(max(0.0, sent + 1.0 - time.time()))
            await call.done_writing()
            call.cancel()

        await asyncio.gather(*(one(i) for i in range(streams)))
        for c in channels:
            await c.close(None)
        return alive, counted

    return asyncio.run(run())


def run(mode: str, streams: int, seconds: float, warmup: float, procs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "server.json"
        server = subprocess.Popen([sys.executable, __file__, "serve", mode, str(streams), str(out)])
        try:
            while not out.exists():
                time.sleep(0.1)
            address = json.loads(out.read_text())["address"]
            start_at = time.time() + 1.0
            window = (start_at + 1.0 + warmup, start_at + 1.0 + warmup + seconds)
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(procs) as pool:
                pending = pool.map_async(
                    _clients, [(address, streams // procs, start_at, window[1] + 1.0, window) for _ in range(procs)]
                )
                time.sleep(max(0.0, window[0] - time.time()))
                cpu0, t0 = _proc_cpu_s(server.pid), time.time()
                time.sleep(max(0.0, window[1] - time.time()))
                cpu1, t1 = _proc_cpu_s(server.pid), time.time()
                rss = _proc_rss_mb(server.pid)
                parts = pending.get()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    acked = sum(p[1] for p in parts)
    return {
        "mode": mode,
        "streams": streams,
        "streams_alive": sum(p[0] for p in parts),
        "messages_per_s": round(acked / (t1 - t0), 1),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "server_cpu_us_per_msg": round(1e6 * (cpu1 - cpu0) / acked) if acked else None,
        "server_rss_mb": round(rss, 1),
        "loadavg": os.getloadavg()[0],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["aio", "sync"], default="aio")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.runs):
        print(json.dumps(run(args.mode, args.streams, args.seconds, args.warmup, args.procs)), flush=True)


if __name__ == "__main__":
    main()
