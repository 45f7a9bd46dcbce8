"""The JSON API over real HTTP against a real server (control auth on) and scheduler, on SQLite and PostgreSQL:
login and CSRF, roles on every mutating endpoint (the server decides), bad input, 404, 413, pages, light curves and
the live event stream."""

from __future__ import annotations

import asyncio
import json
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from skymesh.api.common.v1 import common_pb2
from skymesh.core.jobs import JobState
from skymesh.core.model import SpacecraftForecast
from skymesh.web import WebConfig
from tests.server.agent_client import AgentClient
from tests.web.conftest import ISS_LINE1, ISS_LINE2, PASSWORD, Web, free_port, login, start_gateway


async def test_login_cookie_csrf_and_logout(web: Web) -> None:
    async with web.http() as anon:
        resp = await anon.get("/api/v1/sites")
        assert resp.status_code == 401
        assert resp.json()["code"] == "UNAUTHENTICATED"
        bad = await anon.post("/api/v1/login", json={"username": "otto", "password": "wrong-password"})
        assert bad.status_code == 401
        assert bad.json()["message"] == "wrong username or password"
        nobody = await anon.post("/api/v1/login", json={"username": "nobody", "password": "wrong-password"})
        assert nobody.json()["message"] == bad.json()["message"]

        csrf = await login(anon, "otto")
        cookie = anon.cookies.jar
        session = next(c for c in cookie if c.name == "skymesh_session")
        assert session.has_nonstandard_attr("HttpOnly")
        assert session.get_nonstandard_attr("SameSite", "").lower() == "strict"
        assert not session.secure  # plain http on loopback; Secure when served over https
        me = (await anon.get("/api/v1/me")).json()
        assert me == {"user_id": "otto", "role": "operator", "csrf_token": csrf}

        body = {"campaign_id": "autumn", "name": "Autumn"}
        missing = await anon.post("/api/v1/campaigns", json=body)
        assert missing.status_code == 403
        assert missing.json() == {
            "code": "PERMISSION_DENIED",
            "message": "missing or wrong X-CSRF-Token header",
            "field": "X-CSRF-Token",
            "reason": "CSRF",
        }
        wrong = await anon.post("/api/v1/campaigns", json=body, headers={"x-csrf-token": "0" * 40})
        assert wrong.status_code == 403
        campaigns = (await anon.get("/api/v1/campaigns")).json()["campaigns"]
        assert campaigns == []  # nothing was written by the refused requests
        ok = await anon.post("/api/v1/campaigns", json=body, headers={"x-csrf-token": csrf})
        assert ok.status_code == 201, ok.text

        out = await anon.post("/api/v1/logout", headers={"x-csrf-token": csrf})
        assert out.status_code == 200
        assert (await anon.get("/api/v1/sites")).status_code == 401
    # The session token was revoked on the server too, not just forgotten by the browser.
    async with web.http() as replay:
        replay.cookies.set("skymesh_session", session.value or "")
        assert (await replay.get("/api/v1/sites")).status_code == 401


_SITE = {"site_id": "gs-new", "kind": "ground_station", "latitude_deg": 1, "longitude_deg": 2}
_VEGA = {"target_id": "vega", "kind": "celestial", "ra_deg": 279.2, "dec_deg": 38.8}
_OBS = {"target_id": "m31", "site_id": "tel-paranal", "observed_at": "2026-01-01T00:00:00Z", "magnitude": 3.4}
# (method, path, body, the least role that may)
MUTATIONS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", "/api/v1/sites", _SITE, "ada"),
    ("POST", "/api/v1/targets", _VEGA, "otto"),
    ("POST", "/api/v1/campaigns", {"campaign_id": "winter"}, "otto"),
    ("PUT", "/api/v1/sites/tel-paranal/heartbeat", None, "otto"),
    ("POST", "/api/v1/observations", _OBS, "otto"),
    ("POST", "/api/v1/jobs/{job}/cancel", {"reason": "test"}, "otto"),
    ("POST", "/api/v1/tokens", {"label": "script"}, "olga"),
]
RANK = {"olga": 1, "otto": 2, "ada": 3}


async def test_every_role_on_every_mutating_endpoint(web: Web) -> None:
    """Observer, operator and admin each try every change; only the roles the server allows succeed, and a refused
    call changes nothing (the audit log stays the same length)."""
    job_ids = await web.plan_jobs("tel-paranal", "m31", 600, 1200, 1800)
    for method, path, body, least in MUTATIONS:
        for user in ("olga", "otto", "ada"):
            if "{job}" in path:
                path_now = path.replace("{job}", job_ids.pop(0))
            else:
                path_now = path
            audit_before = len(await web.server.repo.list_audit(limit=1000))
            async with web.http(user) as client:
                resp = await client.request(method, path_now, json=body)
            allowed = RANK[user] >= RANK[least]
            if allowed:
                assert resp.status_code in (200, 201, 409), (method, path_now, user, resp.text)
                if resp.status_code == 409:  # the same id created by a lower role's successful call
                    assert resp.json()["code"] in ("ALREADY_EXISTS", "FAILED_PRECONDITION")
            else:
                assert resp.status_code == 403, (method, path_now, user, resp.text)
                assert resp.json()["code"] == "PERMISSION_DENIED"
                assert len(await web.server.repo.list_audit(limit=1000)) == audit_before, (method, path_now, user)
    async with web.http("olga") as client:
        assert (await client.post("/api/v1/replan")).status_code == 403
        assert (await client.get("/api/v1/audit")).status_code == 403
    async with web.http("ada") as client:
        audit = (await client.get("/api/v1/audit", params={"page_size": 5})).json()
        assert len(audit["entries"]) == 5 and audit["next_page_token"]
        actions = {
            e["action"] for e in (await client.get("/api/v1/audit", params={"page_size": 500})).json()["entries"]
        }
        assert {
            "create_station",
            "create_campaign",
            "cancel_job",
            "submit_observation",
            "issue_personal_token",
        } <= actions


async def test_bad_input_names_the_field(web: Web) -> None:
    async with web.http("ada") as client:
        resp = await client.post(
            "/api/v1/targets", content=b'{"target_id": "x",', headers={"content-type": "application/json"}
        )
        assert resp.status_code == 400
        assert resp.json()["field"] == "body" and "not valid JSON" in resp.json()["message"]

        resp = await client.post("/api/v1/targets", json={"target_id": "vega", "kind": "celestial", "ra_deg": "east"})
        assert resp.status_code == 422
        assert resp.json()["field"] == "ra_deg"
        resp = await client.post(
            "/api/v1/targets", json={"target_id": "vega", "kind": "celestial", "ra_deg": 400, "dec_deg": 0}
        )
        assert (resp.status_code, resp.json()["field"]) == (422, "ra_deg")
        resp = await client.post(
            "/api/v1/sites", json={"site_id": "Bad Id!", "kind": "telescope", "latitude_deg": 0, "longitude_deg": 0}
        )
        assert (resp.status_code, resp.json()["field"]) == (422, "site_id")
        resp = await client.post("/api/v1/campaigns", json={"campaign_id": "c1", "colour": "red"})
        assert (resp.status_code, resp.json()["field"]) == (422, "colour")
        # The server's own checks come back naming the JSON field: a TLE with a broken checksum.
        broken = ISS_LINE1[:-1] + ("0" if ISS_LINE1[-1] != "0" else "1")
        resp = await client.post(
            "/api/v1/targets", json={"target_id": "iss", "kind": "satellite", "tle": f"ISS\n{broken}\n{ISS_LINE2}"}
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["code"] == "INVALID_ARGUMENT" and resp.json()["field"].startswith("tle")
        resp = await client.post(
            "/api/v1/targets",
            json={"target_id": "iss", "kind": "satellite", "tle": f"ISS (ZARYA)\n{ISS_LINE1}\n{ISS_LINE2}"},
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["norad_id"] == 25544 and resp.json()["name"] == "ISS (ZARYA)"
        detail = (await client.get("/api/v1/targets/iss")).json()
        assert detail["spacecraft_forecast"] is None and detail["unscheduled_reasons"] == []
        at = datetime(2008, 9, 20, 18, tzinfo=UTC)
        forecast = SpacecraftForecast("iss", 0.42, at, 0.31, at - timedelta(hours=1), 2e9, False, min_soc=0.2)
        await web.server.repo.store_spacecraft_forecasts([forecast])
        shown = (await client.get("/api/v1/targets/iss")).json()["spacecraft_forecast"]
        assert shown["state_of_charge"] == 0.42 and shown["min_state_of_charge_time"] == "2008-09-20T17:00:00Z"
        sky = (await client.get("/api/v1/sky", params={"at": "2008-09-20T12:00:00Z"})).json()
        assert [s["target_id"] for s in sky["satellites"]] == ["iss"] and len(sky["satellites"][0]["track"]) > 100
        czml = (await client.get("/api/v1/czml", params={"start": "2008-09-20T12:00:00Z", "hours": 1})).json()
        assert {p["id"] for p in czml} >= {"document", "satellite/iss", "station/gs-athens", "station/tel-paranal"}
        assert (await client.get("/api/v1/czml", params={"hours": 100})).json()["field"] == "hours"

        resp = await client.get("/api/v1/jobs", params={"state": "sleeping"})
        assert (resp.status_code, resp.json()["field"]) == (400, "state")
        resp = await client.get("/api/v1/targets", params={"count": 0, "site_id": "tel-paranal"})
        assert (resp.status_code, resp.json()["field"]) == (422, "count")
        resp = await client.get("/api/v1/sites", params={"page_token": "garbage"})
        assert (resp.status_code, resp.json()["field"]) == (400, "page_token")

        huge = {"campaign_id": "big", "description": "x" * (200 * 1024)}
        resp = await client.post("/api/v1/campaigns", json=huge)
        assert resp.status_code == 413
        assert resp.json()["code"] == "PAYLOAD_TOO_LARGE"

        async def chunks() -> Any:
            for _ in range(100):
                yield b"x" * 1024

        resp = await client.post("/api/v1/campaigns", content=chunks(), headers={"content-type": "application/json"})
        assert resp.status_code == 413  # no Content-Length: cut off while streaming

        for path, field in (
            ("/api/v1/sites/nope", "site_id"),
            ("/api/v1/targets/nope", "target_id"),
            ("/api/v1/campaigns/nope", "campaign_id"),
            ("/api/v1/lightcurve/nope", "target_id"),
            ("/api/v1/targets?site_id=nope", "site_id"),
        ):
            resp = await client.get(path)
            assert resp.status_code == 404, (path, resp.text)
            assert resp.json()["code"] == "NOT_FOUND" and resp.json()["field"] == field, path
        resp = await client.post("/api/v1/jobs/nope/cancel", json={})
        assert (resp.status_code, resp.json()["field"]) == (404, "job_id")
        resp = await client.put("/api/v1/sites/nope/heartbeat")
        assert (resp.status_code, resp.json()["field"]) == (404, "site_id")
        assert (await client.get("/api/v1/no-such-route")).status_code == 404


async def test_sites_pages_heartbeat_ranked_targets_and_campaign_progress(web: Web) -> None:
    async with web.http("ada") as client:
        for i in range(5):
            body = {"site_id": f"gs-{i}", "kind": "ground_station", "latitude_deg": 10.0 * i, "longitude_deg": 5.0}
            assert (await client.post("/api/v1/sites", json=body)).status_code == 201
        seen: list[str] = []
        token = ""
        while True:
            page = (await client.get("/api/v1/sites", params={"page_size": 3, "page_token": token})).json()
            seen += [s["site_id"] for s in page["sites"]]
            token = page["next_page_token"]
            if not token:
                break
        assert seen == sorted(["gs-athens", "tel-paranal", *(f"gs-{i}" for i in range(5))])
        resp = await client.get(
            "/api/v1/sites", params={"page_size": 3, "page_token": token or "", "kind": "telescope"}
        )
        assert [s["site_id"] for s in resp.json()["sites"]] == ["tel-paranal"]

        assert (await client.get("/api/v1/sites/tel-paranal")).json()["state"] == "offline"
        beat = await client.put("/api/v1/sites/tel-paranal/heartbeat")
        assert beat.status_code == 200 and beat.json()["state"] == "online"

        # 47 Tuc is high over Paranal at local midnight in October; M31 never gets above airmass 2 there.
        tuc = {"target_id": "tuc-47", "kind": "celestial", "ra_deg": 6.02, "dec_deg": -72.08, "priority": 8}
        assert (await client.post("/api/v1/targets", json=tuc)).status_code == 201
        at = "2026-10-15T04:00:00Z"
        ranked = (await client.get("/api/v1/targets", params={"site_id": "tel-paranal", "count": 5, "at": at})).json()
        assert [t["target_id"] for t in ranked["targets"]] == ["tuc-47"]
        assert ranked["targets"][0]["altitude_deg"] > 30 and 1 <= ranked["targets"][0]["airmass"] < 2
        low = await client.get("/api/v1/targets", params={"site_id": "tel-paranal", "at": at, "priority_min": 9})
        assert low.json()["targets"] == []
        # Fresh after every change (the server keeps its target list under a catalogue version): a deleted target
        # leaves the next ranked list, a new one enters it.
        await web.server.repo.delete_target("tuc-47")
        params = {"site_id": "tel-paranal", "count": 5, "at": at}
        assert (await client.get("/api/v1/targets", params=params)).json()["targets"] == []
        assert (await client.post("/api/v1/targets", json={**tuc, "target_id": "tuc-47b"})).status_code == 201
        ranked = (await client.get("/api/v1/targets", params=params)).json()
        assert [t["target_id"] for t in ranked["targets"]] == ["tuc-47b"]

        await client.post("/api/v1/campaigns", json={"campaign_id": "andromeda", "name": "Andromeda"})
        body = {"target_id": "m33", "kind": "celestial", "ra_deg": 23.46, "dec_deg": 30.66, "campaign_id": "andromeda"}
        assert (await client.post("/api/v1/targets", json=body)).status_code == 201
    job_ids = await web.plan_jobs("tel-paranal", "m33", 600, 1200)
    repo = web.server.repo
    await repo.cancel_job(job_ids[0], "test")
    async with web.http("olga") as client:
        campaign = (await client.get("/api/v1/campaigns/andromeda")).json()
        assert [t["target_id"] for t in campaign["targets"]] == ["m33"]
        assert campaign["progress"]["jobs_planned"] == 2
        jobs = (await client.get("/api/v1/jobs", params={"site_id": "tel-paranal"})).json()["jobs"]
        assert [(j["job_id"], j["state"]) for j in jobs] == [(job_ids[0], "cancelled"), (job_ids[1], "scheduled")]
        far = (
            await client.get("/api/v1/jobs", params={"after": "2030-01-01T00:00:00Z", "before": "2030-01-02T00:00:00Z"})
        ).json()
        assert far["jobs"] == []


async def test_observations_and_light_curve_json_and_csv(web: Web) -> None:
    async with web.http("otto") as client:
        t0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
        for i in range(4):
            body = {
                "observation_id": f"obs-{i}",
                "target_id": "m31",
                "site_id": "tel-paranal",
                "observed_at": (t0 + timedelta(minutes=10 * i)).isoformat(),
                "exposure_s": 60,
                "filter": "V",
                "magnitude": 3.40 + 0.01 * i,
                "magnitude_error": 0.02,
                "quality_flags": ["LOW_SNR"] if i == 3 else [],
            }
            assert (await client.post("/api/v1/observations", json=body)).status_code == 201
        again = await client.post("/api/v1/observations", json=body)
        assert again.status_code == 200 and again.json() == {"observation_id": "obs-3", "created": False}
        resp = await client.post("/api/v1/observations", json={**body, "observation_id": "obs-x", "target_id": "nope"})
        assert (resp.status_code, resp.json()["field"]) == (400, "target_id")

        page1 = (await client.get("/api/v1/observations", params={"target_id": "m31", "page_size": 3})).json()
        assert [o["observation_id"] for o in page1["observations"]] == ["obs-3", "obs-2", "obs-1"]
        page2 = (
            await client.get(
                "/api/v1/observations",
                params={"target_id": "m31", "page_size": 3, "page_token": page1["next_page_token"]},
            )
        ).json()
        assert [o["observation_id"] for o in page2["observations"]] == ["obs-0"] and page2["next_page_token"] == ""
        window = {"after": (t0 + timedelta(minutes=5)).isoformat(), "before": (t0 + timedelta(minutes=25)).isoformat()}
        ids = [
            o["observation_id"]
            for o in (await client.get("/api/v1/observations", params=window)).json()["observations"]
        ]
        assert ids == ["obs-2", "obs-1"]

        curve = (await client.get("/api/v1/lightcurve/m31")).json()
        assert [p["magnitude"] for p in curve["points"]] == pytest.approx([3.40, 3.41, 3.42, 3.43])
        assert curve["points"][3]["quality_flags"] == ["LOW_SNR"]
        csv_resp = await client.get("/api/v1/lightcurve/m31", headers={"accept": "text/csv"})
        assert csv_resp.headers["content-type"].startswith("text/csv")
        lines = csv_resp.text.splitlines()
        assert lines[0] == "at,magnitude,magnitude_error,site_id,quality_flags"
        assert len(lines) == 5 and lines[4].endswith(",tel-paranal,LOW_SNR")


async def _sse_events(
    resp: httpx.Response, want: int, timeout_s: float = 15.0
) -> list[tuple[str, dict[str, Any], str]]:
    out: list[tuple[str, dict[str, Any], str]] = []
    event, data, ident = "", "", ""
    async with asyncio.timeout(timeout_s):
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line == "" and event:
                out.append((event, json.loads(data), ident))
                event, data, ident = "", "", ""
                if len(out) >= want:
                    return out
    return out


async def test_live_events_and_resume_from_cursor(web: Web) -> None:
    job_id = (await web.plan_jobs("tel-paranal", "m31", 3600))[0]
    async with web.http("olga") as client:
        async with client.stream("GET", "/api/v1/events") as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            async with AgentClient.connect(web.server.address, web.keys["tel-paranal"], "tel-paranal") as agent:
                await agent.expect("welcome")
                await agent.expect("schedule")
                await agent.job_update(1, job_id, common_pb2.JOB_STATE_RECEIVED)
                await agent.expect("upstream_ack", skip=("schedule", "ping"))
                events = await _sse_events(resp, 4)
        kinds = [(e, d.get("site_id"), d.get("new_state")) for e, d, _ in events]
        assert ("station_state", "tel-paranal", "online") in kinds
        assert ("job", "tel-paranal", "dispatched") in kinds
        assert ("job", "tel-paranal", "received") in kinds
        dispatched_cursor = next(i for e, d, i in events if e == "job" and d["new_state"] == "dispatched")
        # A reconnecting EventSource sends Last-Event-ID: it gets what followed, not what it saw.
        async with client.stream("GET", "/api/v1/events", headers={"last-event-id": dispatched_cursor}) as again:
            replay = await _sse_events(again, 1)
        assert replay[0][0] == "job" and replay[0][1]["new_state"] == "received"
        async with client.stream("GET", "/api/v1/events", headers={"last-event-id": "otherrun.5"}) as stale:
            assert (await _sse_events(stale, 1))[0][0] == "resync"
    assert (await web.server.repo.get_job(job_id)).state == JobState.RECEIVED
    async with web.http() as anon:
        assert (await anon.get("/api/v1/events")).status_code == 401


async def test_https_login_sets_secure_cookies(web: Web, tmp_path: Path) -> None:
    """Served over TLS (uvicorn with the operator's certificate), the session and CSRF cookies are Secure."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await openssl.wait() == 0
    port = free_port()
    config = WebConfig(
        listen=f"127.0.0.1:{port}",
        server_address=web.server.address,
        scheduler_address="127.0.0.1:9",
        tls_cert_file=str(cert),
        tls_key_file=str(key),
    )
    server, task = await start_gateway(config)
    try:
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=str(cert))
        ) as client:
            resp = await client.post("/api/v1/login", json={"username": "olga", "password": PASSWORD})
            assert resp.status_code == 200
            cookies = resp.headers.get_list("set-cookie")
            assert len(cookies) == 2 and all("; Secure" in c and "SameSite=strict" in c for c in cookies), cookies
            assert any(c.startswith("skymesh_session=") and "HttpOnly" in c for c in cookies)
    finally:
        server.should_exit = True
        await task


async def test_alert_packets_are_ingested_by_the_server_with_its_roles(web: Web) -> None:
    """POST /alerts hands the raw packet to the server's AlertService: an operator's GCN notice becomes a target and
    a replan, an observer is refused with nothing stored, a packet that does not parse is a 400 kept as rejected."""
    packet = (Path(__file__).parents[1] / "server" / "alerts" / "fixtures" / "gcn_swift_bat_guano.json").read_bytes()
    async with web.http("olga") as client:
        refused = await client.post("/api/v1/alerts", content=packet, headers={"content-type": "application/json"})
        assert (refused.status_code, refused.json()["code"]) == (403, "PERMISSION_DENIED")
    assert await web.server.repo.list_alerts() == []
    async with web.http("otto") as client:
        resp = await client.post("/api/v1/alerts", content=packet, headers={"content-type": "application/json"})
        assert resp.status_code == 202, resp.text
        body = resp.json()
        [alert] = body["alerts"]
        assert (alert["source"], alert["status"]) == ("gcn", "accepted") and alert["target_id"]
        assert body["replan_requested"] is True
        again = (await client.post("/api/v1/alerts", content=packet)).json()["alerts"][0]
        assert again["alert_id"] == alert["alert_id"]  # deduplicated by (source, external id, revision)
        broken = await client.post(
            "/api/v1/alerts", content=b'{"mission": "Swift", "trun', params={"format": "gcn-json"}
        )
        assert broken.status_code == 400 and broken.json()["code"] == "INVALID_ARGUMENT"
        empty = await client.post("/api/v1/alerts", content=b"")
        assert (empty.status_code, empty.json()["field"]) == (400, "body")
    statuses = sorted(a.status.name for a in await web.server.repo.list_alerts())
    assert statuses == ["ACCEPTED", "REJECTED"]


async def test_gateway_serves_its_own_metrics_and_health(web: Web) -> None:
    """The gateway's /metrics holds only its own registry (build info as component "web", requests by route
    template, never raw paths), promtool finds it clean, and /healthz and /readyz answer."""
    import subprocess

    async with web.http("ada") as client:
        assert (await client.get("/api/v1/sites/tel-paranal")).status_code == 200
        assert (await client.get("/api/v1/sites/no-such-site")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        page = (await client.get("/metrics")).text
    assert 'skymesh_build_info{component="web"' in page
    assert 'route="/api/v1/sites/{site_id}"' in page and "no-such-site" not in page
    assert 'status="4xx"' in page and 'status="2xx"' in page
    assert "skymesh_server_" not in page and "skymesh_agent_" not in page
    check = await asyncio.to_thread(
        subprocess.run, ["promtool", "check", "metrics"], input=page, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
