"""The rolling planner against a fake SchedulerService over real gRPC: jobs, schedule versions, pushes, failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from skymesh.api.common.v1 import common_pb2
from skymesh.api.control.v1 import observations_pb2, observations_pb2_grpc, targets_pb2, targets_pb2_grpc
from skymesh.api.convert import time_window_to_proto
from skymesh.api.scheduler.v1 import scheduler_pb2
from skymesh.core.errors import InvalidArgument
from skymesh.core.jobs import JobState
from skymesh.core.model import CelestialTarget, TimeWindow
from skymesh.observability.metrics import SERVER_PLANS
from skymesh.server import ServerConfig
from skymesh.server.db.work import CAUSE_REMOVED_FROM_SCHEDULE
from skymesh.server.planning import PlanLate
from tests.server.agent_client import AgentClient
from tests.server.conftest import ISS_LINE1, ISS_LINE2, StartServer, add_station
from tests.server.fake_scheduler import fake_scheduler

START = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
WINDOW = TimeWindow(START, START + timedelta(minutes=10))


def _one_pass(request: scheduler_pb2.ComputePlanRequest) -> list[scheduler_pb2.Assignment]:
    return [
        scheduler_pb2.Assignment(
            station_id=s.station_id, target_id=t.target.target_id, window=time_window_to_proto(WINDOW), score=1.0
        )
        for s in request.stations
        for t in request.targets
    ]


async def test_planner_builds_jobs_bumps_versions_and_pushes(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, scheduler_server):
        scheduler.plan = _one_pass
        server = await start_server(planning_enabled=True, scheduler_address=address, replan_debounce_s=0.05)
        key = await add_station(server, "gs1")
        channel = grpc.aio.insecure_channel(server.address)
        targets = targets_pb2_grpc.TargetServiceStub(channel)
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        async with channel:
            await targets.CreateTarget(
                targets_pb2.CreateTargetRequest(
                    target=common_pb2.Target(
                        target_id="iss",
                        name="ISS",
                        priority=7,
                        satellite=common_pb2.SatelliteTarget(
                            tle_line1=ISS_LINE1, tle_line2=ISS_LINE2, band="UHF", elements_source="test"
                        ),
                    )
                )
            )
            async with AgentClient.connect(server.address, key, "gs1") as agent:
                await agent.expect("welcome")
                # The station went ONLINE: the planner runs (event, debounced) and pushes version 1.
                schedule = await agent.expect("schedule", skip=("ping",))
                assert schedule.version == 1
                assert [j.target.target_id for j in schedule.jobs] == ["iss"]
                assert schedule.jobs[0].target.satellite.tle_line1 == ISS_LINE1
                job_id = schedule.jobs[0].job_id
                request = scheduler.requests[-1]
                assert [s.station_id for s in request.stations] == ["gs1"]
                assert request.solver == scheduler_pb2.SOLVER_GREEDY
                assert (await server.repo.get_job(job_id)).state == JobState.DISPATCHED

                # Same plan again: no new version, nothing pushed.
                reply = await jobs.Replan(observations_pb2.ReplanRequest())
                assert reply.assignments == 1
                assert await server.repo.schedule_version("gs1") == 1

                # The job drops out of the plan: cancelled, and version 2 (empty) is pushed.
                scheduler.plan = lambda _r: []
                await jobs.Replan(observations_pb2.ReplanRequest())
                schedule = await agent.expect("schedule")
                assert (schedule.version, list(schedule.jobs)) == (2, [])
                job = await server.repo.get_job(job_id)
                assert (job.state, job.cause) == (JobState.CANCELLED, CAUSE_REMOVED_FROM_SCHEDULE)

                # The scheduler goes away: Replan says UNAVAILABLE, schedules stay, the loop lives on.
                await scheduler_server.stop(None)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await jobs.Replan(observations_pb2.ReplanRequest())
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert await server.repo.schedule_version("gs1") == 2
                assert server.planner is not None and server.planner.failures >= 1
                server.planner.request("test")
                await asyncio.sleep(0.2)
                await agent.heartbeat()
                await agent.telemetry(1)
                assert (await agent.expect("upstream_ack")).committed_seq == 1


async def test_frozen_jobs_are_kept(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(planning_enabled=True, scheduler_address=address, freeze_s=7200)
        key = await add_station(server, "gs1")
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        scheduler.plan = _one_pass
        async with AgentClient.connect(server.address, key, "gs1") as agent:
            await agent.expect("welcome")
            schedule = await agent.expect("schedule")
            job_id = schedule.jobs[0].job_id
            await agent.job_update(1, job_id, common_pb2.JOB_STATE_RECEIVED)
            await agent.expect("upstream_ack")
            scheduler.plan = lambda _r: []  # a planner that forgets frozen jobs must not cancel them
            assert server.planner is not None
            await server.planner.plan_once()
            assert [f.job_id for f in scheduler.requests[-1].frozen] == [job_id]
            assert (await server.repo.get_job(job_id)).state == JobState.RECEIVED


async def test_a_plan_past_its_apply_deadline_is_discarded_and_asked_again(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(
            planning_enabled=True,
            scheduler_address=address,
            replan_debounce_s=0.05,
            plan_time_limit_s=0.1,
            scheduler_timeout_s=0.25,
            plan_apply_deadline_s=0.3,
        )
        key = await add_station(server, "gs1")
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        assert server.planner is not None
        scheduler.plan = _one_pass
        async with AgentClient.connect(server.address, key, "gs1") as agent:
            await agent.expect("welcome")
            assert (await agent.expect("schedule", skip=("ping",))).version == 1  # in time: applied
            before = SERVER_PLANS.labels("late")._value.get()

            # Late: the plan (which would cancel the job) is discarded, the schedule stays, the planner asks again.
            scheduler.plan = lambda _r: []
            scheduler.delay_s = 0.6
            asked = len(scheduler.requests)
            with pytest.raises(PlanLate):
                await server.planner.plan_once()
            assert await server.repo.schedule_version("gs1") == 1
            assert server.planner.late >= 1
            assert SERVER_PLANS.labels("late")._value.get() >= before + 1
            scheduler.delay_s = 0.0
            schedule = await agent.expect("schedule", skip=("ping",))  # the loop asked again by itself: applied
            assert (schedule.version, list(schedule.jobs)) == (2, [])
            assert len(scheduler.requests) > asked + 1


async def test_celestial_limits_are_stored_and_sent_to_the_scheduler(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(planning_enabled=True, scheduler_address=address)
        key = await add_station(server, "gs1")
        await server.repo.create_target(
            CelestialTarget("m31", "M31", 10.68, 41.27, max_hour_angle_h=2.5, max_moon_illumination=0.4)
        )
        [record] = await server.repo.list_targets()
        assert isinstance(record.target, CelestialTarget)
        assert (record.target.max_hour_angle_h, record.target.max_moon_illumination) == (2.5, 0.4)
        async with AgentClient.connect(server.address, key, "gs1") as agent:
            await agent.expect("welcome")
            assert server.planner is not None
            await server.planner.plan_once()
            cel = scheduler.requests[-1].targets[0].target.celestial
            assert (cel.max_hour_angle_h, cel.max_moon_illumination) == (2.5, 0.4)


def test_the_time_budget_settings_are_checked_against_each_other(tmp_path: Path) -> None:
    base = {"data_dir": str(tmp_path)}
    ServerConfig(**base, plan_time_limit_s=10, scheduler_timeout_s=30, plan_apply_deadline_s=60)
    for limit, timeout, deadline in ((60, 30, 90), (10, 60, 60), (10, 90, 60), (0, 30, 60)):
        with pytest.raises(InvalidArgument, match="plan_time_limit_s < scheduler_timeout_s < plan_apply_deadline_s"):
            ServerConfig(**base, plan_time_limit_s=limit, scheduler_timeout_s=timeout, plan_apply_deadline_s=deadline)
    with pytest.raises(InvalidArgument, match="between 4 and 2047"):
        ServerConfig(**base, scheduler_max_message_mb=1)


async def test_a_disconnected_stations_jobs_are_frozen_and_it_gets_no_new_work(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(planning_enabled=True, scheduler_address=address, freeze_s=0)
        keys = {sid: await add_station(server, sid) for sid in ("gs1", "gs2")}
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        scheduler.plan = lambda r: _one_pass(r)[:1]  # the first station sent gets the pass
        assert server.planner is not None
        async with AgentClient.connect(server.address, keys["gs1"], "gs1") as agent:
            await agent.expect("welcome")
            job_id = (await agent.expect("schedule", skip=("ping",))).jobs[0].job_id
        # gs1 dropped (DISCONNECTED): its agent keeps the job; gs2 connects and a plan is made.
        async with AgentClient.connect(server.address, keys["gs2"], "gs2") as agent:
            await agent.expect("welcome")
            await server.planner.plan_once()
            request = scheduler.requests[-1]
            sent = {s.station_id: s for s in request.stations}
            assert set(sent) == {"gs1", "gs2"}
            assert len(sent["gs1"].unavailable) == 1  # no new work for it, the whole window
            assert [(f.job_id, f.station_id) for f in request.frozen] == [(job_id, "gs1")]
            assert (await server.repo.get_job(job_id)).state == JobState.DISPATCHED  # not cancelled


async def test_after_a_restart_the_first_plan_waits_for_the_stations_to_reconnect(start_server: StartServer) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        first = await start_server(planning_enabled=False)
        key = await add_station(first, "gs1")
        await first.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        async with AgentClient.connect(first.address, key, "gs1") as agent:
            await agent.expect("welcome")
        await first.stop(grace_s=0.5)
        # Restarted: gs1 was connected, so it is DISCONNECTED now; nothing is planned until it is back.
        server = await start_server(
            planning_enabled=True, scheduler_address=address, replan_debounce_s=0.05, plan_startup_grace_s=30
        )
        scheduler.plan = _one_pass
        await asyncio.sleep(1.5)
        assert server.planner is not None and server.planner.runs == 0  # (without the grace: 1, a plan at start)
        async with AgentClient.connect(server.address, key, "gs1") as agent:
            await agent.expect("welcome")
            schedule = await agent.expect("schedule", skip=("ping",))
            assert len(schedule.jobs) == 1


async def test_a_replan_joins_the_plan_in_progress_unless_something_changed_since_it_began(
    start_server: StartServer,
) -> None:
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(
            planning_enabled=True,
            scheduler_address=address,
            replan_debounce_s=0.5,  # the Replan takes the lock before the loop retries a cut plan
            plan_time_limit_s=0.5,
            scheduler_timeout_s=1.0,
            plan_apply_deadline_s=5.0,
        )
        key = await add_station(server, "gs1")
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        planner = server.planner
        assert planner is not None
        scheduler.plan = _one_pass
        channel = grpc.aio.insecure_channel(server.address)
        jobs = observations_pb2_grpc.JobServiceStub(channel)
        async with channel, AgentClient.connect(server.address, key, "gs1") as agent:
            await agent.expect("welcome")
            await agent.expect("schedule", skip=("ping",))  # the loop's own plan (the station came online)
            await asyncio.sleep(0.3)
            # A plan in progress that began after the last change: the Replan gets its answer, no second plan.
            scheduler.delay_s = 0.5
            asked = len(scheduler.requests)
            running = asyncio.create_task(planner.plan_once("test"))
            await asyncio.sleep(0.1)
            reply = await jobs.Replan(observations_pb2.ReplanRequest())
            assert (await running).assignments == reply.assignments == 1
            assert len(scheduler.requests) == asked + 1

            # The plan it joined is cut by the scheduler timeout: the Replan then plans itself (and succeeds).
            scheduler.delay_s = 1.2  # over the 1 s scheduler timeout; the retry waits 2 s
            running = asyncio.create_task(planner.plan_once("test"))
            await asyncio.sleep(0.1)
            reply = await jobs.Replan(observations_pb2.ReplanRequest())
            assert reply.assignments == 1
            with pytest.raises(PlanLate):
                await running
            scheduler.delay_s = 0.5

            # A change after that plan began reading: the Replan plans again once it is done.
            asked = len(scheduler.requests)
            running = asyncio.create_task(planner.plan_once("test"))
            await asyncio.sleep(0.1)
            planner.request("target created")
            scheduler.plan = lambda _r: []
            reply = await jobs.Replan(observations_pb2.ReplanRequest())
            await running
            assert reply.assignments == 0
            assert len(scheduler.requests) >= asked + 2


async def test_after_a_scheduler_timeout_the_next_call_waits_longer(start_server: StartServer) -> None:
    """A plan that takes longer than `scheduler_timeout_s` on this machine is not asked for and cut forever: the
    timeout doubles (up to 95 % of the apply deadline) until a plan arrives, then returns to the setting."""
    async with fake_scheduler() as (scheduler, address, _server):
        server = await start_server(
            planning_enabled=True,
            scheduler_address=address,
            replan_interval_s=3600,
            replan_debounce_s=60,  # the loop's own plans (and its retry after a timeout) stay out of this test
            plan_time_limit_s=0.1,
            scheduler_timeout_s=0.4,
            plan_apply_deadline_s=2.0,
        )
        key = await add_station(server, "gs1")
        await server.repo.create_target(CelestialTarget("m31", "M31", 10.68, 41.27))
        planner = server.planner
        assert planner is not None
        scheduler.plan = _one_pass
        async with AgentClient.connect(server.address, key, "gs1") as agent:
            await agent.expect("welcome")
            await planner.plan_once("first")
            scheduler.delay_s = 0.45  # past 0.4 s always; within the doubled 0.8 s with 0.35 s to spare
            with pytest.raises(PlanLate, match=r"next call waits 0\.8 s"):
                await planner.plan_once("slow")
            await planner.plan_once("slow")  # waits 0.8 s: the 0.45 s plan arrives
            with pytest.raises(PlanLate, match=r"scheduler timeout \(0\.4 s"):  # back to the setting after a plan
                await planner.plan_once("slow")
