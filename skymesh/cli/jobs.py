"""`skymesh jobs` and `skymesh observations`: the work of the network and what it stored, through JobService and
ObservationService.

    skymesh jobs list [--station ID] [--state STATE] [--next 24h | --last 24h | --from T --to T]
                                                   times, station, target, state (and why) in start order
    skymesh jobs cancel JOB_ID [--reason TEXT]     an unstarted job is cancelled; a running one is aborted (operator)
    skymesh jobs replan                            ask the scheduler for a new plan now (operator)

    skymesh observations list [--station ID] [--target ID] [--last 24h | --from T --to T] [--limit N]
                                                   newest first: time, station, target, magnitude, quality

Job windows overlap the time range asked for (a pass that started before it and ends inside shows). Times are UTC;
--from/--to take ISO 8601 ("2026-11-22T18:00:00Z") or "now"; durations take s, m, h, d or w. Connection options,
--json and --timeout go after the action; see `skymesh.cli.control`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from skymesh.cli.control import (
    common_options,
    enum_name,
    follow,
    message_json,
    parse_duration,
    parse_time,
    print_json,
    run_action,
    table,
    time_text,
)

__all__ = ["register", "register_observations"]

STATES = (
    "pending",
    "scheduled",
    "dispatched",
    "received",
    "running",
    "succeeded",
    "failed",
    "aborted",
    "rejected",
    "cancelled",
    "expired",
)


def _add_range(parser: argparse.ArgumentParser, *, future: bool) -> None:
    group = parser.add_argument_group("time range (UTC)")
    if future:
        group.add_argument("--next", metavar="DURATION", help="from now to now + DURATION (e.g. 24h)")
    group.add_argument("--last", metavar="DURATION", help="from now - DURATION to now")
    group.add_argument("--from", dest="start", metavar="TIME", help="ISO 8601 start, or now")
    group.add_argument("--to", dest="end", metavar="TIME", help="ISO 8601 end, or now")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "jobs",
        help="list, cancel jobs and replan on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = common_options()
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", parents=[common], help="list jobs in start order")
    listing.add_argument("--station", default="", metavar="ID")
    listing.add_argument("--state", choices=STATES)
    _add_range(listing, future=True)
    cancel = sub.add_parser("cancel", parents=[common], help="cancel (or abort a running) job (operator)")
    cancel.add_argument("job_id")
    cancel.add_argument("--reason", default="cancelled from the command line")
    sub.add_parser("replan", parents=[common], help="plan now (operator)")
    parser.set_defaults(func=run_action({"list": _list, "cancel": _cancel, "replan": _replan}, "jobs_command"))


def register_observations(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "observations",
        help="list stored observations on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = common_options()
    sub = parser.add_subparsers(dest="observations_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", parents=[common], help="list observations, newest first")
    listing.add_argument("--station", default="", metavar="ID")
    listing.add_argument("--target", default="", metavar="ID")
    listing.add_argument("--limit", type=int, default=None, metavar="N", help="at most N (default: all)")
    _add_range(listing, future=False)
    parser.set_defaults(func=run_action({"list": _observations}, "observations_command"))


def time_range(args: argparse.Namespace) -> tuple[datetime, datetime] | None:
    """The range --next / --last / --from / --to name, or None; InvalidArgument for a mix or an empty range."""
    from skymesh.core.errors import InvalidArgument

    now = datetime.now(UTC)
    ahead = getattr(args, "next", None)
    if ahead and (args.last or args.start or args.end):
        raise InvalidArgument("use --next alone, not with --last, --from or --to", field="--next")
    if args.last and (args.start or args.end):
        raise InvalidArgument("use --last alone, not with --from or --to", field="--last")
    if ahead:
        return now, now + parse_duration(ahead, "--next")
    if args.last:
        return now - parse_duration(args.last, "--last"), now
    if not (args.start or args.end):
        return None
    start = parse_time(args.start, "--from") if args.start else datetime(1970, 1, 1, tzinfo=UTC)
    end = parse_time(args.end, "--to") if args.end else datetime(9999, 1, 1, tzinfo=UTC)
    if end <= start:
        raise InvalidArgument("must be after --from", field="--to")
    return start, end


def _window(span: tuple[datetime, datetime]) -> Any:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.convert import timestamp_from_datetime

    return common_pb2.TimeWindow(start=timestamp_from_datetime(span[0]), end=timestamp_from_datetime(span[1]))


async def _known_station(channel: Any, station_id: str, timeout_s: float) -> None:
    """NOT_FOUND for a station id that names nothing, so a typo is an error and not an empty list (a retired
    station with history lists that history instead)."""
    from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc

    stub = stations_pb2_grpc.StationServiceStub(channel)
    await stub.GetStation(stations_pb2.GetStationRequest(station_id=station_id), timeout=timeout_s)


def _stub(channel: Any) -> Any:
    from skymesh.api.control.v1 import observations_pb2_grpc

    return observations_pb2_grpc.JobServiceStub(channel)


def _state(job: Any) -> str:
    from skymesh.api.common.v1 import common_pb2

    return enum_name(common_pb2.JobState, job.state, "JOB_STATE_")


def _why(job: Any) -> str:
    from skymesh.api.common.v1 import common_pb2

    cause = enum_name(common_pb2.CauseCode, job.cause, "CAUSE_CODE_") if job.cause else ""
    return ": ".join(part for part in (cause, job.detail) if part) or "-"


async def _list(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.common.v1 import common_pb2
    from skymesh.api.control.v1 import observations_pb2

    request = observations_pb2.ListJobsRequest(station_id=args.station)
    if args.state:
        request.state = common_pb2.JobState.Value("JOB_STATE_" + args.state.upper())
    span = time_range(args)
    if span is not None:
        request.window.CopyFrom(_window(span))
    jobs = await follow(_stub(channel).ListJobs, request, "jobs", timeout_s=args.timeout)
    if not jobs and args.station:
        await _known_station(channel, args.station, args.timeout)
    if args.json:
        print_json({"jobs": [message_json(j) for j in jobs]})
        return 0
    rows = [
        [
            time_text(j.window.start),
            time_text(j.window.end),
            j.station_id,
            j.target_id,
            _state(j),
            _why(j),
            j.job_id,
        ]
        for j in jobs
    ]
    print(table(["START", "END", "STATION", "TARGET", "STATE", "WHY", "JOB"], rows))
    return 0


async def _cancel(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import observations_pb2

    reply = await _stub(channel).CancelJob(
        observations_pb2.CancelJobRequest(job_id=args.job_id, reason=args.reason), timeout=args.timeout
    )
    if args.json:
        print_json(message_json(reply.job))
    elif _state(reply.job) == "RUNNING":
        print(f"job {args.job_id} is running: abort sent to {reply.job.station_id}")
    else:
        print(f"job {args.job_id} is {_state(reply.job)}")
    return 0


async def _replan(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import observations_pb2

    reply = await _stub(channel).Replan(observations_pb2.ReplanRequest(), timeout=max(args.timeout, 60.0))
    if args.json:
        print_json(message_json(reply))
    else:
        print(f"planned: {reply.assignments} assignments, {reply.unscheduled} unscheduled, gap {reply.gap:.2%}")
    return 0


async def _observations(args: argparse.Namespace, channel: Any) -> int:
    from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
    from skymesh.core.errors import InvalidArgument

    if args.limit is not None and args.limit < 1:
        raise InvalidArgument("must be at least 1", field="--limit")
    request = observations_pb2.ListObservationsRequest(station_id=args.station, target_id=args.target)
    span = time_range(args)
    if span is not None:
        request.window.CopyFrom(_window(span))
    stub = observations_pb2_grpc.ObservationServiceStub(channel)
    found = await follow(stub.ListObservations, request, "observations", timeout_s=args.timeout, limit=args.limit)
    if not found and args.station:
        await _known_station(channel, args.station, args.timeout)
    if args.json:
        print_json({"observations": [message_json(o) for o in found]})
        return 0
    rows = []
    for o in found:
        r = o.record
        if o.HasField("reduction") and o.reduction.magnitude:
            mag = f"{o.reduction.magnitude:.3f} ({o.reduction.filter or '-'}, reduced)"
        elif r.HasField("photometry"):
            mag = f"{r.photometry.magnitude:.3f} ({r.photometry.filter or '-'})"
        elif r.HasField("pass_quality"):
            mag = f"peak SNR {r.pass_quality.peak_snr_db:.1f} dB"
        else:
            mag = "-"
        flags = list(o.reduction.quality_flags) if o.HasField("reduction") else list(r.quality_flags)
        rows.append(
            [time_text(r.start), o.station_id, r.target_id or "-", mag, ",".join(flags) or "-", r.observation_id]
        )
    print(table(["START", "STATION", "TARGET", "RESULT", "FLAGS", "OBSERVATION"], rows))
    return 0
