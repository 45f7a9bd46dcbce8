"""Live updates for browsers: `GET /api/v1/events` is a Server-Sent Events stream fed by one gRPC
`EventService.Watch` per browser, opened with that browser's own token (so the server decides what it may see).
A reconnecting EventSource sends `Last-Event-ID`, which is the server's cursor: the watch resumes where it stopped,
or starts with a `resync` event that tells the page to reload its data. `telemetry=SITE` (repeatable) adds those
sites' telemetry summaries (at most 1 Hz each; live only, never replayed). A comment line every 15 s keeps proxies
from closing an idle stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

import grpc
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from skymesh.api.control.v1 import events_pb2
from skymesh.api.errors import error_from_rpc
from skymesh.core.errors import Unavailable
from skymesh.core.ids import check_id
from skymesh.observability.metrics import WebMetrics
from skymesh.web.api import Client, Who
from skymesh.web.client import ControlClient
from skymesh.web.views import event_json

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["live"])

_KEEPALIVE_S = 15.0


def _sse(event: str, data: dict[str, object], cursor: str | None = None) -> bytes:
    head = f"id: {cursor}\n" if cursor else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _relay(
    call: grpc.aio.UnaryStreamCall[events_pb2.WatchRequest, events_pb2.WatchResponse],
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        try:
            async for event in call:
                kind, data = event_json(event)
                await queue.put(_sse(kind, data, event.cursor))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                err = error_from_rpc(exc)
                await queue.put(_sse("error", {"code": exc.code().name, "message": err.message}))
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump(), name="sse-pump")
    metrics = WebMetrics.current()
    metrics.live_streams.inc()
    try:
        yield b"retry: 2000\n\n"
        while True:
            try:
                async with asyncio.timeout(_KEEPALIVE_S):
                    item = await queue.get()
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if item is None:
                return
            metrics.live_events.inc()
            yield item
    finally:
        metrics.live_streams.dec()
        call.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@router.get("/events", summary="Live events (Server-Sent Events): station states, job transitions, observations, plans")
async def events(
    request: Request,
    who: Who,
    c: Client,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    cursor: Annotated[str, Query(max_length=64)] = "",
    telemetry: Annotated[list[str], Query(max_length=16, description="sites whose 1 Hz telemetry to include")] = [],  # noqa: B006 (FastAPI copies defaults)
) -> StreamingResponse:
    client: ControlClient = c
    for site_id in telemetry:
        check_id(site_id, field="telemetry")
    watch = events_pb2.WatchRequest(cursor=last_event_id or cursor, telemetry_station_ids=telemetry)
    call = client.events.Watch(watch, metadata=client.metadata(who.token))
    # Fail here, with a proper status, when the server refuses the watch (401/403) or is down.
    try:
        await call.initial_metadata()
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc) from exc
    if call.done():
        code = await call.code()
        if code != grpc.StatusCode.OK:
            raise Unavailable(f"event stream ended: {code.name}")
    return StreamingResponse(
        _relay(call),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
