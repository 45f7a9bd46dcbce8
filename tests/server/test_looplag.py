"""The event-loop lag monitor sees a step that holds the loop, and reports it per window and as a histogram."""

from __future__ import annotations

import asyncio
import time

from skymesh.observability.metrics import ServerMetrics
from skymesh.server.looplag import LoopLagMonitor


async def test_a_blocking_step_shows_as_lag_in_its_window_only() -> None:
    metrics = ServerMetrics.start()
    monitor = LoopLagMonitor(interval_s=0.01)
    task = asyncio.create_task(monitor.run())
    try:
        await asyncio.sleep(0.05)
        before = monitor.mark()
        await asyncio.sleep(0.05)
        assert monitor.worst_since(before) < 0.1  # nothing held the loop
        window = monitor.mark()
        time.sleep(0.2)  # noqa: ASYNC251 (on purpose: a step that holds the loop for 200 ms)
        await asyncio.sleep(0.05)
        assert 0.15 < monitor.worst_since(window) < 5
        after = monitor.mark()
        await asyncio.sleep(0.05)
        assert monitor.worst_since(after) < 0.1  # a window opened later does not see it
        assert monitor.worst_since(after) == 0.0  # closed
    finally:
        task.cancel()
    over = metrics.registry.get_sample_value("skymesh_server_event_loop_lag_seconds_count")
    late = over - metrics.registry.get_sample_value("skymesh_server_event_loop_lag_seconds_bucket", {"le": "0.1"})
    assert over >= monitor.samples > 5
    assert late >= 1
