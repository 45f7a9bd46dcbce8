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
COMMANDS = ("demo", "server", "scheduler", "agent", "web", "status", "lightcurve", "passes", "plan", "sim", "keys")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skymesh",
        description="SkyMesh: control plane for networks of satellite ground stations and robotic telescopes.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING, ERROR)")
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
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one choke point: a clear message, not a traceback, for errors we raise on purpose
        from skymesh.core.errors import SkyMeshError

        if isinstance(exc, SkyMeshError):
            print(f"skymesh: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
