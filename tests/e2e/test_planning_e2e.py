"""Planning through the server with real processes (`skymesh scheduler`, `skymesh server` on PostgreSQL, raw agent
streams), at a reduced size of `benchmarks/planning_e2e.py`: schedules arrive, no satellite is held by two stations
at overlapping times after a fifth of the stations drop, health checks are answered all along, and the server's
event-loop lag monitor reports each Replan's worst lateness."""

from __future__ import annotations

import importlib.util
import math
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

from tests.e2e.test_system import PG_ADMIN_DSN


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "planning_e2e.py"
    spec = importlib.util.spec_from_file_location("planning_e2e", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("planning_e2e", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def pg_db() -> AsyncIterator[str]:
    name = f"skymesh_plan_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def test_double_booking_check_sees_an_overlap() -> None:
    bench = _bench()
    t = [datetime(2026, 1, 1, 0, m) for m in (0, 5, 10)]
    a, b = bench.Held("a"), bench.Held("b")
    a.jobs = [("j1", "sat", t[0], t[2])]
    b.jobs = [("j2", "sat", t[1], t[2])]
    assert bench.double_bookings([a, b]) == [("sat", "a", "b")]
    b.jobs = [("j2", "sat", t[2], t[2].replace(minute=20))]  # back to back is not an overlap
    assert bench.double_bookings([a, b]) == []


async def test_planning_through_the_server_with_real_processes(pg_db: str, tmp_path: Path) -> None:
    result = await _bench().run(20, 150, 6.0, database_url=pg_db, time_limit_s=5.0, workdir=tmp_path, wait_s=45.0)
    assert result["agents_with_jobs"] >= 18  # every station that can see a satellite in 6 h gets work
    assert result["jobs_held"] > 100
    assert result["double_bookings"] == 0  # a fifth of the stations dropped, and replanned around
    assert result["health_failed"] == 0 and result["health_answered"] > 0
    # Health checks answered during every plan (a loaded CI machine: far from the minutes a blocked loop took).
    assert max(result["first_plan_worst_health_s"], result["steady_worst_health_s"], result["drop_worst_health_s"]) < 5
    # The server's loop-lag monitor reported each Replan's worst lateness (scraped from /metrics). Its size is not
    # asserted: at CI load the OS alone can hold the process off the CPU past 100 ms (the goal is measured at scale
    # in benchmarks/results/planning_e2e.md).
    for phase in ("steady", "drop"):
        late, busy = result[f"{phase}_worst_loop_lag_s"], result[f"{phase}_worst_loop_busy_s"]
        assert math.isfinite(late) and 0 <= busy <= late, (phase, late, busy)
        assert result[f"{phase}_worst_gc_s"] >= 0  # the longest full collection (NaN if not reported)
    assert result["steady_loop_lag_over_100ms"] >= 0 and result["drop_loop_lag_over_100ms"] >= 0
