"""The engine's hand-off queue (``_ledger.Handoff``): FIFO, every parked getter
gets work while items are left, close drains then ends."""

from __future__ import annotations

import pytest
import trio

from trexec.durable._ledger import Handoff


async def test_items_come_out_in_order_without_waiting_when_queued():
    queue: Handoff[int] = Handoff()
    queue.put_all((1, 2))
    queue.put(3)
    assert [await queue.get(), queue.get_nowait(), await queue.get()] == [1, 2, 3]
    with pytest.raises(trio.WouldBlock):
        queue.get_nowait()


async def test_getters_that_suspend_all_get_an_item(autojump_clock):
    queue: Handoff[int] = Handoff()
    running: set[int] = set()
    most = 0

    async def getter() -> None:
        nonlocal most
        while True:
            try:
                item = await queue.get()
            except trio.EndOfChannel:
                return
            running.add(item)
            most = max(most, len(running))
            await trio.sleep(1)
            running.discard(item)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(getter)
        await trio.sleep(0.1)  # all four parked
        queue.put_all(tuple(range(8)))
        await trio.sleep(0.5)
        assert len(running) == 4  # woken one by one, each waking the next
        queue.close()
    assert most == 4 and len(queue) == 0


async def test_close_lets_getters_drain_then_end():
    queue: Handoff[int] = Handoff()
    queue.put(1)
    queue.close()
    with pytest.raises(trio.ClosedResourceError):
        queue.put(2)
    assert await queue.get() == 1
    with pytest.raises(trio.EndOfChannel):
        await queue.get()


def test_take_gives_up_to_count_items_oldest_first():
    handoff: Handoff[int] = Handoff()
    assert handoff.take(3) == []
    handoff.put_all((1, 2, 3, 4, 5))
    assert handoff.take(2) == [1, 2]
    assert len(handoff) == 3
    assert handoff.take(10) == [3, 4, 5]
    assert len(handoff) == 0
    assert handoff.take(0) == []
