"""Alert to telescope, end to end with real processes, on SQLite and PostgreSQL.

- A GCN notice dropped into the server's watch directory becomes a target, wakes the planner, and a job for it is
  persisted by the telescope's agent within seconds; a test notice is stored and never scheduled; the retraction
  cancels the job (cause ALERT_RETRACTED) and the agent drops it from its schedule.
- The whole science path: the alert's job runs at the agent, whose simulated camera renders the star field around
  the alert's position from a catalogue generated for it at test time (the same catalogue the server reduces
  against), uploads the frame over the real agent stream, the server's worker reduces it (photometry, astrometry,
  quality flags), and GetLightCurve returns a calibrated point with the star's magnitude and a sane error.
"""

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
from skymesh.products.catalog import FieldCentre, generate_field_catalogue, write_catalogue
from tests.e2e.alert_system import AlertSystem, night_station, zenith_radec
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


TARGET_V_MAG = 13.5


async def test_alert_file_to_calibrated_light_curve_point(database_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    now = datetime.now(UTC)
    # The alert goes near the zenith of a telescope where it is night now; a synthetic field is generated around that
    # position, and both the server (reference_catalogue) and the agent's camera (star_catalogue) use it.
    ra, dec = zenith_radec(night_station(now), now)
    field = FieldCentre("e2e-alert", round(ra, 6), round(dec, 6), TARGET_V_MAG, seed=21, bright_v_mag=10.0,
                        faint_v_mag=18.0)  # fmt: skip
    catalogue = generate_field_catalogue([field])
    catalogue_path = write_catalogue(catalogue, tmp_path / "field.ecsv")
    rule = {"source": "gcn", "alert_type": "swift.*", "action": "target", "priority": 9, "window_s": 3600.0,
            "exposure_s": 10.0, "exposure_count": 1}  # fmt: skip
    system = AlertSystem(
        tmp_path / "system",
        database_url,
        {
            "reduction_workers": 1,
            "reference_catalogue": str(catalogue_path),
            "alerts": {"watch_dir": str(tmp_path / "system" / "inbox"), "watch_interval_s": 0.05, "rules": [rule]},
        },
        agent_overrides={
            "drivers": {"camera": {"kind": "simulated", "params": {"star_catalogue": str(catalogue_path)}}},
        },
    )
    try:
        await system.start(now)
        system.write_alert("grb.json", gcn_notice(ra_deg=field.ra_deg, dec_deg=field.dec_deg, trigger_id=900003))
        await system.wait_agent_job("grb-900003", timeout_s=30.0)
        api = observations_pb2_grpc.ObservationServiceStub(system.channel)
        deadline = time.monotonic() + 75.0
        while True:
            curve = await api.GetLightCurve(
                observations_pb2.GetLightCurveRequest(target_id="grb-900003", include_bad=True),
                metadata=system.metadata,
                timeout=5,
            )
            if any(p.reduced for p in curve.points):
                break
            assert time.monotonic() < deadline, f"no reduced light-curve point: {curve}\n{system.log_tails()}"
            await asyncio.sleep(0.5)
        (point,) = [p for p in curve.points if p.reduced]
        truth = float(catalogue[f"mag_{point.filter}"][0])  # the target is the field's first star
        print(f"light-curve point {point.filter} {point.magnitude:.5f} +- {point.magnitude_error:.5f} "
              f"(catalogue {truth:.3f}), {time.monotonic() - started:.1f} s after the start")  # fmt: skip
        assert point.station_id == system.station.station_id if system.station else False
        assert not point.quality_flags, point
        assert 0.0 < point.magnitude_error < 0.05
        assert abs(point.magnitude - truth) < max(0.1, 4 * point.magnitude_error)
        assert 1.0 <= point.airmass < 1.5
        listed = await api.ListObservations(
            observations_pb2.ListObservationsRequest(target_id="grb-900003"), metadata=system.metadata, timeout=5
        )
        reduction = listed.observations[0].reduction
        assert reduction.state == observations_pb2.REDUCTION_STATE_GOOD
        assert 0.0 < reduction.wcs_rms_arcsec < 0.5 and 1.0 < reduction.fwhm_arcsec < 4.0
        assert time.monotonic() - started < 90.0
    finally:
        await system.stop()
