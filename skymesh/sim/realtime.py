"""Real-time mode: a twin that advances to the wall clock, for an agent that carries a twin of its spacecraft.

PASEOS's real-time mode runs the physics in the background while activities run, driven by the wall clock times
`time_multiplier`. Here `RealtimeTwin.advance_to()` brings the twin's state from where it was to the clock's "now"
with the same engine as fast simulation (events inside the span are exact), and `run()` is an asyncio loop that
does so every `period_s` until cancelled. The clock is a `skymesh.core.clock.Clock`, so tests use `ManualClock`.

Imports numpy and asyncio only.
"""

from __future__ import annotations

import asyncio
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
        result = self.simulation.run(span, start_s=self._state.time_s, state=self._state)
        self._state = result.final_state
        self.last_result = result
        return result

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
