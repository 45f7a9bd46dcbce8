"""The JSON API's list endpoints page with the server's keyset tokens (no offsets in the gateway), over real HTTP
and gRPC on SQLite and PostgreSQL: following next_page_token yields every item once in the server's order, even
when the time range defaults relative to now or the list changes between pages; a token with other filters or not
issued here is a 400 on page_token; OpenAPI documents the tokens."""

from __future__ import annotations

from typing import Any

import httpx

from tests.web.conftest import Web


async def _follow(client: httpx.AsyncClient, path: str, field: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    for _ in range(100):
        resp = await client.get(path, params={**params, "page_token": token})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert len(page[field]) <= params["page_size"]
        items += page[field]
        token = page["next_page_token"]
        if not token:
            return items
    raise AssertionError("tokens never ended")


async def test_lists_follow_server_tokens(web: Web) -> None:
    starts = [600.0 * i for i in range(1, 8)]
    job_ids = await web.plan_jobs("tel-paranal", "m31", *starts)
    async with web.http("ada") as client:
        # Jobs with the default window (the last and next 24 h, from now): every page asks the server the same
        # question, so the second page is not refused although "now" has moved.
        jobs = await _follow(client, "/api/v1/jobs", "jobs", page_size=2, site_id="tel-paranal")
        assert [j["job_id"] for j in jobs] == job_ids

        scheduled = {"page_size": 3, "site_id": "tel-paranal", "state": "scheduled"}
        first = (await client.get("/api/v1/jobs", params=scheduled)).json()
        assert [j["job_id"] for j in first["jobs"]] == job_ids[:3] and first["next_page_token"]
        # A job leaving the filtered list before the next page does not shift it (keyset, not offset).
        assert (await client.post(f"/api/v1/jobs/{job_ids[0]}/cancel", json={})).status_code == 200
        rest = (
            await client.get(
                "/api/v1/jobs", params={**scheduled, "page_size": 10, "page_token": first["next_page_token"]}
            )
        ).json()
        assert [j["job_id"] for j in rest["jobs"]] == job_ids[3:] and rest["next_page_token"] == ""

        # Refused: the token with other filters, tokens not issued here, a sites token on jobs.
        sites = (await client.get("/api/v1/sites", params={"page_size": 1})).json()
        for params in (
            {"site_id": "gs-athens", "page_token": first["next_page_token"]},
            {"site_id": "tel-paranal", "page_token": first["next_page_token"]},
            {"site_id": "tel-paranal", "page_token": "garbage"},
            {"site_id": "tel-paranal", "page_token": "eyJ0IjoiIiwicCI6eyJhZnRlciI6Im5vIn19"},
            {"site_id": "tel-paranal", "page_token": sites["next_page_token"]},
            {"site_id": "tel-paranal", "page_token": "x" * 2000},
        ):
            resp = await client.get("/api/v1/jobs", params={"page_size": 3, **params})
            assert resp.status_code in (400, 422), (params, resp.text)
            assert resp.json()["field"] == "page_token", (params, resp.text)

        # Sites, targets, campaigns: the server's tokens as they are.
        assert [s["site_id"] for s in await _follow(client, "/api/v1/sites", "sites", page_size=1)] == [
            "gs-athens",
            "tel-paranal",
        ]
        for i in range(3):
            await client.post("/api/v1/campaigns", json={"campaign_id": f"camp-{i}"})
        campaigns = await _follow(client, "/api/v1/campaigns", "campaigns", page_size=2)
        assert [x["campaign_id"] for x in campaigns] == ["camp-0", "camp-1", "camp-2"]
        body = {"target_id": "m33", "kind": "celestial", "ra_deg": 23.46, "dec_deg": 30.66}
        assert (await client.post("/api/v1/targets", json=body)).status_code == 201
        targets = await _follow(client, "/api/v1/targets", "targets", page_size=1)
        assert [t["target_id"] for t in targets] == ["m31", "m33"]

        # OpenAPI says what the token is.
        spec = (await client.get("/openapi.json")).json()
        for path in ("/api/v1/sites", "/api/v1/jobs", "/api/v1/observations", "/api/v1/campaigns"):
            params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
            assert "next_page_token" in params["page_token"]["description"], path
