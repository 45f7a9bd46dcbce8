"""The dashboard's live telemetry, map legend and artifact downloads in a real headless Chromium against a real server,
scheduler and gateway on PostgreSQL: a station's telemetry, sent on its agent stream, updates the station page's
readouts and uPlot chart in place without a reload; every map colour means one thing and the legend shows the colours
the map draws; an observation's frame downloads from its page byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, expect

from skymesh.api.agent.v1 import agent_pb2
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.model import SatelliteTarget
from tests.server.agent_client import AgentClient, observation_record, ts
from tests.web.conftest import Web
from tests.web.test_artifacts import upload
from tests.web.test_dashboard import browser, dash, open_logged_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _telemetry(agent: AgentClient, seq: int, values: dict[str, float]) -> None:
    sample = agent_pb2.TelemetrySample(at=ts(datetime.now(UTC)), values=values)
    batch = agent_pb2.TelemetryBatch(samples=[sample])
    await agent.send(agent_pb2.ConnectRequest(telemetry=batch, seq=seq, boot_id=agent.boot_id))


async def test_station_page_shows_telemetry_live(browser: Browser, dash: Web) -> None:  # noqa: F811
    page = await open_logged_in(browser, dash, "olga")
    await page.goto(dash.base_url + "/#/site/gs-athens")
    await expect(page.locator("#tm-at")).to_contain_text("waiting for telemetry")
    loaded_at = await page.evaluate("window.skymeshLoadedAt")
    async with AgentClient.connect(dash.server.address, dash.keys["gs-athens"], "gs-athens") as agent:
        await agent.expect("welcome")
        await expect(page.locator("#site-state")).to_have_text("online")
        await _telemetry(
            agent,
            1,
            {
                "rotator.azimuth_deg": 123.4,
                "rotator.elevation_deg": 45.6,
                "radio.frequency_hz": 437.1e6,
                "radio.doppler_hz": -2345.0,
                "radio.snr_db": 12.5,
                "camera.connected": 1.0,
                "camera.temperature_c": -10.25,
            },
        )
        await expect(page.locator("#tm-azel")).to_have_text("123.4° / 45.6°")
        await expect(page.locator("#tm-freq")).to_have_text("437.1000 MHz")
        await expect(page.locator("#tm-doppler")).to_have_text("-2.35 kHz · 12.5 dB")
        await expect(page.locator("#tm-camera")).to_have_text("connected, -10.3 °C")
        await expect(page.locator("#tm-plot")).to_have_attribute("data-samples", "1")
        for k in range(2, 5):  # a second apart: each is its own summary, each moves the readouts
            await asyncio.sleep(1.05)
            await _telemetry(agent, k, {"rotator.azimuth_deg": 120.0 + k, "rotator.elevation_deg": 40.0 + k})
            await expect(page.locator("#tm-azel")).to_have_text(f"{120.0 + k:.1f}° / {40.0 + k:.1f}°")
        await expect(page.locator("#tm-plot")).to_have_attribute("data-samples", "4")
        await expect(page.locator("#tm-plot canvas")).to_have_count(1)
        await expect(page.locator("#tm-freq")).to_have_text("—")  # the radio channel is absent now: no stale value
    assert await page.evaluate("window.skymeshLoadedAt") == loaded_at  # no reload happened
    await page.context.close()


async def test_map_colours_are_distinct_and_the_legend_is_true(browser: Browser, dash: Web) -> None:  # noqa: F811
    (tle,) = generate_tles("iss", 1, datetime.now(UTC), seed=3)
    await dash.server.repo.create_target(SatelliteTarget("sat-iss", "ISS", tle.norad_id, tle.line1, tle.line2))
    page = await open_logged_in(browser, dash, "otto")
    await expect(page.locator("path.satellite")).to_have_count(1)
    legend = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#legend [data-legend]')].map((el) => {
            const sw = getComputedStyle(el.querySelector('.swatch'));
            return [el.dataset.legend, el.dataset.legend === 'busy' ? sw.borderTopColor : sw.backgroundColor];
        }))"""
    )
    assert set(legend) == {"online", "stale", "disconnected", "offline", "busy", "satellite"}
    assert len(set(legend.values())) == len(legend), f"two meanings share a colour: {legend}"
    sat_fill = await page.eval_on_selector("path.satellite", "el => getComputedStyle(el).fill")
    assert sat_fill == legend["satellite"]
    station_fill = await page.eval_on_selector("path.station-gs-athens", "el => getComputedStyle(el).fill")
    assert station_fill == legend["offline"]  # no agent: offline, drawn in the legend's offline colour
    await page.context.close()


async def test_observation_page_downloads_its_frame(browser: Browser, dash: Web) -> None:  # noqa: F811
    data = os.urandom(300 * 1024)
    record = observation_record(target_id="m31")
    record.artifacts.append(
        agent_pb2.Artifact(
            artifact_id="frame-1", kind="fits", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
    )
    async with AgentClient.connect(dash.server.address, dash.keys["tel-paranal"], "tel-paranal") as agent:
        await agent.expect("welcome")
        await agent.observation(1, record)
        await agent.expect("upstream_ack", skip=("schedule",))
    await upload(dash, "tel-paranal", f"observations/{record.observation_id}/artifacts/frame-1", data)
    page = await open_logged_in(browser, dash, "olga")
    await page.goto(dash.base_url + f"/#/observation/m31/{record.observation_id}")
    link = page.locator("[data-artifact=frame-1] a.download")
    await expect(link).to_contain_text("fits · 300.0 KiB")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == f"{record.observation_id}-frame-1.fits"
    path = await download.path()
    assert path is not None and path.read_bytes() == data
    await page.context.close()


async def test_3d_view_loads_the_czml_with_cesium_served_locally(browser: Browser, dash: Web) -> None:  # noqa: F811
    (tle,) = generate_tles("iss", 1, datetime.now(UTC), seed=5)
    await dash.server.repo.create_target(SatelliteTarget("sat-3d", "SAT 3D", tle.norad_id, tle.line1, tle.line2))
    page = await open_logged_in(browser, dash, "olga")
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: elsewhere.append(r.url) if not r.url.startswith((dash.base_url, "data:", "blob:")) else None,
    )
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.failure} {r.url}"))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.click("a[data-nav=globe]")  # a page of its own, with the session cookie
    await page.wait_for_url(dash.base_url + "/globe")
    globe = page.locator("#globe")
    await expect(globe).to_have_attribute("data-entities", "3", timeout=60_000)  # two stations and one satellite
    await expect(page.locator("#globe-note")).to_contain_text("2 stations · 1 satellites")
    ids = await page.evaluate("() => window.skymeshGlobe.dataSources.get(0).entities.values.map((e) => e.id).sort()")
    assert ids == ["satellite/sat-3d", "station/gs-athens", "station/tel-paranal"]
    # The satellite moves: its CZML position is sampled over the next hours, and Cesium interpolates it now.
    moving = await page.evaluate(
        """() => {
            const C = window.Cesium, w = window.skymeshGlobe;
            const e = w.dataSources.get(0).entities.getById('satellite/sat-3d');
            const t0 = w.clock.currentTime, t1 = C.JulianDate.addSeconds(t0, 60, new C.JulianDate());
            return C.Cartesian3.distance(e.position.getValue(t0), e.position.getValue(t1)) / 60;
        }"""
    )
    assert 6000 < moving < 8500, f"{moving} m/s is not a low Earth orbit"
    await page.wait_for_timeout(1500)  # a few frames: imagery and workers are fetched now
    assert await page.locator("#globe canvas").count() == 1
    assert not elsewhere, f"the 3D view reached beyond the gateway: {elsewhere[:5]}"
    # The dashboard's own calls still in flight when it navigated to /globe are aborted (its live stream, a slow map
    # refresh on a loaded machine): not the 3D view's.
    failed = [u for u in failed if not (u.startswith("net::ERR_ABORTED") and "/api/v1/" in u and "/czml" not in u)]
    assert not failed, f"requests failed: {failed[:5]}"
    assert not errors, errors
    await page.context.close()
