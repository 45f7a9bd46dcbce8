"""Web gateway benchmark on PostgreSQL: a real server (control auth on) and scheduler in this process, `skymesh web`
as its own process (so its CPU and memory are its own), a fleet of stations, satellites and jobs in the database.

    .venv/bin/python benchmarks/web.py --stations 1000 --satellites 500 --jobs 50000 --browsers 200

Measures: the dashboard's first render in Chromium (login done; from navigation to every station drawn on the
map); `GET /api/v1/targets?site_id=...&count=20` latency (ranked by the scheduler) for three sites: the first
telescope, the telescope in the night with the most stars high now, and a ground station (`--only-targets`: these
only, then stop); event-to-client latency (an agent reports a job transition over its stream -> the SSE event
arrives at an HTTP client of the gateway); N concurrent live SSE connections held by the one gateway process, with
its RSS and CPU. Prints JSON, and writes it with --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from skymesh.api.common.v1 import common_pb2
from skymesh.astro.tle_gen import FAMILIES, generate_tles
from skymesh.core.model import CelestialTarget, GeoLocation, SatelliteTarget, Station, StationKind, TimeWindow
from skymesh.scheduler.service import start_server as start_scheduler
from skymesh.server import ServerConfig, serve
from skymesh.server.db.records import PlannedJob, Role

PG_DSN = os.environ.get("SKYMESH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
PASSWORD = "benchmark-password"
_ROOT = str(Path(__file__).resolve().parents[1])


# Records when each job row first shows each state (browser clock = this machine's clock).
_OBSERVE_JS = """() => {
  window.__seen = {};
  const scan = () => document.querySelectorAll("#jobs tr[data-job]").forEach((tr) => {
    const key = tr.getAttribute("data-job") + ":" + tr.querySelector(".job-state").textContent;
    if (!(key in window.__seen)) window.__seen[key] = Date.now();
  });
  scan();
  const options = {subtree: true, childList: true, characterData: true};
  new MutationObserver(scan).observe(document.getElementById("jobs"), options);
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(ms: list[float], expected: int) -> dict[str, float]:
    return {"n": len(ms), "lost": expected - len(ms), "p50": round(_pct(ms, 0.5), 1), "p99": round(_pct(ms, 0.99), 1)}


def _proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds user+system) of a process, from /proc."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / ticks


def _site(i: int) -> tuple[float, float]:
    """(latitude, longitude) of station i, as `_populate` places it."""
    return float(-60 + (i * 37) % 130), float(-180 + (i * 73) % 360)


def _darkest_telescope(telescopes: list[str]) -> str:
    """The telescope with the most of `_populate`'s stars above airmass 1.7 now, in the night (Sun below -12 deg)."""
    from skymesh.astro.celestial import radec_to_altaz, sun_altitude_deg
    from skymesh.astro.frames import datetime_to_jd

    jd = [datetime_to_jd(datetime.now(UTC))]
    sites = [_site(int(sid.removeprefix("st-"))) for sid in telescopes]
    lat, lon = [s[0] for s in sites], [s[1] for s in sites]
    ra, dec = [(k * 1.8) % 360 for k in range(200)], [-80 + (k * 0.8) % 160 for k in range(200)]
    high = (radec_to_altaz(ra, dec, lat, lon, jd)[0][:, :, 0] > 36.0).sum(axis=0)
    night = sun_altitude_deg(lat, lon, jd)[:, 0] < -12.0
    return telescopes[int((high * night).argmax())]


async def _populate(repo: Any, stations: int, satellites: int, jobs: int) -> tuple[str, list[str], str]:
    now = datetime.now(UTC)
    ids = []
    for i in range(stations):
        kind = StationKind.TELESCOPE if i % 4 == 0 else StationKind.GROUND_STATION
        lat, lon = _site(i)
        filters = ("V",) if kind == StationKind.TELESCOPE else ()
        where = GeoLocation(lat, lon, 100.0)
        st = Station(f"st-{i:05d}", f"Station {i}", kind, where, bands=("UHF",), filters=filters, aperture_m=0.4)
        await repo.create_station(st)
        ids.append(st.station_id)
    per_family = max(1, satellites // len(FAMILIES))
    made = 0
    for f, family in enumerate(FAMILIES):
        for tle in generate_tles(family, min(per_family, satellites - made), now, seed=f):
            tid = f"sat-{tle.norad_id}"
            await repo.create_target(SatelliteTarget(tid, tle.name, tle.norad_id, tle.line1, tle.line2))
            made += 1
    for k in range(200):  # celestial targets for the ranked list
        await repo.create_target(CelestialTarget(f"star-{k:03d}", f"Star {k}", (k * 1.8) % 360, -80 + (k * 0.8) % 160))
    target = "star-000"
    per_station = max(1, jobs // stations)
    for chunk in range(0, stations, 100):
        batch = ids[chunk : chunk + 100]
        planned = [
            PlannedJob(
                s, target, TimeWindow(now + timedelta(minutes=30 * j - 600), now + timedelta(minutes=30 * j - 590))
            )
            for s in batch
            for j in range(per_station)
        ]
        await repo.apply_plan(batch, planned)
    tel = next(s for i, s in enumerate(ids) if i % 4 == 0)
    return tel, ids, target


async def _sse_reader(resp: httpx.Response, seen: dict[str, float], want: set[str]) -> None:
    event, data = "", ""
    async for line in resp.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event == "job":
            d = json.loads(data)
            key = f"{d['job_id']}:{d['new_state']}"
            if key in want:
                seen[key] = time.perf_counter()
            event = ""


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright, expect

    from tests.server.agent_client import AgentClient  # the minimal stream client the server tests use

    name = f"skymesh_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    scheduler, sched_port = await start_scheduler("127.0.0.1:0")
    out: dict[str, Any] = {"stations": args.stations, "satellites": args.satellites, "jobs": args.jobs,
                           "machine": f"{platform.machine()} {os.cpu_count()} cpus"}  # fmt: skip
    gateway = None
    with tempfile.TemporaryDirectory() as tmp:
        sched_addr = f"127.0.0.1:{sched_port}"
        config = ServerConfig(listen="127.0.0.1:0", database_url=url, data_dir=tmp, control_auth=True,
                              scheduler_address=sched_addr, planning_enabled=False)  # fmt: skip
        server = await serve(config)
        try:
            t0 = time.perf_counter()
            tel, ids, _target = await _populate(server.repo, args.stations, args.satellites, args.jobs)
            out["populate_s"] = round(time.perf_counter() - t0, 1)
            await server.repo.create_user("ada", Role.ADMIN)
            await server.repo.set_password("ada", PASSWORD)
            token = await server.repo.issue_user_token("ada")
            key = (await server.repo.issue_station_key(tel)).api_key
            port = _free_port()
            root = _ROOT
            cmd = ["-m", "skymesh", "--log-level", "WARNING", "web", "--listen", f"127.0.0.1:{port}"]
            cmd += ["--server", server.address, "--scheduler", f"127.0.0.1:{sched_port}"]
            gateway = await asyncio.create_subprocess_exec(sys.executable, *cmd, env={**os.environ, "PYTHONPATH": root})
            base = f"http://127.0.0.1:{port}"
            limits = httpx.Limits(max_connections=args.browsers + 20, max_keepalive_connections=args.browsers + 20)
            async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {token}"},
                                         timeout=60, limits=limits) as api:  # fmt: skip
                for _ in range(200):
                    try:
                        if (await api.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                # Ranked targets: the telescope measured since the first run (at -60 deg: no astronomical night in
                # the southern summer, so its list is often empty), the telescope in the night with the most stars high
                # now (a full list), and a ground station (satellites in a pass now).
                night = _darkest_telescope(ids[::4])
                sites = {"targets_ms": tel, "targets_night_ms": night, "targets_ground_ms": ids[1]}
                for key, site in sites.items():
                    lat, listed = [], 0
                    # CPU of all three processes' worth (server and scheduler here, the gateway), which the load of
                    # other work on the machine inflates far less than latency.
                    cpu0 = _proc_stats(os.getpid())[1] + _proc_stats(gateway.pid)[1]
                    for _ in range(args.requests):
                        s = time.perf_counter()
                        r = await api.get("/api/v1/targets", params={"site_id": site, "count": 20})
                        r.raise_for_status()
                        lat.append((time.perf_counter() - s) * 1000)
                        listed = len(r.json()["targets"])
                    cpu = _proc_stats(os.getpid())[1] + _proc_stats(gateway.pid)[1] - cpu0
                    out[key] = {"site": site, "listed": listed, "p50": round(_pct(lat, 0.5), 1),
                                "p95": round(_pct(lat, 0.95), 1),
                                "cpu_ms_per_request": round(cpu * 1000 / args.requests, 1)}  # fmt: skip
                out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
                if args.only_targets:
                    return out

                # First render in Chromium.
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                    page = await browser.new_page(viewport={"width": 1280, "height": 800})
                    await page.goto(base + "/")
                    await page.fill("#username", "ada")
                    await page.fill("#password", PASSWORD)
                    await page.click("#login-form button[type=submit]")
                    await expect(page.locator("path.station")).to_have_count(args.stations, timeout=120_000)
                    renders = []
                    for _ in range(3):
                        await page.goto(base + "/#/timeline")
                        await page.wait_for_selector(".gantt-row", timeout=120_000)
                        s = time.perf_counter()
                        await page.goto(base + "/#/map")
                        await expect(page.locator("path.station")).to_have_count(args.stations, timeout=120_000)
                        renders.append(time.perf_counter() - s)
                    out["map_render_s"] = {
                        "median": round(statistics.median(renders), 2),
                        "runs": [round(x, 2) for x in renders],
                    }

                    # N live SSE connections, and event-to-client latency on one of them.
                    rss0, _cpu0 = _proc_stats(gateway.pid)
                    streams = []
                    for _ in range(args.browsers):
                        cm = api.stream("GET", "/api/v1/events")
                        streams.append((cm, await cm.__aenter__()))
                    await asyncio.sleep(2)
                    jobs = [j.job_id for j in await server.repo.list_jobs(station_id=tel)][: args.transitions]
                    want = {f"{j}:{state}" for j in jobs for state in ("received", "running")}
                    seen: dict[str, float] = {}
                    reader = asyncio.create_task(_sse_reader(streams[0][1], seen, want))
                    sent: dict[str, float] = {}
                    _, cpu1 = _proc_stats(gateway.pid)
                    # The same transitions seen inside the page: the station page's job rows, timed by the browser.
                    await page.goto(base + f"/#/site/{tel}")
                    await page.wait_for_selector("#jobs tr[data-job]", timeout=60_000)
                    await page.evaluate(_OBSERVE_JS)
                    wall: dict[str, float] = {}
                    async with AgentClient.connect(server.address, key, tel) as agent:
                        await agent.expect("welcome")
                        seq = 0
                        for j in jobs:
                            for state, label in (
                                (common_pb2.JOB_STATE_RECEIVED, "received"),
                                (common_pb2.JOB_STATE_RUNNING, "running"),
                            ):
                                seq += 1
                                sent[f"{j}:{label}"] = time.perf_counter()
                                wall[f"{j}:{label}"] = time.time() * 1000
                                await agent.job_update(seq, j, state)
                                await agent.expect("upstream_ack", skip=("schedule", "ping", "command"))
                                await asyncio.sleep(0.02)
                        for _ in range(200):  # up to 10 s for the last events
                            if len(seen) >= len(want):
                                break
                            await asyncio.sleep(0.05)
                    rss1, cpu2 = _proc_stats(gateway.pid)
                    in_page: dict[str, float] = await page.evaluate("window.__seen")
                    pms = [in_page[k] - wall[k] for k in wall if k in in_page]
                    out["event_to_browser_ms"] = _summary(pms, len(wall))
                    reader.cancel()
                    ms = [(seen[k] - sent[k]) * 1000 for k in sent if k in seen]
                    out["event_to_client_ms"] = _summary(ms, len(sent))
                    out["sse_connections"] = {"n": args.browsers, "gateway_rss_mib": round(rss1, 1),
                                              "gateway_rss_before_mib": round(rss0, 1),
                                              "gateway_cpu_s_during_events": round(cpu2 - cpu1, 2),
                                              "events_fanned_out": len(sent) * args.browsers}  # fmt: skip
                    for cm, _resp in streams:
                        await cm.__aexit__(None, None, None)
                    await browser.close()
        finally:
            if gateway is not None:
                gateway.terminate()
                await gateway.wait()
            await server.stop(grace_s=0.1)
            await scheduler.stop(0.1)
            admin = await asyncpg.connect(PG_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=1000)
    p.add_argument("--satellites", type=int, default=500)
    p.add_argument("--jobs", type=int, default=50_000)
    p.add_argument("--browsers", type=int, default=200)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--transitions", type=int, default=50)
    p.add_argument("--only-targets", action="store_true", help="measure the ranked targets only, then stop")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    result = asyncio.run(main(a))
    print(json.dumps(result, indent=2))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
