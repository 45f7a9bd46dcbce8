"""Stream rules 1-4 over real gRPC on loopback: auth, Hello checks, Welcome resume, upstream dedup and acks."""

from __future__ import annotations

import grpc

from skymesh.api.agent.v1 import agent_pb2
from skymesh.core.errors import NotFound
from skymesh.core.model import StationState
from tests.server.agent_client import AgentClient, observation_record
from tests.server.conftest import Fleet, StartServer, add_station


async def _nothing_written(fleet: Fleet, station_id: str) -> None:
    record = await fleet.server.repo.get_station(station_id)
    assert record.station.state == StationState.OFFLINE
    assert record.agent_version == ""
    assert await fleet.server.repo.count_telemetry(station_id) == 0


async def test_wrong_key_is_unauthenticated(fleet: Fleet) -> None:
    bad = fleet.keys["gs1"][:-4] + "AAAA"
    for key in (bad, "smk_nope_nope", "garbage"):
        async with AgentClient.connect(fleet.address, key, "gs1") as agent:
            code, _ = await agent.status()
            assert code == grpc.StatusCode.UNAUTHENTICATED
    await _nothing_written(fleet, "gs1")


async def test_revoked_key_is_unauthenticated(fleet: Fleet) -> None:
    key_id = fleet.keys["gs1"].split("_")[1]
    await fleet.server.repo.revoke_station_key(key_id)
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        code, _ = await agent.status()
        assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_claiming_another_station_is_permission_denied(fleet: Fleet) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs2") as agent:
        code, details = await agent.status()
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "hello.station_id" in details
    await _nothing_written(fleet, "gs1")
    await _nothing_written(fleet, "gs2")


async def test_first_message_must_be_hello(fleet: Fleet) -> None:
    first = agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat())
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", first=first) as agent:
        code, details = await agent.status()
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "first message must be hello" in details
    await _nothing_written(fleet, "gs1")


async def test_welcome_then_dedup_and_acks_after_commit(fleet: Fleet) -> None:
    repo = fleet.server.repo
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as agent:
        welcome = await agent.expect("welcome")
        assert welcome.heartbeat_interval.ToSeconds() == 10
        assert [(r.boot_id, r.committed_seq) for r in welcome.resume] == [(agent.boot_id, 0)]
        for seq, acked in ((1, 1), (2, 2), (2, 2), (1, 2)):
            await agent.telemetry(seq)
            ack = await agent.expect("upstream_ack")
            assert (ack.boot_id, ack.committed_seq) == (agent.boot_id, acked)
            # Acked means committed: the database already holds it.
            assert (await repo.get_cursors("gs1", [agent.boot_id]))[agent.boot_id] == ack.committed_seq
        record = observation_record()
        await agent.observation(3, record)
        assert (await agent.expect("upstream_ack")).committed_seq == 3
        await agent.observation(4, record)  # same observation_id again under a new seq: stored once
        assert (await agent.expect("upstream_ack")).committed_seq == 4
        assert (await repo.get_station("gs1")).station.state == StationState.ONLINE
    assert await repo.count_telemetry("gs1") == 2
    assert len(await repo.list_observations(station_id="gs1")) == 1
    old_boot = agent.boot_id
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1", pending_boot_ids=[old_boot]) as again:
        welcome = await again.expect("welcome")
        resume = {r.boot_id: r.committed_seq for r in welcome.resume}
        assert resume == {again.boot_id: 0, old_boot: 4}
        # Spooled data of the earlier boot keeps its numbering; seq <= 4 is a duplicate, 5 is new.
        await again.telemetry(4, boot_id=old_boot)
        assert (await again.expect("upstream_ack")).committed_seq == 4
        await again.telemetry(5, boot_id=old_boot)
        ack = await again.expect("upstream_ack")
        assert (ack.boot_id, ack.committed_seq) == (old_boot, 5)
    assert await repo.count_telemetry("gs1") == 3


async def test_newest_session_wins(fleet: Fleet) -> None:
    async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as old:
        await old.expect("welcome")
        async with AgentClient.connect(fleet.address, fleet.keys["gs1"], "gs1") as new:
            await new.expect("welcome")
            code, details = await old.status()
            assert code == grpc.StatusCode.ABORTED
            assert "superseded by a newer session" in details
            await new.telemetry(1)
            assert (await new.expect("upstream_ack")).committed_seq == 1
    assert (await fleet.server.repo.get_station("gs1")).station.state in (
        StationState.ONLINE,
        StationState.DISCONNECTED,
    )


async def test_revocation_elsewhere_ends_the_stream(start_server: StartServer) -> None:
    server = await start_server(key_recheck_s=0.1)
    key = await add_station(server, "gs1")
    async with AgentClient.connect(server.address, key, "gs1") as agent:
        await agent.expect("welcome")
        await server.repo.revoke_station_key(key.split("_")[1])  # as `skymesh keys revoke` does, in the database
        code, details = await agent.status()
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in details


async def test_open_streams_recheck_their_keys_in_one_read(start_server: StartServer) -> None:
    """Issue 8: the periodic key re-check of open streams is one read for all of them, not one per stream; only
    the stream whose key was revoked ends."""
    server = await start_server(key_recheck_s=0.1)
    keys = {sid: await add_station(server, sid) for sid in ("gs1", "gs2", "gs3")}
    reads: list[int] = []
    keys_valid = server.repo.keys_valid

    async def counted(key_ids: set[str]) -> set[str]:
        reads.append(len(key_ids))
        return await keys_valid(key_ids)

    server.repo.keys_valid = counted  # type: ignore[method-assign]
    async with (
        AgentClient.connect(server.address, keys["gs1"], "gs1") as one,
        AgentClient.connect(server.address, keys["gs2"], "gs2") as two,
        AgentClient.connect(server.address, keys["gs3"], "gs3") as three,
    ):
        for agent in (one, two, three):
            await agent.expect("welcome")
        await server.repo.revoke_station_key(keys["gs2"].split("_")[1])
        code, details = await two.status()
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in details
        assert 3 in reads  # the three open streams' keys in one read
        for agent in (one, three):  # the others keep streaming
            await agent.telemetry(1)
            assert (await agent.expect("upstream_ack")).committed_seq == 1


async def test_slew_rates_of_many_stations_are_one_read(start_server: StartServer) -> None:
    """The health detectors' per-station read at a station's first telemetry, for a storm's many stations at once."""
    server = await start_server()
    for sid in ("gs1", "gs2"):
        await add_station(server, sid)
    rates = await server.repo.slew_rates([("gs2", "", 0, None), ("nope", "", 0, None), ("gs1", "", 0, None)])
    assert rates[0] == (await server.repo.get_station("gs2")).station.slew_rate_deg_s
    assert isinstance(rates[1], NotFound)
    assert rates[2] == (await server.repo.get_station("gs1")).station.slew_rate_deg_s
