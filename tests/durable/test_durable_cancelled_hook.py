"""``Machine.cancelled``: the hook an engine calls after a cancel (spec §5.4.11)."""

from __future__ import annotations

import logging

import pytest
import trio
from machines import Counter
from stores import FAST

from trexec import durable


class Hooked(durable.Machine):
    """start parks on "go" with n=1 (or, with ``block``, runs until released and
    moves on with n=11); the hook records what it was given."""

    name = "hooked"
    State = Counter
    block = False
    seen: list[tuple[str, str, Counter]]
    entered: trio.Event
    release: trio.Event
    called: trio.Event
    fail = False

    async def step(self, step, ctx):
        if step == "start" and Hooked.block:
            Hooked.entered.set()
            await Hooked.release.wait()
            return durable.Next("after", Counter(ctx.state.n + 11))
        if step == "start":
            return durable.Await(["go"], "after", Counter(1))
        return durable.Done(None)

    async def cancelled(self, instance, engine):
        Hooked.seen.append((instance.status, instance.step, instance.state))
        Hooked.called.set()
        if Hooked.fail:
            raise RuntimeError("hook broke")


@pytest.fixture(autouse=True)
def _reset():
    Hooked.block, Hooked.fail, Hooked.seen = False, False, []
    Hooked.entered, Hooked.release, Hooked.called = trio.Event(), trio.Event(), trio.Event()


async def parked(engine) -> int:
    id_ = await engine.insert(Hooked, Counter())
    with trio.fail_after(10):
        while (await engine.get(id_)).status != "awaiting":
            await trio.sleep(0.01)
    return id_


async def test_cancelling_an_instance_no_step_runs_calls_the_hook_before_returning(store):
    async with durable.open_engine(store, [Hooked], **FAST) as engine:
        id_ = await parked(engine)
        await engine.cancel(id_)
        assert Hooked.seen == [("cancelled", "after", Counter(1))]


async def test_a_step_discarded_by_the_cancel_hands_the_hook_the_state_it_reached(store):
    Hooked.block = True
    async with durable.open_engine(store, [Hooked], **FAST) as engine:
        id_ = await engine.insert(Hooked, Counter())
        with trio.fail_after(10):
            await Hooked.entered.wait()
        await engine.cancel(id_)
        assert Hooked.seen == []  # the step still runs: it will notice
        Hooked.release.set()
        with trio.fail_after(10):
            await Hooked.called.wait()
        instance = await engine.get(id_)
    assert Hooked.seen == [("cancelled", "start", Counter(11))]  # the discarded outcome's
    assert (instance.status, instance.state) == ("cancelled", Counter())  # not stored


async def test_a_failing_hook_is_logged_and_the_cancel_stands(store, caplog):
    Hooked.fail = True
    async with durable.open_engine(store, [Hooked], **FAST) as engine:
        id_ = await parked(engine)
        with caplog.at_level(logging.WARNING, logger="trexec.durable"):
            await engine.cancel(id_)
        assert (await engine.get(id_)).status == "cancelled"
    assert Hooked.seen == [("cancelled", "after", Counter(1))]
    assert f"cancelled hook of instance {id_} failed: RuntimeError('hook broke')" in caplog.text


async def test_an_engine_that_does_not_run_the_machine_calls_no_hook(store):
    async with durable.open_engine(store, [Hooked], **FAST) as engine:
        id_ = await parked(engine)
    async with durable.open_engine(store, workers=0) as other:
        await other.cancel(id_)
        assert (await other.get(id_)).status == "cancelled"
    assert Hooked.seen == []
