"""A cancelled plan stops: its solver children are killed and the solving thread ends with SolveCancelled."""

from __future__ import annotations

import threading
import time

import pytest

from skymesh.scheduler.isolation import CancelScope, Isolated, SolveCancelled


def test_cancelling_a_scope_kills_its_child_and_ends_the_wait() -> None:
    scope = CancelScope()
    outcome: list[object] = []

    def solve() -> None:
        scope.enter()
        try:
            outcome.append(Isolated.start(time.sleep, (60.0,)).result(60.0))
        except SolveCancelled as exc:
            outcome.append(exc)
        finally:
            scope.exit()

    thread = threading.Thread(target=solve)
    thread.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    scope.cancel()
    # Starting the child can take seconds on a loaded machine (the process start itself cannot be interrupted), so
    # the bound is well under the child's 60 s rather than tight: a cancel that did not work waits the full 60 s.
    thread.join(timeout=45)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 40
    assert len(outcome) == 1 and isinstance(outcome[0], SolveCancelled)
    with pytest.raises(SolveCancelled):  # no new child starts in a cancelled scope
        scope.enter()
        try:
            Isolated.start(abs, (-1,))
        finally:
            scope.exit()


def test_a_child_outside_any_scope_is_unaffected() -> None:
    assert Isolated.start(abs, (-3,)).result(30.0) == 3


def test_a_cancelled_scope_stops_the_in_process_phases_at_their_next_checkpoint() -> None:
    from datetime import timedelta

    from skymesh.core.model import TimeWindow
    from skymesh.scheduler.inputs import PlanRequest, PlanTarget
    from skymesh.scheduler.planning import compute_plan

    from .conftest import T0, ground_station, iss_like

    CancelScope.checkpoint()  # no scope on this thread: nothing to stop
    req = PlanRequest(
        TimeWindow(T0, T0 + timedelta(hours=24)), [ground_station("gs", 48.0, 11.0)], [PlanTarget(iss_like("sat"))]
    )
    scope = CancelScope()
    scope.enter()
    try:
        assert compute_plan(req).assignments  # not cancelled: plans
        scope.cancel()
        with pytest.raises(SolveCancelled):
            compute_plan(req)
    finally:
        scope.exit()


def _reports_then_answers(n: int) -> int:
    from skymesh.scheduler.isolation import report_progress

    report_progress("lp")
    report_progress(bytes(n))  # far more than a pipe holds: the child must not wait for the parent to read it
    return n


def test_progress_reports_reach_the_parent_before_the_answer() -> None:
    job = Isolated.start(_reports_then_answers, (1 << 20,))
    time.sleep(1.0)  # the child is done by now; its reports and answer wait in the pipe
    assert job.progress(30.0) == (True, "lp")
    got, big = job.progress(30.0)
    assert got and len(big) == 1 << 20
    assert job.progress(30.0) == (False, None)  # the answer came next; it is kept for `result`
    assert job.result(30.0) == 1 << 20
    # Unread reports are skipped by `result`.
    assert Isolated.start(_reports_then_answers, (10,)).result(30.0) == 10
