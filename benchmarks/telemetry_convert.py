"""CPU per telemetry batch of the server's conversion (`telemetry_from_proto`) plus what the insert then serializes.

One 10-sample x 3-channel batch (the stream benchmark's), converted `--n` times in this process; process CPU time.
Run it against two trees for a before/after of the conversion alone (a tree whose TelemetryIn still holds JSON
samples also pays their `json.dumps`, as its insert did):

    PYTHONPATH=DIR .venv/bin/python benchmarks/telemetry_convert.py [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    from skymesh.api.agent.v1 import agent_pb2
    from skymesh.server.wire import telemetry_from_proto

    batch = agent_pb2.TelemetryBatch(boot_id="boot")
    for i in range(10):
        sample = batch.samples.add()
        sample.at.seconds, sample.at.nanos = 1_790_000_000 + i, 123_456_789
        sample.values.update({"az": 1.0 + i, "el": 2.0, "temp": 3.5})
    started = time.process_time()
    for _ in range(args.n):
        item = telemetry_from_proto(batch, "boot")
    convert = time.process_time() - started
    serialize = 0.0
    samples = getattr(item, "samples", None)
    if samples is not None:  # stored as JSON: the insert's json.dumps
        started = time.process_time()
        for _ in range(args.n):
            json.dumps(samples)
        serialize = time.process_time() - started
    per = 1e6 / args.n
    result = {"convert_us": round(convert * per, 1), "json_us": round(serialize * per, 1)}
    result["total_us"] = round(result["convert_us"] + result["json_us"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
