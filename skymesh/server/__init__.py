"""The SkyMesh control plane: gRPC services for agents and humans, persistence, planning loop.

    config = load_config("server.yaml"); running = await serve(config); ...; await running.stop()

Never imports `skymesh.scheduler`, `skymesh.agent` or `skymesh.web` (import-linter enforces it): the scheduler is
reached through its generated gRPC stub.
"""

from __future__ import annotations

from skymesh.server.app import RunningServer, serve
from skymesh.server.config import ServerConfig, load_config

__all__ = ["RunningServer", "ServerConfig", "load_config", "serve"]
