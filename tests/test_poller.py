"""Resource pollers (spec §2), one test per row of seed 000's tables and per rule."""

from __future__ import annotations

import math
import pathlib
import pickle
import re
import traceback

import pytest
import trio
import trio.testing

import trexec


class Resource:
    """A fake resource whose status changes: returns ``statuses`` one per poll, then the last."""

    def __init__(self, *statuses: object, delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.calls: list[float] = []

    async def poll(self) -> object:
        self.calls.append(trio.current_time())
        if self.delay:
            await trio.sleep(self.delay)
        if len(self.statuses) > 1:
            return self.statuses.pop(0)
        return self.statuses[0]


def channel(size: float = math.inf):
    return trio.open_memory_channel[trexec.InjectedEvent](size)


def drain(receive) -> list[object]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait().event)
        except trio.WouldBlock:
            return out


def by_status(mapping):
    """A handler returning ``mapping[status]`` (CONTINUE for anything else)."""
    return lambda status: mapping.get(status, trexec.CONTINUE)


async def run_one(handler, resource, *, interval=1.0, timeout=10.0, **opts):
    send, receive = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=resource.poll,
            handler=handler,
            interval=interval,
            timeout=timeout,
            events=send,
            **opts,
        )
        result = await poller.wait()
    return poller, result, drain(receive)


# --- handler results (spec §2.3) -----------------------------------------------------


async def test_continue_keeps_polling_without_events(autojump_clock):
    resource = Resource("processing", "processing", "approved")
    poller, result, events = await run_one(
        by_status({"approved": trexec.Done("approved!")}), resource
    )
    assert result == trexec.PollSuccess(poller.id)
    assert events == ["approved!"]
    assert poller.poll_count == 3


async def test_inject_one_event_keeps_polling(autojump_clock):
    resource = Resource("review", "approved")
    handler = by_status({"review": trexec.Inject("in review"), "approved": trexec.Done("ok")})
    _, _, events = await run_one(handler, resource)
    assert events == ["in review", "ok"]


async def test_inject_a_list_sends_each_event_in_order(autojump_clock):
    resource = Resource("review", "approved")
    handler = by_status({"review": trexec.Inject(["a", "b"]), "approved": trexec.Done([])})
    _, _, events = await run_one(handler, resource)
    assert events == ["a", "b"]


async def test_done_with_one_event_sends_it_and_stops(autojump_clock):
    resource = Resource("approved")
    poller, result, events = await run_one(lambda _: trexec.Done("approved"), resource)
    assert events == ["approved"]
    assert result == trexec.PollSuccess(poller.id)
    assert len(resource.calls) == 1


async def test_done_with_a_list_sends_every_event(autojump_clock):
    _, _, events = await run_one(lambda _: trexec.Done(["x", "y"]), Resource("s"))
    assert events == ["x", "y"]


async def test_done_with_empty_list_sends_nothing(autojump_clock):
    poller, result, events = await run_one(lambda _: trexec.Done([]), Resource("s"))
    assert events == []
    assert result == trexec.PollSuccess(poller.id)
    assert trexec.Done().events == ()


async def test_a_tuple_is_one_event_not_a_list():
    assert trexec.Inject(("approved", 7)).events == (("approved", 7),)


async def test_fail_keeps_a_string_reason_as_is(autojump_clock):
    poller, result, _ = await run_one(lambda _: trexec.Fail("gateway timeout"), Resource("s"))
    assert result == trexec.PollError(poller.id, "gateway timeout")


async def test_fail_keeps_an_exception_reason_as_is(autojump_clock):
    reason = LookupError("no such payment")
    _, result, _ = await run_one(lambda _: trexec.Fail(reason), Resource("s"))
    assert isinstance(result, trexec.PollError)
    assert result.reason is reason


async def test_handler_returning_anything_else_is_a_handler_error_naming_it(autojump_clock):
    _, result, _ = await run_one(lambda _: "approved", Resource("s"))
    assert isinstance(result, trexec.PollError)
    assert isinstance(result.reason, trexec.HandlerError)
    assert "'approved'" in str(result.reason)


async def test_async_handler_is_awaited(autojump_clock):
    async def handler(status):
        await trio.sleep(0.1)
        return trexec.Done(status)

    _, _, events = await run_one(handler, Resource("approved"))
    assert events == ["approved"]


# --- errors keep their tracebacks (spec §2.7) -----------------------------------------


async def test_poll_fn_raising_is_a_poll_fn_error_with_cause_and_traceback(autojump_clock):
    async def poll():
        raise ConnectionError("refused")

    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery, poll_fn=poll, handler=by_status({}), interval=1, timeout=5, events=send
        )
        result = await poller.wait()
    assert isinstance(result, trexec.PollError)
    assert isinstance(result.reason, trexec.PollFnError)
    assert isinstance(result.reason.__cause__, ConnectionError)
    text = "".join(traceback.format_exception(result.reason))
    assert "in poll" in text
    assert "refused" in text


async def test_poll_fn_returning_a_plain_value_is_a_poll_fn_error(autojump_clock):
    _, result, _ = await run_one(by_status({}), type("R", (), {"poll": lambda self: 42})())
    assert isinstance(result, trexec.PollError)
    assert isinstance(result.reason, trexec.PollFnError)
    assert "returned 42" in str(result.reason)


async def test_handler_raising_is_a_handler_error_with_cause(autojump_clock):
    def handler(status):
        return {"known": trexec.CONTINUE}[status]

    _, result, _ = await run_one(handler, Resource("unknown"))
    assert isinstance(result.reason, trexec.HandlerError)
    assert isinstance(result.reason.__cause__, KeyError)
    assert result.reason.__cause__.__traceback__ is not None


async def test_on_timeout_raising_is_an_on_timeout_error_with_cause(autojump_clock):
    def on_timeout(info):
        raise RuntimeError("boom")

    _, result, _ = await run_one(
        by_status({}), Resource("processing"), timeout=3, on_timeout=on_timeout
    )
    assert isinstance(result.reason, trexec.OnTimeoutError)
    assert isinstance(result.reason.__cause__, RuntimeError)


# --- timeouts (spec §2.5, §2.6) -------------------------------------------------------


async def test_on_timeout_ignore_gives_timeout_ignored(autojump_clock):
    poller, result, _ = await run_one(
        by_status({}), Resource("processing"), timeout=3, on_timeout="ignore"
    )
    assert result == trexec.PollTimeoutIgnored(poller.id)


async def test_on_timeout_fail_is_the_default_and_gives_poll_timeout(autojump_clock):
    _, result, _ = await run_one(by_status({}), Resource("processing"), interval=1, timeout=3.5)
    assert isinstance(result.reason, trexec.PollTimeout)
    info = result.reason.info
    assert info == trexec.TimeoutInfo(3.5, 4, "processing")
    assert "3.500s" in str(result.reason)


async def test_on_timeout_fail_reason_gives_that_reason(autojump_clock):
    _, result, _ = await run_one(
        by_status({}), Resource("processing"), timeout=3, on_timeout=trexec.Fail("too slow")
    )
    assert result.reason == "too slow"


async def test_on_timeout_callable_gets_info_and_can_fail(autojump_clock):
    seen = []

    def on_timeout(info):
        seen.append(info)
        return trexec.Fail(f"last status {info.last_poll_result}")

    _, result, _ = await run_one(
        by_status({}), Resource("queued", "processing"), timeout=2.5, on_timeout=on_timeout
    )
    assert result.reason == "last status processing"
    assert seen == [trexec.TimeoutInfo(2.5, 3, "processing")]


async def test_on_timeout_callable_can_ignore(autojump_clock):
    poller, result, _ = await run_one(
        by_status({}), Resource("p"), timeout=2, on_timeout=lambda info: "ignore"
    )
    assert result == trexec.PollTimeoutIgnored(poller.id)


async def test_on_timeout_callable_returning_garbage_is_an_on_timeout_error(autojump_clock):
    _, result, _ = await run_one(by_status({}), Resource("p"), timeout=2, on_timeout=lambda i: 1)
    assert isinstance(result.reason, trexec.OnTimeoutError)
    assert "returned 1" in str(result.reason)


async def test_timeout_before_any_poll_returned_has_zero_count_and_none(autojump_clock):
    seen = []
    _, result, _ = await run_one(
        by_status({}),
        Resource("never", delay=100),
        timeout=5,
        on_timeout=lambda info: seen.append(info) or "ignore",
    )
    assert isinstance(result, trexec.PollTimeoutIgnored)
    assert seen == [trexec.TimeoutInfo(5.0, 0, None)]


async def test_a_poll_in_flight_at_the_deadline_is_cancelled(autojump_clock):
    cancelled = []

    async def poll():
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            cancelled.append(trio.current_time())
            raise

    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery, poll_fn=poll, handler=by_status({}), interval=1, timeout=4, events=send
        )
        result = await poller.wait()
    assert cancelled == [4.0]
    assert isinstance(result.reason, trexec.PollTimeout)


# --- timing (spec §2.2) ---------------------------------------------------------------


async def test_first_poll_at_once_then_every_interval_start_to_start(autojump_clock):
    resource = Resource("p", delay=0.25)
    await run_one(by_status({}), resource, interval=1, timeout=3.5, on_timeout="ignore")
    assert resource.calls == [0.0, 1.0, 2.0, 3.0]


async def test_a_slow_poll_delays_the_next_and_polls_never_overlap(autojump_clock):
    resource = Resource("p", delay=1.5)
    await run_one(by_status({}), resource, interval=1, timeout=5, on_timeout="ignore")
    assert resource.calls == [0.0, 1.5, 3.0, 4.5]


# --- events (spec §2.4) ---------------------------------------------------------------


async def test_injected_events_carry_command_index_branch_id_and_poller_id(autojump_clock):
    send, receive = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("ok").poll,
            handler=lambda _: trexec.Done("ev"),
            interval=1,
            timeout=5,
            events=send,
            command_index=4,
            branch_id=2,
        )
    assert receive.receive_nowait() == trexec.InjectedEvent("ev", 4, 2, poller.id)


async def test_a_closed_events_channel_stops_the_poller_with_a_poller_error(autojump_clock):
    send, receive = channel()
    receive.close()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("s").poll,
            handler=lambda _: trexec.Inject("ev"),
            interval=1,
            timeout=5,
            events=send,
        )
    result = poller.check()
    assert isinstance(result, trexec.PollError)
    assert type(result.reason) is trexec.PollerError
    assert isinstance(result.reason.__cause__, trio.BrokenResourceError)


# --- the handle (spec §2.9, §2.10, §2.11) ---------------------------------------------


async def test_check_is_none_while_pending_then_the_result(autojump_clock):
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("p", "done").poll,
            handler=by_status({"done": trexec.Done([])}),
            interval=1,
            timeout=5,
            events=send,
        )
        assert poller.check() is None
        assert not poller.done
    assert poller.check() == trexec.PollSuccess(poller.id)
    assert poller.done


async def test_wait_past_its_timeout_raises_too_slow_and_the_poller_keeps_running(
    autojump_clock,
):
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("p").poll,
            handler=by_status({}),
            interval=1,
            timeout=10,
            events=send,
            on_timeout="ignore",
        )
        with pytest.raises(trio.TooSlowError):
            await poller.wait(timeout=2)
        assert not poller.done
        assert await poller.wait() == trexec.PollTimeoutIgnored(poller.id)


async def test_wait_default_is_the_poller_timeout_plus_one_second(autojump_clock):
    async def slow_on_timeout(info):
        await trio.sleep(100)
        return "ignore"

    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("p").poll,
            handler=by_status({}),
            interval=1,
            timeout=10,
            events=send,
            on_timeout=slow_on_timeout,
        )
        with pytest.raises(trio.TooSlowError):
            await poller.wait()
        assert trio.current_time() == 11.0
        poller.stop()


async def test_stop_gives_poll_stopped_and_is_idempotent(autojump_clock):
    resource = Resource("p")
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=resource.poll,
            handler=by_status({}),
            interval=1,
            timeout=10,
            events=send,
        )
        await trio.sleep(2.5)
        poller.stop()
        poller.stop()
        assert poller.check() == trexec.PollStopped(poller.id)
        await trio.sleep(5)
    assert len(resource.calls) == 3


async def test_stop_on_a_finished_poller_keeps_its_result(autojump_clock):
    poller, result, _ = await run_one(lambda _: trexec.Done([]), Resource("s"))
    poller.stop()
    assert poller.check() == result == trexec.PollSuccess(poller.id)


async def test_stop_before_the_task_started_never_polls(autojump_clock):
    resource = Resource("p")
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=resource.poll,
            handler=by_status({}),
            interval=1,
            timeout=10,
            events=send,
        )
        poller.stop()
    assert resource.calls == []
    assert poller.check() == trexec.PollStopped(poller.id)


async def test_nothing_is_injected_after_stop_returns_even_with_a_send_in_flight(
    autojump_clock,
):
    send, receive = channel(0)  # unbuffered: every send blocks until received
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("s").poll,
            handler=lambda _: trexec.Inject(["a", "b", "c"]),
            interval=1,
            timeout=10,
            events=send,
        )
        assert await receive.receive() == trexec.InjectedEvent("a", 0, None, poller.id)
        await trio.testing.wait_all_tasks_blocked()  # the poller is blocked sending "b"
        poller.stop()
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()
        with trio.move_on_after(5):
            await receive.receive()
            pytest.fail("an event arrived after stop()")
    assert poller.check() == trexec.PollStopped(poller.id)


async def test_stop_from_inside_the_handler_sends_nothing_more(autojump_clock):
    send, receive = channel()
    holder = []

    def handler(status):
        holder[0].stop()
        return trexec.Done(["late"])

    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery, poll_fn=Resource("s").poll, handler=handler, interval=1, timeout=5, events=send
        )
        holder.append(poller)
    assert drain(receive) == []
    assert poller.check() == trexec.PollStopped(poller.id)


async def test_cancelling_the_nursery_ends_the_poller_as_stopped(autojump_clock):
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("p").poll,
            handler=by_status({}),
            interval=1,
            timeout=10,
            events=send,
        )
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    assert poller.check() == trexec.PollStopped(poller.id)


async def test_cancelled_is_never_swallowed_by_the_poller(autojump_clock):
    async def poll():
        await trio.sleep(100)

    send, _ = channel()
    with trio.move_on_after(1) as scope:
        async with trio.open_nursery() as nursery:
            trexec.start_poller(
                nursery, poll_fn=poll, handler=by_status({}), interval=1, timeout=50, events=send
            )
    assert scope.cancelled_caught
    assert trio.current_time() == 1.0


async def raises_on_cancel():
    """A poll that turns the Cancelled it gets into a plain error."""
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        raise ValueError("cleanup failed") from None


async def messy_poll():
    """A poll whose nursery raises a group mixing Cancelled with an error when cancelled."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        await raises_on_cancel()


@pytest.mark.parametrize("poll", [raises_on_cancel, messy_poll])
async def test_a_poll_raising_while_the_deadline_cancels_it_is_a_timeout(autojump_clock, poll):
    # spec §2.5: the deadline passed all the same; §2.6 decides.
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=poll,
            handler=by_status({}),
            interval=1,
            timeout=2,
            events=send,
            on_timeout="ignore",
        )
    assert poller.check() == trexec.PollTimeoutIgnored(poller.id)


@pytest.mark.parametrize("how", ["stop", "outside"])
async def test_errors_raised_while_cancelled_never_escape_into_the_nursery(autojump_clock, how):
    # spec §2.7: only Cancelled propagates, never the poll's error.
    send, _ = channel()
    with trio.move_on_after(1) as outer:
        async with trio.open_nursery() as nursery:
            poller = trexec.start_poller(
                nursery,
                poll_fn=messy_poll,
                handler=by_status({}),
                interval=1,
                timeout=20,
                events=send,
            )
            await trio.sleep(0.5)
            if how == "stop":
                poller.stop()
            else:
                await trio.sleep_forever()
    assert outer.cancelled_caught == (how == "outside")
    assert poller.check() == trexec.PollStopped(poller.id)


# --- waiting on many (spec §2.12, §1.4) -----------------------------------------------


async def test_wait_pollers_returns_ids_and_results_in_the_order_given(autojump_clock):
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        slow = trexec.start_poller(
            nursery,
            poll_fn=Resource("p", "p", "p", "done").poll,
            handler=by_status({"done": trexec.Done([])}),
            interval=1,
            timeout=10,
            events=send,
        )
        fast = trexec.start_poller(
            nursery,
            poll_fn=Resource("p").poll,
            handler=by_status({}),
            interval=1,
            timeout=2,
            events=send,
            on_timeout="ignore",
        )
        results = await trexec.wait_pollers([slow, fast])
    assert results == [
        (slow.id, trexec.PollSuccess(slow.id)),
        (fast.id, trexec.PollTimeoutIgnored(fast.id)),
    ]


async def test_wait_pollers_times_out_with_too_slow(autojump_clock):
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("p").poll,
            handler=by_status({}),
            interval=1,
            timeout=9,
            events=send,
        )
        with pytest.raises(trio.TooSlowError):
            await trexec.wait_pollers([poller], timeout=1)
        poller.stop()


async def test_wait_pollers_of_nothing_is_empty():
    assert await trexec.wait_pollers([]) == []


async def test_pollers_work_with_wait_all_and_as_completed(autojump_clock):
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        pollers = [
            trexec.start_poller(
                nursery,
                poll_fn=Resource("p").poll,
                handler=by_status({}),
                interval=1,
                timeout=t,
                events=send,
                on_timeout="ignore",
            )
            for t in (3, 1)
        ]
        order = [p async for p in trexec.as_completed(pollers)]
        outcomes = await trexec.wait_all(pollers)
    assert order == [pollers[1], pollers[0]]
    assert [o.unwrap() for o in outcomes] == [trexec.PollTimeoutIgnored(p.id) for p in pollers]


# --- validation (spec §2.1) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("poll_fn", None),
        ("handler", "nope"),
        ("interval", 0),
        ("interval", -1),
        ("timeout", math.nan),
        ("timeout", "5"),
        ("events", []),
        ("command_index", -1),
        ("branch_id", "b"),
        ("on_timeout", "retry"),
    ],
)
async def test_bad_arguments_raise_invalid_argument_naming_them(option, value):
    send, _ = channel()
    opts = {
        "poll_fn": Resource("p").poll,
        "handler": by_status({}),
        "interval": 1,
        "timeout": 5,
        "events": send,
    }
    opts[option] = value
    async with trio.open_nursery() as nursery:
        with pytest.raises(trexec.InvalidArgument, match=option):
            trexec.start_poller(nursery, **opts)


async def test_start_poller_needs_a_nursery():
    send, _ = channel()
    with pytest.raises(trexec.InvalidArgument, match="nursery"):
        trexec.start_poller(
            None,
            poll_fn=Resource("p").poll,
            handler=by_status({}),
            interval=1,
            timeout=1,
            events=send,
        )


async def test_wait_pollers_rejects_non_pollers():
    with pytest.raises(trexec.InvalidArgument, match="pollers"):
        await trexec.wait_pollers([object()])


# --- the shared timer (spec §2.13) ----------------------------------------------------


async def test_pollers_in_one_nursery_share_one_timer_task_that_ends_with_them(
    autojump_clock,
):
    send, _ = channel()
    async with trio.open_nursery() as nursery:
        pollers = [
            trexec.start_poller(
                nursery,
                poll_fn=Resource("p").poll,
                handler=by_status({}),
                interval=1,
                timeout=t,
                events=send,
                on_timeout="ignore",
            )
            for t in (2, 3)
        ]
        assert len(nursery.child_tasks) == 3  # two pollers, one timer
        await trexec.wait_pollers(pollers)
        await trio.testing.wait_all_tasks_blocked()
        assert len(nursery.child_tasks) == 0
        # A poller started later gets a new timer and polls on time.
        resource = Resource("p")
        late = trexec.start_poller(
            nursery,
            poll_fn=resource.poll,
            handler=by_status({}),
            interval=1,
            timeout=2.5,
            events=send,
            on_timeout="ignore",
        )
        await late.wait()
    assert resource.calls == [3.0, 4.0, 5.0]


async def test_a_poller_due_sooner_wakes_the_shared_timer_earlier(autojump_clock):
    send, _ = channel()
    slow, fast = Resource("p"), Resource("p")
    async with trio.open_nursery() as nursery:
        for resource, interval in ((slow, 10), (fast, 1)):
            trexec.start_poller(
                nursery,
                poll_fn=resource.poll,
                handler=by_status({}),
                interval=interval,
                timeout=3.5,
                events=send,
                on_timeout="ignore",
            )
            await trio.sleep(0.5)
    assert slow.calls == [0.0]
    assert fast.calls == [0.5, 1.5, 2.5, 3.5]


# --- the user guide's examples (docs/pollers.md) run as they are ---------------------------

DOC = pathlib.Path(__file__).parent.parent / "docs" / "pollers.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_user_guide_example_runs(number):
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(EXAMPLES[number], f"{DOC.name} example {number}", "exec"), namespace)
    trio.run(namespace["main"], clock=trio.testing.MockClock(autojump_threshold=0))


async def test_wait_with_zero_timeout_on_a_finished_poller_returns_the_result(autojump_clock):
    poller, result, _ = await run_one(lambda _: trexec.Done([]), Resource("s"))
    assert await poller.wait(timeout=0) == result
    assert await trexec.wait_pollers([poller], timeout=0) == [(poller.id, result)]


class FailingChannel(trio.abc.SendChannel):
    async def send(self, value):
        raise ValueError("disk full")

    async def aclose(self):
        pass


async def test_a_channel_raising_on_send_stops_the_poller_with_a_poller_error(autojump_clock):
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=Resource("s").poll,
            handler=lambda _: trexec.Inject("ev"),
            interval=1,
            timeout=5,
            events=FailingChannel(),
        )
    result = poller.check()
    assert type(result.reason) is trexec.PollerError
    assert isinstance(result.reason.__cause__, ValueError)


def test_continue_pickles_to_itself():
    assert pickle.loads(pickle.dumps(trexec.CONTINUE)) is trexec.CONTINUE
    assert repr(trexec.CONTINUE) == "trexec.CONTINUE"


async def test_a_finished_poller_emits_a_telemetry_stop_event(autojump_clock):
    seen = []
    detach = trexec.telemetry.attach(lambda *event: seen.append(event), prefix=("trexec", "poller"))
    try:
        poller, _, _ = await run_one(
            by_status({"done": trexec.Done([])}), Resource("p", "done"), command_index=2
        )
    finally:
        detach()
    assert seen == [
        (
            ("trexec", "poller", "stop"),
            {"duration": 1.0, "poll_count": 2},
            {
                "poller_id": poller.id,
                "command_index": 2,
                "branch_id": None,
                "result": "PollSuccess",
            },
        )
    ]
