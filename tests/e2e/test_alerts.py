"""Alert to telescope, end to end with real processes, on SQLite and PostgreSQL: a GCN notice dropped into the
server's watch directory becomes a target, wakes the planner, and a job for it is persisted by the telescope's agent
within seconds; a test notice is stored and never scheduled; the retraction cancels the job (cause
ALERT_RETRACTED) and the agent drops it from its schedule."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import alerts_pb2, alerts_pb2_grpc, observations_pb2, observations_pb2_grpc
from tests.e2e.alert_system import AlertSystem, zenith_radec
from tests.server.alerts.packets import gcn_notice

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PG_ADMIN_DSN = os.environ.get("SKYMESH_E2E_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'server.sqlite3'}"
        return
    name = f"skymesh_e2e_alerts_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _eventually_job(system: AlertSystem, target_id: str, states: set[int], timeout_s: float) -> object:
    api = observations_pb2_grpc.JobServiceStub(system.channel)
    deadline = time.monotonic() + timeout_s
    while True:
        reply = await api.ListJobs(observations_pb2.ListJobsRequest(), metadata=system.metadata, timeout=5)
        found = [j for j in reply.jobs if j.target_id == target_id and j.state in states]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no job for {target_id} in {states}: {list(reply.jobs)}\n{system.log_tails()}")
        await asyncio.sleep(0.1)


async def test_alert_file_to_job_at_the_agent_and_retraction(database_url: str, tmp_path: Path) -> None:
    system = AlertSystem(tmp_path / "system", database_url, {})
    try:
        now = datetime.now(UTC)
        await system.start(now)
        assert system.station is not None
        ra, dec = zenith_radec(system.station, now)

        test_notice = gcn_notice(ra_deg=ra, dec_deg=dec, trigger_id=900001, tense="test")
        system.write_alert("test-notice.json", test_notice)
        notice = gcn_notice(ra_deg=ra, dec_deg=dec, trigger_id=900002)
        dropped = system.write_alert("grb.json", notice)
        seen = await system.wait_agent_job("grb-900002", timeout_s=30.0)
        latency_s = seen - dropped
        print(f"alert file -> job persisted by the agent: {latency_s:.3f} s")
        assert latency_s < 10.0  # the goal is p99 < 5 s (benchmarks/alerts.py); slack for a loaded CI machine
        assert (system.watch_dir / "done" / "grb.json").exists()
        assert (system.watch_dir / "done" / "test-notice.json").exists()
        job = await _eventually_job(
            system,
            "grb-900002",
            {common_pb2.JOB_STATE_RECEIVED, common_pb2.JOB_STATE_RUNNING, common_pb2.JOB_STATE_SUCCEEDED},
            15.0,
        )
        assert job is not None
        alerts = alerts_pb2_grpc.AlertServiceStub(system.channel)
        listed = await alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), metadata=system.metadata, timeout=5)
        by_id = {a.external_id: a for a in listed.alerts}
        assert by_id["swift:900001"].status == alerts_pb2.ALERT_STATUS_TEST and not by_id["swift:900001"].target_id
        assert by_id["swift:900002"].status == alerts_pb2.ALERT_STATUS_ACCEPTED
        assert not any(t == "grb-900001" for t, _s, _u in system.agent_jobs().values())

        retraction = gcn_notice(ra_deg=ra, dec_deg=dec, trigger_id=900002, record_number=2, alert_type="retraction")
        system.write_alert("grb-retraction.json", retraction)
        ended = await _eventually_job(
            system, "grb-900002", {common_pb2.JOB_STATE_CANCELLED, common_pb2.JOB_STATE_ABORTED}, 20.0
        )
        assert ended.cause in (common_pb2.CAUSE_CODE_ALERT_RETRACTED, common_pb2.CAUSE_CODE_ABORTED_BY_OPERATOR)  # type: ignore[attr-defined]
        if ended.state == common_pb2.JOB_STATE_CANCELLED:  # type: ignore[attr-defined]
            assert ended.cause == common_pb2.CAUSE_CODE_ALERT_RETRACTED  # type: ignore[attr-defined]
            deadline = time.monotonic() + 15.0
            while any(t == "grb-900002" and s == 4 for t, s, _u in system.agent_jobs().values()):  # 4: RECEIVED
                assert time.monotonic() < deadline, "the agent kept the retracted job\n" + system.log_tails()
                await asyncio.sleep(0.1)
    finally:
        await system.stop()
