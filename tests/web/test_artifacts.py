"""Artifact downloads through the gateway (SQLite and PostgreSQL): a station uploads a frame over the real upload RPC;
any signed-in user downloads it over HTTP, streamed from the server's DownloadArtifact in chunks, byte for byte with
its SHA-256; unknown, unfinished and path-like ids are refused and read nothing; anonymous callers get 401."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator

import grpc

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from tests.web.conftest import Web

CHUNK = 256 * 1024


async def _chunks(resource: str, data: bytes, *, finish: bool = True) -> AsyncIterator[agent_pb2.UploadArtifactRequest]:
    digest = hashlib.sha256(data).hexdigest()
    for offset in range(0, len(data), CHUNK):
        last = finish and offset + CHUNK >= len(data)
        yield agent_pb2.UploadArtifactRequest(
            resource_name=resource,
            write_offset=offset,
            data=data[offset : offset + CHUNK],
            finish_write=last,
            sha256=digest if last else "",
            kind="fits",
        )


async def upload(web: Web, station_id: str, resource: str, data: bytes, *, finish: bool = True) -> None:
    async with grpc.aio.insecure_channel(web.server.address) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        meta = (("authorization", f"Bearer {web.keys[station_id]}"),)
        done = await stub.UploadArtifact(_chunks(resource, data, finish=finish), metadata=meta)
        assert done.complete == finish


async def test_artifacts_download_through_the_gateway(web: Web) -> None:
    observation_id, artifact_id = str(uuid.uuid4()), "frame-1"
    data = os.urandom(600 * 1024)  # three chunks each way
    await upload(web, "tel-paranal", f"observations/{observation_id}/artifacts/{artifact_id}", data)
    await upload(web, "tel-paranal", f"observations/{observation_id}/artifacts/partial", data[:1000], finish=False)
    url = f"/api/v1/observations/{observation_id}/artifacts/{artifact_id}"

    async with web.http() as anon:
        refused = await anon.get(url)
        assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHENTICATED"
    async with web.http("olga") as observer:
        got = await observer.get(url)
        assert got.status_code == 200, got.text
        assert got.content == data
        assert got.headers["content-type"] == "application/fits"
        assert got.headers["content-length"] == str(len(data))
        assert got.headers["content-disposition"] == f'attachment; filename="{observation_id}-{artifact_id}.fits"'
        assert got.headers["x-skymesh-sha256"] == hashlib.sha256(data).hexdigest()

        no_waterfall = await observer.get(url, params={"product": "waterfall"})
        assert no_waterfall.status_code == 404 and no_waterfall.json()["code"] == "NOT_FOUND"
        unknown = await observer.get(f"/api/v1/observations/{observation_id}/artifacts/frame-2")
        assert unknown.status_code == 404
        unfinished = await observer.get(f"/api/v1/observations/{observation_id}/artifacts/partial")
        assert unfinished.status_code == 404  # never a partial file
        for bad in ("..", ".hidden", "a%20b"):
            resp = await observer.get(f"/api/v1/observations/{observation_id}/artifacts/{bad}")
            assert resp.status_code in (400, 404), (bad, resp.status_code)
            if resp.status_code == 400:
                assert resp.json()["field"] == "artifact_id"
        traversal = await observer.get(f"/api/v1/observations/{observation_id}/artifacts/..%2F..%2Fadmin.token")
        assert traversal.status_code in (400, 404)
        assert traversal.json()["code"] in ("INVALID_ARGUMENT", "NOT_FOUND")  # an error body, not a file
        bad_product = await observer.get(url, params={"product": "thumbnail"})
        assert bad_product.status_code == 422 and bad_product.json()["field"] == "product"
