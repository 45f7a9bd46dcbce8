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
