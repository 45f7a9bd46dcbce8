"""Real-time mode: a twin that advances to the wall clock, for an agent that carries a twin of its spacecraft.

PASEOS's real-time mode runs the physics in the background while activities run, driven by the wall clock times
`time_multiplier`. Here `RealtimeTwin.advance_to()` brings the twin's state from where it was to the clock's "now"
with the same engine as fast simulation (events inside the span are exact), and `run()` is an asyncio loop that
does so every `period_s` until cancelled. The clock is a `skymesh.core.clock.Clock`, so tests use `ManualClock`.

`perform_activity(sat, name, body, *args)` is PASEOS's `sim.perform_activity`: the spacecraft switches to the
activity, the user's coroutine `body(*args)` runs while the twin keeps advancing, and the activity ends when the
body returns ("finished") or when the activity's constraint fails in the twin ("constraint": the body is
cancelled, as PASEOS cancels an activity whose constraint function returns False). Once a twin performs
activities it is driven by them, not by the simulation's mode rules (PASEOS has none).

Imports numpy and asyncio only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from skymesh.core.clock import Clock, ensure_utc
from skymesh.core.errors import InvalidArgument
from skymesh.sim.engine import SimResult, SimState, Simulation

__all__ = ["RealtimeTwin"]


class RealtimeTwin:
    """Keeps a `Simulation`'s state in step with a clock (scaled by `time_multiplier`)."""

    def __init__(
        self,
        simulation: Simulation,
        clock: Clock,
        *,
        time_multiplier: float = 1.0,
        start: datetime | None = None,
        state: SimState | None = None,
    ) -> None:
        if not time_multiplier > 0:
            raise InvalidArgument("must be > 0", field="time_multiplier")
        self.simulation = simulation
        self.clock = clock
        self.time_multiplier = time_multiplier
        begin = ensure_utc(start or clock.now(), "start")
        t0 = (begin - simulation.epoch).total_seconds()
        self._state = state or replace(simulation.initial_state(), time_s=t0)
        self._t0 = self._state.time_s
        self._mono0 = clock.monotonic()
        self.last_result: SimResult | None = None
        self._switches: list[tuple[int, float, int]] = []  # pending (sat, time_s, activity or -1)
        self._manual = False

    @property
    def state(self) -> SimState:
        return self._state

    @property
    def time_s(self) -> float:
        """Seconds after the simulation's epoch that the twin has reached."""
        return self._state.time_s

    def target_time_s(self) -> float:
        """Where the clock says the twin should be."""
        return self._t0 + (self.clock.monotonic() - self._mono0) * self.time_multiplier

    def advance_to(self, target_s: float | None = None) -> SimResult | None:
        """Advance to `target_s` (default: the clock's now). Returns the span's result, or None if already there."""
        target = self.target_time_s() if target_s is None else target_s
        span = target - self._state.time_s
        if span <= 1e-6:
            return None
        switches, self._switches = self._switches, []
        if self._manual:  # activities are performed by the user: keep rules out (a no-op switch forces that)
            sched = switches or [(0, self._state.time_s, int(self._state.activity[0]))]
            result = self.simulation.run(span, start_s=self._state.time_s, state=self._state, schedule=sched)
        else:
            result = self.simulation.run(span, start_s=self._state.time_s, state=self._state)
        self._state = result.final_state
        self.last_result = result
        return result

    async def perform_activity(
        self,
        sat: int,
        activity: str,
        body: Callable[..., Awaitable[object]],
        *args: object,
        period_s: float = 1.0,
    ) -> str:
        """Run `activity` on spacecraft `sat` while `body(*args)` runs; returns "finished" or "constraint"."""
        sim = self.simulation
        if activity not in sim.activity_index:
            raise InvalidArgument(f"unknown activity {activity!r}", field="activity")
        if not 0 <= sat < sim.fleet.n:
            raise InvalidArgument(f"no spacecraft {sat}", field="sat")
        if not period_s > 0:
            raise InvalidArgument("must be > 0", field="period_s")
        index = sim.activity_index[activity]
        self._manual = True
        self.advance_to()
        self._switches.append((sat, self._state.time_s, index))
        self.advance_to(self._state.time_s + 1e-3)  # the switch happens now
        task = asyncio.ensure_future(body(*args))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=0)
                if task.done():
                    break
                await self.clock.sleep(period_s)
                self.advance_to()
                if int(self._state.activity[sat]) != index:
                    task.cancel()
                    return "constraint"
            task.result()  # the body's own exception, if any, propagates
            return "finished"
        finally:
            if not task.done():
                task.cancel()
            if int(self._state.activity[sat]) == index:
                self._switches.append((sat, max(self._state.time_s, self.target_time_s()), -1))
                self.advance_to(max(self._state.time_s + 1e-3, self.target_time_s()))

    async def run(self, period_s: float = 1.0) -> None:
        """Advance every `period_s` (clock time) until cancelled; the owner cancels the task to stop it."""
        if not period_s > 0:
            raise InvalidArgument("must be > 0", field="period_s")
        while True:
            # The engine call is CPU work of milliseconds for one spacecraft; run it off the loop for big fleets.
            if self.simulation.fleet.n > 64:
                await asyncio.to_thread(self.advance_to)
            else:
                self.advance_to()
            await self.clock.sleep(period_s)
