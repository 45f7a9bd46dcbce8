"""How late the server's event loop runs: a task that sleeps `interval_s` and measures how much later than asked it
wakes. Every step of the loop that runs longer than that (a query's result turned into objects, a plan's diff)
delays it, so its lateness is a lower bound of the longest stall in that interval (it misses at most `interval_s`
of a stall that began while it slept), without asyncio's debug mode, which slows the loop it measures.

Exported as the histogram `skymesh_server_event_loop_lag_seconds`; `worst_since(mark)` gives the worst lateness
since a `mark()` (the planner logs each plan's worst, and exports it as
`skymesh_server_plan_event_loop_lag_max_seconds`). It costs one timer wake-up and one histogram observation per
interval (50 a second at the default 20 ms: well under 0.1 % of a core).

Imports only asyncio and the metrics module."""

from __future__ import annotations

import asyncio
import itertools

from skymesh.observability.metrics import SERVER_LOOP_LAG

__all__ = ["LoopLagMonitor"]


class LoopLagMonitor:
    """Owned by the server, which runs `run()` in its background task group (cancelled at stop)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.worst_s = 0.0  # since the monitor started
        self.samples = 0
        self._marks: dict[int, float] = {}  # open marks -> worst lateness since each
        self._ids = itertools.count()

    def mark(self) -> int:
        """Start a window (e.g. a plan); pass the returned id to `worst_since`."""
        mark = next(self._ids)
        self._marks[mark] = 0.0
        return mark

    def worst_since(self, mark: int) -> float:
        """The worst lateness seen since `mark()`, in seconds; closes the window."""
        return self._marks.pop(mark, 0.0)

    def record(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)
        self.samples += 1
        SERVER_LOOP_LAG.observe(lag_s)
        if lag_s > self.worst_s:
            self.worst_s = lag_s
        for mark, worst in self._marks.items():
            if lag_s > worst:
                self._marks[mark] = lag_s

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(loop.time() - due)
