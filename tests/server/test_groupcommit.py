"""The group committer on a real database (SQLite and PostgreSQL): one transaction answers each message as if it
had been written alone (next seq stored, resend a duplicate, gap refused without holding back the others), and a
full queue refuses at once with UNAVAILABLE and a retry hint, writing nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from skymesh.core.errors import FailedPrecondition, Unavailable
from skymesh.server.db.records import TelemetryIn
from skymesh.server.groupcommit import GroupCommitter
from tests.server.conftest import StartServer, add_station

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _batch(value: float) -> TelemetryIn:
    return TelemetryIn.from_samples([{"at": AT.isoformat(), "values": {"az": value}}])


async def test_one_group_answers_each_message_as_alone(start_server: StartServer) -> None:
    server = await start_server()
    for sid in ("gs1", "gs2"):
        await add_station(server, sid)
    committer = GroupCommitter(server.repo)
    submissions = [
        committer.submit("gs1", "b1", 1, _batch(1)),
        committer.submit("gs1", "b1", 2, _batch(2)),  # the next seq in the same group
        committer.submit("gs2", "b2", 2, _batch(3)),  # a gap: refused, the others still stored
        committer.submit("gs2", "b2", 1, _batch(4)),
        committer.submit("gs1", "b1", 2, _batch(5)),  # a resend inside the group: a duplicate
    ]
    results = await asyncio.gather(*submissions, return_exceptions=True)
    await committer.close()
    assert [(r.committed_seq, r.duplicate) for r in results if not isinstance(r, BaseException)] == [
        (1, False),
        (2, False),
        (1, False),
        (2, True),
    ]
    gap = results[2]
    assert isinstance(gap, FailedPrecondition) and gap.reason == "UPSTREAM_SEQ_GAP"
    assert committer.groups == 1
    assert await server.repo.get_cursors("gs1", ["b1"]) == {"b1": 2}
    assert await server.repo.get_cursors("gs2", ["b2"]) == {"b2": 1}
    assert await server.repo.count_telemetry("gs1") == 2
    assert await server.repo.count_telemetry("gs2") == 1


async def test_a_full_queue_refuses_with_a_retry_hint_and_writes_nothing(start_server: StartServer) -> None:
    server = await start_server()
    await add_station(server, "gs1")
    committer = GroupCommitter(server.repo, max_queued=1, retry_after_s=3.0)
    first = asyncio.ensure_future(committer.submit("gs1", "b1", 1, _batch(1)))
    await asyncio.sleep(0)  # queued; the flusher has not taken it yet
    with pytest.raises(Unavailable) as refused:
        await committer.submit("gs1", "b1", 2, _batch(2))
    assert refused.value.reason == "INGEST_OVERLOADED"
    assert refused.value.details["retry-after-s"] == "3"
    assert (await first).committed_seq == 1
    await committer.close()
    assert await server.repo.get_cursors("gs1", ["b1"]) == {"b1": 1}
    assert await server.repo.count_telemetry("gs1") == 1
