"""Artifact uploads (rule 11): offsets, resume after a cut, status query, SHA-256 check."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from tests.server.conftest import Fleet

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
