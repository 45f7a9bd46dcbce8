"""`skymesh telemetry`: the telemetry a station sent, as the server stored it, through StationService.ListTelemetry.

    skymesh telemetry --station ID [--channel NAME ...] [--since 1h | --after T [--before T]] [--limit N]

Oldest first. With no time option the last hour is shown (`--since 1h`); --after/--before take ISO 8601
("2026-11-22T18:00:00Z") or "now", and a sample counts by its own time. --channel (repeatable) keeps only those
channels and only the samples that have one of them. --limit (default 1000; 0 for no limit) caps the samples printed,
and a note on stderr says when more matched. A table has one column per channel when there are at most
`WIDE_CHANNELS` of them, else one line per (sample, channel); --json prints the API's samples. Connection options,
--json and --timeout as for every operator command (`skymesh.cli.control`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from skymesh.cli.client import open_control_channel
from skymesh.cli.control import PAGE_SIZE, common_options, message_json, parse_duration, parse_time, print_json, table

__all__ = ["register"]

DEFAULT_LIMIT = 1000
DEFAULT_SINCE = timedelta(hours=1)
WIDE_CHANNELS = 6


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "telemetry",
        help="show a station's stored telemetry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options()],
    )
    parser.add_argument("--station", required=True, metavar="ID", help="the station whose telemetry to show")
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME",
        help="only this channel (repeat for more), e.g. rotator.azimuth_deg",
    )
    group = parser.add_argument_group("time range (UTC; default: the last hour)")
    group.add_argument("--since", metavar="DURATION", help="from now - DURATION (e.g. 90m, 24h, 7d)")
    group.add_argument("--after", metavar="TIME", help="samples at or after this ISO 8601 time, or now")
    group.add_argument("--before", metavar="TIME", help="samples before this ISO 8601 time, or now")
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, metavar="N", help=f"at most N samples (default {DEFAULT_LIMIT})"
    )
    parser.set_defaults(func=_run)


def _range(args: argparse.Namespace, now: datetime) -> tuple[datetime | None, datetime | None]:
    from skymesh.core.errors import InvalidArgument

    if args.since and (args.after or args.before):
        raise InvalidArgument("use --since alone, not with --after or --before", field="--since")
    if args.since:
        return now - parse_duration(args.since, "--since"), None
    if not (args.after or args.before):
        return now - DEFAULT_SINCE, None
    after = parse_time(args.after, "--after") if args.after else None
    before = parse_time(args.before, "--before") if args.before else None
    if after is not None and before is not None and before <= after:
        raise InvalidArgument("must be later than --after", field="--before")
    return after, before


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from skymesh.core.errors import InvalidArgument

    if args.limit < 0:
        raise InvalidArgument("must be 0 (no limit) or more", field="--limit")
    after, before = _range(args, datetime.now(UTC))

    async def _main() -> int:
        async with open_control_channel(args) as channel:
            samples, more = await _fetch(args, channel, after, before)
        _print(samples, args.json)
        if more:
            print(
                f"skymesh: {len(samples)} samples shown, more match: narrow the range or raise --limit",
                file=sys.stderr,
            )
        return 0

    return asyncio.run(_main())


async def _fetch(
    args: argparse.Namespace, channel: Any, after: datetime | None, before: datetime | None
) -> tuple[list[Any], bool]:
    """(samples, whether more matched than --limit), page by page."""
    from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
    from skymesh.api.convert import timestamp_from_datetime

    stub = stations_pb2_grpc.StationServiceStub(channel)
    request = stations_pb2.ListTelemetryRequest(station_id=args.station, channels=args.channel)
    if after is not None:
        request.after.CopyFrom(timestamp_from_datetime(after))
    if before is not None:
        request.before.CopyFrom(timestamp_from_datetime(before))
    samples: list[Any] = []
    while True:
        wanted = PAGE_SIZE if not args.limit else min(PAGE_SIZE, args.limit - len(samples))
        request.page_size = max(1, wanted)
        reply = await stub.ListTelemetry(request, timeout=args.timeout)
        samples.extend(reply.samples)
        if not reply.next_page_token:
            return samples, False
        if args.limit and len(samples) >= args.limit:
            return samples[: args.limit], True
        request.page_token = reply.next_page_token


def _when(sample: Any) -> str:
    return str(sample.at.ToDatetime(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def _print(samples: list[Any], as_json: bool) -> None:
    if as_json:
        print_json({"samples": [message_json(s) for s in samples]})
        return
    if not samples:
        print("no telemetry in that range")
        return
    channels = sorted({name for s in samples for name in s.values})
    if len(channels) <= WIDE_CHANNELS:
        rows = [
            [_when(s), s.boot_id] + [f"{s.values[c]:g}" if c in s.values else "-" for c in channels] for s in samples
        ]
        print(table(["AT", "BOOT", *channels], rows))
        return
    long_rows = [[_when(s), s.boot_id, name, f"{s.values[name]:g}"] for s in samples for name in sorted(s.values)]
    print(table(["AT", "BOOT", "CHANNEL", "VALUE"], long_rows))
