"""A protocol double of the server's AgentService for the agent's tests: real grpc.aio on loopback port 0.

It checks the credential and that Hello comes first, answers Welcome with the resume points it holds, keeps a
per-(boot) committed cursor like the real server (duplicates are acked again, not stored twice), records everything
the agent sends, and lets a test push Schedules/Commands, drop the stream, refuse connections, or stop acking.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from grpc import aio

from skymesh.api.agent.v1 import agent_pb2, agent_pb2_grpc

_DROP = object()


@dataclass
class _Stream:
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class FakeAgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, station_id: str, api_key: str) -> None:
        self.station_id = station_id
        self.api_key = api_key
        self.hellos: list[agent_pb2.Hello] = []
        self.received: list[agent_pb2.ConnectRequest] = []
        self.committed: dict[str, int] = {}
        self.stored: dict[tuple[str, int], agent_pb2.ConnectRequest] = {}
        self.duplicates = 0
        self.protocol_errors: list[str] = []
        self.uploads: dict[str, bytearray] = {}
        self.uploads_complete: set[str] = set()
        self.upload_starts: list[tuple[str, int]] = []
        self.cut_upload_after_chunks: int | None = None
        self.auto_ack = True
        self.refuse: grpc.StatusCode | None = None
        self.refuse_metadata: tuple[tuple[str, str], ...] = ()  # trailing metadata of a refusal (a retry-after)
        self.connect_times: list[float] = []  # time.monotonic() of each Connect
        self.max_unacked = 64
        self.heartbeat_interval_s = 1.0
        self.telemetry_batch_interval_s = 0.5
        self.connects = 0
        self.on_hello: Callable[[agent_pb2.Hello], list[agent_pb2.ConnectResponse]] | None = None
        self._stream: _Stream | None = None

    # ------------------------------------------------------------------ test controls

    def send(self, response: agent_pb2.ConnectResponse) -> None:
        assert self._stream is not None, "no open stream"
        self._stream.queue.put_nowait(response)

    def drop(self) -> None:
        """Abort the open stream from the server side (UNAVAILABLE)."""
        if self._stream is not None:
            self._stream.queue.put_nowait(_DROP)

    @property
    def connected(self) -> bool:
        return self._stream is not None

    def job_updates(self, job_id: str | None = None) -> list[agent_pb2.JobUpdate]:
        return [
            m.job_update
            for m in self.stored_messages()
            if m.WhichOneof("body") == "job_update" and (job_id is None or m.job_update.job_id == job_id)
        ]

    def job_states(self, job_id: str) -> list[int]:
        return [u.state for u in self.job_updates(job_id)]

    def stored_messages(self) -> list[agent_pb2.ConnectRequest]:
        return [self.stored[k] for k in sorted(self.stored, key=lambda k: (self.hello_order(k[0]), k[1]))]

    def hello_order(self, boot_id: str) -> int:
        for i, hello in enumerate(self.hellos):
            if hello.boot_id == boot_id:
                return i
        return len(self.hellos)

    def observations(self) -> list[agent_pb2.ObservationRecord]:
        return [m.observation for m in self.stored_messages() if m.WhichOneof("body") == "observation"]

    def command_updates(self, command_id: str) -> list[agent_pb2.CommandUpdate]:
        return [
            m.command_update
            for m in self.received
            if m.WhichOneof("body") == "command_update" and m.command_update.command_id == command_id
        ]

    def of_kind(self, kind: str) -> list[agent_pb2.ConnectRequest]:
        return [m for m in self.received if m.WhichOneof("body") == kind]

    async def wait_for(self, predicate: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ the RPC

    async def Connect(self, request_iterator: Any, context: aio.ServicerContext[Any, Any]) -> None:  # type: ignore[override]
        self.connects += 1
        self.connect_times.append(time.monotonic())
        metadata = dict(context.invocation_metadata() or ())
        # Read the Hello before refusing: aborting a call whose first write is in flight sometimes reaches the
        # client as INTERNAL instead of the status we send (a gRPC core race), which would make tests flaky.
        first = await context.read()
        if metadata.get("authorization") != f"Bearer {self.api_key}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad api key")
        if self.refuse is not None:
            if self.refuse_metadata:
                context.set_trailing_metadata(self.refuse_metadata)
            await context.abort(self.refuse, "refused by test")
        if first is aio.EOF or first.WhichOneof("body") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must be hello")
        hello = first.hello
        if hello.station_id != self.station_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "station mismatch")
        self.hellos.append(hello)
        self.received.append(first)
        if self._stream is not None:
            self._stream.queue.put_nowait(_DROP)  # newest session wins
        stream = self._stream = _Stream()
        welcome = agent_pb2.Welcome(
            session_id=f"s{self.connects}",
            server_id="fake",
            protocol_version=1,
            heartbeat_interval=Duration(
                nanos=int(self.heartbeat_interval_s * 1e9) % 10**9, seconds=int(self.heartbeat_interval_s)
            ),
            telemetry_batch_interval=Duration(
                seconds=int(self.telemetry_batch_interval_s), nanos=int(self.telemetry_batch_interval_s * 1e9) % 10**9
            ),
            max_unacked=self.max_unacked,
            resume=[
                agent_pb2.BootResume(boot_id=b, committed_seq=self.committed.get(b, 0))
                for b in [hello.boot_id, *hello.pending_boot_ids]
            ],
        )
        await context.write(agent_pb2.ConnectResponse(welcome=welcome))
        for extra in self.on_hello(hello) if self.on_hello else []:
            await context.write(extra)
        reader = asyncio.create_task(self._read(context, stream))
        try:
            while True:
                item = await stream.queue.get()
                if item is _DROP:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "dropped by test")
                if item is None:
                    return
                await context.write(item)
        finally:
            reader.cancel()
            if self._stream is stream:
                self._stream = None

    async def _read(self, context: Any, stream: _Stream) -> None:
        while True:
            message = await context.read()
            if message is aio.EOF:
                stream.queue.put_nowait(None)
                return
            self.received.append(message)
            if message.seq == 0:
                continue
            boot = message.boot_id
            cursor = self.committed.get(boot, 0)
            if message.seq <= cursor:
                self.duplicates += 1
            elif message.seq == cursor + 1:
                self.stored[(boot, message.seq)] = message
                self.committed[boot] = message.seq
            else:
                self.protocol_errors.append(f"gap in upstream seq of boot {boot}: {message.seq} after {cursor}")
                continue
            if self.auto_ack:
                stream.queue.put_nowait(
                    agent_pb2.ConnectResponse(
                        upstream_ack=agent_pb2.UpstreamAck(boot_id=boot, committed_seq=self.committed[boot])
                    )
                )

    async def UploadArtifact(self, request_iterator: Any, context: Any) -> agent_pb2.UploadArtifactResponse:  # type: ignore[override]
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("authorization") != f"Bearer {self.api_key}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad api key")
        chunks = 0
        name = ""
        async for request in request_iterator:
            name = request.resource_name
            buf = self.uploads.setdefault(name, bytearray())
            if chunks == 0:
                self.upload_starts.append((name, request.write_offset))
            if request.write_offset != len(buf):
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"committed size is {len(buf)}")
            buf.extend(request.data)
            chunks += 1
            if self.cut_upload_after_chunks is not None and chunks >= self.cut_upload_after_chunks:
                self.cut_upload_after_chunks = None
                await context.abort(grpc.StatusCode.UNAVAILABLE, "cut by test")
            if request.finish_write:
                if hashlib.sha256(bytes(buf)).hexdigest() != request.sha256:
                    del self.uploads[name]
                    await context.abort(grpc.StatusCode.DATA_LOSS, "sha256 mismatch")
                self.uploads_complete.add(name)
                return agent_pb2.UploadArtifactResponse(committed_size_bytes=len(buf), complete=True)
        return agent_pb2.UploadArtifactResponse(committed_size_bytes=len(self.uploads.get(name, b"")))

    async def QueryUploadStatus(self, request: Any, context: Any) -> agent_pb2.QueryUploadStatusResponse:  # type: ignore[override]
        name = request.resource_name
        return agent_pb2.QueryUploadStatusResponse(
            committed_size_bytes=len(self.uploads.get(name, b"")), complete=name in self.uploads_complete
        )


async def start_fake_server(service: FakeAgentService) -> tuple[aio.Server, int]:
    server = aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
