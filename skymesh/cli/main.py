"""`skymesh` command line: one subcommand per process or tool.

Each subcommand lives in its own module in this package and exposes `register(subparsers)`, which adds its parser
and sets `func` (a callable taking the parsed args and returning an exit code). Heavy imports happen inside `func`,
so `skymesh --help` and `skymesh agent` stay fast and light on a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Module names under skymesh.cli, in the order `--help` lists them.
COMMANDS = (
    "demo",
    "server",
    "scheduler",
    "agent",
    "web",
    "status",
    "stations",
    "telemetry",
    "targets",
    "campaigns",
    "jobs",
    "observations",
    "lightcurve",
    "passes",
    "plan",
    "sim",
    "keys",
    "users",
    "alerts",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skymesh",
        description="SkyMesh: control plane for networks of satellite ground stations and robotic telescopes.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING, ERROR)")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="text (default) or json: one object per line with trace_id/span_id (or SKYMESH_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"skymesh.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"skymesh.cli.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    parser = build_parser()
    args = parser.parse_args(argv)
    import os

    from skymesh.observability.logs import configure_logging

    log_format = args.log_format or os.environ.get("SKYMESH_LOG_FORMAT", "text")
    configure_logging(getattr(logging, str(args.log_level).upper(), logging.INFO), json_lines=log_format == "json")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one choke point: a clear line, not a traceback, for every error a user can cause
        message = describe_error(exc)
        if message is None:
            raise
        print(f"skymesh: error: {message}", file=sys.stderr)
        return 2


_RPC_HINTS = {
    "UNAUTHENTICATED": "pass --token-file FILE (or set SKYMESH_TOKEN_FILE); on a fresh database the server writes "
    "its first admin's token to <data_dir>/admin.token",
    "PERMISSION_DENIED": "ask an admin for a token with a higher role (skymesh users create ID --role ROLE)",
    "UNAVAILABLE": "is the server running at that address, and does it speak TLS (--tls, --ca-cert) or not?",
    "DEADLINE_EXCEEDED": "the server did not answer in time; is it overloaded, or is the address right?",
}


def describe_error(exc: BaseException) -> str | None:
    """One line (plus a hint) for an error a user can cause; None for a bug, which should keep its traceback."""
    from skymesh.core.errors import SkyMeshError

    if isinstance(exc, SkyMeshError):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:  # from a TaskGroup
        return describe_error(exc.exceptions[0])
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if type(exc).__module__.startswith("yaml"):
        return f"not valid YAML: {' '.join(str(exc).split())}"
    rpc_error = sys.modules.get("grpc.aio")
    if rpc_error is not None and isinstance(exc, rpc_error.AioRpcError):
        name = exc.code().name
        line = f"{name}: {exc.details() or 'no details'}"
        hint = _RPC_HINTS.get(name)
        return f"{line}\n  hint: {hint}" if hint else line
    return None


if __name__ == "__main__":
    sys.exit(main())
