"""`skymesh status`: what the network is doing, through the control gRPC API.

    skymesh status [--server ADDR] [--token-file FILE] [--tls] [--ca-cert FILE] [--json]

Shows stations with their liveness state, the job each runs now and its next one, jobs counted by state, the most
recent observations and, for satellites with a spacecraft profile, the simulated battery and data on board the latest
plan leaves them with. Connection and credential options are those of `skymesh.cli.client` (an observer token is
enough). Every listing is followed to its last page.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from skymesh.cli.client import add_client_arguments, resolve_address, resolve_tls, resolve_token

if TYPE_CHECKING:
    from skymesh.api.channel import TlsOptions

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show stations, jobs and recent observations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import json

    report = asyncio.run(collect(resolve_address(args), resolve_token(args), args.timeout, tls=resolve_tls(args)))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render(report))
    return 0


async def collect(
    address: str, token: str | None, timeout_s: float = 10.0, *, tls: TlsOptions | None = None
) -> dict[str, Any]:
    """The status report as plain data: {"stations": [...], "jobs_by_state": {...}, "observations": [...]}."""
    from skymesh.api.channel import control_channel

    async with control_channel(address, token=token, tls=tls) as channel:
        return await _collect(channel, timeout_s)


async def _collect(channel: Any, timeout_s: float) -> dict[str, Any]:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import (
        observations_pb2,
        observations_pb2_grpc,
        stations_pb2,
        stations_pb2_grpc,
        targets_pb2,
        targets_pb2_grpc,
    )
    from skymesh.cli.control import follow

    stations = await follow(
        stations_pb2_grpc.StationServiceStub(channel).ListStations,
        stations_pb2.ListStationsRequest(),
        "stations",
        timeout_s=timeout_s,
    )
    jobs = await follow(
        observations_pb2_grpc.JobServiceStub(channel).ListJobs,
        observations_pb2.ListJobsRequest(),
        "jobs",
        timeout_s=timeout_s,
    )
    recent = await observations_pb2_grpc.ObservationServiceStub(channel).ListObservations(
        observations_pb2.ListObservationsRequest(page_size=10), timeout=timeout_s
    )
    # Every page of targets, with the forecasts each page carries.
    targets = targets_pb2.ListTargetsResponse()
    request = targets_pb2.ListTargetsRequest(page_size=500)
    while True:
        page = await targets_pb2_grpc.TargetServiceStub(channel).ListTargets(request, timeout=timeout_s)
        targets.targets.extend(page.targets)
        targets.spacecraft_forecasts.extend(page.spacecraft_forecasts)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    by_state: dict[str, int] = {}
    current: dict[str, Any] = {}
    upcoming: dict[str, Any] = {}
    now_s = time.time()
    for job in jobs:  # in start order
        name = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_")
        by_state[name] = by_state.get(name, 0) + 1
        if name == "RUNNING":
            current[job.station_id] = job
        elif name in _WAITING and job.window.end.seconds > now_s and job.station_id not in upcoming:
            upcoming[job.station_id] = job
    return {
        "stations": [
            {
                "station_id": s.station_id,
                "name": s.name,
                "kind": common_pb2.StationKind.Name(s.kind).removeprefix("STATION_KIND_"),
                "state": common_pb2.StationState.Name(s.state).removeprefix("STATION_STATE_"),
                "last_seen": s.last_seen.ToJsonString() if s.HasField("last_seen") else None,
                "current_job": _job_brief(current.get(s.station_id)),
                "next_job": _job_brief(upcoming.get(s.station_id)),
            }
            for s in stations
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
        "spacecraft": spacecraft_rows(targets),
    }


_WAITING = {"SCHEDULED", "DISPATCHED", "RECEIVED"}


def _job_brief(job: Any) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "job_id": job.job_id,
        "target_id": job.target_id,
        "start": job.window.start.ToJsonString(),
        "end": job.window.end.ToJsonString(),
    }


def _brief_text(brief: dict[str, Any] | None) -> str:
    if brief is None:
        return "-"
    return f"{brief['target_id']} {brief['start'][11:16]}-{brief['end'][11:16]}Z"


def spacecraft_rows(targets: Any) -> list[dict[str, Any]]:
    """A ListTargetsResponse's satellites with a spacecraft profile, joined with their latest forecast (if any)."""
    forecasts = {f.target_id: f for f in targets.spacecraft_forecasts}
    rows = []
    for t in targets.targets:
        if t.WhichOneof("kind") != "satellite" or not t.satellite.HasField("spacecraft"):
            continue
        p = t.satellite.spacecraft
        f = forecasts.get(t.target_id)
        rows.append(
            {
                "target_id": t.target_id,
                "battery_capacity_wh": p.battery_capacity_wh,
                "min_soc": p.min_soc,
                "initial_soc": p.initial_soc if p.HasField("initial_soc") else 1.0,
                "soc": f.state_of_charge if f else None,
                "soc_at": f.state_of_charge_time.ToJsonString() if f else None,
                "min_state_of_charge": f.min_state_of_charge if f else None,
                "min_state_of_charge_at": f.min_state_of_charge_time.ToJsonString() if f else None,
                "data_on_board_bytes": f.data_on_board_bytes if f else None,
                "below_min_soc": f.below_min_soc if f else False,
                "detail": f.detail if f else "not planned yet",
            }
        )
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f} MB"


def render_spacecraft(rows: list[dict[str, Any]]) -> str:
    return _table(
        ["SATELLITE", "BATTERY", "SOC START", "SOC END", "SOC MIN", "FLOOR", "ON BOARD (END)", "NOTE"],
        [
            [
                r["target_id"],
                f"{r['battery_capacity_wh']:.0f} Wh",
                _pct(r["initial_soc"]),
                _pct(r["soc"]),
                _pct(r["min_state_of_charge"]) + (" !" if r["below_min_soc"] else ""),
                _pct(r["min_soc"]),
                _megabytes(r["data_on_board_bytes"]),
                r["detail"] or "-",
            ]
            for r in rows
        ],
    )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    stations = _table(
        ["STATION", "NAME", "KIND", "STATE", "LAST SEEN", "NOW", "NEXT"],
        [
            [
                s["station_id"],
                s["name"],
                s["kind"],
                s["state"],
                s["last_seen"] or "-",
                _brief_text(s.get("current_job")),
                _brief_text(s.get("next_job")),
            ]
            for s in report["stations"]
        ],
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
    out = f"{stations}\n\n{jobs}\n\n{observations}"
    if report.get("spacecraft"):
        out += "\n\n" + render_spacecraft(report["spacecraft"])
    return out
