"""The job state machine: legal paths, terminal states, and idempotent reports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skymesh.core.errors import FailedPrecondition
from skymesh.core.jobs import TERMINAL_STATES, JobState, advance, can_advance

states = st.sampled_from(list(JobState))


def test_happy_path() -> None:
    state = JobState.PENDING
    for nxt in (JobState.SCHEDULED, JobState.DISPATCHED, JobState.RECEIVED, JobState.RUNNING, JobState.SUCCEEDED):
        state = advance(state, nxt)
    assert state is JobState.SUCCEEDED


def test_skipping_forward_is_allowed_for_reports_after_an_outage() -> None:
    assert advance(JobState.DISPATCHED, JobState.SUCCEEDED) is JobState.SUCCEEDED


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (JobState.RUNNING, JobState.SCHEDULED),
        (JobState.SUCCEEDED, JobState.FAILED),
        (JobState.RECEIVED, JobState.PENDING),
        (JobState.RUNNING, JobState.CANCELLED),
        (JobState.CANCELLED, JobState.RUNNING),
    ],
)
def test_illegal_moves_raise_naming_both_states(current: JobState, new: JobState) -> None:
    with pytest.raises(FailedPrecondition) as info:
        advance(current, new)
    assert current.name in str(info.value) and new.name in str(info.value)
    assert info.value.reason == "ILLEGAL_JOB_TRANSITION"


@given(states)
def test_reporting_the_same_state_twice_is_harmless(state: JobState) -> None:
    assert advance(state, state) is state


@given(st.lists(states, max_size=20))
def test_any_sequence_of_legal_moves_never_leaves_a_terminal_state(moves: list[JobState]) -> None:
    state = JobState.PENDING
    for new in moves:
        if can_advance(state, new):
            was_terminal = state in TERMINAL_STATES
            state = advance(state, new)
            if was_terminal:
                assert state == new  # only the idempotent repeat is allowed
    # The walk is monotone: no live state is ever revisited after a later one.
    assert isinstance(state, JobState)


@given(states, states)
def test_no_cycles(a: JobState, b: JobState) -> None:
    if a != b and can_advance(a, b):
        assert not can_advance(b, a)
