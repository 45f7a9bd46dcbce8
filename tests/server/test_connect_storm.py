"""The connect path under load (issue 8): Hellos of many streams share group transactions, each answered as if
alone (facts, state, epoch, cursors; a missing station refused without holding back the others), a Hello queue
that is too long sheds at once with UNAVAILABLE and a retry hint, and verified station keys are cached but a
revocation still takes effect (at once through this server, within the TTL when made elsewhere)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import grpc
import pytest

from skymesh.api.control.v1 import stations_pb2, stations_pb2_grpc
from skymesh.core.errors import InvalidArgument, NotFound, Unauthenticated, Unavailable
from skymesh.core.model import StationState
from skymesh.server.auth import StationKeys
from skymesh.server.config import ServerConfig
from skymesh.server.db.records import HelloClaim, HelloIn, TelemetryIn
from skymesh.server.groupcommit import GroupCommitter
from tests.server.agent_client import AgentClient
from tests.server.conftest import Fleet, StartServer, add_station

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _batch() -> TelemetryIn:
    return TelemetryIn.from_samples([{"at": AT.isoformat(), "values": {"az": 1.0}}])


def _hello(boot: str, state: StationState | None = StationState.ONLINE) -> HelloIn:
    return HelloIn("v2", {"kind": 1}, 0.5, (boot,), "r1", "s", state)


async def test_hellos_in_one_group_are_answered_as_alone(start_server: StartServer) -> None:
    server = await start_server()
    for sid in ("gs1", "gs2"):
        await add_station(server, sid)
    repo = server.repo
    await repo.ingest_telemetry_many([("gs1", "b1", 1, _batch())])
    hellos = GroupCommitter(repo, write=repo.record_hellos)
    answers = await asyncio.gather(
        hellos.submit("gs1", "", 0, _hello("b1")),
        hellos.submit("nope", "", 0, _hello("b9")),  # refused; the others still recorded
        hellos.submit("gs2", "", 0, _hello("b2", StationState.DEGRADED)),
        hellos.submit("gs1", "", 0, _hello("b1")),  # the same station again: the next epoch, the later one wins
        return_exceptions=True,
    )
    await hellos.close()
    assert hellos.groups == 1
    first, missing, second, again = answers
    assert isinstance(missing, NotFound) and missing.field == "hello.station_id"
    assert isinstance(first, HelloClaim) and isinstance(second, HelloClaim) and isinstance(again, HelloClaim)
    assert first.cursors == {"b1": 1} and again.cursors == {"b1": 1} and second.cursors == {"b2": 0}
    assert again.epoch == first.epoch + 1
    assert (first.state, again.state, second.state) == (StationState.OFFLINE, StationState.ONLINE, StationState.OFFLINE)
    assert await repo.station_states() == {"gs1": StationState.ONLINE, "gs2": StationState.DEGRADED}
    assert await repo.session_epochs(["gs1", "gs2"]) == {"gs1": again.epoch, "gs2": second.epoch}
    assert (await repo.get_station("gs1")).agent_version == "v2"


async def test_a_long_hello_queue_sheds_with_a_retry_hint(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs1")
    repo = server.repo
    hellos = GroupCommitter(
        repo, write=repo.record_hellos, max_queued=1, retry_after_s=3.0, overload_reason="CONNECT_OVERLOADED"
    )
    first = asyncio.ensure_future(hellos.submit("gs1", "", 0, _hello("b1")))
    await asyncio.sleep(0)
    with pytest.raises(Unavailable) as shed:
        await hellos.submit("gs1", "", 0, _hello("b2"))
    assert shed.value.reason == "CONNECT_OVERLOADED" and shed.value.details["retry-after-s"] == "3"
    claim = await first
    await hellos.close()
    assert await repo.session_epochs(["gs1"]) == {"gs1": claim.epoch}  # the shed Hello took no epoch


async def test_many_agents_connect_through_shared_groups(start_server: StartServer) -> None:
    server = await start_server()
    keys = {f"gs{i}": await add_station(server, f"gs{i}") for i in range(12)}
    async with contextlib.AsyncExitStack() as stack:
        agents = [await stack.enter_async_context(AgentClient.connect(server.address, k, s)) for s, k in keys.items()]
        await asyncio.gather(*(a.expect("welcome") for a in agents))
        assert server.hellos is not None and server.hellos.groups < len(keys)
        assert set((await server.repo.station_states()).values()) == {StationState.ONLINE}
        assert all(server.liveness.state(s) == StationState.ONLINE for s in keys)
        # The per-state gauge is recounted once per event-loop turn after Hellos (not once per Hello).
        await asyncio.sleep(0)
        assert server.metrics.registry.get_sample_value("skymesh_server_stations", {"state": "online"}) == len(keys)


async def test_station_key_revocation_still_takes_effect(fleet: Fleet) -> None:
    server = fleet.server
    key, key_id = fleet.keys["gs1"], fleet.keys["gs1"].split("_")[1]
    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")  # the key is now verified and cached
    channel = grpc.aio.insecure_channel(server.address)
    try:
        await stations_pb2_grpc.StationServiceStub(channel).RevokeStationKey(
            stations_pb2.RevokeStationKeyRequest(key_id=key_id)
        )
    finally:
        await channel.close()
    async with AgentClient.connect(server.address, key, "gs1") as agent:  # revoked here: refused at once
        code, _ = await agent.status()
        assert code == grpc.StatusCode.UNAUTHENTICATED
    # Revoked elsewhere (another replica, the CLI): accepted from the cache until the TTL, then refused.
    keys = StationKeys(server.repo, ttl_s=0.3)
    other = fleet.keys["gs2"]
    assert await keys.authenticate(other) == ("gs2", other.split("_")[1])
    await server.repo.revoke_station_key(other.split("_")[1])
    assert await keys.authenticate(other) == ("gs2", other.split("_")[1])
    await asyncio.sleep(0.35)
    with pytest.raises(Unauthenticated):
        await keys.authenticate(other)
    with pytest.raises(Unauthenticated):  # a wrong secret is never accepted because a good key is cached
        await keys.authenticate(key[:-4] + "AAAA")
    await keys.lookups.close()


@pytest.mark.parametrize("field", ["hello_group_max", "hello_queue_max", "hello_retry_after_s"])
def test_connect_limits_must_be_positive(field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ServerConfig(**{field: 0})
    assert refused.value.field == field


async def test_three_hellos_of_one_station_in_one_group_newest_wins(start_server: StartServer) -> None:
    """The Hello group's rounds (one epoch per round for a station named twice or more; on PostgreSQL one prepared
    statement per round, on SQLite insert-or-ignore then epoch + 1): consecutive epochs in submission order, the
    session row holds the last Hello's replica and session, its facts are the last one's, one audit row each."""
    server = await start_server()
    await add_station(server, "gs1")
    repo = server.repo
    hellos = GroupCommitter(repo, write=repo.record_hellos)
    claims = await asyncio.gather(
        *(
            hellos.submit("gs1", "", 0, HelloIn(f"v{i}", {"kind": i}, 0.0, (f"b{i}",), f"r{i}", f"s{i}", None))
            for i in range(3)
        )
    )
    await hellos.close()
    assert hellos.groups == 1
    assert [c.epoch for c in claims] == [claims[0].epoch, claims[0].epoch + 1, claims[0].epoch + 2]
    assert await repo.session_holder("gs1") == (claims[2].epoch, "r2", "s2")
    assert (await repo.get_station("gs1")).agent_version == "v2"
    connects = [e for e in await repo.list_audit(limit=50) if e.action == "connect" and e.subject == "gs1"]
    assert sorted(e.detail["agent_version"] for e in connects) == ["v0", "v1", "v2"]
