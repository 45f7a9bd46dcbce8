"""`skymesh campaigns`: list, show and create campaigns on a running server (see `skymesh.cli.targets`)."""

from __future__ import annotations

from typing import Any

from skymesh.cli.targets import register_campaigns

__all__ = ["register"]


def register(subparsers: Any) -> None:
    register_campaigns(subparsers)
