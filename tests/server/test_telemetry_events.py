"""Telemetry summaries in EventService.Watch: a station's stored telemetry reaches the watchers that asked for that
station, at most once a second per station (held batches merged, the last sample of each second kept), never the
watchers that did not ask, and never in the replay buffer; over real gRPC from a real agent stream, with control auth
on (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.control.v1 import events_pb2, events_pb2_grpc
from skymesh.core.clock import SystemClock
from skymesh.core.jobs import JobState
from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server.db.records import Role
from skymesh.server.events import MAX_SUMMARY_SAMPLES, EventBus
from tests.server.agent_client import AgentClient, ts
from tests.server.conftest import StartServer


def _meta(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _batch(agent: AgentClient, seq: int, values: list[dict[str, float]], t0: datetime) -> None:
    samples = [agent_pb2.TelemetrySample(at=ts(t0 + timedelta(seconds=i)), values=v) for i, v in enumerate(values)]
    await agent.send(
        agent_pb2.ConnectRequest(telemetry=agent_pb2.TelemetryBatch(samples=samples), seq=seq, boot_id=agent.boot_id)
    )


async def test_watchers_get_their_stations_telemetry_at_most_once_a_second(start_server: StartServer) -> None:
    server = await start_server(control_auth=True)
    await server.repo.create_station(Station("gs1", "GS1", StationKind.GROUND_STATION, GeoLocation(10.0, 20.0, 0.0)))
    key = (await server.repo.issue_station_key("gs1")).api_key
    await server.repo.create_user("olga", Role.OBSERVER)
    token = await server.repo.issue_user_token("olga")
    async with grpc.aio.insecure_channel(server.address) as channel:
        events = events_pb2_grpc.EventServiceStub(channel)
        bad = events.Watch(events_pb2.WatchRequest(telemetry_station_ids=["GS 1"]), metadata=_meta(token))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await bad.read()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "telemetry_station_ids[0]" in (refused.value.details() or "")

        wants = events.Watch(events_pb2.WatchRequest(telemetry_station_ids=["gs1"]), metadata=_meta(token))
        others = events.Watch(events_pb2.WatchRequest(), metadata=_meta(token))
        await wants.initial_metadata()
        await others.initial_metadata()
        async with AgentClient.connect(server.address, key, "gs1") as agent:
            await agent.expect("welcome")
            summaries: list[tuple[float, events_pb2.WatchResponse]] = []
            t0 = datetime.now(UTC).replace(microsecond=0)
            started = time.monotonic()
            # Five batches in quick succession, three samples each (two in the same second as the next batch's).
            for k in range(5):
                values = [{"rotator.azimuth_deg": 10.0 * k + i, "rotator.elevation_deg": 5.0 + k} for i in range(3)]
                await _batch(agent, k + 1, values, t0 + timedelta(seconds=2 * k))
            seen: set[int] = set()
            while seen != set(range(11)):
                event = await asyncio.wait_for(wants.read(), 10)
                if event.WhichOneof("event") == "telemetry":
                    summaries.append((time.monotonic() - started, event))
                    seen |= {x.at.seconds - int(t0.timestamp()) for x in event.telemetry.samples}
            first = summaries[0][1].telemetry
            assert first.station_id == "gs1" and len(first.samples) == 3  # the first batch at once
            assert len(summaries) < 5  # the batches that came within a second of a summary were held and merged
            for (t_a, _a), (t_b, _b) in itertools.pairwise(summaries):
                assert t_b - t_a >= 0.9, "two summaries of one station less than a second apart"
            last_az: dict[int, float] = {}
            for _t, e in summaries:
                seconds = [x.at.seconds - int(t0.timestamp()) for x in e.telemetry.samples]
                assert seconds == sorted(set(seconds)) and len(seconds) <= MAX_SUMMARY_SAMPLES  # one per second
                last_az.update(
                    zip(seconds, (x.values["rotator.azimuth_deg"] for x in e.telemetry.samples), strict=True)
                )
            assert last_az[4] == 20.0  # batch 3's first sample won over batch 2's last for the second they share
            # Telemetry never enters the replay buffer or reaches a watcher that did not ask for it.
            server.events.job("job-1", "gs1", JobState.RUNNING, JobState.SUCCEEDED)
            kinds = []
            while not kinds or kinds[-1] != "job":
                kinds.append((await asyncio.wait_for(others.read(), 5)).WhichOneof("event"))
            assert "telemetry" not in kinds and "station_state" in kinds
            replay = events.Watch(
                events_pb2.WatchRequest(cursor=summaries[0][1].cursor, telemetry_station_ids=["gs1"]),
                metadata=_meta(token),
            )
            assert (await asyncio.wait_for(replay.read(), 5)).WhichOneof("event") == "job"
            replay.cancel()
        wants.cancel()
        others.cancel()
    assert await server.repo.count_telemetry("gs1") == 5  # every batch stored, whatever the summaries kept


async def test_bus_does_no_work_for_stations_nobody_watches() -> None:
    bus = EventBus(SystemClock())
    sample = agent_pb2.TelemetrySample(at=ts(datetime.now(UTC)), values={"radio.snr_db": 3.0})
    bus.telemetry("gs1", [sample])
    assert not bus._telemetry_held and not bus._telemetry_sent
    stream = bus.watch("", ["gs1"])
    task = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # registered
    bus.telemetry("gs1", [sample])
    event = await asyncio.wait_for(task, 2)
    assert event.telemetry.station_id == "gs1" and event.cursor == f"{bus._run}.0"
    bus.telemetry("gs1", [sample])  # within the second: held, a timer pending
    assert bus._telemetry_timers
    await stream.aclose()
    # The last watcher of the station left: its held samples and timer are gone with it.
    assert bus.watchers == 0 and not bus._telemetry_held and not bus._telemetry_timers
