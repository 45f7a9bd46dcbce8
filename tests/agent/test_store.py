"""The agent's SQLite store: nothing unacknowledged is ever lost, nothing acknowledged ever comes back."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skymesh.agent.store import Store
from skymesh.api.agent.v1 import agent_pb2
from skymesh.api.common.v1 import common_pb2
from skymesh.api.convert import timestamp_from_datetime
from skymesh.core.jobs import JobState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _telemetry(value: float) -> agent_pb2.ConnectRequest:
    sample = agent_pb2.TelemetrySample(at=timestamp_from_datetime(T0), values={"x": value})
    return agent_pb2.ConnectRequest(telemetry=agent_pb2.TelemetryBatch(samples=[sample]))


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(1, 3)),
        st.tuples(st.just("ack"), st.integers(0, 5), st.floats(0.0, 1.0)),
        st.tuples(st.just("restart"), st.just(0)),
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(_ops)
def test_outbox_never_loses_unacked_nor_resurrects_acked(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.sqlite"
        store = Store(path)
        boots = [str(uuid.uuid4())]
        store.begin_boot(boots[-1], T0)
        unacked: set[tuple[str, int]] = set()
        acked: set[tuple[str, int]] = set()
        next_seq = {boots[-1]: 1}
        payload = 0.0
        try:
            for op in ops:
                if op[0] == "enqueue":
                    boot = boots[-1]
                    messages = [_telemetry(payload + i) for i in range(int(op[1]))]  # type: ignore[call-overload]
                    payload += len(messages)
                    seqs = store.enqueue(boot, messages)
                    assert seqs == list(range(next_seq[boot], next_seq[boot] + len(messages)))
                    next_seq[boot] += len(messages)
                    unacked |= {(boot, s) for s in seqs}
                elif op[0] == "ack":
                    boot = boots[int(op[1]) % len(boots)]  # type: ignore[call-overload]
                    upto = int(float(op[2]) * (next_seq[boot] - 1))  # type: ignore[arg-type]
                    store.ack(boot, upto)
                    done = {(b, s) for b, s in unacked if b == boot and s <= upto}
                    unacked -= done
                    acked |= done
                else:  # a crash: reopen the file, start a new boot
                    store.close()
                    store = Store(path)
                    boots.append(str(uuid.uuid4()))
                    store.begin_boot(boots[-1], T0)
                    next_seq[boots[-1]] = 1
                keys = set(store.outbox_keys())
                assert keys == unacked
                assert not keys & acked
            for boot in boots:
                pending = store.pending(boot, 0, 1000)
                assert [(m.boot_id, m.seq) for m in pending] == sorted(k for k in unacked if k[0] == boot)
                assert all(m.WhichOneof("body") == "telemetry" for m in pending)
            spooled = store.spooled_boot_ids()
            assert spooled == [b for b in boots if any(k[0] == b for k in unacked)]
        finally:
            store.close()


def test_enqueue_is_atomic(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite")
    store.begin_boot("b1", T0)
    with pytest.raises(TypeError):
        store.enqueue("b1", [_telemetry(1.0), "not a message"])  # type: ignore[list-item]
    assert store.outbox_keys() == []
    assert store.next_seq("b1") == 1
    store.close()


def _job(job_id: str, start_s: float, end_s: float) -> agent_pb2.ScheduledJob:
    return agent_pb2.ScheduledJob(
        job_id=job_id,
        target=common_pb2.Target(target_id="t", priority=5, celestial=common_pb2.CelestialTarget(ra_deg=1.0)),
        start=timestamp_from_datetime(T0 + timedelta(seconds=start_s)),
        end=timestamp_from_datetime(T0 + timedelta(seconds=end_s)),
    )


def test_schedule_replacement_and_job_transitions_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    store = Store(path)
    store.begin_boot("b1", T0)
    assert store.replace_schedule(1, [_job("a", 10, 20), _job("b", 30, 40), _job("c", 50, 60)], "b1", T0) == [
        "a",
        "b",
        "c",
    ]
    assert store.transition_job("a", JobState.RUNNING, "b1", T0)
    assert not store.transition_job("a", JobState.RECEIVED, "b1", T0)  # backwards: refused, nothing written
    obs = agent_pb2.ObservationRecord(observation_id="o1", job_id="a")
    assert store.transition_job("a", JobState.SUCCEEDED, "b1", T0, cause=1, observation=obs)
    assert not store.transition_job("a", JobState.FAILED, "b1", T0)  # terminal
    # Version 2 drops b (not started), keeps finished a without re-reporting it, adds d.
    assert store.replace_schedule(2, [_job("a", 10, 20), _job("c", 55, 60), _job("d", 70, 80)], "b1", T0) == ["d"]
    store.close()

    store = Store(path)
    assert store.schedule_version() == 2
    jobs = {j.job_id: j for j in store.jobs()}
    assert set(jobs) == {"a", "c", "d"}
    assert jobs["a"].state == JobState.SUCCEEDED
    assert jobs["c"].start == T0 + timedelta(seconds=55)
    kinds = [(m.WhichOneof("body"), m.seq) for m in store.pending("b1", 0, 100)]
    # RECEIVED a, b, c; RUNNING a; observation; SUCCEEDED a; RECEIVED d
    assert kinds == [
        ("job_update", 1),
        ("job_update", 2),
        ("job_update", 3),
        ("job_update", 4),
        ("observation", 5),
        ("job_update", 6),
        ("job_update", 7),
    ]
    store.close()


def test_commands_dedup_and_contiguous_seq(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite")
    c1 = agent_pb2.Command(seq=1, command_id="c1", stow=agent_pb2.Stow())
    c3 = agent_pb2.Command(seq=3, command_id="c3", stow=agent_pb2.Stow())
    c2 = agent_pb2.Command(seq=2, command_id="c2", stow=agent_pb2.Stow())
    assert store.record_command(c1, T0).new
    assert not store.record_command(c1, T0).new
    assert store.record_command(c3, T0).new
    assert store.last_command_seq() == 1  # 2 is missing
    store.record_command(c2, T0)
    assert store.last_command_seq() == 3
    store.set_command_state("c1", agent_pb2.COMMAND_STATE_SUCCEEDED, T0)
    assert [c.command_id for c in store.open_commands()] == ["c2", "c3"]
    updates = {u.command_id: u.state for u in store.unreported_command_updates()}
    assert updates["c1"] == agent_pb2.COMMAND_STATE_SUCCEEDED
    store.mark_command_reported("c1", agent_pb2.COMMAND_STATE_SUCCEEDED)
    assert "c1" not in {u.command_id for u in store.unreported_command_updates()}
    store.close()


def test_recent_command_states_are_reported_again_after_a_new_session(tmp_path: Path) -> None:
    # The server does not acknowledge CommandUpdates: a report handed to a stream that broke may be lost, so a new
    # session re-sends every recent command's current state (found by the end-to-end server-kill test).
    store = Store(tmp_path / "a.sqlite")
    old = agent_pb2.Command(seq=1, command_id="old", stow=agent_pb2.Stow())
    new = agent_pb2.Command(seq=2, command_id="new", stow=agent_pb2.Stow())
    store.record_command(old, T0 - timedelta(days=30))
    store.record_command(new, T0)
    store.set_command_state("old", agent_pb2.COMMAND_STATE_SUCCEEDED, T0 - timedelta(days=30))
    store.set_command_state("new", agent_pb2.COMMAND_STATE_SUCCEEDED, T0)
    for update in store.unreported_command_updates():
        store.mark_command_reported(update.command_id, update.state)
    assert store.unreported_command_updates() == []
    assert store.rereport_commands(T0 - timedelta(days=7)) == 1
    again = store.unreported_command_updates()
    assert [(u.command_id, u.state) for u in again] == [("new", agent_pb2.COMMAND_STATE_SUCCEEDED)]
    store.close()
