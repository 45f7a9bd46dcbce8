"""CPU per upstream message of the server's own per-message steps, without gRPC or a database (issue 8).

For the stream benchmark's telemetry batch (3 channels x 10 samples, `benchmarks/stream.py`) and a heartbeat: the
guard's deserializer as the server installs it (`skymesh.api.validation.parse`, with the telemetry samples deferred
to the converter where the tree does that), `telemetry_from_proto` (check and convert to the stored columns and
blob), and the health detectors' `observe`. Process CPU time, best of `--repeat` rounds of `--n` messages, so a
before/after on a loaded machine compares trees, not neighbours:

    PYTHONPATH=DIR .venv/bin/python benchmarks/upstream_cpu.py [--n 20000] [--channels az,el,snr]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _best_us(step: Callable[[], Any], n: int, repeat: int) -> float:
    step()
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(n):
            step()
        best = min(best, time.process_time() - started)
    return round(1e6 * best / n, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--channels", default="az,el,snr", help="channel names of each sample (comma-separated)")
    args = parser.parse_args()
    from skymesh.api import validation
    from skymesh.api.agent.v1 import agent_pb2
    from skymesh.server.health import HealthMonitor
    from skymesh.server.wire import telemetry_from_proto

    names = args.channels.split(",")
    request = agent_pb2.ConnectRequest(seq=1, boot_id="0b7f2c1e-5d0a-4c7e-9a51-6f1b0f3c2d4e")
    for i in range(10):
        sample = request.telemetry.samples.add(values={name: float(i * (j + 1)) for j, name in enumerate(names)})
        sample.at.FromNanoseconds(int((1_790_000_000 + i * 0.1) * 1e9))
    raw = request.SerializeToString()
    beat = agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat()).SerializeToString()
    deferred = getattr(validation, "CHECKED_WHEN_CONVERTED", None)
    if deferred is not None:

        def guard(data: bytes) -> Any:
            return validation.parse(agent_pb2.ConnectRequest, data, deferred=deferred)
    else:

        def guard(data: bytes) -> Any:
            return validation.parse(agent_pb2.ConnectRequest, data)

    parsed = guard(raw)
    item = telemetry_from_proto(parsed.telemetry, parsed.boot_id)

    async def _none(*_: Any) -> None:
        return None

    monitor = HealthMonitor(_none, _none)

    def observe() -> None:
        coroutine = monitor.observe("gs1", item.columns)
        with contextlib.suppress(StopIteration):
            coroutine.send(None)

    asyncio.run(monitor.observe("gs1", item.columns))  # the station's deriver made (its slew-rate default)
    result = {
        "guard_parse_us": _best_us(lambda: guard(raw), args.n, args.repeat),
        "telemetry_from_proto_us": _best_us(
            lambda: telemetry_from_proto(parsed.telemetry, parsed.boot_id), args.n, args.repeat
        ),
        "health_observe_us": _best_us(observe, args.n, args.repeat),
        "heartbeat_parse_us": _best_us(lambda: guard(beat), args.n, args.repeat),
    }
    result["telemetry_total_us"] = round(
        result["guard_parse_us"] + result["telemetry_from_proto_us"] + result["health_observe_us"], 2
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
