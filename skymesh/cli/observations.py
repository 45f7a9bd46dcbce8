"""`skymesh observations`: stored observations of a running server, newest first (see `skymesh.cli.jobs`)."""

from __future__ import annotations

from typing import Any

from skymesh.cli.jobs import register_observations

__all__ = ["register"]


def register(subparsers: Any) -> None:
    register_observations(subparsers)
