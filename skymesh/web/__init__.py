"""The web gateway (`skymesh web`): a JSON API for people and scripts, live events over Server-Sent Events, and the
operators' dashboard, served by FastAPI.

It is a gRPC client of the control server like any other: every call carries the caller's own token and the server
enforces roles. It must never import `skymesh.server` (import-linter holds it to that), never open the database,
and never load anything from a CDN: the dashboard's libraries ship in `static/vendor/`.
"""

from __future__ import annotations

from skymesh.web.app import create_app, serve
from skymesh.web.config import WebConfig

__all__ = ["WebConfig", "create_app", "serve"]
