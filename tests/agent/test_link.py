"""The agent against a protocol double of the server over real gRPC on loopback (docs/protocol.md rules)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid

import grpc
from google.protobuf.duration_pb2 import Duration

from skymesh.agent.config import DriverConfig
from skymesh.agent.drivers import build_drivers
from skymesh.agent.runtime import Agent
from skymesh.agent.store import Store
from skymesh.agent.uploads import UPLOAD_CHUNK_BYTES
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.core.clock import SystemClock
from skymesh.core.jobs import JobState
from tests.agent.conftest import now_plus, running, schedule, telescope_config, telescope_job
from tests.agent.fake_server import FakeAgentService

S = common_pb2


def _command(seq: int, command_id: str, **payload: object) -> agent_pb2.ConnectResponse:
    return agent_pb2.ConnectResponse(command=agent_pb2.Command(seq=seq, command_id=command_id, **payload))  # type: ignore[arg-type]


async def test_hello_schedule_job_and_acks(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    agent = Agent(telescope_config(tmp_path, port))
    async with running(agent):
        await service.wait_for(lambda: service.connected, what="connect")
        hello = service.hellos[0]
        assert hello.station_id == "tel-1"
        assert uuid.UUID(hello.boot_id).version == 4
        assert (hello.last_command_seq, hello.schedule_version, hello.upstream_next_seq) == (0, 0, 1)
        assert hello.capabilities.kind == S.STATION_KIND_TELESCOPE
        assert list(hello.capabilities.drivers) == ["simulated"]

        service.send(
            schedule(
                1,
                telescope_job("j1", now_plus(0.3), now_plus(6.0), count=2),
                telescope_job("old", now_plus(-60), now_plus(-30)),
            )
        )
        await service.wait_for(lambda: service.job_states("j1")[-1:] == [S.JOB_STATE_SUCCEEDED], 15, "j1 succeeded")
        assert [a.schedule_ack.version for a in service.of_kind("schedule_ack")] == [1]
        assert service.job_states("j1") == [S.JOB_STATE_RECEIVED, S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED]
        await service.wait_for(lambda: service.job_states("old")[-1:] == [S.JOB_STATE_EXPIRED], 5, "old expired")
        assert service.job_updates("old")[-1].cause == S.CAUSE_CODE_EXPIRED_BEFORE_START

        # The observation comes before SUCCEEDED in the sequence, with plausible photometry of a 12th-mag star.
        kinds = [m.WhichOneof("body") for m in service.stored_messages() if m.WhichOneof("body") != "telemetry"]
        assert kinds.index("observation") < len(kinds) - 1 - kinds[::-1].index("job_update")
        (obs,) = service.observations()
        uuid.UUID(obs.observation_id)
        assert obs.job_id == "j1" and obs.target_id == "t-j1"
        assert abs(obs.photometry.magnitude - 12.0) < 0.5
        assert 0 < obs.photometry.magnitude_error < 0.2
        assert 1.0 <= obs.airmass < 1.05
        assert len(obs.artifacts) == 2 and all(a.sha256 and a.size_bytes for a in obs.artifacts)

        await service.wait_for(lambda: service.of_kind("telemetry"), 5, "telemetry")
        channels = set(service.of_kind("telemetry")[0].telemetry.samples[0].values)
        assert "camera.temperature_c" in channels
        await service.wait_for(lambda: service.of_kind("heartbeat"), 5, "heartbeat")
        # Everything acknowledged is gone from the spool.
        assert agent.store is not None
        await service.wait_for(
            lambda: agent.store is not None and agent.store.sync.outbox_depth() <= 1, 5, "outbox drained"
        )
    assert not service.protocol_errors


async def test_reconnect_after_drop_resends_uncommitted(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    agent = Agent(telescope_config(tmp_path, port))
    async with running(agent):
        await service.wait_for(lambda: service.connected, what="connect")
        # The server loses everything of this session: nothing is committed or acked.
        service.auto_ack = False
        await service.wait_for(lambda: len(service.of_kind("telemetry")) >= 3, 10, "telemetry")
        sent_first = len(service.of_kind("telemetry"))
        service.committed.clear()
        service.stored.clear()
        service.auto_ack = True
        service.drop()
        await service.wait_for(lambda: len(service.hellos) == 2, 10, "reconnect")
        assert service.hellos[1].boot_id == service.hellos[0].boot_id
        assert service.hellos[1].upstream_next_seq > sent_first
        # Resent from seq 1, in order, with no gap, then acked and removed from the spool.
        await service.wait_for(lambda: (service.hellos[0].boot_id, sent_first) in service.stored, 10, "resend")
        boot = service.hellos[0].boot_id
        assert sorted(s for b, s in service.stored if b == boot)[:sent_first] == list(range(1, sent_first + 1))
    assert not service.protocol_errors


async def test_max_unacked_window(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    service.auto_ack = False
    service.max_unacked = 2
    agent = Agent(telescope_config(tmp_path, port, telemetry_batch_interval_s=0.2))
    async with running(agent):
        await service.wait_for(lambda: len(service.stored) == 2, 10, "two in flight")
        await asyncio.sleep(1.0)
        assert len(service.stored) == 2  # the window is full: nothing more until an ack
        boot = service.hellos[0].boot_id
        service.send(agent_pb2.ConnectResponse(upstream_ack=agent_pb2.UpstreamAck(boot_id=boot, committed_seq=2)))
        await service.wait_for(lambda: len(service.stored) == 4, 10, "window reopened")


async def test_command_dedup_executes_once(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    config = telescope_config(tmp_path, port)
    drivers = build_drivers(config, SystemClock())
    parks = 0
    assert drivers.mount is not None
    real_park = drivers.mount.park

    async def counting_park() -> None:
        nonlocal parks
        parks += 1
        await real_park()

    drivers.mount.park = counting_park  # type: ignore[method-assign]
    agent = Agent(config, drivers=drivers)
    async with running(agent):
        await service.wait_for(lambda: service.connected, what="connect")
        stow = _command(1, "cmd-1", stow=agent_pb2.Stow(), priority=agent_pb2.COMMAND_PRIORITY_NORMAL)
        service.send(stow)
        await service.wait_for(
            lambda: agent_pb2.COMMAND_STATE_SUCCEEDED in [u.state for u in service.command_updates("cmd-1")], 5, "stow"
        )
        first = len(service.command_updates("cmd-1"))
        service.send(stow)  # redelivered (at-least-once)
        await service.wait_for(lambda: len(service.command_updates("cmd-1")) > first, 5, "re-ack")
        await asyncio.sleep(0.3)
        states = [u.state for u in service.command_updates("cmd-1")]
        assert parks == 1
        assert states[0] == agent_pb2.COMMAND_STATE_RECEIVED
        assert states.count(agent_pb2.COMMAND_STATE_STARTED) <= 1
        assert states[-1] == agent_pb2.COMMAND_STATE_SUCCEEDED  # the re-ack carries the current state
        service.drop()
        await service.wait_for(lambda: len(service.hellos) == 2, 10, "reconnect")
        assert service.hellos[1].last_command_seq == 1
        service.send(stow)  # and again after a reconnect
        await service.wait_for(lambda: len(service.command_updates("cmd-1")) > len(states), 5, "re-ack 2")
        assert parks == 1


async def test_abort_interrupts_running_job(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    agent = Agent(telescope_config(tmp_path, port))
    async with running(agent):
        await service.wait_for(lambda: service.connected, what="connect")
        service.send(schedule(1, telescope_job("long", now_plus(0.1), now_plus(30), exposure_s=0.5, count=40)))
        await service.wait_for(lambda: S.JOB_STATE_RUNNING in service.job_states("long"), 10, "running")
        abort = agent_pb2.AbortJob(job_id="long", reason="test abort")
        service.send(_command(1, "abort-1", abort_job=abort, priority=agent_pb2.COMMAND_PRIORITY_URGENT))
        await service.wait_for(lambda: service.job_states("long")[-1:] == [S.JOB_STATE_ABORTED], 5, "aborted")
        update = service.job_updates("long")[-1]
        assert update.cause == S.CAUSE_CODE_ABORTED_BY_OPERATOR and update.detail == "test abort"
        await service.wait_for(
            lambda: [u.state for u in service.command_updates("abort-1")][-1:] == [agent_pb2.COMMAND_STATE_SUCCEEDED],
            5,
            "abort command succeeded",
        )


async def test_killed_mid_job_resumes_on_restart(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    config = telescope_config(tmp_path, port)
    first = Agent(config)
    async with running(first):
        await service.wait_for(lambda: service.connected, what="connect")
        service.send(schedule(1, telescope_job("j", now_plus(0.1), now_plus(12), exposure_s=0.3, count=6)))
        await service.wait_for(lambda: S.JOB_STATE_RUNNING in service.job_states("j"), 10, "running")
    # Killed mid-job. A new process on the same state dir resumes it (time remains) and finishes it.
    second = Agent(config)
    assert second.boot_id != first.boot_id
    async with running(second):
        await service.wait_for(lambda: service.job_states("j")[-1:] == [S.JOB_STATE_SUCCEEDED], 15, "resumed job done")
        hello = service.hellos[-1]
        assert hello.boot_id == second.boot_id and hello.schedule_version == 1
    running_updates = [u for u in service.job_updates("j") if u.state == S.JOB_STATE_RUNNING]
    assert running_updates[-1].detail == "resumed after agent restart"
    assert len(service.observations()) == 1
    assert not service.protocol_errors


async def test_killed_mid_job_fails_when_time_ran_out(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    config = telescope_config(tmp_path, port)
    async with running(Agent(config)):
        await service.wait_for(lambda: service.connected, what="connect")
        service.send(schedule(1, telescope_job("j", now_plus(0.1), now_plus(1.5), exposure_s=0.5, count=20)))
        await service.wait_for(lambda: S.JOB_STATE_RUNNING in service.job_states("j"), 10, "running")
    await asyncio.sleep(1.6)
    async with running(Agent(config)):
        await service.wait_for(lambda: service.job_states("j")[-1:] == [S.JOB_STATE_FAILED], 10, "failed")
    assert service.job_updates("j")[-1].cause == S.CAUSE_CODE_AGENT_RESTARTED


async def test_schedule_runs_while_link_is_down(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    agent = Agent(telescope_config(tmp_path, port))
    async with running(agent):
        await service.wait_for(lambda: service.connected, what="connect")
        service.send(schedule(1, telescope_job("offline", now_plus(1.0), now_plus(5), count=2)))
        await service.wait_for(lambda: S.JOB_STATE_RECEIVED in service.job_states("offline"), 5, "received")
        service.refuse = grpc.StatusCode.UNAVAILABLE
        service.drop()
        store = Store(tmp_path / "agent.sqlite")
        try:
            await service.wait_for(
                lambda: [j.state for j in store.jobs() if j.job_id == "offline"] == [JobState.SUCCEEDED],
                10,
                "done offline",
            )
        finally:
            store.close()
        assert S.JOB_STATE_SUCCEEDED not in service.job_states("offline")
        service.refuse = None
        await service.wait_for(lambda: service.job_states("offline")[-1:] == [S.JOB_STATE_SUCCEEDED], 10, "delivered")
        assert service.job_states("offline") == [S.JOB_STATE_RECEIVED, S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED]
        assert len(service.observations()) == 1
    assert not service.protocol_errors


async def test_a_shed_connect_comes_back_after_the_advised_retry_after(
    fake: tuple[FakeAgentService, int], tmp_path
) -> None:
    """A server shedding a reconnect storm (UNAVAILABLE CONNECT_OVERLOADED with a retry-after) is not retried on the
    short backoff: each attempt waits the advice times [1, 1.5) (jitter that never comes back early), and the agent
    is back once the server admits it."""
    service, port = fake
    async with running(Agent(telescope_config(tmp_path, port, reconnect_initial_s=0.05, reconnect_max_s=0.1))):
        await service.wait_for(lambda: service.connected, what="connect")
        service.refuse = grpc.StatusCode.UNAVAILABLE
        service.refuse_metadata = (
            ("skymesh-error-reason", "CONNECT_OVERLOADED"),
            ("skymesh-error-retry-after-s", "0.6"),
        )
        first = len(service.connect_times)
        service.drop()
        await service.wait_for(lambda: len(service.connect_times) >= first + 3, 10, "three shed attempts")
        gaps = [b - a for a, b in zip(service.connect_times[first:], service.connect_times[first + 1 :], strict=False)]
        assert all(0.6 <= gap < 0.6 * 1.5 + 0.3 for gap in gaps[:2]), gaps
        service.refuse = None
        await service.wait_for(lambda: service.connected, 5, "back after the shedding")


async def test_drain_reconnects_after_retry_after(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    async with running(Agent(telescope_config(tmp_path, port))):
        await service.wait_for(lambda: service.connected, what="connect")
        loop = asyncio.get_running_loop()
        drained_at = loop.time()
        service.send(
            agent_pb2.ConnectResponse(drain=agent_pb2.Drain(retry_after=Duration(nanos=600_000_000), reason="deploy"))
        )
        await service.wait_for(lambda: len(service.hellos) == 2, 10, "reconnect after drain")
        assert loop.time() - drained_at >= 0.6


async def test_bad_key_backs_off_instead_of_hammering(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    config = telescope_config(tmp_path, port, api_key="smk_wrong", auth_retry_s=30.0)
    async with running(Agent(config)):
        await service.wait_for(lambda: service.connects >= 1, 5, "first attempt")
        await asyncio.sleep(1.0)
        assert service.connects == 1
        assert not service.hellos


async def test_bad_schedule_is_nacked_and_old_one_kept(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    async with running(Agent(telescope_config(tmp_path, port))):
        await service.wait_for(lambda: service.connected, what="connect")
        service.send(schedule(1, telescope_job("a", now_plus(60), now_plus(90))))
        await service.wait_for(lambda: service.of_kind("schedule_ack"), 5, "ack 1")
        bad = telescope_job("b", now_plus(60), now_plus(90))
        bad.target.celestial.dec_deg = 123.0
        service.send(schedule(2, bad))
        await service.wait_for(lambda: len(service.of_kind("schedule_ack")) == 2, 5, "nack 2")
        nack = service.of_kind("schedule_ack")[1].schedule_ack
        assert nack.version == 2 and "schedule.jobs[0].target.celestial.dec_deg" in nack.error
        service.drop()
        await service.wait_for(lambda: len(service.hellos) == 2, 10, "reconnect")
        assert service.hellos[1].schedule_version == 1


async def test_artifact_upload_resumes_after_a_cut(fake: tuple[FakeAgentService, int], tmp_path) -> None:
    service, port = fake
    service.cut_upload_after_chunks = 1
    camera = DriverConfig(kind="simulated", params={"image_size_px": 512})
    config = telescope_config(tmp_path, port)
    config = dataclasses.replace(config, drivers=dataclasses.replace(config.drivers, camera=camera))
    agent = Agent(config)
    async with running(agent):
        await service.wait_for(lambda: service.connected, what="connect")
        service.send(schedule(1, telescope_job("img", now_plus(0.1), now_plus(10))))
        await service.wait_for(lambda: service.observations(), 10, "observation")
        (artifact,) = service.observations()[0].artifacts
        name = f"observations/{service.observations()[0].observation_id}/artifacts/{artifact.artifact_id}"
        await service.wait_for(lambda: name in service.uploads_complete, 15, "upload complete")
        assert hashlib.sha256(bytes(service.uploads[name])).hexdigest() == artifact.sha256
        assert len(service.uploads[name]) == artifact.size_bytes > 2 * UPLOAD_CHUNK_BYTES
        assert service.upload_starts == [(name, 0), (name, UPLOAD_CHUNK_BYTES)]  # resumed, not restarted
        assert agent.store is not None
        await service.wait_for(lambda: agent.store is not None and agent.store.sync.pending_upload_count() == 0, 5)
        await service.wait_for(lambda: not list((tmp_path / "artifacts").rglob("*.fits")), 5, "file removed")
