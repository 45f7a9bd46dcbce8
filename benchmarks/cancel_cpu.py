"""CPU per CancelJob: server and agent in one process, N CancelJob calls on RUNNING jobs one after the other, each
AbortJob read by a connected agent that reports RECEIVED then SUCCEEDED (issue 8, commands).

On a shared machine wall-clock latencies follow the load; the process CPU time a cancel costs does not (much): it is
the figure to compare trees by. It includes the agent side and the gRPC client (the same code in both trees).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cancel_cpu.py --db sqlite|postgresql --cancels 200
    PYTHONPATH=/work/main .venv/bin/python benchmarks/cancel_cpu.py ...   # another tree's server, same script
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _measure(url: str, data_dir: str, cancels: int) -> dict[str, Any]:
    import grpc
    from sqlalchemy import insert

    from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
    from skymesh.core.jobs import JobState
    from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind
    from skymesh.server import ServerConfig, serve
    from skymesh.server.db.models import JobRow

    server = await serve(
        ServerConfig(
            listen="127.0.0.1:0",
            database_url=url,
            data_dir=data_dir,
            planning_enabled=False,
            scheduler_address="127.0.0.1:9",
            control_auth=False,
            reduction_workers=0,
            shutdown_grace_s=0.5,
        )
    )
    repo = server.repo
    try:
        await repo.create_station(Station("gs1", "GS1", StationKind.GROUND_STATION, GeoLocation(52.0, 4.4, 10.0)))
        key = (await repo.issue_station_key("gs1")).api_key
        await repo.create_target(CelestialTarget("vega", "Vega", 279.2, 38.8))
        now = datetime.now(UTC)
        jobs = [f"job-{i:05d}" for i in range(cancels)]
        async with repo.engine.begin() as conn:
            await conn.execute(
                insert(JobRow),
                [
                    {
                        "job_id": job_id,
                        "station_id": "gs1",
                        "target_id": "vega",
                        "start": now - timedelta(seconds=30),
                        "end": now + timedelta(hours=2),
                        "state": int(JobState.RUNNING),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for job_id in jobs
                ],
            )
        async with grpc.aio.insecure_channel(server.address) as channel:
            stream = agent_pb2_grpc.AgentServiceStub(channel).Connect(metadata=(("authorization", f"Bearer {key}"),))
            hello = agent_pb2.Hello(
                station_id="gs1",
                agent_version="bench",
                protocol_version=1,
                boot_id=str(uuid.uuid4()),
                upstream_next_seq=1,
                capabilities=agent_pb2.Capabilities(kind=common_pb2.STATION_KIND_GROUND_STATION, drivers=["bench"]),
            )
            hello.agent_time.FromDatetime(now)
            await stream.write(agent_pb2.ConnectRequest(hello=hello))
            api = observations_pb2_grpc.JobServiceStub(channel)

            async def next_command() -> Any:
                while True:
                    msg = await asyncio.wait_for(stream.read(), 30)
                    if msg.WhichOneof("body") == "command":
                        return msg.command

            async def report(command: Any, state: int) -> None:
                await stream.write(
                    agent_pb2.ConnectRequest(
                        command_update=agent_pb2.CommandUpdate(
                            command_seq=command.seq, command_id=command.command_id, state=state
                        )
                    )
                )

            # Warm up: the stream is open and the first statements are compiled before the clock starts.
            await api.CancelJob(observations_pb2.CancelJobRequest(job_id=jobs[0], reason="bench"))
            await next_command()
            latencies: list[float] = []
            cpu0, wall0 = time.process_time(), time.perf_counter()
            last: Any = None
            for job_id in jobs[1:]:
                t0 = time.perf_counter()
                await api.CancelJob(observations_pb2.CancelJobRequest(job_id=job_id, reason="bench"))
                last = await next_command()
                latencies.append(time.perf_counter() - t0)
                await report(last, agent_pb2.COMMAND_STATE_RECEIVED)
                await report(last, agent_pb2.COMMAND_STATE_SUCCEEDED)
            for _ in range(3000):  # until SUCCEEDED (5): every report stored
                if (await repo.get_command(last.command_id)).state == 5:
                    break
                await asyncio.sleep(0.01)
            cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
            stream.cancel()
        latencies.sort()
        n = len(latencies)
        return {
            "cancels": n,
            "cpu_ms_per_cancel": round(cpu_s / n * 1000, 2),
            "wall_ms_per_cancel": round(wall_s / n * 1000, 2),
            "abort_p50_ms": round(latencies[n // 2] * 1000, 2),
            "abort_p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2),
        }
    finally:
        await server.stop(grace_s=0.1)


async def _main(db: str, cancels: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if db == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'skymesh.sqlite3'}"
            return await _measure(url, tmp, cancels)
        import asyncpg

        name = f"cmd_cancel_cpu_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        try:
            return await _measure(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", tmp, cancels)
        finally:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--cancels", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(_main(args.db, args.cancels + 1))
    result.update(db=args.db, server=os.environ.get("PYTHONPATH", ""), loadavg=os.getloadavg()[0])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
