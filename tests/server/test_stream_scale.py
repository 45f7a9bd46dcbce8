"""A reduced stream ladder (issue 8): hundreds of raw agent streams at once through the real protocol, on SQLite and
PostgreSQL, each sending telemetry that the server group-commits; some resend what was already acked (a reconnect
that lost its acks). Asserts what the benchmark cannot afford to get wrong: every acked message is stored exactly
once, resends are acked as duplicates and not stored twice, and messages from many streams shared transactions.
Timing is the benchmark's business (benchmarks/stream.py), not this test's."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from sqlalchemy import text

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.core.model import GeoLocation, Station, StationKind
from skymesh.server import RunningServer
from skymesh.server.sessions import MAX_OUTBOUND
from tests.server.conftest import StartServer

STATIONS = 300
BATCHES = 3
PER_CHANNEL = 20


def _batch(seq: int, boot_id: str) -> agent_pb2.ConnectRequest:
    request = agent_pb2.ConnectRequest(seq=seq, boot_id=boot_id)
    for i in range(5):
        sample = request.telemetry.samples.add(values={"az": float(seq), "el": float(i)})
        sample.at.FromSeconds(1_790_000_000 + seq * 10 + i)
    return request


async def _ack(call: grpc.aio.StreamStreamCall[agent_pb2.ConnectRequest, agent_pb2.ConnectResponse]) -> int:
    while True:
        response = await asyncio.wait_for(call.read(), 60)
        assert response is not grpc.aio.EOF, "stream ended before its ack"  # type: ignore[attr-defined]
        if response.WhichOneof("body") == "upstream_ack":
            return int(response.upstream_ack.committed_seq)


async def _agent(stub: agent_pb2_grpc.AgentServiceStub, sid: str, key: str, resend: bool) -> tuple[str, str, int]:
    boot = str(uuid.uuid4())
    metadata = (("authorization", f"Bearer {key}"),)
    acked = 0
    for attempt in range(2 if resend else 1):
        call = stub.Connect(metadata=metadata)
        hello = agent_pb2.Hello(station_id=sid, agent_version="scale", protocol_version=1, boot_id=boot)
        await call.write(agent_pb2.ConnectRequest(hello=hello))
        welcome = await asyncio.wait_for(call.read(), 60)
        assert welcome.WhichOneof("body") == "welcome"
        resume = {r.boot_id: r.committed_seq for r in welcome.welcome.resume}
        assert resume.get(boot, 0) == acked
        # The second attempt resends everything, as an agent that never saw its acks would.
        for seq in range(1, BATCHES + 1):
            await call.write(_batch(seq, boot))
            acked_now = await _ack(call)
            assert acked_now == max(seq, acked) if attempt else acked_now == seq
        acked = BATCHES
        call.cancel()
    return sid, boot, acked


async def _ladder(server: RunningServer) -> None:
    async def register(sid: str) -> tuple[str, str]:
        await server.repo.create_station(Station(sid, sid, StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
        return sid, (await server.repo.issue_station_key(sid)).api_key

    keys = dict(await asyncio.gather(*(register(f"scale-{i:04d}") for i in range(STATIONS))))
    sids = sorted(keys)
    channels = [grpc.aio.insecure_channel(server.address) for _ in range(0, STATIONS, PER_CHANNEL)]
    try:
        stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
        results = await asyncio.gather(
            *(_agent(stubs[i // PER_CHANNEL], sid, keys[sid], resend=i % 10 == 0) for i, sid in enumerate(sids))
        )
    finally:
        for channel in channels:
            await channel.close(None)
    async with server.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT station_id, boot_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM telemetry"
                    " GROUP BY station_id, boot_id"
                )
            )
        ).all()
    stored = {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}
    assert len(results) == STATIONS
    for sid, boot, acked in results:
        assert stored.get((sid, boot)) == (acked, acked, 1, acked), (
            f"{sid}: acked {acked}, stored {stored.get((sid, boot))}"
        )
    assert len(stored) == STATIONS  # nothing stored that was not acked to someone
    committer = server.committer
    assert committer is not None
    # Every message, resends included, went through the group committer, in fewer transactions than messages.
    assert committer.messages == STATIONS * BATCHES + (STATIONS // 10) * BATCHES
    assert committer.groups < committer.messages


async def test_hundreds_of_streams_lose_nothing_and_store_nothing_twice(start_server: StartServer) -> None:
    server = await start_server(offline_grace_s=600.0)
    await asyncio.wait_for(_ladder(server), 240)


async def test_an_agent_that_does_not_read_is_cut_off_not_buffered_forever(start_server: StartServer) -> None:
    server = await start_server()
    await server.repo.create_station(Station("slow", "slow", StationKind.GROUND_STATION, GeoLocation(0.0, 0.0, 0.0)))
    key = (await server.repo.issue_station_key("slow")).api_key
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).Connect(metadata=(("authorization", f"Bearer {key}"),))
        hello = agent_pb2.Hello(station_id="slow", agent_version="scale", protocol_version=1, boot_id="b")
        await call.write(agent_pb2.ConnectRequest(hello=hello))
        assert (await asyncio.wait_for(call.read(), 30)).WhichOneof("body") == "welcome"
        session = server.hub.get("slow")
        assert session is not None
        # More than the bound queued at once for an agent that has not read them: the stream is cut off.
        ack = agent_pb2.ConnectResponse(upstream_ack=agent_pb2.UpstreamAck(boot_id="b", committed_seq=0))
        for _ in range(MAX_OUTBOUND + 1):
            session.push(ack)
        assert session.ended.is_set()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while True:  # the acks written before the cut-off may arrive first
                await asyncio.wait_for(call.read(), 30)
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "SLOW_CONSUMER" in (ended.value.details() or "")
