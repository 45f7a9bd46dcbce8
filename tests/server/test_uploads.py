"""Artifact uploads (rule 11): offsets, resume after a cut, status query, SHA-256 check."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc
from skymesh.core.errors import FailedPrecondition
from tests.server.conftest import Fleet, StartServer, add_station

CHUNK = 64 * 1024
RESOURCE = "observations/obs-1/artifacts/image.fits"


def _stub(fleet: Fleet) -> tuple[grpc.aio.Channel, agent_pb2_grpc.AgentServiceStub]:
    channel = grpc.aio.insecure_channel(fleet.address)
    return channel, agent_pb2_grpc.AgentServiceStub(channel)


def _meta(fleet: Fleet, station: str = "gs1") -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {fleet.keys[station]}"),)


async def _chunks(items: Sequence[agent_pb2.UploadArtifactRequest]) -> AsyncIterator[agent_pb2.UploadArtifactRequest]:
    for item in items:
        yield item


def _chunk(data: bytes, offset: int, *, finish: bool = False, sha: str = "") -> agent_pb2.UploadArtifactRequest:
    return agent_pb2.UploadArtifactRequest(
        resource_name=RESOURCE, write_offset=offset, data=data, finish_write=finish, sha256=sha, kind="fits"
    )


async def test_upload_resume_and_verify(fleet: Fleet) -> None:
    payload = os.urandom(3 * CHUNK + 1000)
    digest = hashlib.sha256(payload).hexdigest()
    channel, stub = _stub(fleet)
    async with channel:
        # Two chunks, then the link "breaks" (the stream ends without finish_write).
        first = await stub.UploadArtifact(
            _chunks([_chunk(payload[:CHUNK], 0), _chunk(payload[CHUNK : 2 * CHUNK], CHUNK)]), metadata=_meta(fleet)
        )
        assert (first.committed_size_bytes, first.complete) == (2 * CHUNK, False)
        status = await stub.QueryUploadStatus(
            agent_pb2.QueryUploadStatusRequest(resource_name=RESOURCE), metadata=_meta(fleet)
        )
        assert (status.committed_size_bytes, status.complete) == (2 * CHUNK, False)
        # Resuming at the wrong offset names the committed size.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadArtifact(_chunks([_chunk(payload[:CHUNK], 0)]), metadata=_meta(fleet))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "write_offset" in (err.value.details() or "") and str(2 * CHUNK) in (err.value.details() or "")
        done = await stub.UploadArtifact(
            _chunks([_chunk(payload[2 * CHUNK :], 2 * CHUNK, finish=True, sha=digest)]), metadata=_meta(fleet)
        )
        assert (done.committed_size_bytes, done.complete) == (len(payload), True)
        status = await stub.QueryUploadStatus(
            agent_pb2.QueryUploadStatusRequest(resource_name=RESOURCE), metadata=_meta(fleet)
        )
        assert status.complete
        # Another station cannot see it.
        other = await stub.QueryUploadStatus(
            agent_pb2.QueryUploadStatusRequest(resource_name=RESOURCE), metadata=_meta(fleet, "gs2")
        )
        assert (other.committed_size_bytes, other.complete) == (0, False)
    record = await fleet.server.repo.get_artifact(RESOURCE)
    assert record is not None
    _assert_stored_under(Path(fleet.server.config.uploads_dir), Path(record.path), payload)


def _assert_stored_under(root: Path, stored: Path, payload: bytes) -> None:
    # The server names the file itself: nothing of the station's or the agent's choosing is in the path.
    relative = stored.relative_to(root.resolve())
    assert "gs1" not in str(relative) and "obs-1" not in str(relative) and "image" not in str(relative)
    assert stored.read_bytes() == payload


async def test_upload_bad_sha256_is_data_loss_and_discarded(fleet: Fleet) -> None:
    payload = os.urandom(CHUNK + 10)
    channel, stub = _stub(fleet)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadArtifact(
                _chunks([_chunk(payload[:CHUNK], 0), _chunk(payload[CHUNK:], CHUNK, finish=True, sha="0" * 64)]),
                metadata=_meta(fleet),
            )
        assert err.value.code() == grpc.StatusCode.DATA_LOSS
        assert "sha256" in (err.value.details() or "")
        status = await stub.QueryUploadStatus(
            agent_pb2.QueryUploadStatusRequest(resource_name=RESOURCE), metadata=_meta(fleet)
        )
        assert (status.committed_size_bytes, status.complete) == (0, False)


@pytest.mark.parametrize("name", ["observations/../artifacts/x", "files/x", "observations/a/artifacts/"])
async def test_upload_bad_resource_name(fleet: Fleet, name: str) -> None:
    channel, stub = _stub(fleet)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadArtifact(
                _chunks([agent_pb2.UploadArtifactRequest(resource_name=name, data=b"x")]), metadata=_meta(fleet)
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("resource_name")


async def test_upload_needs_a_station_key(fleet: Fleet) -> None:
    channel, stub = _stub(fleet)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadArtifact(_chunks([_chunk(b"x", 0)]), metadata=(("authorization", "Bearer smk_a_b"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # replicas share PostgreSQL; SQLite is one process
async def test_an_upload_resumed_on_another_replica_continues_there(start_server: StartServer, tmp_path: Path) -> None:
    # Two replicas with their own data_dir and one shared artifacts_dir, which B mounts at another path (the
    # directory is moved between A's stop and B's start): B finds A's partial file by its storage id.
    a = await start_server(server_id="replica-a", data_dir=str(tmp_path / "a"), artifacts_dir=str(tmp_path / "mount-a"))
    key = await add_station(a, "gs1")
    meta = (("authorization", f"Bearer {key}"),)
    payload = os.urandom(3 * CHUNK + 77)
    digest = hashlib.sha256(payload).hexdigest()
    async with grpc.aio.insecure_channel(a.address) as ca:
        first = await agent_pb2_grpc.AgentServiceStub(ca).UploadArtifact(
            _chunks([_chunk(payload[:CHUNK], 0), _chunk(payload[CHUNK : 2 * CHUNK], CHUNK)]), metadata=meta
        )
    assert first.committed_size_bytes == 2 * CHUNK
    await a.stop(grace_s=0.1)  # replica A is gone; the agent's next attempt lands on B
    (tmp_path / "mount-a").rename(tmp_path / "mount-b")
    b = await start_server(server_id="replica-b", data_dir=str(tmp_path / "b"), artifacts_dir=str(tmp_path / "mount-b"))
    async with grpc.aio.insecure_channel(b.address) as cb:
        on_b = agent_pb2_grpc.AgentServiceStub(cb)
        status = await on_b.QueryUploadStatus(agent_pb2.QueryUploadStatusRequest(resource_name=RESOURCE), metadata=meta)
        assert (status.committed_size_bytes, status.complete) == (2 * CHUNK, False)
        with pytest.raises(grpc.aio.AioRpcError) as err:  # a stale stream's old offset: refused, names the size
            await on_b.UploadArtifact(_chunks([_chunk(payload[CHUNK : 2 * CHUNK], CHUNK)]), metadata=meta)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and str(2 * CHUNK) in (err.value.details() or "")
        done = await on_b.UploadArtifact(
            _chunks([_chunk(payload[2 * CHUNK :], 2 * CHUNK, finish=True, sha=digest)]), metadata=meta
        )
        assert (done.committed_size_bytes, done.complete) == (len(payload), True)
        request = observations_pb2.DownloadArtifactRequest(observation_id="obs-1", artifact_id="image.fits")
        chunks = [c async for c in observations_pb2_grpc.ObservationServiceStub(cb).DownloadArtifact(request)]
    assert b"".join(c.data for c in chunks) == payload and chunks[0].info.sha256 == digest
    record = await b.repo.get_artifact(RESOURCE)
    assert record is not None and "mount-a" in record.path  # A's path, read by B all the same
    assert not list((tmp_path / "mount-b").rglob("*.part")) and not (tmp_path / "b" / "uploads").exists()


async def test_a_commit_at_a_superseded_offset_changes_nothing(fleet: Fleet) -> None:
    # Two streams of one upload (an agent back through another replica, its old connection half-open) each wrote the
    # chunk at offset 0; only the first to commit its size counts.
    repo = fleet.server.repo
    await repo.open_artifact(
        RESOURCE,
        observation_id="obs-1",
        artifact_id="image.fits",
        station_id="gs1",
        path="x",
        kind="fits",
        total_size_bytes=0,
    )
    await repo.set_artifact_progress(RESOURCE, CHUNK, expected=0)
    with pytest.raises(FailedPrecondition) as err:
        await repo.set_artifact_progress(RESOURCE, 2 * CHUNK, expected=0)
    assert str(CHUNK) in str(err.value)
    record = await repo.get_artifact(RESOURCE)
    assert record is not None and record.committed_size_bytes == CHUNK
