"""Resumable artifact uploads (docs/protocol.md rule 11): offsets, status query, SHA-256 check.

Files live under `<artifacts_dir>/<xx>/<storage_id>` (default `<data_dir>/uploads`), where `storage_id` is a random
id the server generates for each artifact (never a client-chosen name: nothing an agent sends can steer a path), and
every path is checked to resolve inside the uploads directory before it is opened; while incomplete they end in
".part". A file is found by its storage id under this server's `artifacts_dir` (`artifact_file`), never by the
directory recorded with it: replicas that mount one shared directory at different paths all find it.

The committed size in the database is the truth: each chunk is appended and fsynced before the size is committed,
and a file longer than its committed size (a crash between the two) is truncated on the next chunk. The size is
committed only if it is still the one the chunk was written at, so two streams of one upload (an agent back through
another replica while its old connection is half-open) cannot both commit a chunk: the later one is refused with
FAILED_PRECONDITION naming the committed size, as any wrong offset is.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.errors import abort_with
from skymesh.core.errors import FailedPrecondition, InvalidArgument, SkyMeshError
from skymesh.observability.metrics import UPLOAD_BYTES
from skymesh.server.auth import authenticate_station
from skymesh.server.config import ServerConfig
from skymesh.server.db import Repository
from skymesh.server.db.records import ArtifactRecord

__all__ = ["MAX_CHUNK_BYTES", "Uploads", "artifact_file", "inside", "parse_resource_name", "storage_path"]

MAX_CHUNK_BYTES = 512 * 1024
_RESOURCE = re.compile(r"^observations/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/artifacts/([A-Za-z0-9][A-Za-z0-9._-]{0,63})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_resource_name(name: str) -> tuple[str, str]:
    match = _RESOURCE.match(name)
    if match is None:
        raise InvalidArgument("must be observations/{observation_id}/artifacts/{artifact_id}", field="resource_name")
    return match.group(1), match.group(2)


def storage_path(root: Path, storage_id: str) -> Path:
    """Where a server-generated `storage_id` lives under `root`; refuses anything that would resolve outside it."""
    if not re.fullmatch(r"[0-9a-f]{32}", storage_id):
        raise InvalidArgument("must be 32 lowercase hex digits", field="storage_id")
    return inside(root, root / storage_id[:2] / storage_id)


def artifact_file(root: Path, recorded_path: str, suffix: str = "") -> Path:
    """The file of an artifact whose recorded path is `recorded_path`, under this server's uploads root `root`: found
    by its storage id (the recorded path's last part), so the directory recorded by whichever replica opened the
    upload does not matter. `suffix`: ".part" while incomplete, ".waterfall.png" for a recording's waterfall."""
    storage_id = Path(recorded_path).name
    return inside(root, storage_path(root, storage_id).with_name(storage_id + suffix))


def inside(root: Path, path: Path) -> Path:
    """`path` if it resolves to somewhere under `root` (symlinks followed); else InvalidArgument."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InvalidArgument("resolves outside the data directory", field="path")
    return resolved


def _append(path: Path, committed: int, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        if f.tell() != committed:
            f.truncate(committed)
            f.seek(committed)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Uploads:
    def __init__(
        self, repo: Repository, config: ServerConfig, *, on_complete: Callable[[str, str], None] | None = None
    ) -> None:
        self._repo = repo
        self._root = config.uploads_dir
        self._on_complete = on_complete  # (resource_name, kind): e.g. hand a FITS frame to the data products

    def _part(self, record: ArtifactRecord) -> Path:
        return artifact_file(self._root, record.path, ".part")

    async def upload(
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.UploadArtifactResponse:
        try:
            return await self._upload(request_iterator, context)
        except SkyMeshError as exc:
            await abort_with(context, exc)
            raise AssertionError("unreachable: abort raises") from exc

    async def _upload(
        self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.UploadArtifactResponse:
        station_id, _key_id = await authenticate_station(self._repo, context)
        record: ArtifactRecord | None = None
        committed = 0
        async for chunk in request_iterator:
            assert isinstance(chunk, agent_pb2.UploadArtifactRequest)
            if record is None:
                observation_id, artifact_id = parse_resource_name(chunk.resource_name)
                path = storage_path(self._root, uuid.uuid4().hex)
                record = await self._repo.open_artifact(
                    chunk.resource_name,
                    observation_id=observation_id,
                    artifact_id=artifact_id,
                    station_id=station_id,
                    path=str(path),
                    kind=chunk.kind,
                    total_size_bytes=chunk.total_size_bytes,
                )
                if record.complete:
                    return agent_pb2.UploadArtifactResponse(
                        committed_size_bytes=record.committed_size_bytes, complete=True
                    )
                committed = record.committed_size_bytes
            elif chunk.resource_name and chunk.resource_name != record.resource_name:
                raise InvalidArgument("must be the same in every chunk", field="resource_name")
            if chunk.write_offset != committed:
                raise FailedPrecondition(
                    f"must equal the committed size {committed} (got {chunk.write_offset})", field="write_offset"
                )
            if len(chunk.data) > MAX_CHUNK_BYTES:
                raise InvalidArgument(f"chunks must be at most {MAX_CHUNK_BYTES} bytes", field="data")
            if chunk.data:
                await asyncio.to_thread(_append, self._part(record), committed, chunk.data)
                committed += len(chunk.data)
                await self._repo.set_artifact_progress(
                    record.resource_name, committed, expected=committed - len(chunk.data)
                )
                UPLOAD_BYTES.inc(len(chunk.data))
            if chunk.finish_write:
                await self._finish(record, committed, chunk, context)
                return agent_pb2.UploadArtifactResponse(committed_size_bytes=committed, complete=True)
        return agent_pb2.UploadArtifactResponse(committed_size_bytes=committed, complete=False)

    async def _finish(
        self,
        record: ArtifactRecord,
        committed: int,
        chunk: agent_pb2.UploadArtifactRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        expected = chunk.sha256.lower()
        if not _SHA256.match(expected):
            raise InvalidArgument("must be the 64-hex-digit SHA-256 of the whole file", field="sha256")
        part = self._part(record)
        if committed == 0:
            await asyncio.to_thread(_append, part, 0, b"")
        actual = await asyncio.to_thread(_sha256, part)
        size_ok = chunk.total_size_bytes in (0, committed)
        if actual != expected or not size_ok:
            # The partial file is worthless: discard it so the agent starts over from offset 0.
            await asyncio.to_thread(part.unlink, True)
            await self._repo.set_artifact_progress(record.resource_name, 0)
            what = "sha256" if actual != expected else "total_size_bytes"
            context.set_trailing_metadata((("skymesh-error-reason", "DATA_LOSS"), ("skymesh-error-field", what)))
            await context.abort(
                grpc.StatusCode.DATA_LOSS,
                f"{what}: the received file does not match (sha256 {actual}, {committed} bytes); upload discarded",
            )
        await asyncio.to_thread(os.replace, part, artifact_file(self._root, record.path))
        await self._repo.set_artifact_progress(
            record.resource_name, committed, complete=True, sha256=actual, expected=committed
        )
        if self._on_complete is not None:
            self._on_complete(record.resource_name, record.kind)

    async def query(
        self, request: agent_pb2.QueryUploadStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agent_pb2.QueryUploadStatusResponse:
        try:
            station_id, _key_id = await authenticate_station(self._repo, context)
            parse_resource_name(request.resource_name)
            record = await self._repo.get_artifact(request.resource_name)
        except SkyMeshError as exc:
            await abort_with(context, exc)
            raise AssertionError("unreachable: abort raises") from exc
        if record is None or record.station_id != station_id:
            return agent_pb2.QueryUploadStatusResponse(committed_size_bytes=0, complete=False)
        return agent_pb2.QueryUploadStatusResponse(
            committed_size_bytes=record.committed_size_bytes, complete=record.complete
        )
