"""`skymesh status`: what the network is doing, through the control gRPC API.

    skymesh status [--server ADDR] [--token TOKEN] [--json]

Shows stations with their liveness state, jobs counted by state, and the most recent observations.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show stations, jobs and recent observations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    parser.add_argument("--token", default=None, help="user API token (default: $SKYMESH_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import json

    report = asyncio.run(collect(args.server, args.token or os.environ.get("SKYMESH_TOKEN"), args.timeout))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render(report))
    return 0


async def collect(address: str, token: str | None, timeout_s: float = 10.0) -> dict[str, Any]:
    """The status report as plain data: {"stations": [...], "jobs_by_state": {...}, "observations": [...]}."""
    import grpc

    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc, stations_pb2, stations_pb2_grpc
    from skymesh.api.errors import error_from_rpc

    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            stations = await stations_pb2_grpc.StationServiceStub(channel).ListStations(
                stations_pb2.ListStationsRequest(), metadata=metadata, timeout=timeout_s
            )
            jobs = await observations_pb2_grpc.JobServiceStub(channel).ListJobs(
                observations_pb2.ListJobsRequest(), metadata=metadata, timeout=timeout_s
            )
            recent = await observations_pb2_grpc.ObservationServiceStub(channel).ListObservations(
                observations_pb2.ListObservationsRequest(page_size=10), metadata=metadata, timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
    by_state: dict[str, int] = {}
    for job in jobs.jobs:
        name = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
        by_state[name] = by_state.get(name, 0) + 1
    return {
        "stations": [
            {
                "station_id": s.station_id,
                "name": s.name,
                "kind": common_pb2.StationKind.Name(s.kind).removeprefix("STATION_KIND_"),
                "state": common_pb2.StationState.Name(s.state).removeprefix("STATION_STATE_"),
                "last_seen": s.last_seen.ToJsonString() if s.HasField("last_seen") else None,
            }
            for s in stations.stations
        ],
        "jobs_by_state": by_state,
        "observations": [
            {
                "observation_id": o.record.observation_id,
                "station_id": o.station_id,
                "target_id": o.record.target_id,
                "start": o.record.start.ToJsonString(),
                "magnitude": o.record.photometry.magnitude if o.record.HasField("photometry") else None,
                "quality_flags": list(o.record.quality_flags),
            }
            for o in recent.observations
        ],
    }


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    stations = _table(
        ["STATION", "NAME", "KIND", "STATE", "LAST SEEN"],
        [[s["station_id"], s["name"], s["kind"], s["state"], s["last_seen"] or "-"] for s in report["stations"]],
    )
    jobs = _table(["JOB STATE", "COUNT"], [[k, str(v)] for k, v in sorted(report["jobs_by_state"].items())])
    observations = _table(
        ["OBSERVATION", "STATION", "TARGET", "START", "MAG", "FLAGS"],
        [
            [
                o["observation_id"][:8],
                o["station_id"],
                o["target_id"] or "-",
                o["start"],
                "-" if o["magnitude"] is None else f"{o['magnitude']:.2f}",
                ",".join(o["quality_flags"]) or "-",
            ]
            for o in report["observations"]
        ],
    )
    return f"{stations}\n\n{jobs}\n\n{observations}"
