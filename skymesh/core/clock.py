"""Clocks: the real one, and a manual one for tests and simulations. Everything that needs 'now' takes a Clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "ScaledClock", "SystemClock", "ensure_utc", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime, field: str = "time") -> datetime:
    """Reject naive datetimes: a time without a zone is a bug waiting for a timezone change."""
    from skymesh.core.errors import InvalidArgument

    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument("must be timezone-aware (UTC)", field=field)
    return value.astimezone(UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told. `sleep` waits until `advance` passes the wake time."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)
        self._mono = 0.0
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        wake = self._mono + seconds
        while self._mono < wake:
            await self._changed.wait()


class ScaledClock:
    """Real time sped up `rate` times from `start`, for driving real daemons through a pass faster than life.

    A daemon keeps its own real speed (Hamlib's dummy rotator moves 6 deg/s of wall time), so against this clock it
    is `rate` times slower: give the agent `slew_rate_deg_s / rate` as the rotator's speed.
    """

    def __init__(self, start: datetime, rate: float) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self._start = ensure_utc(start)
        self.rate = rate
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.rate

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.rate)
