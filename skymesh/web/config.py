"""The gateway's settings: one frozen dataclass, built once at start from the command line and `SKYMESH_WEB_*`
environment variables (never read at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from skymesh.core.errors import InvalidArgument

__all__ = ["WebConfig"]


@dataclass(frozen=True)
class WebConfig:
    # HTTP address of the gateway itself.
    listen: str = "127.0.0.1:8080"
    # The control server's gRPC address (every call carries the caller's token).
    server_address: str = "127.0.0.1:50051"
    # The scheduler's gRPC address, for the ranked target list (RankTargets); targets and stations come from the
    # server under the caller's identity.
    scheduler_address: str = "127.0.0.1:50052"
    # Bodies larger than this are refused with 413 before they are read.
    max_body_bytes: int = 1_048_576
    # Session lifetime asked of the server at login (seconds).
    session_ttl_s: float = 8 * 3600.0
    # Mark cookies Secure. None: when the request arrived over https (behind a TLS-terminating proxy set
    # --forwarded-allow-ips so the scheme is right).
    secure_cookies: bool | None = None
    # Deadline for one unary gRPC call to the server.
    rpc_timeout_s: float = 10.0
    # Serve HTTPS with this certificate and key (PEM); cookies are then Secure.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Reach a TLS server (and scheduler) with this CA bundle (PEM); empty: plaintext gRPC (loopback).
    server_ca_file: str = ""

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise InvalidArgument("must be HOST:PORT", field="listen")
        if self.max_body_bytes < 1024:
            raise InvalidArgument("must be at least 1024", field="max_body_bytes")
        if not 60 <= self.session_ttl_s <= 7 * 86400:
            raise InvalidArgument("must be between 60 s and 7 days", field="session_ttl_s")
        if self.rpc_timeout_s <= 0:
            raise InvalidArgument("must be positive", field="rpc_timeout_s")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise InvalidArgument("give both tls_cert_file and tls_key_file, or neither", field="tls_key_file")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> WebConfig:
        """Defaults, then SKYMESH_WEB_LISTEN / SKYMESH_WEB_SERVER / SKYMESH_WEB_SCHEDULER, then `overrides`
        (None values are ignored: an option not given on the command line)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for key, name in (
            ("listen", "SKYMESH_WEB_LISTEN"),
            ("server_address", "SKYMESH_WEB_SERVER"),
            ("scheduler_address", "SKYMESH_WEB_SCHEDULER"),
        ):
            if env.get(name):
                values[key] = env[name]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
