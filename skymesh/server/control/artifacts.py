"""ObservationService.DownloadArtifact: an observation's complete upload (FITS frame, SigMF recording...) or the
waterfall PNG the server drew from a recording, streamed in chunks of `CHUNK_BYTES`.

Path safety: the request names ids only, checked against the upload resource grammar; the file is the one the
database records for that resource (a server-generated storage id, `skymesh.server.uploads`), and its resolved path
must lie inside the uploads directory, or nothing is read. An upload still in progress is NOT_FOUND, never a partial
file. Readers need the observer role (the method is listed with the other reads in `skymesh.server.auth`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from skymesh.api.control.v1 import observations_pb2
from skymesh.api.errors import abort_with
from skymesh.core.errors import InvalidArgument, NotFound, SkyMeshError
from skymesh.server.db import Repository
from skymesh.server.uploads import artifact_file, parse_resource_name

__all__ = ["CHUNK_BYTES", "download_artifact"]

CHUNK_BYTES = 256 * 1024
_MEDIA_TYPES = {
    "fits": "application/fits",
    "fit": "application/fits",
    "fts": "application/fits",
    "sigmf": "application/x-tar",  # a SigMF archive is a tar of .sigmf-meta and .sigmf-data
    "png": "image/png",
}
_SAFE_EXT = re.compile(r"^[a-z0-9]{1,16}$")


def _read(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(CHUNK_BYTES)


async def download_artifact(
    repo: Repository,
    uploads_root: Path,
    request: observations_pb2.DownloadArtifactRequest,
    context: grpc.aio.ServicerContext[Any, Any],
) -> AsyncIterator[observations_pb2.DownloadArtifactResponse]:
    try:
        for name in ("observation_id", "artifact_id"):
            if not getattr(request, name):
                raise InvalidArgument("must not be empty", field=name)
        resource = f"observations/{request.observation_id}/artifacts/{request.artifact_id}"
        try:
            parse_resource_name(resource)
        except InvalidArgument:
            raise InvalidArgument(
                "ids must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                field="artifact_id",
            ) from None
        record = await repo.get_artifact(resource)
        if record is None or not record.complete:
            raise NotFound(f"no complete artifact {request.artifact_id!r} of observation {request.observation_id!r}")
        kind = record.kind.lower()
        stem = f"{request.observation_id}-{request.artifact_id}"
        info = observations_pb2.ArtifactInfo(station_id=record.station_id)
        if request.product == observations_pb2.ARTIFACT_PRODUCT_WATERFALL:
            path = artifact_file(uploads_root, record.path, ".waterfall.png")
            if not await asyncio.to_thread(path.is_file):
                raise NotFound(f"no waterfall for {request.artifact_id!r} (not an IQ recording, or not reduced yet)")
            info.kind, info.filename = "png", f"{stem}-waterfall.png"
        else:
            path = artifact_file(uploads_root, record.path)
            info.kind, info.sha256 = record.kind, record.sha256
            info.filename = f"{stem}.{kind if _SAFE_EXT.match(kind) else 'bin'}"
        info.media_type = _MEDIA_TYPES.get(info.kind.lower(), "application/octet-stream")
        info.size_bytes = (await asyncio.to_thread(path.stat)).st_size
    except SkyMeshError as exc:
        await abort_with(context, exc)
        raise AssertionError("unreachable: abort raises") from exc
    offset = 0
    first = True
    while first or offset < info.size_bytes:
        data = await asyncio.to_thread(_read, path, offset)
        chunk = observations_pb2.DownloadArtifactResponse(offset=offset, data=data)
        if first:
            chunk.info.CopyFrom(info)
            first = False
        yield chunk
        offset += len(data)
        if not data:
            break
