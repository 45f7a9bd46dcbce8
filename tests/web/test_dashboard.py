"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a real
server, scheduler and gateway on PostgreSQL: log in, see the stations on the map change state live, watch a job go
RUNNING -> SUCCEEDED without a reload, cancel a job as operator, be refused as observer, open a light curve, and use
it on a phone-sized screen. Fails (never skips) when Chromium is missing."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from skymesh.api.common.v1 import common_pb2
from skymesh.core.jobs import JobState
from tests.server.agent_client import AgentClient, observation_record
from tests.server.conftest import PG_DSN
from tests.web.conftest import PASSWORD, Web, web_system

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = os.environ.get("SKYMESH_CHROMIUM", "/usr/bin/chromium")
assert os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM}: install Debian's chromium package"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest_asyncio.fixture(loop_scope="module")
async def dash(tmp_path: Path) -> AsyncIterator[Web]:
    name = f"skymesh_web_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        async with web_system(f"{base}/{name}", tmp_path) as w:
            yield w
    finally:
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def open_logged_in(browser: Browser, web: Web, user: str, *, width: int = 1280, height: int = 800) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("pageerror", lambda exc: print("page error:", exc))  # shown with a failing test's output
    await page.goto(web.base_url + "/")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#who")).to_contain_text(user)
    await expect(page.locator("#live")).to_have_class("live on")
    assert not errors, errors
    return page


async def test_login_map_live_station_state_and_job_without_reload(browser: Browser, dash: Web) -> None:
    jobs = await dash.plan_jobs("tel-paranal", "m31", 60, 1800, 3600)
    page = await open_logged_in(browser, dash, "otto")
    # The map: both stations drawn, offline; the world outline is there (no tile server).
    athens = page.locator("path.station-gs-athens")
    paranal = page.locator("path.station-tel-paranal")
    await expect(athens).to_have_attribute("data-state", "offline")
    await expect(paranal).to_have_attribute("data-state", "offline")
    assert await page.locator(".leaflet-overlay-pane path").count() > 100  # countries + stations
    await expect(page.locator("tr[data-site=tel-paranal] .badge")).to_have_text("offline")
    loaded_at = await page.evaluate("window.skymeshLoadedAt")

    async with AgentClient.connect(dash.server.address, dash.keys["tel-paranal"], "tel-paranal") as agent:
        await agent.expect("welcome")
        await expect(paranal).to_have_attribute("data-state", "online")  # live, from the server's Watch
        await expect(page.locator("tr[data-site=tel-paranal] .badge")).to_have_text("online")
        await agent.expect("schedule")

        await page.click("a[href='#/site/tel-paranal']")
        row = page.locator(f"tr[data-job='{jobs[0]}'] .job-state")
        await expect(row).to_have_text("dispatched")
        seq = 0
        for state, shown in (
            (common_pb2.JOB_STATE_RECEIVED, "received"),
            (common_pb2.JOB_STATE_RUNNING, "running"),
            (common_pb2.JOB_STATE_SUCCEEDED, "succeeded"),
        ):
            seq += 1
            await agent.job_update(seq, jobs[0], state, cause=common_pb2.CAUSE_CODE_OK if shown == "succeeded" else 0)
            await expect(row).to_have_text(shown)
            if shown == "running":
                await expect(page.locator("#current")).to_contain_text("m31")
        seq += 1
        await agent.observation(seq, observation_record(job_id=jobs[0], target_id="m31", magnitude=3.44))
        await expect(page.locator("#obs tr")).to_have_count(1)
        await expect(page.locator("#obs")).to_contain_text("LOW_SNR")

        # Operator cancels the next job from the page; the server cancels it and the row says so.
        cancel = page.locator(f"button.cancel-job[data-job='{jobs[1]}']")
        await cancel.click()
        await expect(page.locator(f"tr[data-job='{jobs[1]}'] .job-state")).to_have_text("cancelled")
        assert (await dash.server.repo.get_job(jobs[1])).state == JobState.CANCELLED

    assert await page.evaluate("window.skymeshLoadedAt") == loaded_at  # no reload happened
    await page.goto(dash.base_url + "/#/timeline")
    await expect(page.locator(f".gantt-job[data-job='{jobs[0]}']")).to_have_class("gantt-job job-state job-succeeded")
    await page.hover(f".gantt-job[data-job='{jobs[2]}']")
    await expect(page.locator("#tip")).to_contain_text("m31 at tel-paranal")
    await page.context.close()


async def test_observer_cannot_cancel_and_the_server_refuses(browser: Browser, dash: Web) -> None:
    job_id = (await dash.plan_jobs("gs-athens", "m31", 1800))[0]
    page = await open_logged_in(browser, dash, "olga")
    await page.goto(dash.base_url + "/#/site/gs-athens")
    await expect(page.locator(f"tr[data-job='{job_id}'] .job-state")).to_have_text("scheduled")
    assert await page.locator("button.cancel-job").count() == 0  # the page offers observers no cancel button
    await expect(page.locator("[data-nav=audit]")).to_be_hidden()
    # Even a hand-made request from the observer's session (with a valid CSRF token) is refused by the server.
    status = await page.evaluate(
        """async (jobId) => {
            const csrf = document.cookie.match(/skymesh_csrf=([^;]+)/)[1];
            const r = await fetch(`/api/v1/jobs/${jobId}/cancel`, {method: "POST", headers: {"x-csrf-token": csrf,
              "content-type": "application/json"}, body: "{}"});
            return [r.status, (await r.json()).code];
        }""",
        job_id,
    )
    assert status == [403, "PERMISSION_DENIED"]
    assert (await dash.server.repo.get_job(job_id)).state == JobState.SCHEDULED
    # A personal token for scripts, made from the page, acts as the observer over plain HTTP.
    await page.click("#who a")
    await page.fill("#token-label", "nightly report")
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#token-value")).to_contain_text("smu_")
    token = await page.inner_text("#token-value")
    async with httpx.AsyncClient(base_url=dash.base_url, headers={"authorization": f"Bearer {token}"}) as script:
        assert (await script.get("/api/v1/me")).json() == {"user_id": "olga", "role": "observer"}
        assert (await script.post(f"/api/v1/jobs/{job_id}/cancel", json={})).status_code == 403
    await page.context.close()


async def test_light_curve_targets_and_phone_layout(browser: Browser, dash: Web) -> None:
    async with dash.http("otto") as client:
        t0 = datetime.now(UTC) - timedelta(hours=3)
        for i in range(6):
            body = {
                "target_id": "m31",
                "site_id": "tel-paranal",
                "observed_at": (t0 + timedelta(minutes=20 * i)).isoformat(),
                "exposure_s": 60,
                "filter": "V" if i % 2 else "R",
                "magnitude": 3.4 + 0.02 * (i % 3),
                "magnitude_error": 0.01,
            }
            assert (await client.post("/api/v1/observations", json=body)).status_code == 201
    page = await open_logged_in(browser, dash, "otto", width=390, height=844)  # a phone
    await page.goto(dash.base_url + "/#/observations/m31")
    await expect(page.locator("#curve canvas")).to_have_count(1)
    await expect(page.locator("#curve")).to_have_attribute("data-points", "6")
    await expect(page.locator("#curve")).to_have_attribute("data-filters", "R,V")
    await expect(page.locator("#curve .u-legend")).to_contain_text("R")
    await expect(page.locator("#obs-rows tr")).to_have_count(6)
    first = page.locator("#obs-rows tr a").first
    await first.click()
    await expect(page.locator("#flags")).to_have_text("none")
    await expect(page.locator("#curve canvas")).to_have_count(1)
    # Create a target with a bad TLE: the form points at the field the server named; then a good one.
    await page.goto(dash.base_url + "/#/targets")
    await page.fill("#t-id", "bad-sat")
    await page.fill("#t-tle", "ISS\n1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2920\n2 25544")
    await page.click("#target-form button[type=submit]")
    await expect(page.locator("#target-form .form-error")).to_contain_text("tle")
    await expect(page.locator("#t-tle")).to_have_class("field-error")
    await page.select_option("#t-kind", "celestial")
    await page.fill("#t-id", "vega")
    await page.fill("#t-ra", "279.23")
    await page.fill("#t-dec", "38.78")
    await page.click("#target-form button[type=submit]")
    await expect(page.locator("tr[data-target=vega]")).to_have_count(1)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"page scrolls sideways on a phone: {width}px"
    await page.goto(dash.base_url + "/#/map")
    await expect(page.locator("path.station-tel-paranal")).to_have_count(1)
    await page.context.close()
