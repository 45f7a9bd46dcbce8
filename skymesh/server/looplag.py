"""How late the server's event loop runs: a task that sleeps `interval_s` and measures how much later than asked it
wakes. Every step of the loop that runs longer than that (a query's result turned into objects, a plan's diff)
delays it, so its lateness is a lower bound of the longest stall in that interval (it misses at most `interval_s`
of a stall that began while it slept), measured without asyncio's debug mode, which slows the loop it measures.

On a loaded machine the loop is also late while the OS runs other processes, which no change to the server can
remove. So each wake-up also reads the loop thread's CPU time: the part of the lateness the loop's own work can
account for is at most the CPU its thread used over the interval ("busy"). A step that holds the loop shows in both;
a process kept off the CPU shows in the lateness only.

Full garbage collections (generation 2) hold the loop too, wherever an allocation happens to trigger one: while it
runs, the monitor also times them (`gc.callbacks`; `skymesh_server_gc_pause_seconds`).

Exported as the histogram `skymesh_server_event_loop_lag_seconds` (the lateness); `worst_since(mark)` gives the
worst lateness, busy part and full collection since a `mark()` (the planner logs them for each plan and exports
them as `skymesh_server_plan_event_loop_lag_max_seconds{part="late"|"busy"|"gc"}`). It costs one timer wake-up,
two reads of the thread's CPU clock and one histogram observation per interval (50 a second at the default 20 ms:
well under 0.1 % of a core), and one call per garbage collection.

Imports only the standard library and the metrics module."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from typing import Any, NamedTuple

from skymesh.observability.metrics import SERVER_GC_PAUSE, SERVER_LOOP_LAG

__all__ = ["LoopLag", "LoopLagMonitor", "settle_gc"]


def settle_gc() -> None:
    """Set the process's garbage collector up for a server's event loop, once, after start.

    A full collection holds the event loop while it walks every tracked object: 0.37-0.48 s at 200 stations x 1,000
    targets while plans ran, at load 10-11 (issue 8, benchmarks/results/planning_e2e.md). What was built at start
    (modules, ORM and protobuf descriptors) lives as long as the process: frozen out of the collector (0.06-0.14 s
    left). The young generation is collected every 20,000 allocations, not 700: a plan's objects (12,000 jobs, their
    records and messages) mostly die before they are promoted, and the runs measured saw no full collection during a
    plan. For a process that runs one server (`skymesh server`), not for `serve()`: tests start many servers in one
    process, and frozen garbage is never collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)


class LoopLag(NamedTuple):
    late_s: float  # how much later than asked the monitor woke
    busy_s: float  # the part of that the loop thread's own CPU time can account for (at most late_s)
    gc_s: float = 0.0  # the longest full garbage collection


class LoopLagMonitor:
    """Owned by the server, which runs `run()` in its background task group (cancelled at stop)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.worst = LoopLag(0.0, 0.0)  # since the monitor started
        self.samples = 0
        self._marks: dict[int, LoopLag] = {}  # open windows -> worst since each
        self._ids = itertools.count()
        self._gc_started = 0.0

    def mark(self) -> int:
        """Start a window (e.g. a plan); pass the returned id to `worst_since`."""
        mark = next(self._ids)
        self._marks[mark] = LoopLag(0.0, 0.0)
        return mark

    def worst_since(self, mark: int) -> LoopLag:
        """The worst lateness, busy part and full collection seen since `mark()` (each its own maximum); closes the
        window."""
        return self._marks.pop(mark, LoopLag(0.0, 0.0))

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause_s = time.perf_counter() - self._gc_started
        SERVER_GC_PAUSE.observe(pause_s)
        if pause_s > self.worst.gc_s:
            self.worst = self.worst._replace(gc_s=pause_s)
        # Any thread's allocation may collect: the windows are read from a copy, and a closed one is not reopened.
        for mark, worst in list(self._marks.items()):
            if pause_s > worst.gc_s and mark in self._marks:
                self._marks[mark] = worst._replace(gc_s=pause_s)

    def record(self, late_s: float, cpu_s: float) -> None:
        """One wake-up `late_s` late, the loop thread having used `cpu_s` of CPU since the one before."""
        late_s = max(0.0, late_s)
        busy_s = min(late_s, max(0.0, cpu_s))
        self.samples += 1
        SERVER_LOOP_LAG.observe(late_s)
        if late_s > self.worst.late_s or busy_s > self.worst.busy_s:
            self.worst = LoopLag(max(late_s, self.worst.late_s), max(busy_s, self.worst.busy_s), self.worst.gc_s)
        for mark, worst in self._marks.items():
            if late_s > worst.late_s or busy_s > worst.busy_s:
                self._marks[mark] = LoopLag(max(late_s, worst.late_s), max(busy_s, worst.busy_s), worst.gc_s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        gc.callbacks.append(self._on_gc)
        try:
            while True:
                due = loop.time() + self.interval_s
                cpu = time.thread_time()
                await asyncio.sleep(self.interval_s)
                self.record(loop.time() - due, time.thread_time() - cpu)
        finally:
            gc.callbacks.remove(self._on_gc)
