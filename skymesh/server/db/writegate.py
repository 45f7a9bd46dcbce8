"""Who writes next on SQLite: an urgent command's transaction before the next group commit (issue 8, commands).

SQLite has one writer (every transaction here begins IMMEDIATE, skymesh.server.db.engine). Without this gate a
CancelJob's transaction competes for that lock with the group commits of telemetry, Hellos and command reports,
which follow each other back to back at K = 1,000 streams: it waits in SQLite's busy handler, which polls with
sleeps of up to 100 ms and knows no order, so it may lose the lock to several groups in a row. With the gate, an
urgent writer waits only for the groups already writing; no new group starts until it has committed.

On PostgreSQL (row locks, no single writer) the gate does nothing.

Imports: asyncio only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["WriteGate"]


class WriteGate:
    """`bulk()` around a group commit's transaction, `urgent()` around an urgent command's. Urgent writers go before
    every bulk writer that has not started yet; urgent writers among themselves, and bulk ones among themselves, are
    not ordered (SQLite's lock does that)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bulk = 0  # bulk transactions writing now
        self._urgent = 0  # urgent transactions waiting or writing
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def bulk(self) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        async with self._changed:
            await self._changed.wait_for(lambda: self._urgent == 0)
            self._bulk += 1
        try:
            yield
        finally:
            async with self._changed:
                self._bulk -= 1
                self._changed.notify_all()

    @asynccontextmanager
    async def urgent(self) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        async with self._changed:
            self._urgent += 1
            try:
                await self._changed.wait_for(lambda: self._bulk == 0)
            except BaseException:
                self._urgent -= 1
                self._changed.notify_all()
                raise
        try:
            yield
        finally:
            async with self._changed:
                self._urgent -= 1
                self._changed.notify_all()
