"""Uploads of large artifact files (FITS images, IQ recordings) over `AgentService.UploadArtifact`.

Files wait in `<state_dir>/artifacts/<observation_id>/` and in the store's `uploads` table; one is sent only after
its observation record was acknowledged (so the server knows the observation). Each upload asks
`QueryUploadStatus` first and continues from the committed size, streams chunks of `UPLOAD_CHUNK_BYTES` with
`write_offset`, and finishes with the SHA-256 of the whole file; the file is deleted once the server says complete.
FAILED_PRECONDITION (wrong offset) re-queries and resumes; DATA_LOSS (digest mismatch) starts over; anything else
waits and retries, without ever disturbing the control stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
from grpc import aio

from skymesh.agent.aio import wait_event
from skymesh.agent.store import AsyncStore, PendingUpload
from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc

__all__ = ["UPLOAD_CHUNK_BYTES", "Uploader"]

_log = logging.getLogger(__name__)

UPLOAD_CHUNK_BYTES = 256 * 1024
_RETRY_S = 2.0


class Uploader:
    def __init__(self, store: AsyncStore, state_dir: Path, *, chunk_bytes: int = UPLOAD_CHUNK_BYTES) -> None:
        self.store = store
        self.state_dir = state_dir
        self.chunk_bytes = chunk_bytes
        self.changed = asyncio.Event()

    async def run(self, stub: agent_pb2_grpc.AgentServiceAsyncStub, metadata: Sequence[tuple[str, str]]) -> None:
        """Upload whatever is ready, for as long as the session lasts."""
        while True:
            self.changed.clear()
            failed = False
            for upload in await self.store.call(self.store.sync.ready_uploads):
                try:
                    await self._upload(stub, metadata, upload)
                except (aio.AioRpcError, OSError) as exc:
                    detail = f"{exc.code().name} {exc.details()}" if isinstance(exc, aio.AioRpcError) else repr(exc)
                    _log.warning("upload of %s failed: %s (will retry)", upload.resource_name, detail)
                    failed = True
                    break
            await wait_event(self.changed, _RETRY_S if failed else 10.0)

    async def _upload(
        self, stub: agent_pb2_grpc.AgentServiceAsyncStub, metadata: Sequence[tuple[str, str]], upload: PendingUpload
    ) -> None:
        path = upload.path(self.state_dir)
        if not path.exists():
            _log.error("artifact file %s is gone; giving up on %s", path, upload.resource_name)
            await self.store.call(self.store.sync.finish_upload, upload.artifact_id)
            return
        for _attempt in range(3):
            status = await stub.QueryUploadStatus(
                agent_pb2.QueryUploadStatusRequest(resource_name=upload.resource_name), metadata=tuple(metadata)
            )
            if status.complete:
                break
            try:
                response = await stub.UploadArtifact(
                    self._chunks(path, upload, status.committed_size_bytes), metadata=tuple(metadata)
                )
            except aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    continue  # our offset was stale: ask again
                if exc.code() == grpc.StatusCode.DATA_LOSS:
                    _log.warning("server discarded %s (digest mismatch); starting over", upload.resource_name)
                    continue
                raise
            if response.complete:
                break
        else:
            raise OSError(f"could not complete {upload.resource_name} in 3 attempts")
        await self.store.call(self.store.sync.finish_upload, upload.artifact_id)
        await asyncio.to_thread(_remove, path)
        _log.info("uploaded %s (%d bytes)", upload.resource_name, upload.size_bytes)

    async def _chunks(
        self, path: Path, upload: PendingUpload, offset: int
    ) -> AsyncIterator[agent_pb2.UploadArtifactRequest]:
        size = upload.size_bytes
        while True:
            data = await asyncio.to_thread(_read_at, path, offset, self.chunk_bytes)
            last = offset + len(data) >= size
            yield agent_pb2.UploadArtifactRequest(
                resource_name=upload.resource_name,
                write_offset=offset,
                data=data,
                finish_write=last,
                sha256=upload.sha256 if last else "",
                total_size_bytes=size,
                kind=upload.kind,
            )
            offset += len(data)
            if last:
                return


def _read_at(path: Path, offset: int, count: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(count)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when empty
