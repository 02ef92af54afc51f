"""Children (spec §5.7), business keys (§5.3) and cancel (§5.4.8)."""

from __future__ import annotations

import pytest
import trio
from stores import FAST

from trexec import durable

#: Also on a SQLite file with inline calls (spec §5.11.6).
INLINE_TOO = True


class Kid(durable.Machine):
    name = "kid"

    async def step(self, step, ctx):
        if ctx.state.get("fail"):
            raise RuntimeError(f"kid {ctx.state['n']} failed")
        if ctx.state.get("park"):
            return durable.Await(["never"], "start", ctx.state)
        return durable.Done(ctx.state["n"] * 10)


class Parent(durable.Machine):
    name = "parent"

    async def step(self, step, ctx):
        if step == "start":
            kids = [durable.Child(Kid, spec) for spec in ctx.state["kids"]]
            return durable.ScheduleChildren("gather", kids, ctx.state)
        return durable.Done([[c.machine, c.status, c.result, c.error] for c in ctx.children])


async def test_parent_waits_for_all_children_then_sees_them(store):
    async with durable.open_engine(store, [Parent, Kid], **FAST) as engine:
        id_ = await engine.insert(Parent, {"kids": [{"n": 1}, {"n": 2}, {"n": 3}]})
        instance = await engine.wait(id_, timeout=10)
        kids = await engine.children(id_)
    assert instance.result == [["kid", "done", n * 10, None] for n in (1, 2, 3)]
    assert [k.parent_id for k in kids] == [id_] * 3


async def test_a_failed_child_releases_the_barrier_too(store, autojump_clock):
    async with durable.open_engine(store, [Parent, Kid], **FAST) as engine:
        id_ = await engine.insert(Parent, {"kids": [{"n": 1}, {"n": 2, "fail": True}]})
        instance = await engine.wait(id_, timeout=10)
    assert instance.result == [
        ["kid", "done", 10, None],
        ["kid", "stopped", None, "RuntimeError: kid 2 failed"],
    ]


async def test_zero_children_proceed_at_once(store):
    async with durable.open_engine(store, [Parent, Kid], **FAST) as engine:
        instance = await engine.wait(await engine.insert(Parent, {"kids": []}), timeout=10)
    assert instance.result == []


async def test_the_parent_is_waiting_children_until_the_last_child_finishes(store, autojump_clock):
    async with durable.open_engine(store, [Parent, Kid], **FAST) as engine:
        id_ = await engine.insert(Parent, {"kids": [{"n": 1}, {"n": 2, "park": True}]})
        while (await engine.get(id_)).status != "waiting_children":
            await trio.sleep(0.01)
        parked_kid = next(k for k in await engine.children(id_) if k.state.get("park"))
        while (await engine.get(parked_kid.id)).status != "awaiting":
            await trio.sleep(0.01)
        parent = await engine.get(id_)
        assert parent.status == "waiting_children" and parent.step == "gather"
        await engine.cancel(parked_kid.id)  # a cancelled child releases it too
        instance = await engine.wait(id_, timeout=10)
    assert instance.result[1][1] == "cancelled"


async def test_insert_many_with_parent_id_joins_a_waiting_barrier(store, autojump_clock):
    async with durable.open_engine(store, [Parent, Kid], **FAST) as engine:
        id_ = await engine.insert(Parent, {"kids": [{"n": 1, "park": True}]})
        while (await engine.get(id_)).status != "waiting_children":
            await trio.sleep(0.01)
        [extra] = await engine.insert_many([durable.InsertSpec(Kid, {"n": 5}, parent_id=id_)])
        await engine.wait(extra, timeout=10)
        assert (await engine.get(id_)).status == "waiting_children"  # still one pending
        (first,) = [k for k in await engine.children(id_) if k.id != extra]
        await engine.cancel(first.id)
        instance = await engine.wait(id_, timeout=10)
    assert [row[2] for row in instance.result] == [None, 50]


class KeyedKids(durable.Machine):
    name = "keyed_kids"

    async def step(self, step, ctx):
        if step == "start":
            return durable.ScheduleChildren(
                "gather", [durable.Child(Kid, {"n": 1, "park": True}, key="taken")], ctx.state
            )
        return durable.Done("unreachable")

    async def handle(self, error, ctx):
        return durable.Stop(error)


async def test_a_child_key_clash_is_a_step_error_and_changes_nothing(store):
    async with durable.open_engine(store, [KeyedKids], **FAST) as engine:
        holder = await engine.insert(Kid, {"n": 0}, key="taken")
        id_ = await engine.wait(await engine.insert(KeyedKids, None), timeout=10)
        assert id_.status == "stopped" and "DuplicateKey" in id_.error
        assert await engine.children(id_.id) == []
        assert (await engine.get("taken")).id == holder


async def test_keys_are_unique_among_live_instances_and_reusable_after(store):
    async with durable.open_engine(store, [Kid], **FAST) as engine:
        first = await engine.insert(Kid, {"n": 1, "park": True}, key="acct-1")
        with pytest.raises(durable.DuplicateKey, match="acct-1"):
            await engine.insert(Kid, {"n": 2}, key="acct-1")
        with pytest.raises(durable.DuplicateKey):  # all or none
            await engine.insert_many(
                [durable.InsertSpec(Kid, {"n": 3}, key="fresh"),
                 durable.InsertSpec(Kid, {"n": 4}, key="acct-1")]
            )  # fmt: skip
        with pytest.raises(durable.NoTarget):
            await engine.get("fresh")
        await engine.cancel("acct-1")
        second = await engine.insert(Kid, {"n": 5}, key="acct-1")
        assert (await engine.wait("acct-1", timeout=10)).id == second
        assert (await engine.get(first)).status == "cancelled"


class Blocking(durable.Machine):
    name = "blocking"
    started: trio.Event
    release: trio.Event

    async def step(self, step, ctx):
        if step == "start":
            Blocking.started.set()
            await Blocking.release.wait()
            return durable.Next("after", ctx.state)
        raise AssertionError("a cancelled instance must never run again")


async def test_cancel_of_a_running_step_discards_its_outcome(store, events, autojump_clock):
    Blocking.started, Blocking.release = trio.Event(), trio.Event()
    async with durable.open_engine(store, [Blocking], **FAST) as engine:
        id_ = await engine.insert(Blocking, None)
        await Blocking.started.wait()
        await engine.cancel(id_)
        Blocking.release.set()
        instance = await engine.wait(id_, timeout=10)
        while not any(name[2:] == ("outcome", "cancelled") for name, *_ in events):
            await trio.sleep(0.01)
        await trio.sleep(0.05)
        instance = await engine.get(id_)
    assert instance.status == "cancelled" and instance.step == "start"


async def test_cancel_by_key_returns_the_id_it_cancelled_and_forgets_it(store, autojump_clock):
    """The id comes from the cancel's own transaction (a key can be reused at
    once); an engine remembers only the cancels of instances it holds."""
    async with durable.open_engine(store, [Blocking], workers=0) as engine:
        first = await engine.insert(Blocking, None, key="k")
        assert await store.cancel("k") == (first, "scheduled")
        second = await engine.insert(Blocking, None, key="k")
        await engine.cancel("k")
        assert (await engine.get(second)).status == "cancelled"
        assert engine._ledger.cancelled == set()  # nothing held: nothing to drop later
    Blocking.started, Blocking.release = trio.Event(), trio.Event()
    async with durable.open_engine(store, [Blocking], **FAST) as engine:
        id_ = await engine.insert(Blocking, None)
        await Blocking.started.wait()
        await engine.cancel(id_)
        assert engine._ledger.cancelled == {id_}  # held: its outcome is to be discarded
        Blocking.release.set()
        while engine._ledger.cancelled:  # forgotten once the discarded outcome is seen
            await trio.sleep(0.01)


async def test_cancel_of_unknown_or_finished_raises_no_target(store):
    async with durable.open_engine(store, [Kid], **FAST) as engine:
        with pytest.raises(durable.NoTarget):
            await engine.cancel(12345)
        id_ = await engine.insert(Kid, {"n": 1})
        await engine.wait(id_, timeout=10)
        with pytest.raises(durable.NoTarget):
            await engine.cancel(id_)
        with pytest.raises(durable.NoTarget):
            await engine.get(12345)


class Notifier(durable.Machine):
    name = "notifier"

    async def step(self, step, ctx):
        # ctx.engine: side effects outside the commit are at least once: dedup them.
        await ctx.engine.signal(ctx.parent_id, "kid_done", ctx.state, dedup_key=f"kid-{ctx.id}")
        return durable.Done(None)


class Listener(durable.Machine):
    name = "listener"

    async def step(self, step, ctx):
        if step == "start":
            return durable.Await(["kid_done"], "heard", ctx.state)
        return durable.Done([s.payload for s in ctx.awaited])


async def test_a_step_can_signal_another_instance_through_ctx_engine(store):
    async with durable.open_engine(store, [Notifier, Listener], **FAST) as engine:
        parent = await engine.insert(Listener, None)
        [kid] = await engine.insert_many([durable.InsertSpec(Notifier, "hi", parent_id=parent)])
        assert (await engine.wait(parent, timeout=10)).result == ["hi"]
        assert [k.id for k in await engine.children(parent)] == [kid]


async def test_insert_many_with_an_unknown_parent_inserts_nothing(store):
    async with durable.open_engine(store, workers=0) as engine:
        with pytest.raises(durable.NoTarget, match="parent_id=424242"):
            await engine.insert_many(
                [durable.InsertSpec(Kid, {"n": 1}, key="orphan"),
                 durable.InsertSpec(Kid, {"n": 2}, parent_id=424242)]
            )  # fmt: skip
        with pytest.raises(durable.NoTarget):
            await engine.get("orphan")


class SlowKeyedKids(durable.Machine):
    name = "slow_keyed_kids"
    started: trio.Event
    release: trio.Event

    async def step(self, step, ctx):
        SlowKeyedKids.started.set()
        await SlowKeyedKids.release.wait()
        return durable.ScheduleChildren("gather", [durable.Child(Kid, {"n": 1}, key="taken")], None)


async def test_a_child_key_clash_while_leaving_the_block_is_released_not_a_crash(
    store, autojump_clock
):
    """spec §5.5.4, §5.7.3: the clash is found by the last commit of the shutdown;
    the engine leaves cleanly and the step runs again later."""
    SlowKeyedKids.started, SlowKeyedKids.release = trio.Event(), trio.Event()
    async with durable.open_engine(store, [SlowKeyedKids], **FAST) as engine:
        await engine.insert(Kid, {"n": 0}, key="taken")
        id_ = await engine.insert(SlowKeyedKids, None)
        await SlowKeyedKids.started.wait()
        SlowKeyedKids.release.set()  # finishes during the shutdown's grace
    async with durable.open_engine(store, [SlowKeyedKids], **FAST) as engine:
        instance = await engine.wait(id_, timeout=10)
    assert instance.status == "stopped" and "DuplicateKey" in instance.error
