"""The SQLite write gate: an urgent writer waits for the group commits already writing, and no group starts while it
waits or writes; on PostgreSQL it does nothing."""

from __future__ import annotations

import asyncio

from skymesh.server.db.writegate import WriteGate


async def test_an_urgent_writer_goes_before_groups_that_have_not_started() -> None:
    gate = WriteGate(enabled=True)
    order: list[str] = []
    first_writing, release_first = asyncio.Event(), asyncio.Event()

    async def group(name: str, hold: asyncio.Event | None = None) -> None:
        async with gate.bulk():
            order.append(f"{name} start")
            if hold is not None:
                first_writing.set()
                await hold.wait()
            order.append(f"{name} end")

    async def urgent() -> None:
        async with gate.urgent():
            order.append("urgent")

    first = asyncio.create_task(group("g1", release_first))
    await first_writing.wait()
    command = asyncio.create_task(urgent())
    await asyncio.sleep(0.01)
    second = asyncio.create_task(group("g2"))  # queued behind the urgent writer
    await asyncio.sleep(0.01)
    assert order == ["g1 start"]  # the urgent writer waits for the group already writing; g2 waits for it
    release_first.set()
    await asyncio.gather(first, command, second)
    assert order == ["g1 start", "g1 end", "urgent", "g2 start", "g2 end"]


async def test_a_cancelled_urgent_waiter_does_not_hold_groups_back() -> None:
    gate = WriteGate(enabled=True)
    writing, release = asyncio.Event(), asyncio.Event()

    async def group() -> None:
        async with gate.bulk():
            writing.set()
            await release.wait()

    first = asyncio.create_task(group())
    await writing.wait()

    async def urgent() -> None:
        async with gate.urgent():
            pass

    waiter = asyncio.create_task(urgent())
    await asyncio.sleep(0.01)
    waiter.cancel()
    release.set()
    await first
    async with asyncio.timeout(1.0), gate.bulk():  # the cancelled waiter left nothing behind
        pass


async def test_disabled_gate_orders_nothing() -> None:
    gate = WriteGate(enabled=False)
    async with gate.bulk(), gate.urgent(), gate.bulk():  # would deadlock if it waited
        pass
