"""A minimal agent for tests: speaks the Connect stream with the generated stubs, nothing else.

async with AgentClient.connect(address, api_key, hello) as agent:
    welcome = await agent.expect("welcome")
    await agent.send_telemetry(seq=1)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime

RECV_TIMEOUT_S = 10.0


def ts(value: datetime) -> Any:
    return timestamp_from_datetime(value)


class AgentClient:
    def __init__(self, channel: grpc.aio.Channel, call: Any, boot_id: str) -> None:
        self.channel = channel
        self.call = call
        self.boot_id = boot_id

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        address: str,
        api_key: str,
        station_id: str,
        *,
        boot_id: str | None = None,
        last_command_seq: int = 0,
        schedule_version: int = 0,
        pending_boot_ids: Sequence[str] = (),
        first: agent_pb2.ConnectRequest | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> AsyncIterator[AgentClient]:
        boot = boot_id or str(uuid.uuid4())
        channel = grpc.aio.insecure_channel(address, options=list(options))
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        call = stub.Connect(metadata=(("authorization", f"Bearer {api_key}"),))
        client = cls(channel, call, boot)
        hello = agent_pb2.ConnectRequest(
            hello=agent_pb2.Hello(
                station_id=station_id,
                agent_version="test",
                protocol_version=1,
                boot_id=boot,
                last_command_seq=last_command_seq,
                schedule_version=schedule_version,
                upstream_next_seq=1,
                pending_boot_ids=list(pending_boot_ids),
                agent_time=ts(datetime.now(UTC)),
                capabilities=agent_pb2.Capabilities(kind=common_pb2.STATION_KIND_GROUND_STATION, drivers=["test"]),
            )
        )
        try:
            # Refused before the Hello was written (e.g. a bad key): `status()` reports it.
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call.write(first if first is not None else hello)
            yield client
        finally:
            call.cancel()
            await channel.close()

    async def recv(self, timeout_s: float = RECV_TIMEOUT_S) -> agent_pb2.ConnectResponse:
        msg = await asyncio.wait_for(self.call.read(), timeout_s)
        if msg is grpc.aio.EOF:  # type: ignore[attr-defined]
            raise EOFError("stream ended")
        assert isinstance(msg, agent_pb2.ConnectResponse)
        return msg

    async def expect(self, kind: str, timeout_s: float = RECV_TIMEOUT_S, *, skip: Sequence[str] = ()) -> Any:
        """The next message, which must be of `kind` (messages of the kinds in `skip` are passed over)."""
        while True:
            msg = await self.recv(timeout_s)
            body = msg.WhichOneof("body")
            if body in skip:
                continue
            assert body == kind, f"expected {kind}, got {body}: {msg}"
            return getattr(msg, kind)

    async def status(self, timeout_s: float = RECV_TIMEOUT_S) -> tuple[grpc.StatusCode, str]:
        """Read until the stream ends; return its status code and details."""
        try:
            while True:
                msg = await asyncio.wait_for(self.call.read(), timeout_s)
                if msg is grpc.aio.EOF:  # type: ignore[attr-defined]
                    break
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return await self.call.code(), await self.call.details()

    async def send(self, request: agent_pb2.ConnectRequest) -> None:
        await self.call.write(request)

    async def heartbeat(self) -> None:
        await self.send(agent_pb2.ConnectRequest(heartbeat=agent_pb2.Heartbeat(agent_time=ts(datetime.now(UTC)))))

    async def telemetry(self, seq: int, *, boot_id: str | None = None, values: dict[str, float] | None = None) -> None:
        sample = agent_pb2.TelemetrySample(at=ts(datetime.now(UTC)), values=values or {"radio.snr_db": 12.5})
        await self.send(
            agent_pb2.ConnectRequest(
                telemetry=agent_pb2.TelemetryBatch(samples=[sample]), seq=seq, boot_id=boot_id or self.boot_id
            )
        )

    async def job_update(
        self, seq: int, job_id: str, state: int, *, cause: int = 0, boot_id: str | None = None
    ) -> None:
        await self.send(
            agent_pb2.ConnectRequest(
                job_update=agent_pb2.JobUpdate(job_id=job_id, state=state, cause=cause, at=ts(datetime.now(UTC))),
                seq=seq,
                boot_id=boot_id or self.boot_id,
            )
        )

    async def observation(self, seq: int, record: agent_pb2.ObservationRecord, *, boot_id: str | None = None) -> None:
        await self.send(agent_pb2.ConnectRequest(observation=record, seq=seq, boot_id=boot_id or self.boot_id))

    async def command_update(self, command: agent_pb2.Command, state: int) -> None:
        await self.send(
            agent_pb2.ConnectRequest(
                command_update=agent_pb2.CommandUpdate(
                    command_seq=command.seq, command_id=command.command_id, state=state, at=ts(datetime.now(UTC))
                )
            )
        )

    async def close(self) -> None:
        await self.call.done_writing()


def observation_record(
    *, job_id: str = "", target_id: str = "", magnitude: float = 12.3, duration_s: float = 60.0
) -> agent_pb2.ObservationRecord:
    start = datetime.now(UTC) - timedelta(seconds=duration_s)
    return agent_pb2.ObservationRecord(
        observation_id=str(uuid.uuid4()),
        job_id=job_id,
        target_id=target_id,
        start=ts(start),
        end=ts(start + timedelta(seconds=duration_s)),
        exposure_s=duration_s,
        airmass=1.2,
        photometry=agent_pb2.Photometry(filter="V", magnitude=magnitude, magnitude_error=0.02),
        quality_flags=["LOW_SNR"],
        headers={"OBSERVER": "test"},
    )
