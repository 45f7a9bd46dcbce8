"""The one exception tree of SkyMesh, and the table that maps it onto gRPC and HTTP.

    SkyMeshError
    ├── InvalidArgument        bad input: names the field and the rule it broke (gRPC INVALID_ARGUMENT, HTTP 400)
    │   └── InvalidTLE         a TLE or OMM that cannot describe an orbit
    ├── NotFound               unknown station, target, job... (NOT_FOUND, 404)
    ├── AlreadyExists          (ALREADY_EXISTS, 409)
    ├── Unauthenticated        missing, wrong or expired credentials (UNAUTHENTICATED, 401)
    ├── PermissionDenied       a station speaking for another, a role too low (PERMISSION_DENIED, 403)
    ├── FailedPrecondition     the system is not in a state to do it, e.g. an illegal job transition (409)
    ├── Aborted                superseded session, lost race (ABORTED, 409)
    ├── ResourceExhausted      credit window full, too many uploads (RESOURCE_EXHAUSTED, 429)
    ├── Unavailable            draining, dependency down: retry with backoff (UNAVAILABLE, 503)
    └── DeadlineExceeded       a solver or call ran out of time (DEADLINE_EXCEEDED, 504)

This module imports nothing from grpc or HTTP frameworks: services translate with `STATUS_TABLE` at one choke point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "STATUS_TABLE",
    "Aborted",
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidTLE",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "SkyMeshError",
    "StatusMapping",
    "Unauthenticated",
    "Unavailable",
]


class SkyMeshError(Exception):
    """Root of every error SkyMesh raises on purpose.

    `reason` is a stable UPPER_SNAKE code (AIP-193 `ErrorInfo.reason`); `field` names the offending input where
    there is one, so a client can point at it; `details` carries other structured facts (AIP-193 metadata).
    """

    default_reason: ClassVar[str] = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field = field
        # Further machine-readable facts (e.g. which upstream message was refused); they travel as metadata.
        self.details: dict[str, str] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(SkyMeshError):
    default_reason = "INVALID_ARGUMENT"


class InvalidTLE(InvalidArgument):
    default_reason = "INVALID_TLE"


class NotFound(SkyMeshError):
    default_reason = "NOT_FOUND"


class AlreadyExists(SkyMeshError):
    default_reason = "ALREADY_EXISTS"


class Unauthenticated(SkyMeshError):
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(SkyMeshError):
    default_reason = "PERMISSION_DENIED"


class FailedPrecondition(SkyMeshError):
    default_reason = "FAILED_PRECONDITION"


class Aborted(SkyMeshError):
    default_reason = "ABORTED"


class ResourceExhausted(SkyMeshError):
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(SkyMeshError):
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(SkyMeshError):
    default_reason = "DEADLINE_EXCEEDED"


@dataclass(frozen=True)
class StatusMapping:
    grpc_code_name: str  # name of grpc.StatusCode member
    http_status: int


# Most specific class first: lookups walk the MRO.
STATUS_TABLE: dict[type[SkyMeshError], StatusMapping] = {
    InvalidArgument: StatusMapping("INVALID_ARGUMENT", 400),
    NotFound: StatusMapping("NOT_FOUND", 404),
    AlreadyExists: StatusMapping("ALREADY_EXISTS", 409),
    Unauthenticated: StatusMapping("UNAUTHENTICATED", 401),
    PermissionDenied: StatusMapping("PERMISSION_DENIED", 403),
    FailedPrecondition: StatusMapping("FAILED_PRECONDITION", 409),
    Aborted: StatusMapping("ABORTED", 409),
    ResourceExhausted: StatusMapping("RESOURCE_EXHAUSTED", 429),
    Unavailable: StatusMapping("UNAVAILABLE", 503),
    DeadlineExceeded: StatusMapping("DEADLINE_EXCEEDED", 504),
    SkyMeshError: StatusMapping("INTERNAL", 500),
}


def status_for(error: SkyMeshError) -> StatusMapping:
    for cls in type(error).__mro__:
        if cls in STATUS_TABLE:
            return STATUS_TABLE[cls]  # type: ignore[index]
    return STATUS_TABLE[SkyMeshError]
