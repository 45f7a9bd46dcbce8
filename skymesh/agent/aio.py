"""Small asyncio helpers the agent's loops share.

Python 3.11's `asyncio.wait_for` can swallow a cancellation when the awaited thing finishes at the same moment
(fixed in 3.12, cpython gh-86296), which leaves a loop running after its owner cancelled it. The agent therefore
waits with `asyncio.timeout` only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from skymesh.core.clock import Clock

__all__ = ["wait_event", "wait_event_or_sleep", "with_timeout"]

_T = TypeVar("_T")


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` (real time) passed; True if it was set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
    return event.is_set()


async def with_timeout(awaitable: Awaitable[_T], timeout_s: float) -> _T:
    """`await awaitable`, raising TimeoutError after `timeout_s` (cancellation-safe, unlike 3.11's wait_for)."""
    async with asyncio.timeout(timeout_s):
        return await awaitable


async def wait_event_or_sleep(clock: Clock, event: asyncio.Event, seconds: float) -> None:
    """Return when `event` is set or `seconds` have passed on `clock` (which may be a manual clock)."""
    if event.is_set() or seconds <= 0:
        return
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waiter):
            task.cancel()
        await asyncio.gather(sleeper, waiter, return_exceptions=True)
