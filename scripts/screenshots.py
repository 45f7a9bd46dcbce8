"""`make screenshots`: run a small real system (scheduler, server on SQLite, the web gateway) with the demo fleet,
let the real planner make a plan, mark half the stations alive by heartbeat, submit a few nights of photometry for
one variable star, stream a ground station's telemetry (a real agent stream from a minimal client), then photograph
every dashboard page, and the 3D view, in Debian's Chromium into docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import socket
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from playwright.async_api import async_playwright

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.scheduler.service import start_server as start_scheduler
from skymesh.server import ServerConfig, serve
from skymesh.server.db.records import Role
from skymesh.sim.fleet import build_demo_fleet
from skymesh.web import WebConfig, create_app

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
PASSWORD = "screenshots-only"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the tests' minimal agent stream client


async def _feed_telemetry(address: str, key: str, station_id: str, stop: asyncio.Event) -> None:
    """A ground station tracking a pass: rotator az/el sweeping, radio tuned with Doppler, once a second."""
    from tests.server.agent_client import AgentClient

    async with AgentClient.connect(address, key, station_id) as agent:
        await agent.expect("welcome")
        seq = 0
        while not stop.is_set():
            seq += 1
            x = seq / 60.0
            up = math.sin(math.pi * min(x, 1.0))
            values = {
                "rotator.azimuth_deg": 140.0 + 90.0 * x,
                "rotator.elevation_deg": 5.0 + 70.0 * up,
                "radio.doppler_hz": 9000.0 * math.cos(math.pi * min(x, 1.0)),
                "radio.snr_db": 8.0 + 10.0 * up,
            }
            values["radio.frequency_hz"] = 437.1e6 + values["radio.doppler_hz"]
            sample = agent_pb2.TelemetrySample(at=timestamp_from_datetime(datetime.now(UTC)), values=values)
            batch = agent_pb2.TelemetryBatch(samples=[sample])
            await agent.send(agent_pb2.ConnectRequest(telemetry=batch, seq=seq, boot_id=agent.boot_id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(out: Path) -> None:
    now = datetime.now(UTC)
    fleet = build_demo_fleet(now, ground_stations=6, telescopes=4, satellites=20)
    scheduler, sched_port = await start_scheduler("127.0.0.1:0")
    with tempfile.TemporaryDirectory() as tmp:
        server = await serve(
            ServerConfig(
                listen="127.0.0.1:0",
                data_dir=tmp,
                scheduler_address=f"127.0.0.1:{sched_port}",
                control_auth=True,
                plan_horizon_s=12 * 3600,
                heartbeat_interval_s=60.0,
            )
        )
        repo = server.repo
        await repo.create_user("ada", Role.ADMIN)
        await repo.set_password("ada", PASSWORD)
        token = await repo.issue_user_token("ada")
        for t in [*fleet.satellites, *fleet.stars]:
            await repo.create_target(t)
        for st in fleet.stations:
            await repo.create_station(st)
        port = _free_port()
        config = WebConfig(f"127.0.0.1:{port}", server.address, f"127.0.0.1:{sched_port}")
        web = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning",
                                            timeout_graceful_shutdown=2))  # fmt: skip
        web_task = asyncio.create_task(web.serve())
        for _ in range(600):  # uvicorn offers no started event
            if web.started:
                break
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=120) as api:
            for st in fleet.stations[::2]:
                (await api.put(f"/api/v1/sites/{st.station_id}/heartbeat")).raise_for_status()
            await api.post("/api/v1/campaigns", json={"campaign_id": "variables", "name": "Variable stars",
                                                      "description": "light curves of the demo variables",
                                                      "priority_boost": 1.0})  # fmt: skip
            (await api.post("/api/v1/replan")).raise_for_status()
            star = fleet.variables[0]
            site = next(s for s in fleet.stations if s.filters)
            for i in range(40):
                at = now - timedelta(days=3) + timedelta(hours=1.7 * i)
                phase = 2 * math.pi * (at - now).total_seconds() / (star.period_days * 86400)
                body = {
                    "target_id": star.target_id,
                    "site_id": site.station_id,
                    "observed_at": at.isoformat(),
                    "exposure_s": 60,
                    "filter": "V",
                    "magnitude": star.magnitude + star.amplitude_mag * math.sin(phase),
                    "magnitude_error": 0.02 + 0.01 * (i % 3),
                    "quality_flags": ["LOW_SNR"] if i % 9 == 0 else [],
                }
                (await api.post("/api/v1/observations", json=body)).raise_for_status()
            obs_id = (await api.get("/api/v1/observations", params={"target_id": star.target_id})).json()[
                "observations"
            ][0]["observation_id"]
        gs = next(s for s in fleet.stations if not s.filters)
        gs_key = (await repo.issue_station_key(gs.station_id)).api_key
        stop_feed = asyncio.Event()
        feed = asyncio.create_task(_feed_telemetry(server.address, gs_key, gs.station_id, stop_feed))
        pages = [
            ("map", "#/map", None),
            ("station", f"#/site/{gs.station_id}", None),
            ("timeline", "#/timeline", ".gantt-row"),
            ("targets", "#/targets", "#target-rows tr"),
            ("campaigns", "#/campaigns", "#campaign-rows tr"),
            ("observation", f"#/observation/{star.target_id}/{obs_id}", "#curve canvas"),
            ("audit", "#/audit", "#audit-rows tr"),
        ]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for label, width, height in (("", 1280, 800), ("phone-", 390, 844)):
                page = await browser.new_page(viewport={"width": width, "height": height})
                await page.goto(base + "/")
                await page.fill("#username", "ada")
                await page.fill("#password", PASSWORD)
                await page.click("#login-form button[type=submit]")
                # attached, not visible: on a phone's map some satellites lie outside the view
                await page.wait_for_selector("path.satellite", state="attached", timeout=30_000)
                for name, route, ready in pages if not label else pages[:3]:
                    await page.goto(base + "/" + route)
                    if ready:
                        await page.wait_for_selector(ready, timeout=30_000)
                    await page.wait_for_timeout(8000 if name == "station" else 800)  # the station: some telemetry
                    await page.screenshot(path=str(out / f"{label}{name}.png"))
                    print("wrote", out / f"{label}{name}.png")
                if not label:
                    await page.goto(base + "/globe")
                    await page.wait_for_selector("#globe[data-entities]", timeout=120_000)
                    await page.wait_for_timeout(4000)  # imagery tiles
                    await page.screenshot(path=str(out / "globe.png"))
                    print("wrote", out / "globe.png")
                await page.close()
            await browser.close()
        stop_feed.set()
        await feed
        web.should_exit = True
        await web_task
        await server.stop(grace_s=0.1)
    await scheduler.stop(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(out))
