"""Station weather: set through the control API, stored, sent to the scheduler, and a change wakes the planner."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.core.model import CelestialTarget
from tests.server.agent_client import AgentClient
from tests.server.conftest import StartServer, add_station
from tests.server.fake_scheduler import fake_scheduler


async def test_weather_is_stored_sent_to_the_scheduler_and_triggers_a_replan(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(planning_enabled=True, scheduler_address=address, replan_debounce_s=0.05)
        key = await add_station(server, "tel1")
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        async with (
            AgentClient.connect(server.address, key, "tel1") as agent,
            grpc.aio.insecure_channel(server.address) as channel,
        ):
            await agent.expect("welcome")
            stations = stations_pb2_grpc.StationServiceStub(channel)
            for _ in range(100):  # the station's coming online is planned first
                if scheduler.requests:
                    break
                await asyncio.sleep(0.05)
            asked = len(scheduler.requests)
            reply = await stations.SetStationWeather(
                stations_pb2.SetStationWeatherRequest(station_id="tel1", weather=common_pb2.WEATHER_CLOUDY)
            )
            assert reply.station.weather == common_pb2.WEATHER_CLOUDY

            # A plan already asked for before the change may still arrive first; the change must wake another.
            def cloudy_asked() -> bool:
                return any(
                    s.station_id == "tel1" and s.weather == common_pb2.WEATHER_CLOUDY
                    for request in scheduler.requests[asked:]
                    for s in request.stations
                )

            for _ in range(200):
                if cloudy_asked():
                    break
                await asyncio.sleep(0.05)
            assert len(scheduler.requests) > asked, "a weather change must wake the planner"
            assert cloudy_asked(), "the planner must send the new weather to the scheduler"
            got = await stations.GetStation(stations_pb2.GetStationRequest(station_id="tel1"))
            assert got.station.weather == common_pb2.WEATHER_CLOUDY


async def test_bad_weather_requests_name_the_field_and_change_nothing(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "tel1")
    async with grpc.aio.insecure_channel(server.address) as channel:
        stations = stations_pb2_grpc.StationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.SetStationWeather(
                stations_pb2.SetStationWeatherRequest(station_id="nope", weather=common_pb2.WEATHER_CLOSED)
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stations.SetStationWeather(stations_pb2.SetStationWeatherRequest(station_id="tel1", weather=42))  # type: ignore[arg-type]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "weather" in (err.value.details() or "")
    assert (await server.repo.get_station("tel1")).station.weather == 0
