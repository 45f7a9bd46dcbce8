"""The gateway's catalogue for ranked lists (`skymesh.web.catalogue`) against a real server and real schedulers:
ListTargets answers `unchanged` under the same version and the new list after any change, always with the caller's
token checked; a scheduler that does not hold a named list (another replica, a restart) is sent it again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skymesh.api.control.v1 import stations_pb2, targets_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.errors import InvalidArgument, Unauthenticated
from skymesh.core.model import CelestialTarget
from skymesh.scheduler.service import start_server as start_scheduler
from skymesh.web import WebConfig
from skymesh.web.catalogue import rank
from skymesh.web.client import ControlClient
from tests.web.conftest import Web

AT = timestamp_from_datetime(datetime(2026, 10, 15, 4, tzinfo=UTC))  # 47 Tuc high over Paranal


async def test_catalogue_unchanged_until_a_change_and_resent_to_a_scheduler_without_it(web: Web) -> None:
    token = web.tokens["olga"]
    schedulers = [await start_scheduler("127.0.0.1:0") for _ in range(2)]
    clients = [
        ControlClient(WebConfig(server_address=web.server.address, scheduler_address=f"127.0.0.1:{port}"))
        for _, port in schedulers
    ]
    c = clients[0]
    try:
        cat = await c.target_catalogues.current(c, token, "")
        assert cat.version > 0 and [t.target_id for t in cat.targets] == ["m31"]
        assert await c.target_catalogues.current(c, token, "") is cat  # answered `unchanged`: the same list
        raw = await c.call(c.targets.ListTargets, targets_pb2.ListTargetsRequest(known_version=cat.version), token)
        assert raw.unchanged and raw.catalogue_version == cat.version and not raw.targets
        with pytest.raises(InvalidArgument) as bad:
            await c.call(c.targets.ListTargets, targets_pb2.ListTargetsRequest(known_version=-1), token)
        assert bad.value.field == "known_version"
        # The caller's token is checked on every call, held catalogue or not.
        with pytest.raises(Unauthenticated):
            await c.target_catalogues.current(c, "not-a-token", "")

        await web.server.repo.create_target(CelestialTarget("tuc-47", "47 Tuc", 6.02, -72.08, priority=8))
        fresh = await c.target_catalogues.current(c, token, "")
        assert fresh.version > cat.version and [t.target_id for t in fresh.targets] == ["m31", "tuc-47"]

        station = (
            await c.call(c.stations.GetStation, stations_pb2.GetStationRequest(station_id="tel-paranal"), token)
        ).station
        sel = fresh.select("celestial", 0.0)
        first = await rank(c, sel, station, AT, 5)
        assert [r.target_id for r in first] == ["tuc-47"] and len(sel.catalogue_id) == 32
        kept_id = sel.catalogue_id
        assert await rank(c, sel, station, AT, 5) == first  # named by id this time
        # Another scheduler has never seen it: CATALOGUE_UNKNOWN, sent again, the same list and the same id.
        assert await rank(clients[1], sel, station, AT, 5) == first
        assert sel.catalogue_id == kept_id
        assert await rank(c, fresh.select("celestial", 9.0), station, AT, 5) == []
    finally:
        for client in clients:
            await client.close()
        for server, _ in schedulers:
            await server.stop(0.1)
