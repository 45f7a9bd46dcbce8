"""Per-axis rotator limits on a station: stored (migration 0010) and sent to the scheduler with the station."""

from __future__ import annotations

from skymesh.api.convert import rotator_from_proto
from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind
from skymesh.core.rotator import AxisLimits, RotatorModel
from tests.server.agent_client import AgentClient
from tests.server.conftest import StartServer
from tests.server.fake_scheduler import fake_scheduler

ROTATOR = RotatorModel(AxisLimits(-180.0, 540.0, 6.0, 3.0), AxisLimits(0.0, 180.0, 4.0, 2.0))


async def test_rotator_limits_are_stored_and_reach_the_scheduler(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        scheduler.plan = lambda _r: []
        server = await start_server(planning_enabled=True, scheduler_address=address)
        location = GeoLocation(52.0, 4.4, 10.0)
        await server.repo.create_station(
            Station("gs1", "GS1", StationKind.GROUND_STATION, location, bands=("UHF",), rotator=ROTATOR)
        )
        await server.repo.create_station(Station("gs2", "GS2", StationKind.GROUND_STATION, location, bands=("UHF",)))
        assert (await server.repo.get_station("gs1")).station.rotator == ROTATOR
        assert (await server.repo.get_station("gs2")).station.rotator is None
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        assert server.planner is not None
        keys = {s: (await server.repo.issue_station_key(s)).api_key for s in ("gs1", "gs2")}
        async with (
            AgentClient.connect(server.address, keys["gs1"], "gs1") as one,
            AgentClient.connect(server.address, keys["gs2"], "gs2") as two,
        ):
            await one.expect("welcome")
            await two.expect("welcome")
            await server.planner.plan_once()
        sent = {s.station_id: s for s in scheduler.requests[-1].stations}
        assert rotator_from_proto(sent["gs1"].rotator) == ROTATOR
        assert not sent["gs2"].HasField("rotator")
