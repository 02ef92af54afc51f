"""Outcomes with effects (spec §5.4.10): a step's outcome and the signals and
inserts its commit writes, in one transaction, on every store kind."""

from __future__ import annotations

import trio
from stores import FAST

from trexec import durable
from trexec.durable._effects import SignalSpec, WithEffects


class Parked(durable.Machine):
    """Awaits "ping" (then ends with what it got), or another round with "again"."""

    name = "fx_parked"

    async def step(self, step, ctx):
        if step == "start":
            return durable.Await(["ping"], "woken", ctx.state)
        if step == "woken":
            got = [s.payload for s in ctx.awaited]
            if ctx.state.get("again") and not ctx.state.get("round"):
                ctx.state["round"] = got
                # Re-park in one commit, consuming what was read: the second ping
                # (still in the inbox) wakes it at once.
                return WithEffects(durable.Await(["ping"], "woken", ctx.state), consume=True)
            return durable.Done({"first": ctx.state.get("round"), "then": got})
        raise AssertionError(step)


class Sender(durable.Machine):
    """Ends with a signal to its target (a fallback step when the target is gone),
    inserts keyed instances, and stores a final state with its Done."""

    name = "fx_sender"

    async def step(self, step, ctx):
        state = ctx.state
        if step == "start":
            inserts = [durable.InsertSpec(Parked, {}, key=key) for key in state.get("inserts", [])]
            signal = SignalSpec(state["target"], "ping", state.get("payload"))
            final = dict(state, final=True)
            return WithEffects(
                durable.Done("sent"),
                signals=[signal],
                inserts=inserts,
                fallback=durable.Next("fallback", state),
                state=final,
                has_state=True,
            )
        if step == "fallback":
            return durable.Done("fell back")
        raise AssertionError(step)


async def wait_status(engine, id_, status):
    with trio.fail_after(10):
        while (await engine.get(id_)).status != status:
            await trio.sleep(0.01)


async def test_a_signal_effect_is_delivered_with_the_commit_and_wakes_its_target(store):
    async with durable.open_engine(store, [Parked, Sender], **FAST) as engine:
        target = await engine.insert(Parked, {})
        await wait_status(engine, target, "awaiting")
        sender = await engine.insert(Sender, {"target": target, "payload": 7})
        done = await engine.wait(sender, timeout=10)
        parked = await engine.wait(target, timeout=10)
    assert (done.status, done.result) == ("done", "sent")
    assert done.state["final"] is True  # the Done stored its final state
    assert parked.result == {"first": None, "then": [7]}


async def test_a_gone_target_commits_the_fallback_and_nothing_else(store):
    async with durable.open_engine(store, [Parked, Sender], **FAST) as engine:
        target = await engine.insert(Parked, {})
        await wait_status(engine, target, "awaiting")
        await engine.cancel(target)
        sender = await engine.insert(Sender, {"target": target, "inserts": ["fx-x"]})
        done = await engine.wait(sender, timeout=10)
        assert await engine.list(machine="fx_parked", status="scheduled") == []
    assert (done.status, done.result) == ("done", "fell back")
    assert "final" not in done.state


async def test_inserts_skip_a_key_a_live_instance_holds(store):
    async with durable.open_engine(store, [Parked, Sender], **FAST) as engine:
        held = await engine.insert(Parked, {}, key="fx-held")
        target = await engine.insert(Parked, {})
        sender = await engine.insert(Sender, {"target": target, "inserts": ["fx-held", "fx-new"]})
        done = await engine.wait(sender, timeout=10)
        keys = sorted(i.key for i in await engine.list(machine="fx_parked") if i.key)
        assert (await engine.get("fx-held")).id == held
    assert done.result == "sent"
    assert keys == ["fx-held", "fx-new"]


async def test_a_consuming_await_parks_again_in_one_commit(store):
    async with durable.open_engine(store, [Parked], **FAST) as engine:
        id_ = await engine.insert(Parked, {"again": True})
        await wait_status(engine, id_, "awaiting")
        await engine.signal(id_, "ping", 1)
        with trio.fail_after(10):  # parked again, the first ping consumed
            while (await engine.get(id_)).state.get("round") is None:
                await trio.sleep(0.01)
        await wait_status(engine, id_, "awaiting")
        await engine.signal(id_, "ping", 2)
        done = await engine.wait(id_, timeout=10)
    assert done.result == {"first": [1], "then": [2]}  # never read twice


class Ends(durable.Machine):
    """Ends at once: with its final state when its state says so (a workflow
    run's end, spec §6.6.5), else keeping the state it had."""

    name = "fx_ends"

    async def step(self, step, ctx):
        if ctx.state.get("final"):
            final = dict(ctx.state, stored=True)
            return WithEffects(durable.Done(ctx.state["n"]), state=final, has_state=True)
        return durable.Done(ctx.state["n"])


async def test_a_batch_of_ends_stores_the_final_states_it_has_and_keeps_the_others(store):
    """spec §5.4.10: ends with and without a final state committed in one batch
    (the stores write them as one statement): each row gets its own."""
    specs = [durable.InsertSpec(Ends, {"n": n, "final": n % 2 == 0}) for n in range(12)]
    async with durable.open_engine(store, [Ends], workers=0) as producer:
        ids = await producer.insert_many(specs)
    async with durable.open_engine(store, [Ends], workers=12, batch_size=16, **FAST) as engine:
        ends = [await engine.wait(id_, timeout=10) for id_ in ids]
    for n, end in enumerate(ends):
        assert (end.status, end.result) == ("done", n)
        if n % 2 == 0:
            assert end.state == {"n": n, "final": True, "stored": True}
        else:
            assert end.state == {"n": n, "final": False}
