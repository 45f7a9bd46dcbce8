"""The control API servicers (stations, targets, campaigns, jobs, observations, users, alerts) for humans and tools.

Each validates with `skymesh.api.convert`, calls the repository, and maps SkyMeshError to gRPC status through
`skymesh.api.errors.grpc_errors`. Roles are enforced before these run, by `skymesh.server.auth`.
"""

from __future__ import annotations

from skymesh.server.control.alerts import AlertServicer
from skymesh.server.control.jobs import JobServicer, ObservationServicer
from skymesh.server.control.stations import StationServicer
from skymesh.server.control.targets import CampaignServicer, TargetServicer
from skymesh.server.control.users import UserServicer

__all__ = [
    "AlertServicer",
    "CampaignServicer",
    "JobServicer",
    "ObservationServicer",
    "StationServicer",
    "TargetServicer",
    "UserServicer",
]
