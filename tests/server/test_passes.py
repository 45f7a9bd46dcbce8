"""Pass products through the server (SQLite and PostgreSQL): a ground station's IQ recording (SigMF, made the way the
agent makes it) is uploaded over the real upload RPC; the server's worker measures it against the server's own TLE
and station position, stores the pass quality, draws the waterfall, and a pass whose carrier is off the orbit's
prediction marks its job done-but-bad."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.model import SatelliteTarget, Station, StationKind, TimeWindow
from skymesh.server import RunningServer
from skymesh.server.db.products import CAUSE_BAD_DATA
from skymesh.server.db.records import PlannedJob, Role
from tests.agent.test_executor import EPOCH, SITE
from tests.products.test_passes import _record
from tests.server.agent_client import AgentClient, ts
from tests.server.conftest import StartServer

CHUNK = 256 * 1024
SAT = "sat-1"


async def _chunks(resource: str, data: bytes) -> AsyncIterator[agent_pb2.UploadArtifactRequest]:
    digest = hashlib.sha256(data).hexdigest()
    for offset in range(0, len(data), CHUNK):
        last = offset + CHUNK >= len(data)
        yield agent_pb2.UploadArtifactRequest(
            resource_name=resource,
            write_offset=offset,
            data=data[offset : offset + CHUNK],
            finish_write=last,
            sha256=digest if last else "",
            kind="sigmf",
        )


async def _upload(server: RunningServer, key: str, observation_id: str, data: bytes) -> str:
    resource = f"observations/{observation_id}/artifacts/{uuid.uuid4()}"
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        done = await stub.UploadArtifact(_chunks(resource, data), metadata=(("authorization", f"Bearer {key}"),))
        assert done.complete
    return resource


async def _report(agent: AgentClient, seq: int, job_id: str) -> tuple[int, str]:
    for state in (common_pb2.JOB_STATE_RECEIVED, common_pb2.JOB_STATE_RUNNING):
        seq += 1
        await agent.job_update(seq, job_id, state)
        await agent.expect("upstream_ack", skip=("schedule",))
    start = datetime.now(UTC) - timedelta(minutes=10)
    record = agent_pb2.ObservationRecord(
        observation_id=str(uuid.uuid4()),
        job_id=job_id,
        target_id=SAT,
        start=ts(start),
        end=ts(start + timedelta(minutes=9)),
    )
    seq += 1
    await agent.observation(seq, record)
    await agent.expect("upstream_ack", skip=("schedule",))
    seq += 1
    await agent.job_update(seq, job_id, common_pb2.JOB_STATE_SUCCEEDED, cause=common_pb2.CAUSE_CODE_OK)
    await agent.expect("upstream_ack", skip=("schedule",))
    return seq, record.observation_id


async def test_pass_recordings_are_measured_and_bad_passes_go_back(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server(reduction_workers=1)
    assert server.reducer is not None
    await server.repo.create_station(Station("gs1", "GS1", StationKind.GROUND_STATION, SITE, bands=("UHF",)))
    key = (await server.repo.issue_station_key("gs1")).api_key
    (tle,) = generate_tles("iss", 1, EPOCH, seed=7)
    await server.repo.create_target(
        SatelliteTarget(SAT, "SAT 1", tle.norad_id, tle.line1, tle.line2, band="UHF", downlink_frequency_hz=437.1e6)
    )
    now = datetime.now(UTC)
    windows = [TimeWindow(now + timedelta(seconds=s), now + timedelta(seconds=s + 600)) for s in (600, 1800)]
    await server.repo.apply_plan(["gs1"], [PlannedJob("gs1", SAT, w) for w in windows])
    good_job, bad_job = [
        j.job_id for j in sorted(await server.repo.list_jobs(station_id="gs1"), key=lambda j: j.window.start)
    ]
    good_iq, *_ = await _record(tmp_path, "good")
    off_iq, *_ = await _record(tmp_path, "off", transmitter_offset_hz=2000.0)
    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")
        seq, good_obs = await _report(agent, 0, good_job)
        _seq, bad_obs = await _report(agent, seq, bad_job)
        good_resource = await _upload(server, key, good_obs, await asyncio.to_thread(good_iq.read_bytes))
        await _upload(server, key, bad_obs, await asyncio.to_thread(off_iq.read_bytes))
        await server.reducer.wait_idle(120.0)
    assert server.reducer.reduced == 2 and server.reducer.failed == 0

    await server.repo.create_user("ada", Role.ADMIN)
    auth = (("authorization", f"Bearer {await server.repo.issue_user_token('ada')}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        listed = await observations_pb2_grpc.ObservationServiceStub(channel).ListObservations(
            observations_pb2.ListObservationsRequest(target_id=SAT), metadata=auth
        )
    by_id = {o.record.observation_id: o.reduction for o in listed.observations}
    good, bad = by_id[good_obs], by_id[bad_obs]
    assert good.state == observations_pb2.REDUCTION_STATE_GOOD and list(good.quality_flags) == []
    assert good.pass_quality_score > 0.9 and abs(good.doppler_offset_hz) < 30.0 and good.peak_snr_db > 10.0
    assert bad.state == observations_pb2.REDUCTION_STATE_BAD and "DOPPLER_OFFSET" in bad.quality_flags
    assert bad.doppler_offset_hz == pytest.approx(2000.0, abs=30.0)
    assert (await server.repo.get_job(bad_job)).cause == CAUSE_BAD_DATA
    assert (await server.repo.get_job(good_job)).cause != CAUSE_BAD_DATA
    artifact = await server.repo.get_artifact(good_resource)
    assert artifact is not None
    png = await asyncio.to_thread(Path(artifact.path + ".waterfall.png").read_bytes)
    assert png[:4] == b"\x89PNG"
    # The API names the waterfall relative to the server's data directory, and it is that file.
    assert good.waterfall_path.startswith("uploads/") and good.waterfall_path.endswith(".waterfall.png")
    drawn = await asyncio.to_thread(Path(server.config.data_dir, good.waterfall_path).read_bytes)
    assert drawn == png
    assert not good.error

    # Both through DownloadArtifact: the recording as uploaded, and the waterfall the server drew from it.
    _obs, observation_id, _art, artifact_id = good_resource.split("/")
    # ListObservations names the recording the waterfall came from, so a client can download it.
    assert good.waterfall_artifact_id == artifact_id
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = observations_pb2_grpc.ObservationServiceStub(channel)
        for product, expected, kind, media_type in (
            (observations_pb2.ARTIFACT_PRODUCT_UNSPECIFIED, good_iq.read_bytes(), "sigmf", "application/x-tar"),
            (observations_pb2.ARTIFACT_PRODUCT_WATERFALL, png, "png", "image/png"),
        ):
            request = observations_pb2.DownloadArtifactRequest(
                observation_id=observation_id, artifact_id=artifact_id, product=product
            )
            chunks = [c async for c in stub.DownloadArtifact(request, metadata=auth)]
            info = chunks[0].info
            assert (info.kind, info.media_type, info.size_bytes) == (kind, media_type, len(expected))
            assert all(not c.HasField("info") for c in chunks[1:])
            assert [c.offset for c in chunks] == [sum(len(c.data) for c in chunks[:i]) for i in range(len(chunks))]
            assert b"".join(c.data for c in chunks) == expected
