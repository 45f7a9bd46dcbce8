"""StationService.ListTelemetry over real gRPC on SQLite and PostgreSQL: stored samples come back, filtered by channel
and by each sample's own time, paged by tokens with no sample lost or repeated; bad input is refused naming the
field; the role is observer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.api.convert import timestamp_from_datetime
from skymesh.server import RunningServer
from skymesh.server.db.models import TelemetryRow
from skymesh.server.db.records import Role, TelemetryIn
from tests.server.conftest import StartServer, add_station

T0 = datetime(2026, 11, 20, 12, 0, 0, 250000, tzinfo=UTC)


def _samples(start: datetime, n: int, k: int) -> list[dict[str, Any]]:
    # Channel "a" on every sample, "b" on every third, "c" never: filters must drop samples, not only values.
    samples: list[dict[str, Any]] = []
    for i in range(n):
        values = {"a": float(k * 100 + i)}
        if (k + i) % 3 == 0:
            values["b"] = -float(k * 100 + i)
        samples.append({"at": (start + timedelta(seconds=i)).isoformat(), "values": values})
    return samples


def _batch(start: datetime, n: int, k: int) -> TelemetryIn:
    return TelemetryIn.from_samples(_samples(start, n, k))


async def _stored(server: RunningServer) -> list[tuple[datetime, dict[str, float], str]]:
    """30 batches of 7 one-second samples every 10 s on gs1 (two boots, interleaved), a few on gs2; the expected
    samples of gs1 in order."""
    expected: list[tuple[datetime, dict[str, float], str]] = []
    items: list[tuple[str, str, int, TelemetryIn]] = []
    seqs = {"boot-a": 0, "boot-b": 0}
    for k in range(30):
        boot = "boot-a" if k % 2 == 0 else "boot-b"
        seqs[boot] += 1
        samples = _samples(T0 + timedelta(seconds=10 * k), 7, k)
        items.append(("gs1", boot, seqs[boot], TelemetryIn.from_samples(samples)))
        expected += [(datetime.fromisoformat(s["at"]), s["values"], boot) for s in samples]
    # Two batches that start at the same instant: the order needs its tie-break on the batch id.
    items.append(("gs2", "boot-z", 1, _batch(T0, 3, 0)))
    items.append(("gs2", "boot-y", 1, _batch(T0, 3, 1)))
    results = await server.repo.ingest_telemetry_many(items)
    assert all(not isinstance(r, Exception) for r in results)
    return expected


def _flat(samples: Any) -> list[tuple[datetime, dict[str, float], str]]:
    return [(s.at.ToDatetime(tzinfo=UTC), dict(s.values), s.boot_id) for s in samples]


async def _follow(stub: Any, size: int, **filters: Any) -> list[tuple[datetime, dict[str, float], str]]:
    out: list[tuple[datetime, dict[str, float], str]] = []
    token = ""
    for _ in range(500):
        reply = await stub.ListTelemetry(stations_pb2.ListTelemetryRequest(page_size=size, page_token=token, **filters))
        page = _flat(reply.samples)
        assert len(page) <= size
        out += page
        token = reply.next_page_token
        if not token:
            return out
        assert len(page) == size  # a short page only at the end (no rare-channel scan limit is reached here)
    raise AssertionError("tokens never ended")


async def test_pages_every_sample_once_in_order_with_filters(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs1")
    await add_station(server, "gs2")
    expected = await _stored(server)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = stations_pb2_grpc.StationServiceStub(channel)
        whole = _flat((await stub.ListTelemetry(stations_pb2.ListTelemetryRequest(station_id="gs1"))).samples)
        assert whole == expected[:100]  # page_size 0 means 100
        for size in (1, 7, 10, 13, 1000):
            assert await _follow(stub, size, station_id="gs1") == expected, size

        # Channel filter: samples without the channel are left out, the others carry only it.
        only_b = [(at, {"b": v["b"]}, boot) for at, v, boot in expected if "b" in v]
        assert await _follow(stub, 4, station_id="gs1", channels=["b"]) == only_b
        assert await _follow(stub, 4, station_id="gs1", channels=["c"]) == []
        both = await _follow(stub, 9, station_id="gs1", channels=["b", "a", "b"])
        assert both == expected

        # Time range, by each sample's own time: [after, before) cuts batches in the middle.
        after, before = T0 + timedelta(seconds=33), T0 + timedelta(seconds=121)
        in_range = [x for x in expected if after <= x[0] < before]
        assert in_range[0][0] == after and len(in_range) == 61
        got = await _follow(
            stub,
            5,
            station_id="gs1",
            after=timestamp_from_datetime(after),
            before=timestamp_from_datetime(before),
        )
        assert got == in_range
        tail = await _follow(stub, 50, station_id="gs1", after=timestamp_from_datetime(after))
        assert tail == [x for x in expected if x[0] >= after]

        # Same start time on two batches: both, once each, by batch id.
        gs2 = await _follow(stub, 2, station_id="gs2")
        assert [v["a"] for _, v, _ in gs2] == [0.0, 1.0, 2.0, 100.0, 101.0, 102.0]

        # A token is bound to its filters.
        first = await stub.ListTelemetry(stations_pb2.ListTelemetryRequest(station_id="gs1", page_size=3))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTelemetry(
                stations_pb2.ListTelemetryRequest(station_id="gs1", channels=["a"], page_token=first.next_page_token)
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in (err.value.details() or "")


async def test_rows_stored_as_json_before_0016_read_exactly_as_columnar_rows(start_server: StartServer) -> None:
    # The same batches, on gs1 through the ingest (columnar `data`) and on gs2 as rows written before migration
    # 0016 (JSON `samples`, no `data`): ListTelemetry must give back the same samples, pages and filters.
    server = await start_server()
    await add_station(server, "gs1")
    await add_station(server, "gs2")
    batches = [_samples(T0 + timedelta(seconds=10 * k), 7, k) for k in range(6)]
    results = await server.repo.ingest_telemetry_many(
        [("gs1", "b", k + 1, TelemetryIn.from_samples(samples)) for k, samples in enumerate(batches)]
    )
    assert all(not isinstance(r, Exception) for r in results)
    stored = TelemetryRow.__table__
    async with server.engine.begin() as conn:
        await conn.execute(
            stored.insert(),
            [
                {"station_id": "gs2", "boot_id": "b", "seq": k + 1, "at": T0 + timedelta(seconds=10 * k), "samples": s}
                for k, s in enumerate(batches)
            ],
        )
        forms = (await conn.execute(select(stored.c.station_id, stored.c.data.is_(None)).distinct())).all()
    assert sorted(forms) == [("gs1", False), ("gs2", True)]
    expected = [(datetime.fromisoformat(s["at"]), s["values"], "b") for samples in batches for s in samples]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = stations_pb2_grpc.StationServiceStub(channel)
        for station in ("gs1", "gs2"):
            assert await _follow(stub, 5, station_id=station) == expected, station
            only_b = [(at, {"b": v["b"]}, boot) for at, v, boot in expected if "b" in v]
            assert await _follow(stub, 2, station_id=station, channels=["b"]) == only_b, station
            after = T0 + timedelta(seconds=24)
            tail = [x for x in expected if x[0] >= after]
            got = await _follow(stub, 3, station_id=station, after=timestamp_from_datetime(after))
            assert got == tail and len(tail) == 24, station


async def test_a_deleted_stations_telemetry_stays_readable(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs1")
    await server.repo.ingest_telemetry_many([("gs1", "b", 1, _batch(T0, 4, 0))])
    await server.repo.delete_station("gs1")
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = stations_pb2_grpc.StationServiceStub(channel)
        reply = await stub.ListTelemetry(stations_pb2.ListTelemetryRequest(station_id="gs1"))
        assert len(reply.samples) == 4 and not reply.next_page_token


async def test_bad_input_is_refused_naming_the_field(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs1")
    await server.repo.ingest_telemetry_many([("gs1", "b", 1, _batch(T0, 4, 0))])
    ts = timestamp_from_datetime
    cases: list[tuple[dict[str, Any], grpc.StatusCode, str]] = [
        ({"station_id": "nope"}, grpc.StatusCode.NOT_FOUND, "station_id"),
        ({"station_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "station_id"),
        ({"station_id": "GS1; DROP TABLE telemetry"}, grpc.StatusCode.INVALID_ARGUMENT, "station_id"),
        ({"station_id": "gs1", "after": ts(T0), "before": ts(T0)}, grpc.StatusCode.INVALID_ARGUMENT, "before"),
        (
            {"station_id": "gs1", "after": ts(T0), "before": ts(T0 - timedelta(days=1))},
            grpc.StatusCode.INVALID_ARGUMENT,
            "before",
        ),
        ({"station_id": "gs1", "channels": [""]}, grpc.StatusCode.INVALID_ARGUMENT, "channels[0]"),
        ({"station_id": "gs1", "channels": ["a", "x" * 65]}, grpc.StatusCode.INVALID_ARGUMENT, "channels[1]"),
        ({"station_id": "gs1", "channels": [f"c{i}" for i in range(65)]}, grpc.StatusCode.INVALID_ARGUMENT, "channels"),
        ({"station_id": "gs1", "page_size": -1}, grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
        ({"station_id": "gs1", "page_token": "garbage"}, grpc.StatusCode.INVALID_ARGUMENT, "page_token"),
    ]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = stations_pb2_grpc.StationServiceStub(channel)
        for fields, code, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListTelemetry(stations_pb2.ListTelemetryRequest(**fields))
            assert err.value.code() == code, fields
            assert field in (err.value.details() or ""), (fields, err.value.details())
        # A well-formed token whose key parts are not a time and numbers was not issued here.
        from skymesh.server.control.paging import encode_token

        query = "telemetry|gs1|||"
        for key in (["x", "1", "0"], [T0.isoformat(), "one", "0"]):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListTelemetry(
                    stations_pb2.ListTelemetryRequest(station_id="gs1", page_token=encode_token(key, query))
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "page_token" in (err.value.details() or "")
        # Nothing was changed by any of it.
        reply = await stub.ListTelemetry(stations_pb2.ListTelemetryRequest(station_id="gs1"))
        assert len(reply.samples) == 4


async def test_observers_may_read_and_anonymous_callers_may_not(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    await add_station(server, "gs1")
    await server.repo.create_user("olive", Role.OBSERVER)
    token = await server.repo.issue_user_token("olive")
    request = stations_pb2.ListTelemetryRequest(station_id="gs1")
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = stations_pb2_grpc.StationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTelemetry(request)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = await stub.ListTelemetry(request, metadata=[("authorization", f"Bearer {token}")])
        assert list(reply.samples) == []


async def test_the_edges_of_time_are_answered_not_internal(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs1")
    await server.repo.ingest_telemetry_many([("gs1", "b", 1, _batch(T0, 4, 0))])
    first, last = datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = stations_pb2_grpc.StationServiceStub(channel)
        reply = await stub.ListTelemetry(
            stations_pb2.ListTelemetryRequest(
                station_id="gs1", after=timestamp_from_datetime(first), before=timestamp_from_datetime(last)
            )
        )
        assert len(reply.samples) == 4
