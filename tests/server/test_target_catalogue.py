"""The target catalogue a server keeps (`Repository.target_catalogue`), on SQLite and PostgreSQL: two replicas on one
database each keep their list, and every kind of change made on one (a new target, new element sets, a deleted
target, a campaign deleted under its targets, a plan's spacecraft forecast, plain SQL from outside any server) shows
in the other's next ListTargets; nothing else re-reads the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import text

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import targets_pb2, targets_pb2_grpc
from skymesh.astro.tle_gen import generate_tles
from skymesh.core.model import CelestialTarget, SatelliteTarget, SpacecraftForecast
from skymesh.server.db.records import CampaignRecord
from tests.server.conftest import StartServer


async def test_every_change_on_one_replica_shows_in_the_others_next_list(start_server: StartServer) -> None:
    a = await start_server(server_id="replica-a")
    b = await start_server(server_id="replica-b")
    now = datetime.now(UTC)
    tles = generate_tles("sso", 2, now, seed=3)
    sat = f"sat-{tles[0].norad_id}"
    await a.repo.create_target(SatelliteTarget(sat, "Sat", tles[0].norad_id, tles[0].line1, tles[0].line2))
    await a.repo.create_campaign(CampaignRecord("c1", "C1", "", 1.0, None, None))
    await a.repo.create_target(CelestialTarget("star-1", "Star 1", 10.0, -20.0, aliases=("HD 1",)), campaign_id="c1")

    async with grpc.aio.insecure_channel(b.address) as channel:
        stub = targets_pb2_grpc.TargetServiceStub(channel)

        async def listed() -> dict[str, common_pb2.Target]:
            return {t.target_id: t for t in (await stub.ListTargets(targets_pb2.ListTargetsRequest())).targets}

        first = await listed()
        assert sorted(first) == [sat, "star-1"] and first["star-1"].campaign_id == "c1"
        version = (await b.repo.target_catalogue()).version
        # Nothing changed: the same records, not a re-read.
        assert (await b.repo.target_catalogue()).records is (await b.repo.target_catalogue()).records
        assert (await a.repo.target_catalogue()).version == version

        await a.repo.create_target(CelestialTarget("star-2", "Star 2", 20.0, -30.0))
        assert sorted(await listed()) == [sat, "star-1", "star-2"]

        newer = generate_tles("sso", 2, now + timedelta(hours=6), seed=3)[0]
        await a.repo.update_elements(sat, newer.line1, newer.line2, source="test", epoch=newer.epoch)
        assert (await listed())[sat].satellite.tle_line1 == newer.line1

        await a.repo.delete_target("star-2")
        assert sorted(await listed()) == [sat, "star-1"]

        await a.repo.delete_campaign("c1")
        assert (await listed())["star-1"].campaign_id == ""

        forecast = SpacecraftForecast(sat, 0.5, now, 0.4, now, 0.0, False)
        await a.repo.store_spacecraft_forecasts([forecast])
        resp = await stub.ListTargets(targets_pb2.ListTargetsRequest())
        assert [f.target_id for f in resp.spacecraft_forecasts] == [sat]

        # A change made outside any server (a script, a console): the database's triggers move the version too.
        async with a.repo.engine.begin() as conn:
            await conn.execute(text("UPDATE targets SET name = 'Renamed' WHERE target_id = 'star-1'"))
        assert (await listed())["star-1"].name == "Renamed"
        assert (await b.repo.target_catalogue()).version > version

        # Pages and filters read the same list: ids after the token, kind, campaign.
        page = await stub.ListTargets(targets_pb2.ListTargetsRequest(page_size=1))
        rest = await stub.ListTargets(targets_pb2.ListTargetsRequest(page_size=1, page_token=page.next_page_token))
        assert [t.target_id for t in [*page.targets, *rest.targets]] == sorted([sat, "star-1"])
        stars = await stub.ListTargets(targets_pb2.ListTargetsRequest(kind="celestial"))
        assert [t.target_id for t in stars.targets] == ["star-1"]
