"""An action's cancel scope is entered only once it suspends (issue #15, spec §1.5):
whatever the action opened before its first suspension must end up inside it."""

from __future__ import annotations

import pytest
import trio

import trexec
from trexec import _late_scope

pytestmark = pytest.mark.skipif(not _late_scope.AVAILABLE, reason="Trio internals moved")


async def test_cancel_reaches_an_action_that_opened_a_scope_before_suspending(autojump_clock):
    reached = []

    async def guarded(params, context):
        with trio.move_on_after(100):  # opened before the first suspension
            await trio.sleep(50)
        reached.append("after the scope")  # a cancel of the handle must not land here
        await trio.sleep(50)

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, guarded)
        await trio.sleep(1)
        handle.cancel()
        with pytest.raises(trexec.ActionCancelled):
            await handle.wait()
    assert reached == []
    assert trio.current_time() == 1


async def test_cancel_reaches_tasks_of_a_nursery_opened_before_suspending(autojump_clock):
    children = []

    async def child():
        try:
            await trio.sleep(50)
        except trio.Cancelled:
            children.append(trio.current_time())
            raise

    async def fan_out(params, context):
        async with trio.open_nursery() as inner:
            inner.start_soon(child)
            inner.start_soon(child)

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, fan_out)
        await trio.sleep(2)
        handle.cancel()
        with pytest.raises(trexec.ActionCancelled):
            await handle.wait()
    assert children == [2, 2]


async def test_an_inner_deadline_still_works_after_the_late_scope(autojump_clock):
    async def bounded(params, context):
        with trio.move_on_after(1) as inner:
            await trio.sleep(5)
        await trio.sleep(1)
        return inner.cancelled_caught

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, bounded)
    assert await handle.wait() is True
    assert trio.current_time() == 2


async def test_a_shield_opened_before_suspending_keeps_out_the_cancel(autojump_clock):
    async def shielded(params, context):
        with trio.CancelScope(shield=True):
            await trio.sleep(5)
        return "finished"

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, shielded)
        await trio.sleep(1)
        handle.cancel()
    assert await handle.wait() == "finished"
    assert trio.current_time() == 5


async def test_outside_cancellation_after_a_late_scope_propagates(autojump_clock):
    async def guarded(params, context):
        with trio.move_on_after(100):
            await trio.sleep(50)
        return "not reached"

    with trio.move_on_after(1) as outer:
        async with trio.open_nursery() as nursery:
            handle = trexec.start_action(nursery, guarded)
    assert outer.cancelled_caught
    with pytest.raises(trexec.ActionCancelled, match="from outside"):
        await handle.wait()


async def test_an_action_that_cancels_itself_in_its_first_step(autojump_clock):
    handles = []

    async def self_cancelling(params, context):
        handles[0].cancel()
        await trio.sleep(1)
        return "not reached"

    async with trio.open_nursery() as nursery:
        handles.append(trexec.start_action(nursery, self_cancelling))
    with pytest.raises(trexec.ActionCancelled):
        await handles[0].wait()
    assert trio.current_time() == 0


async def test_the_task_leaves_no_cancel_status_behind():
    async def suspends(params, context):
        with trio.CancelScope():
            await trio.lowlevel.checkpoint()
        return 1

    task = trio.lowlevel.current_task()
    before = task._cancel_status
    async with trio.open_nursery() as nursery:
        handles = [trexec.start_action(nursery, suspends) for _ in range(3)]
    assert [h.check().unwrap() for h in handles] == [1, 1, 1]
    assert task._cancel_status is before
    assert nursery.cancel_scope._cancel_status is None  # closed cleanly


async def test_run_action_takes_the_same_path_in_the_callers_task(autojump_clock):
    async def guarded(params, context):
        with trio.move_on_after(100):
            await trio.sleep(50)
        return "done"

    assert await trexec.run_action(guarded) == "done"
    assert trio.current_time() == 50


async def test_a_timeout_reaches_an_action_that_opened_a_scope_first(autojump_clock):
    async def guarded(params, context):
        with trio.move_on_after(100):
            await trio.sleep(50)
        return "not reached"

    with pytest.raises(trexec.ActionTimeout) as info:
        await trexec.run_action(guarded, timeout=3)
    assert info.value.attempts == 1
    assert trio.current_time() == 3


async def test_time_spent_before_the_first_suspension_counts_toward_the_timeout(
    autojump_clock,
):
    async def slow_start(params, context):
        autojump_clock.jump(5)  # as though its first step took 5 s
        await trio.sleep(0)
        return "not reached"

    with pytest.raises(trexec.ActionTimeout):
        await trexec.run_action(slow_start, timeout=1)


async def test_cancel_reaches_a_task_started_with_nursery_start_before_suspending(
    autojump_clock,
):
    stopped = []

    async def server(task_status=trio.TASK_STATUS_IGNORED):
        task_status.started("ready")
        try:
            await trio.sleep_forever()
        finally:
            stopped.append(trio.current_time())

    async def serving(params, context):
        async with trio.open_nursery() as inner:
            context["ready"] = await inner.start(server)

    context = {}
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, serving, None, context)
        await trio.sleep(3)
        handle.cancel()
    assert type(handle.check().error) is trexec.ActionCancelled
    assert context == {"ready": "ready"}
    assert stopped == [3]


async def test_an_error_raised_before_suspending_past_the_deadline_is_a_timeout(
    autojump_clock,
):
    async def slow_then_boom(params, context):
        autojump_clock.jump(5)  # past the deadline, though it never checkpoints
        raise ValueError("boom")

    with pytest.raises(trexec.ActionTimeout) as info:
        await trexec.run_action(slow_then_boom, timeout=1)
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.attempts == 1


async def test_an_error_raised_before_suspending_within_the_deadline_is_a_failure(
    autojump_clock,
):
    async def quick_boom(params, context):
        autojump_clock.jump(0.5)
        raise ValueError("boom")

    with pytest.raises(trexec.ActionFailed) as info:
        await trexec.run_action(quick_boom, timeout=1)
    assert isinstance(info.value.__cause__, ValueError)
