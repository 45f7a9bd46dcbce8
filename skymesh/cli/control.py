"""What the operator subcommands (`skymesh stations|targets|campaigns|jobs|observations`) share: the connection and
output options every action takes, following a List RPC's pages, tables, JSON, and times and durations typed by a
person.

Every action takes the options of `skymesh.cli.client` (--server, --token-file, --tls, ...) plus `--timeout` and
`--json` after its name: `skymesh jobs list --station gs-athens --next 24h --json`. `--json` prints the API's own
messages (proto field names, RFC 3339 times, enum names) so scripts see what the gRPC API returns.

Imports grpc and the generated API only inside functions, like every `skymesh` command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from skymesh.cli.client import add_client_arguments, open_control_channel

__all__ = [
    "PAGE_SIZE",
    "common_options",
    "enum_name",
    "follow",
    "message_json",
    "parse_duration",
    "parse_time",
    "print_json",
    "run_action",
    "table",
    "time_text",
]

# What the CLI asks for per call when it follows a listing; the server caps pages at 1000.
PAGE_SIZE = 500

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the connection options, --timeout and --json, for every action."""
    parent = argparse.ArgumentParser(add_help=False)
    add_client_arguments(parent)
    out = parent.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the API's messages as JSON instead of a table")
    out.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each call (default 10)")
    return parent


Action = Callable[[argparse.Namespace, Any], Awaitable[int]]


def run_action(actions: dict[str, Action], attr: str) -> Callable[[argparse.Namespace], int]:
    """The `func` of a subcommand: opens the channel and runs the chosen action with it."""

    def _run(args: argparse.Namespace) -> int:
        async def _main() -> int:
            async with open_control_channel(args) as channel:
                return await actions[getattr(args, attr)](args, channel)

        return asyncio.run(_main())

    return _run


async def follow(
    call: Callable[..., Awaitable[Any]], request: Any, field: str, *, timeout_s: float, limit: int | None = None
) -> list[Any]:
    """Every item of a listing (or the first `limit`), page by page through next_page_token."""
    items: list[Any] = []
    request.page_size = PAGE_SIZE if limit is None else max(1, min(PAGE_SIZE, limit))
    while True:
        reply = await call(request, timeout=timeout_s)
        items.extend(getattr(reply, field))
        if not reply.next_page_token or (limit is not None and len(items) >= limit):
            return items if limit is None else items[:limit]
        request.page_token = reply.next_page_token


def enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def message_json(message: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    # Zero values printed too: a script reading "revoked_key_count" should not have to know proto3's defaults.
    return dict(MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def time_text(stamp: Any, present: bool = True) -> str:
    """A Timestamp as "YYYY-MM-DD HH:MM:SSZ" (UTC), "-" when unset."""
    if not present or (stamp.seconds == 0 and stamp.nanos == 0):
        return "-"
    return datetime.fromtimestamp(stamp.seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def parse_duration(text: str, option: str) -> timedelta:
    """ "24h", "90m", "2d", "1w", "3600s" -> timedelta; InvalidArgument naming `option` otherwise."""
    from skymesh.core.errors import InvalidArgument

    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InvalidArgument(f"{text!r} is not a duration like 90m, 24h or 7d", field=option)
    return timedelta(seconds=float(match.group(1)) * _UNITS_S[match.group(2)])


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time ("2026-11-22T00:00:00Z"; no zone means UTC) or "now"."""
    from skymesh.core.errors import InvalidArgument

    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"{text!r} is not an ISO 8601 time like 2026-11-22T18:00:00Z", field=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
