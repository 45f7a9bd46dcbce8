"""SchedulerService over real gRPC on a loopback port: plans, ranked lists, errors, health, reflection, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from skymesh.api.convert import station_to_proto, timestamp_from_datetime
from skymesh.api.scheduler.v1 import scheduler_pb2 as pb
from skymesh.api.scheduler.v1 import scheduler_pb2_grpc as pb_grpc
from skymesh.core.errors import FailedPrecondition
from skymesh.core.model import CelestialTarget, GeoLocation, Station, StationKind, StationState
from skymesh.observability.metrics import SchedulerMetrics
from skymesh.scheduler.inputs import PlanRequest, PlanTarget, SolverKind
from skymesh.scheduler.service import SERVICE_NAME, RankCatalogues, SchedulerServicer, start_server
from skymesh.scheduler.wire import plan_request_to_proto


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server, port = await start_server("127.0.0.1:0", servicer=SchedulerServicer(isolate=True))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch
    finally:
        await server.stop(grace=None)


def _metric(name: str, solver: str) -> float:
    return SchedulerMetrics.current().registry.get_sample_value(name, {"solver": solver}) or 0.0


async def test_compute_plan_greedy_and_cpsat(channel: grpc.aio.Channel, small_talos: PlanRequest) -> None:
    stub = pb_grpc.SchedulerServiceStub(channel)
    before = _metric("skymesh_scheduler_plan_duration_seconds_count", "greedy")
    msg = plan_request_to_proto(replace(small_talos, request_id="r-1"))
    greedy = await stub.ComputePlan(msg)
    assert greedy.request_id == "r-1"
    assert greedy.stats.solver == pb.SOLVER_GREEDY
    assert len(greedy.assignments) > 10
    assert greedy.stats.candidates > len(greedy.assignments)
    assert greedy.stats.bound >= greedy.stats.objective > 0
    assert sum(a.score for a in greedy.assignments) == pytest.approx(greedy.stats.objective)
    assert {"visibility_s", "bound_s"} <= set(greedy.stats.timings_s)
    a = greedy.assignments[0]
    assert a.tca.ToDatetime() >= a.window.start.ToDatetime() and a.max_elevation_deg >= 10.0
    assert _metric("skymesh_scheduler_plan_duration_seconds_count", "greedy") == before + 1

    msg.solver = pb.SOLVER_CPSAT
    msg.time_limit_s = 5.0
    cp = await stub.ComputePlan(msg)
    assert cp.stats.solver == pb.SOLVER_CPSAT
    assert greedy.stats.objective <= cp.stats.objective + 1e-6 <= cp.stats.bound + 1e-3
    assert cp.stats.greedy_objective == pytest.approx(greedy.stats.objective)
    assert _metric("skymesh_scheduler_plan_objective", "cpsat") == pytest.approx(cp.stats.objective)


async def test_bad_input_is_invalid_argument_naming_the_field(
    channel: grpc.aio.Channel, small_talos: PlanRequest
) -> None:
    stub = pb_grpc.SchedulerServiceStub(channel)
    msg = plan_request_to_proto(small_talos)
    msg.window.end.CopyFrom(timestamp_from_datetime(small_talos.window.start - timedelta(hours=1)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ComputePlan(msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(err.value.details()).startswith("window.end:")

    msg = plan_request_to_proto(small_talos)
    msg.solver = 42  # type: ignore[assignment]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ComputePlan(msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(err.value.details()).startswith("solver:")
    meta: dict[str, object] = dict(tuple(m) for m in err.value.trailing_metadata() or ())  # type: ignore[misc, arg-type]
    assert meta["skymesh-error-field"] == "solver"

    msg = plan_request_to_proto(small_talos)
    msg.targets[2].demand.max_per_period = 2
    msg.targets[2].demand.period_s = 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ComputePlan(msg)
    assert str(err.value.details()).startswith("targets[2].demand.period_s:")

    msg = plan_request_to_proto(small_talos)
    msg.targets[0].target.satellite.tle_line2 = "2 garbage"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ComputePlan(msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(err.value.details()).startswith("targets[0].target.satellite.")


async def test_rank_targets_for_a_telescope(channel: grpc.aio.Channel, small_talos: PlanRequest) -> None:
    stub = pb_grpc.SchedulerServiceStub(channel)
    scope = Station(
        "scope",
        "scope",
        StationKind.TELESCOPE,
        GeoLocation(28.3, -16.5, 2390.0),
        min_elevation_deg=20.0,
        filters=("V",),
        limiting_magnitude=17.0,
        state=StationState.ONLINE,
    )
    at = small_talos.window.start.replace(hour=23)  # 1 March, night on Tenerife: Orion sets, Leo is high
    cat = [
        PlanTarget(CelestialTarget("regulus", "Regulus", 152.09, 11.97, magnitude=1.4, priority=6)),
        PlanTarget(CelestialTarget("m42", "M42", 83.8, -5.4, magnitude=4.0, priority=9)),
        PlanTarget(CelestialTarget("acrux", "Acrux", 186.65, -63.1, magnitude=0.8, priority=10)),
        PlanTarget(CelestialTarget("m13", "M13", 250.42, 36.46, magnitude=5.8, priority=3)),
    ]
    req = pb.RankTargetsRequest(station=station_to_proto(scope), at=timestamp_from_datetime(at), count=2)
    for pt in cat:
        m = req.targets.add()
        m.target.CopyFrom(plan_request_to_proto(replace(small_talos, targets=[pt])).targets[0].target)
    resp = await stub.RankTargets(req)
    ids = [t.target_id for t in resp.targets]
    assert "acrux" not in ids and len(ids) <= 2
    assert ids and ids[0] in {"regulus", "m42"}
    top = resp.targets[0]
    assert top.altitude_deg >= 20.0 and 1.0 <= top.airmass <= 2.0 and top.remaining_s > 0
    assert [t.score for t in resp.targets] == sorted((t.score for t in resp.targets), reverse=True)

    bad = pb.RankTargetsRequest(at=timestamp_from_datetime(at), count=1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RankTargets(bad)
    assert str(err.value.details()).startswith("station:")


async def test_health_and_reflection(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await call.read()
    await call.done_writing()
    names = {s.name for s in answer.list_services_response.service}
    assert SERVICE_NAME in names


def test_solver_kinds_round_trip() -> None:
    from skymesh.scheduler.wire import solver_from_proto, solver_to_proto

    for kind in (SolverKind.GREEDY, SolverKind.CPSAT, SolverKind.ROLLING, SolverKind.EXACT):
        assert solver_from_proto(solver_to_proto(kind)) == kind


async def test_serve_runs_until_stopped(small_talos: PlanRequest) -> None:
    import asyncio
    import socket

    from skymesh.scheduler.service import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(f"127.0.0.1:{port}", isolate=False, stop=stop))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        resp = await health.Check(health_pb2.HealthCheckRequest(service=""), wait_for_ready=True, timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        plan = await pb_grpc.SchedulerServiceStub(ch).ComputePlan(plan_request_to_proto(small_talos))
        assert plan.assignments
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def test_explanations_are_paged_and_explain_plan_serves_the_next_pages(
    channel: grpc.aio.Channel, small_talos: PlanRequest
) -> None:
    stub = pb_grpc.SchedulerServiceStub(channel)
    full = await stub.ComputePlan(plan_request_to_proto(small_talos))  # page size 0 = 1,000: all of these
    total = full.explanation_reasons_total
    assert total == sum(len(e.reasons) for e in [*full.unscheduled, *full.partially_met]) > 3
    assert full.next_explanation_page_token == ""
    msg = plan_request_to_proto(replace(small_talos, explanation_page_size=3))
    first = await stub.ComputePlan(msg)
    assert first.explanation_reasons_total == total and first.next_explanation_page_token
    assert [e.target_id for e in first.partially_met] == [e.target_id for e in full.partially_met]
    seen = sum(len(e.reasons) for e in [*first.unscheduled, *first.partially_met])
    token = first.next_explanation_page_token
    while token:
        page = await stub.ExplainPlan(
            pb.ExplainPlanRequest(request=msg, assignments=first.assignments, page_size=3, page_token=token)
        )
        assert page.total_reasons == total
        assert all(r.HasField("window") for e in [*page.unscheduled, *page.partially_met] for r in e.reasons)
        seen += sum(len(e.reasons) for e in [*page.unscheduled, *page.partially_met])
        token = page.next_page_token
    assert seen == total
    windowed = [r for e in full.partially_met for r in e.reasons if r.HasField("window")]
    assert windowed and all(r.station_id and r.value > 0 for r in windowed)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExplainPlan(pb.ExplainPlanRequest(request=msg, assignments=first.assignments, page_token="bogus"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ComputePlan(plan_request_to_proto(replace(small_talos, explanation_page_size=5001)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_rank_targets_reuses_conversions_but_never_hides_bad_or_changed_targets(
    channel: grpc.aio.Channel, small_talos: PlanRequest
) -> None:
    # The servicer keeps converted targets by their wire bytes: the same catalogue sent again must rank the same,
    # a target changed since must rank as changed, and a bad target must fail naming its field, every time.
    stub = pb_grpc.SchedulerServiceStub(channel)
    scope = Station(
        "scope", "scope", StationKind.TELESCOPE, GeoLocation(28.3, -16.5, 2390.0), min_elevation_deg=20.0,
        filters=("V",), limiting_magnitude=17.0, state=StationState.ONLINE,
    )  # fmt: skip
    at = small_talos.window.start.replace(hour=23)
    m42 = CelestialTarget("m42", "M42", 83.8, -5.4, magnitude=4.0, priority=9)  # up, clear of the Moon
    acrux = CelestialTarget("acrux", "Acrux", 186.65, -63.1, magnitude=0.8, priority=10)  # never up on Tenerife

    def request(*targets: CelestialTarget) -> pb.RankTargetsRequest:
        req = pb.RankTargetsRequest(station=station_to_proto(scope), at=timestamp_from_datetime(at), count=5)
        for t in targets:
            req.targets.add().target.CopyFrom(
                plan_request_to_proto(replace(small_talos, targets=[PlanTarget(t)])).targets[0].target
            )
        return req

    first = await stub.RankTargets(request(m42, acrux))
    again = await stub.RankTargets(request(m42, acrux))
    assert [t.target_id for t in first.targets] == ["m42"]
    assert again == first
    # Acrux moved to M42: it is listed now (first: higher priority), at M42's altitude.
    moved = await stub.RankTargets(request(m42, replace(acrux, ra_deg=83.8, dec_deg=-5.4)))
    assert [t.target_id for t in moved.targets] == ["acrux", "m42"]
    assert moved.targets[0].altitude_deg == pytest.approx(first.targets[0].altitude_deg)
    for _ in range(2):
        bad = request(m42, acrux)
        bad.targets[1].target.celestial.dec_deg = 95.0
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RankTargets(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert str(err.value.details()).startswith("targets[1].target.")


async def test_rank_targets_by_catalogue_id_bounded_and_asked_again_when_unknown(small_talos: PlanRequest) -> None:
    # A list sent once is named by the id the answer gives: the same ranking, without the targets. The scheduler
    # holds a few lists (least recently used out); an unknown id is FAILED_PRECONDITION (CATALOGUE_UNKNOWN), and
    # targets with an id, or an id with bad other input, are refused as before.
    server, port = await start_server("127.0.0.1:0", servicer=SchedulerServicer(isolate=False))
    scope = Station(
        "scope", "scope", StationKind.TELESCOPE, GeoLocation(28.3, -16.5, 2390.0), min_elevation_deg=20.0,
        filters=("V",), limiting_magnitude=17.0, state=StationState.ONLINE,
    )  # fmt: skip
    at = timestamp_from_datetime(small_talos.window.start.replace(hour=23))

    def request(*targets: CelestialTarget, count: int = 5, catalogue_id: str = "") -> pb.RankTargetsRequest:
        req = pb.RankTargetsRequest(station=station_to_proto(scope), at=at, count=count, catalogue_id=catalogue_id)
        for t in targets:
            req.targets.add().target.CopyFrom(
                plan_request_to_proto(replace(small_talos, targets=[PlanTarget(t)])).targets[0].target
            )
        return req

    def star(i: int) -> CelestialTarget:
        return CelestialTarget(f"s{i}", f"S{i}", 83.8 + i, -5.4, magnitude=4.0, priority=1 + i % 9)

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.SchedulerServiceStub(ch)
            sent = await stub.RankTargets(request(star(0), star(1), star(2)))
            assert len(sent.catalogue_id) == 32 and [t.target_id for t in sent.targets]
            named = await stub.RankTargets(request(catalogue_id=sent.catalogue_id))
            assert named == sent
            # Another list has another id; the first is still held and still ranks the same.
            other = await stub.RankTargets(request(star(0), star(1)))
            assert other.catalogue_id not in ("", sent.catalogue_id)
            assert await stub.RankTargets(request(catalogue_id=sent.catalogue_id)) == sent
            # Eight more lists evict the first (least recently used); sending it again gives the same id back.
            for i in range(8):
                await stub.RankTargets(request(star(10 + i)))
            for bad_id in (sent.catalogue_id, "no-such-list"):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.RankTargets(request(catalogue_id=bad_id))
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert dict(err.value.trailing_metadata() or ())["skymesh-error-reason"] == "CATALOGUE_UNKNOWN"
            assert (await stub.RankTargets(request(star(0), star(1), star(2)))) == sent
            for bad, field in (
                (request(star(0), catalogue_id=sent.catalogue_id), "catalogue_id"),
                (pb.RankTargetsRequest(at=at, count=1, catalogue_id=sent.catalogue_id), "station"),
                (request(catalogue_id=sent.catalogue_id, count=-1), "count"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.RankTargets(bad)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert str(err.value.details()).startswith(field)
            # An empty list has no id, and nothing to name.
            assert (await stub.RankTargets(request())).catalogue_id == ""
    finally:
        await server.stop(grace=None)


def test_rank_catalogues_bounded_by_targets_held_not_only_lists() -> None:
    # Lists are evicted least recently used first until both bounds hold; a list longer than the target bound is not
    # held at all (its answer carries no id), and putting a held list again does not count its targets twice.
    star = CelestialTarget("s", "S", 83.8, -5.4, magnitude=4.0)
    held = RankCatalogues(size=3, max_targets=10)
    assert held.put("a", [PlanTarget(star)] * 4) and held.put("b", [PlanTarget(star)] * 4)
    assert held.put("a", [PlanTarget(star)] * 4) and held.targets_held == 8
    assert held.put("c", [PlanTarget(star)] * 4)  # 12 > 10: "b", the least recently used, goes
    assert held.targets_held == 8 and len(held) == 2
    assert len(held.get("a")) == 4 and len(held.get("c")) == 4
    with pytest.raises(FailedPrecondition):
        held.get("b")
    assert not held.put("huge", [PlanTarget(star)] * 11) and held.targets_held == 8
    assert not held.put("", [PlanTarget(star)])
    for name in "wxyz":
        held.put(name, [PlanTarget(star)])
    assert len(held) == 3 and held.targets_held == 3
