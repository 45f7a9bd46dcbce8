"""The observation page shows the server's reduction: why uploads could not be reduced (`Reduction.error`) and the
pass waterfall PNG, fetched through the gateway's download path with the caller's session (in a real Chromium
against a real server and gateway on PostgreSQL). The JSON API carries both; anonymous callers get no PNG."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from playwright.async_api import Browser, expect

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.server.db.products import PassReductionIn
from tests.web.conftest import Web
from tests.web.test_dashboard import browser, dash, open_logged_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.asyncio(loop_scope="module")

ERROR = "not a SigMF archive: no .sigmf-meta member"


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes((x * 30) % 256 for x in range(width)) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _draw(path: Path, png: bytes, web: Web) -> str:
    """Write the waterfall where the reducer would; its path relative to the data directory, as the reducer stores
    it."""
    path.write_bytes(png)
    return path.resolve().relative_to(Path(web.server.config.data_dir).resolve()).as_posix()


async def _upload_recording(web: Web, station_id: str, resource: str, data: bytes) -> None:
    async def chunks() -> AsyncIterator[agent_pb2.UploadArtifactRequest]:
        yield agent_pb2.UploadArtifactRequest(
            resource_name=resource,
            write_offset=0,
            data=data,
            finish_write=True,
            sha256=hashlib.sha256(data).hexdigest(),
            kind="sigmf",
        )

    async with grpc.aio.insecure_channel(web.server.address) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        done = await stub.UploadArtifact(chunks(), metadata=(("authorization", f"Bearer {web.keys[station_id]}"),))
        assert done.complete


async def _reduced_pass(web: Web) -> tuple[str, bytes]:
    """A pass observation at gs-athens with two uploaded recordings: one reduced with a waterfall, one that could
    not be read (the reducer's own path into the repository, minus its worker process)."""
    observation_id = str(uuid.uuid4())
    async with web.http("otto") as client:
        body = {
            "observation_id": observation_id,
            "target_id": "m31",
            "site_id": "gs-athens",
            "observed_at": "2026-11-01T02:00:00Z",
            "exposure_s": 540,
        }
        assert (await client.post("/api/v1/observations", json=body)).status_code == 201
    repo = web.server.repo
    png = _png(40, 12)
    for artifact_id in ("iq-good", "iq-broken"):
        resource = f"observations/{observation_id}/artifacts/{artifact_id}"
        await _upload_recording(web, "gs-athens", resource, b"IQ" * 5000)
        item = await repo.reduction_input(resource)
        assert item is not None
        if artifact_id == "iq-good":
            relative = await asyncio.to_thread(_draw, Path(item.path + ".waterfall.png"), png, web)
            values = {"quality_score": 0.93, "doppler_offset_hz": 12.5, "peak_snr_db": 17.0}
            result = PassReductionIn("good", captures=10, detected=9, values=values, waterfall_path=relative)
        else:
            result = PassReductionIn("error", error=ERROR)
        await repo.store_pass_reduction(item, result)
    return observation_id, png


async def test_observation_page_shows_reduction_error_and_waterfall(browser: Browser, dash: Web) -> None:  # noqa: F811
    observation_id, png = await _reduced_pass(dash)
    async with dash.http("olga") as client:
        listed = (await client.get("/api/v1/observations", params={"target_id": "m31"})).json()["observations"]
        (shown,) = [o for o in listed if o["observation_id"] == observation_id]
        reduction = shown["reduction"]
        assert reduction["state"] == "good" and reduction["error"] == ERROR
        assert "REDUCTION_ERROR" in reduction["quality_flags"]
        assert reduction["waterfall_artifact_id"] == "iq-good"
        url = f"/api/v1/observations/{observation_id}/artifacts/iq-good?product=waterfall"
        assert reduction["waterfall_url"] == url
        assert "waterfall_path" not in reduction  # the server's disk layout is not the client's business
        got = await client.get(url)
        assert got.status_code == 200 and got.content == png and got.headers["content-type"] == "image/png"
    async with dash.http() as anonymous:
        assert (await anonymous.get(url)).status_code == 401

    page = await open_logged_in(browser, dash, "olga")
    await page.goto(f"{dash.base_url}/#/observation/m31/{observation_id}")
    await expect(page.locator("#reduction-state")).to_have_text("good")
    await expect(page.locator("#reduction-error")).to_have_text(ERROR)
    image = page.locator("#pass-waterfall img#waterfall-img")
    await expect(image).to_have_attribute("src", url)
    # Loaded, as the signed-in browser (session cookie): a PNG of the size drawn, not a broken image.
    await page.wait_for_function(
        "() => { const i = document.querySelector('#waterfall-img'); return i && i.complete && i.naturalWidth === 40; }"
    )
    # Shown once: the recording it came from has no second inline copy; the broken one has none either.
    assert await page.locator("#artifacts img.waterfall").count() == 0
    await page.context.close()
