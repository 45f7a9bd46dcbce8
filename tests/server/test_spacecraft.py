"""Spacecraft profiles in the server: stored with the target (SQLite and PostgreSQL), sent to a real scheduler,
the plan's forecasts stored and served by GetTarget/ListTargets; migration 0002 on a database at 0001."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import inspect, text

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import targets_pb2, targets_pb2_grpc
from skymesh.api.convert import spacecraft_profile_to_proto, target_from_proto
from skymesh.astro.tle_gen import generate_tles
from skymesh.cli import status
from skymesh.core.model import SatelliteTarget, SpacecraftProfile, StationState
from skymesh.scheduler.service import SchedulerServicer
from skymesh.scheduler.service import start_server as start_scheduler
from skymesh.server.db import Repository, create_engine, migrate
from tests.server.conftest import ISS_LINE1, ISS_LINE2, StartServer, add_station

CUBESAT = SpacecraftProfile(
    "cube", battery_capacity_wh=30.0, min_soc=0.4, charge_power_w=6.0, initial_soc=0.9,
    activity_power_w={"payload": 4.0, "downlink": 12.0, "standby": 1.0}, storage_capacity_bytes=2e9,
    payload_data_rate_bytes_per_s=2e3, downlink_rate_bytes_per_s=1.2e4,
)  # fmt: skip


def _target(target_id: str, line1: str, line2: str, profile: SpacecraftProfile | None) -> common_pb2.Target:
    msg = common_pb2.Target(
        target_id=target_id, priority=5, satellite=common_pb2.SatelliteTarget(tle_line1=line1, tle_line2=line2)
    )
    if profile is not None:
        msg.satellite.spacecraft.CopyFrom(spacecraft_profile_to_proto(profile))
    return msg


async def test_profile_round_trips_through_create_get_and_list(start_server: StartServer) -> None:
    server = await start_server()
    async with grpc.aio.insecure_channel(server.address) as channel:
        targets = targets_pb2_grpc.TargetServiceStub(channel)
        created = await targets.CreateTarget(
            targets_pb2.CreateTargetRequest(target=_target("cube", ISS_LINE1, ISS_LINE2, CUBESAT))
        )
        got = await targets.GetTarget(targets_pb2.GetTargetRequest(target_id="cube"))
        for msg in (created.target, got.target):
            sat = target_from_proto(msg)
            assert isinstance(sat, SatelliteTarget)
            assert sat.spacecraft == CUBESAT
        assert not got.HasField("spacecraft_forecast")  # not planned yet
        bad = _target("bad", ISS_LINE1, ISS_LINE2, CUBESAT)
        bad.satellite.spacecraft.min_soc = 1.2
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await targets.CreateTarget(targets_pb2.CreateTargetRequest(target=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("target.satellite.spacecraft.min_soc")
        listed = await targets.ListTargets(targets_pb2.ListTargetsRequest())
        assert [t.target_id for t in listed.targets] == ["cube"]
        assert listed.targets[0].satellite.spacecraft.battery_capacity_wh == 30.0
    record = await server.repo.get_target("cube")
    assert isinstance(record.target, SatelliteTarget) and record.target.spacecraft == CUBESAT


async def test_a_plan_stores_forecasts_served_by_the_control_api(start_server: StartServer) -> None:
    now = datetime.now(UTC)
    scheduler, port = await start_scheduler("127.0.0.1:0", servicer=SchedulerServicer(isolate=False))
    try:
        server = await start_server(
            planning_enabled=True, scheduler_address=f"127.0.0.1:{port}", replan_debounce_s=3600.0
        )
        await add_station(server, "gs1")
        await server.repo.set_station_state("gs1", StationState.ONLINE, last_seen=now)
        tles = generate_tles("iss", 2, now, seed=11)
        async with grpc.aio.insecure_channel(server.address) as channel:
            targets = targets_pb2_grpc.TargetServiceStub(channel)
            for target_id, tle, profile in (("cube", tles[0], CUBESAT), ("plain", tles[1], None)):
                l1, l2 = tle.lines()
                await targets.CreateTarget(targets_pb2.CreateTargetRequest(target=_target(target_id, l1, l2, profile)))
            assert server.planner is not None
            await server.planner.plan_once("test")
            got = await targets.GetTarget(targets_pb2.GetTargetRequest(target_id="cube"))
            assert got.HasField("spacecraft_forecast")
            f = got.spacecraft_forecast
            assert f.target_id == "cube" and f.min_soc == CUBESAT.min_soc
            assert 0.0 <= f.min_state_of_charge <= f.state_of_charge <= 1.0
            assert f.data_on_board_bytes >= 0 and f.state_of_charge_time.ToDatetime(UTC) > now
            plain = await targets.GetTarget(targets_pb2.GetTargetRequest(target_id="plain"))
            assert not plain.HasField("spacecraft_forecast")
            listed = await targets.ListTargets(targets_pb2.ListTargetsRequest())
            assert [x.target_id for x in listed.spacecraft_forecasts] == ["cube"]
        # `skymesh status` shows it: a row per satellite with a profile.
        report = await status.collect(server.address, None)
        [row] = report["spacecraft"]
        assert row["target_id"] == "cube" and row["soc"] == f.state_of_charge
        assert row["data_on_board_bytes"] == f.data_on_board_bytes
        lines = [line for line in status.render(report).splitlines() if line.startswith("cube ")]
        assert len(lines) == 1 and "30 Wh" in lines[0] and f"{f.state_of_charge:.0%}" in lines[0]
    finally:
        await scheduler.stop(grace=None)


async def test_migration_0002_adds_the_columns_to_a_database_at_0001(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine, "0001")
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO targets (target_id, name, kind, priority, band, downlink_frequency_hz,"
                    " min_elevation_deg, filters, created_at, updated_at, norad_id)"
                    " VALUES ('old', 'Old', 1, 5, '', 0, 0, '[]', :now, :now, 25544)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO tle_history (target_id, line1, line2, epoch, source, received_at)"
                    " VALUES ('old', :l1, :l2, :now, '', :now)"
                ),
                {"l1": ISS_LINE1, "l2": ISS_LINE2, "now": now},
            )
        await migrate(engine)
        async with engine.connect() as conn:
            columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("targets")})
            assert {"spacecraft", "spacecraft_forecast", "max_hour_angle_h", "max_moon_illumination"} <= columns
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            assert version == "0011"  # head: 0011 (passwords and sessions) after 0004 (station weather)
        record = await Repository(engine).get_target("old")
        assert isinstance(record.target, SatelliteTarget)
        assert record.target.spacecraft is None and record.spacecraft_forecast is None
    finally:
        await engine.dispose()
