"""The signal inbox (spec §5.6): awaited vs all, consumption, no lost wake-up,
dedup, await timeout, NoTarget."""

from __future__ import annotations

import pytest
import trio
from stores import FAST

from trexec import durable

#: Also on a SQLite file with inline calls (spec §5.11.6).
INLINE_TOO = True


def names(signals):
    return [(s.name, s.payload) for s in signals]


class Waiter(durable.Machine):
    """Awaits "go", then records what it saw; with "again" in state it awaits twice."""

    name = "waiter"

    async def step(self, step, ctx):
        seen = ctx.state["seen"]
        if step == "start":
            return durable.Await(["go"], "woken", ctx.state, timeout=ctx.state.get("timeout"))
        if step == "woken":
            seen.append({"awaited": names(ctx.awaited), "all": names(ctx.all)})
            if ctx.state.get("again") and len(seen) < 2:
                return durable.Next("start", ctx.state)
            if ctx.state.get("then_retry") and ctx.attempt == 1:
                return durable.Retry(ctx.state)
            return durable.Done(seen)
        raise AssertionError(step)


async def test_awaited_holds_only_awaited_names_and_all_the_whole_inbox(store):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        id_ = await engine.insert(Waiter, {"seen": []})
        await engine.signal(id_, "other", {"x": 1})
        await engine.signal(id_, "go", 42)
        instance = await engine.wait(id_, timeout=10)
    [seen] = instance.result
    assert seen["awaited"] == [["go", 42]]
    assert seen["all"] == [["other", {"x": 1}], ["go", 42]]


async def test_a_signal_sent_before_the_instance_parks_wakes_it_at_once(store):
    async with durable.open_engine(store, [Waiter], workers=0) as producer:
        id_ = await producer.insert(Waiter, {"seen": []})
        await producer.signal(id_, "go", "early")  # still scheduled: not parked yet
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        instance = await engine.wait(id_, timeout=10)
    assert instance.result[0]["awaited"] == [["go", "early"]]


async def test_progress_consumes_exactly_the_awaited_ids_received(store, autojump_clock):
    async with durable.open_engine(store, [Waiter], workers=0) as producer:
        id_ = await producer.insert(Waiter, {"seen": [], "again": True})
        await producer.signal(id_, "go", 1)
        await producer.signal(id_, "noise", 2)
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        # First wake: sees go=1; Next consumes it (only it). The second Await
        # must then park until a new "go" arrives.
        while len((await engine.get(id_)).state["seen"]) < 1:
            await trio.sleep(0.01)
        await trio.sleep(0.05)
        parked = await engine.get(id_)
        assert parked.status == "awaiting" and parked.step == "woken"
        await engine.signal(id_, "go", 3)
        instance = await engine.wait(id_, timeout=10)
    first, second = instance.result
    assert first == {"awaited": [["go", 1]], "all": [["go", 1], ["noise", 2]]}
    assert second == {"awaited": [["go", 3]], "all": [["noise", 2], ["go", 3]]}


async def test_retry_consumes_nothing(store):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        id_ = await engine.insert(Waiter, {"seen": [], "then_retry": True})
        await engine.signal(id_, "go", 1)
        instance = await engine.wait(id_, timeout=10)
    # The retried step saw the same awaited signal again: nothing was consumed.
    assert [s["awaited"] for s in instance.result] == [[["go", 1]], [["go", 1]]]


async def test_a_terminal_outcome_clears_the_inbox(store):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        id_ = await engine.insert(Waiter, {"seen": []})
        await engine.signal(id_, "noise", 1)
        await engine.signal(id_, "go", 2)
        await engine.wait(id_, timeout=10)
        assert await store.inbox(id_) == []


async def test_await_timeout_wakes_next_step_with_empty_awaited(store, autojump_clock):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        id_ = await engine.insert(Waiter, {"seen": [], "timeout": 0.05})
        instance = await engine.wait(id_, timeout=10)
    assert instance.result == [{"awaited": [], "all": []}]


async def test_while_parked_the_instance_shows_awaiting_and_its_next_step(store, autojump_clock):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        id_ = await engine.insert(Waiter, {"seen": []})
        while (await engine.get(id_)).status != "awaiting":
            await trio.sleep(0.01)
        instance = await engine.get(id_)
        assert instance.step == "woken"


async def test_dedup_key_stores_a_signal_once_even_after_it_was_consumed(store, autojump_clock):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        id_ = await engine.insert(Waiter, {"seen": [], "again": True})
        first = await engine.signal(id_, "go", 1, dedup_key="webhook-1")
        assert await engine.signal(id_, "go", 1, dedup_key="webhook-1") == first
        while len((await engine.get(id_)).state["seen"]) < 1:
            await trio.sleep(0.01)
        await trio.sleep(0.05)
        # Consumed, then re-delivered by a retrying sender: still a duplicate.
        assert await engine.signal(id_, "go", 1, dedup_key="webhook-1") == first
        assert (await engine.get(id_)).status == "awaiting"
        await engine.signal(id_, "go", 2, dedup_key="webhook-2")
        instance = await engine.wait(id_, timeout=10)
    assert [s["awaited"] for s in instance.result] == [[["go", 1]], [["go", 2]]]


async def test_signal_by_business_key(store):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        id_ = await engine.insert(Waiter, {"seen": []}, key="order-7")
        await engine.signal("order-7", "go", "by key")
        instance = await engine.wait("order-7", timeout=10)
    assert instance.id == id_ and instance.result[0]["awaited"] == [["go", "by key"]]


async def test_signals_to_unknown_or_finished_targets_raise_no_target(store):
    async with durable.open_engine(store, [Waiter], **FAST) as engine:
        with pytest.raises(durable.NoTarget, match="999"):
            await engine.signal(999, "go")
        with pytest.raises(durable.NoTarget, match="nobody"):
            await engine.signal("nobody", "go")
        id_ = await engine.insert(Waiter, {"seen": [], "timeout": 0.01}, key="done-soon")
        await engine.wait(id_, timeout=10)
        with pytest.raises(durable.NoTarget, match="done"):
            await engine.signal(id_, "go")
        with pytest.raises(durable.NoTarget):
            await engine.signal("done-soon", "go")
