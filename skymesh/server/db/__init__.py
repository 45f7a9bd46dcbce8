"""Persistence for the server: SQLAlchemy 2 async models (private), Alembic migrations and the `Repository`.

SQL models never leave this package: the repository returns `skymesh.core` dataclasses and the frozen records of
`skymesh.server.db.records`. The same code runs on SQLite (file, WAL, foreign keys) and PostgreSQL (asyncpg).

    engine = create_engine(url); await migrate(engine); repo = Repository(engine)
"""

from __future__ import annotations

from skymesh.server.db.accounts import AccountsRepo
from skymesh.server.db.alerts import AlertRepo
from skymesh.server.db.campaigns import CampaignRepo
from skymesh.server.db.engine import create_engine, migrate
from skymesh.server.db.health import HealthRepo
from skymesh.server.db.products import ProductsRepo
from skymesh.server.db.registry import RegistryRepo
from skymesh.server.db.replicas import ReplicaRepo
from skymesh.server.db.sites import SitesRepo
from skymesh.server.db.telemetry import TelemetryRepo
from skymesh.server.db.telemetry_partitions import TelemetryRetentionRepo
from skymesh.server.db.users import UserEditRepo
from skymesh.server.db.work import WorkRepo

__all__ = ["Repository", "create_engine", "migrate"]


class Repository(
    RegistryRepo,
    WorkRepo,
    SitesRepo,
    AccountsRepo,
    AlertRepo,
    ProductsRepo,
    HealthRepo,
    TelemetryRepo,
    TelemetryRetentionRepo,
    CampaignRepo,
    UserEditRepo,
    ReplicaRepo,
):
    """Every database operation of the server, each in its own transaction."""
