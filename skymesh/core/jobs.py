"""The one job state machine, shared by scheduler, server, agent and UI.

A job is one scheduled use of one station for one target (a satellite pass or a set of exposures).

    PENDING ──> SCHEDULED ──> DISPATCHED ──> RECEIVED ──> RUNNING ──> SUCCEEDED
       │            │              │             │           ├──────> FAILED
       │            │              │             │           └──────> ABORTED
       │            │              │             ├─> REJECTED
       └────────────┴──────────────┴─────────────┴─> CANCELLED | EXPIRED

SCHEDULED: in a plan, not yet sent. DISPATCHED: in a schedule version pushed to the agent. RECEIVED: the agent stored
it durably. Terminal states never change again. An agent report may skip intermediate states (a job can go from
DISPATCHED straight to SUCCEEDED when the link was down for the whole pass): `advance` allows any forward move along
the arrows, not only single steps.
"""

from __future__ import annotations

import enum

from skymesh.core.errors import FailedPrecondition

__all__ = ["TERMINAL_STATES", "JobState", "advance", "can_advance"]


class JobState(enum.IntEnum):
    # Values match skymesh.api.common.v1.JobState on the wire.
    PENDING = 1
    SCHEDULED = 2
    DISPATCHED = 3
    RECEIVED = 4
    RUNNING = 5
    SUCCEEDED = 6
    FAILED = 7
    ABORTED = 8
    REJECTED = 9
    CANCELLED = 10
    EXPIRED = 11

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.ABORTED,
        JobState.REJECTED,
        JobState.CANCELLED,
        JobState.EXPIRED,
    }
)

_LIVE_ORDER = [JobState.PENDING, JobState.SCHEDULED, JobState.DISPATCHED, JobState.RECEIVED, JobState.RUNNING]

# Terminal states reachable from each live state.
_EXITS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.CANCELLED, JobState.EXPIRED}),
    JobState.SCHEDULED: frozenset({JobState.CANCELLED, JobState.EXPIRED}),
    JobState.DISPATCHED: frozenset({JobState.CANCELLED, JobState.EXPIRED, JobState.REJECTED}),
    JobState.RECEIVED: frozenset({JobState.CANCELLED, JobState.EXPIRED, JobState.REJECTED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.ABORTED}),
}


def can_advance(current: JobState, new: JobState) -> bool:
    """True when `new` is reachable from `current` (the same state counts: reports are at-least-once)."""
    if current == new:
        return True
    if current.terminal:
        return False
    if new in _LIVE_ORDER:
        return _LIVE_ORDER.index(new) > _LIVE_ORDER.index(current)
    # A terminal state: reachable if some live state at or after `current` exits to it.
    return any(new in _EXITS[s] for s in _LIVE_ORDER[_LIVE_ORDER.index(current) :])


def advance(current: JobState, new: JobState) -> JobState:
    """Return `new` if the move is legal, else raise FailedPrecondition naming both states."""
    if not can_advance(current, new):
        raise FailedPrecondition(
            f"job cannot move from {current.name} to {new.name}",
            reason="ILLEGAL_JOB_TRANSITION",
            field="state",
        )
    return new
