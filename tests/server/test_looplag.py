"""The event-loop lag monitor sees a step that holds the loop, and reports it per window and as a histogram."""

from __future__ import annotations

import asyncio
import gc
import time

from skymesh.observability.metrics import ServerMetrics
from skymesh.server.looplag import LoopLag, LoopLagMonitor


async def test_a_blocking_step_shows_as_lag_in_its_window_only() -> None:
    metrics = ServerMetrics.start()
    monitor = LoopLagMonitor(interval_s=0.01)
    task = asyncio.create_task(monitor.run())
    try:
        await asyncio.sleep(0.05)
        before = monitor.mark()
        await asyncio.sleep(0.05)
        # Nothing held the loop: its thread was not busy (lateness alone may be the OS, on a loaded machine).
        assert monitor.worst_since(before).busy_s < 0.1
        window = monitor.mark()
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:  # a step that holds the loop (and its thread's CPU) for 200 ms
            pass
        await asyncio.sleep(0.05)
        worst = monitor.worst_since(window)
        assert 0.15 < worst.late_s < 5
        assert 0 <= worst.busy_s <= worst.late_s
        collected = monitor.mark()
        gc.collect()  # a full collection, timed while the monitor runs (it holds the loop too)
        await asyncio.sleep(0.05)
        assert monitor.worst_since(collected).gc_s > 0
        after = monitor.mark()
        await asyncio.sleep(0.05)
        assert monitor.worst_since(after).busy_s < 0.1  # a window opened later does not see them
        assert monitor.worst_since(after) == LoopLag(0.0, 0.0)  # closed
    finally:
        task.cancel()
    assert metrics.registry.get_sample_value("skymesh_server_gc_pause_seconds_count")
    count = metrics.registry.get_sample_value("skymesh_server_event_loop_lag_seconds_count")
    fast = metrics.registry.get_sample_value("skymesh_server_event_loop_lag_seconds_bucket", {"le": "0.1"})
    assert count is not None and fast is not None
    assert count >= monitor.samples > 5
    assert count - fast >= 1  # the 200 ms step


def test_busy_is_the_lateness_the_loop_threads_cpu_accounts_for() -> None:
    monitor = LoopLagMonitor()
    window = monitor.mark()
    monitor.record(0.3, 0.02)  # kept off the CPU: late, hardly busy
    monitor.record(0.15, 0.5)  # a step that held the loop: busy up to its lateness
    monitor.record(-0.001, 0.0)  # early wake-ups count as on time
    assert monitor.worst_since(window) == LoopLag(0.3, 0.15, 0.0)
    assert monitor.worst == LoopLag(0.3, 0.15, 0.0)
