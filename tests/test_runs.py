"""start_run, Run, RunHandle and outcomes (spec §4.2-§4.5)."""

from __future__ import annotations

import logging

import outcome
import pytest
import trio
import trio.testing

import trexec


class LogRecorder(trexec.Recorder):
    """Appends every call to a shared log, tagged with its name."""

    def __init__(self, name, log, *, finalize_delay=0.0):
        self.name = name
        self.log = log
        self.finalize_delay = finalize_delay
        self.events = []
        self.finalized = []

    async def start(self, run_id):
        self.log.append((self.name, "start", run_id))

    async def event(self, event):
        self.events.append(event)

    async def finalize(self, outcome):
        if self.finalize_delay:
            await trio.sleep(self.finalize_delay)
        self.finalized.append(outcome)
        self.log.append((self.name, "finalize", type(outcome).__name__))


class Boom(Exception):
    pass


# --- recorders see everything, in order (spec §4.3) --------------------------------


async def test_recorders_start_before_run_fn_and_see_the_first_emit():
    log = []
    recorders = [LogRecorder("a", log), LogRecorder("b", log)]

    async def run_fn(run):
        log.append(("run_fn", "begins", run.id))
        await run.emit("first")

    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn, run_id="r", recorders=recorders)
        assert log == [("a", "start", "r"), ("b", "start", "r")]
    assert log[2] == ("run_fn", "begins", "r")
    assert [r.events for r in recorders] == [["first"], ["first"]]
    assert handle.check() == trexec.RunCompleted(None)


async def test_every_recorder_sees_events_in_emission_order_even_from_several_tasks():
    recorders = [trexec.MemoryRecorder() for _ in range(3)]
    emitted = []

    async def run_fn(run):
        async def emitter(k):
            for i in range(50):
                emitted.append((k, i))
                await run.emit((k, i))

        async with trio.open_nursery() as inner:
            for k in range(3):
                inner.start_soon(emitter, k)

    async with trio.open_nursery() as nursery:
        await trexec.start_run(nursery, run_fn, recorders=recorders, buffer=4)
    assert len(recorders[0].events) == 150
    assert recorders[0].events == recorders[1].events == recorders[2].events
    for k in range(3):  # each emitter's events in its own order
        assert [e for e in recorders[0].events if e[0] == k] == [(k, i) for i in range(50)]


async def test_slow_recorder_applies_backpressure_within_its_buffer(autojump_clock):
    class Slow(trexec.MemoryRecorder):
        async def event(self, event):
            await trio.sleep(1)
            await super().event(event)

    slow = Slow()
    lags = []

    async def run_fn(run):
        for i in range(20):
            await run.emit(i)
            lags.append(i + 1 - len(slow.events))

    async with trio.open_nursery() as nursery:
        await trexec.start_run(nursery, run_fn, recorders=[slow], buffer=3)
    assert slow.events == list(range(20))  # nothing dropped
    # At most `buffer` events wait, plus the one the recorder is handling.
    assert max(lags) == 3 + 1


# --- finalize exactly once, whatever happens (spec §4.4) -----------------------------


async def _returns(run):
    await run.emit(1)
    return "ok"


async def _raises_run_error(run):
    await run.emit(1)
    raise trexec.RunError(["bad input"])


async def _calls_fail(run):
    await run.emit(1)
    run.fail(["bad input"])
    await trio.sleep_forever()


async def _crashes(run):
    await run.emit(1)
    raise Boom("crash")


async def _waits_forever(run):
    await run.emit(1)
    await trio.sleep_forever()


@pytest.mark.parametrize(
    ("run_fn", "how", "expected"),
    [
        (_returns, None, trexec.RunCompleted("ok")),
        (_raises_run_error, None, trexec.RunFailed(["bad input"])),
        (_calls_fail, None, trexec.RunFailed(["bad input"])),
        (_crashes, None, trexec.RunCrashed),
        (_waits_forever, "handle.cancel", trexec.RunCancelled()),
        (_waits_forever, "outer cancel", trexec.RunCancelled()),
    ],
    ids=["returned", "RunError", "run.fail", "crashed", "handle.cancel", "outer-cancel"],
)
async def test_each_recorder_finalizes_exactly_once(autojump_clock, run_fn, how, expected):
    log = []
    recorders = [LogRecorder("a", log, finalize_delay=1), LogRecorder("b", log)]
    handle = None
    with trio.CancelScope() as outer:
        async with trio.open_nursery() as nursery:
            handle = await trexec.start_run(nursery, run_fn, recorders=recorders)
            await trio.sleep(5)
            if how == "handle.cancel":
                handle.cancel()
            elif how == "outer cancel":
                outer.cancel()
    assert handle.done
    for recorder in recorders:
        assert recorder.events == [1]
        assert len(recorder.finalized) == 1
        if isinstance(expected, type):
            assert isinstance(recorder.finalized[0], expected)
        else:
            assert recorder.finalized[0] == expected
    assert handle.check() == recorders[0].finalized[0]
    assert handle.recorder_errors == []


async def test_crashed_run_keeps_the_exception_and_does_not_raise_into_the_nursery():
    error = Boom("crash")

    async def run_fn(run):
        raise error

    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn)
    result = await handle.wait()
    assert result == trexec.RunCrashed(error)
    assert result.exception is error


async def test_outer_cancellation_propagates_after_recorders_finalize(autojump_clock):
    recorder = LogRecorder("a", [], finalize_delay=3)
    with trio.CancelScope() as outer:
        async with trio.open_nursery() as nursery:
            handle = await trexec.start_run(nursery, _waits_forever, recorders=[recorder])
            await trio.sleep(1)
            outer.cancel()
            await trio.sleep(1)
            pytest.fail("not cancelled")  # pragma: no cover
    assert outer.cancelled_caught
    assert recorder.finalized == [trexec.RunCancelled()]
    assert handle.check() == trexec.RunCancelled()


async def test_wait_returns_only_after_every_recorder_finalized(autojump_clock):
    recorders = [LogRecorder("slow", [], finalize_delay=7), LogRecorder("quick", [])]
    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, _returns, recorders=recorders)
        result = await handle.wait()
        assert [r.finalized for r in recorders] == [[result], [result]]


async def test_keyboard_interrupt_crashes_the_run_and_is_raised_again():
    recorder = trexec.MemoryRecorder()

    async def run_fn(run):
        await run.emit("before")
        raise KeyboardInterrupt

    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True, allow_unwrapped=True):
        async with trio.open_nursery() as nursery:
            await trexec.start_run(nursery, run_fn, recorders=[recorder])
    assert recorder.events == ["before"]
    assert isinstance(recorder.outcome, trexec.RunCrashed)
    assert isinstance(recorder.outcome.exception, KeyboardInterrupt)


async def test_finalize_is_bounded_by_finalize_timeout(autojump_clock):
    class Stuck(trexec.Recorder):
        async def finalize(self, outcome):
            await trio.sleep_forever()

    other = trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(
            nursery, _returns, recorders=[Stuck(), other], finalize_timeout=2.0
        )
        await handle.wait()
    assert trio.current_time() == pytest.approx(2.0)
    assert other.outcome == trexec.RunCompleted("ok")
    [failure] = handle.recorder_failures
    assert failure.stage == "finalize"
    assert isinstance(failure.error, trio.TooSlowError)


async def test_recorder_stuck_on_an_event_still_finalizes(autojump_clock):
    class StuckOnEvents(trexec.MemoryRecorder):
        async def event(self, event):
            await trio.sleep_forever()

    stuck = StuckOnEvents()

    async def run_fn(run):
        await run.emit(1)
        await run.emit(2)  # buffered
        return "done"

    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn, recorders=[stuck], finalize_timeout=1)
    assert stuck.outcome == trexec.RunCompleted("done")
    [failure] = handle.recorder_failures
    assert failure.stage == "event"
    assert isinstance(failure.error, trio.TooSlowError)


# --- recorder errors never break the run (spec §4.4.4) -------------------------------


async def test_recorder_errors_are_kept_and_logged_and_break_nothing(caplog):
    class Flaky(trexec.MemoryRecorder):
        async def event(self, event):
            if event == 2:
                raise Boom("bad event")
            await super().event(event)

        async def finalize(self, outcome):
            raise Boom("bad finalize")

    flaky, good = Flaky(), trexec.MemoryRecorder()

    async def run_fn(run):
        for i in range(4):
            await run.emit(i)
        return "fine"

    with caplog.at_level(logging.ERROR, logger="trexec.runs"):
        async with trio.open_nursery() as nursery:
            handle = await trexec.start_run(nursery, run_fn, recorders=[flaky, good])
    assert handle.check() == trexec.RunCompleted("fine")
    assert good.events == [0, 1, 2, 3]
    assert good.outcome == trexec.RunCompleted("fine")
    assert flaky.events == [0, 1, 3]  # kept getting events after the error
    assert [str(e) for e in handle.recorder_errors] == ["bad event", "bad finalize"]
    assert [f.stage for f in handle.recorder_failures] == ["event", "finalize"]
    assert all(f.recorder is flaky for f in handle.recorder_failures)
    assert "raised by recorder" in handle.recorder_errors[0].__notes__[0]
    messages = [r.getMessage() for r in caplog.records if r.name == "trexec.runs"]
    assert len(messages) == 2
    assert "raised in event() for run" in messages[0]
    assert "raised in finalize() for run" in messages[1]


async def test_recorder_failing_to_start_is_left_out_and_the_run_still_runs():
    class NoStart(trexec.MemoryRecorder):
        async def start(self, run_id):
            raise Boom("no disk")

    left_out, good = NoStart(), trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, _returns, recorders=[left_out, good])
    assert handle.check() == trexec.RunCompleted("ok")
    assert good.events == [1]
    assert left_out.events == [] and left_out.outcome is None  # never finalized
    [failure] = handle.recorder_failures
    assert (failure.recorder, failure.stage, str(failure.error)) == (left_out, "start", "no disk")


async def test_required_recorder_failing_to_start_refuses_the_run():
    class Required(trexec.Recorder):
        required = True

        async def start(self, run_id):
            raise Boom("audit log unavailable")

    log = []
    before, after = LogRecorder("before", log), LogRecorder("after", log)
    ran = False

    async def run_fn(run):
        nonlocal ran
        ran = True

    bus = trexec.RunBus()
    async with trio.open_nursery() as nursery:
        with pytest.raises(trexec.RecorderStartError, match="audit log unavailable") as info:
            await trexec.start_run(
                nursery, run_fn, run_id="x", recorders=[before, Required(), after], bus=bus
            )
    assert isinstance(info.value.__cause__, Boom)
    assert not ran
    # Recorders already started are finalized (as cancelled); later ones never start.
    assert before.finalized == [trexec.RunCancelled()]
    assert [entry[0] for entry in log] == ["before", "before"]
    assert bus.subscribers(trexec.run_topic("x")) == 0
    async with trio.open_nursery() as nursery:  # the id is free again
        await trexec.start_run(nursery, run_fn, run_id="x", bus=bus)


async def test_cancelled_while_recorders_start_finalizes_those_started(autojump_clock):
    class SlowStart(trexec.MemoryRecorder):
        async def start(self, run_id):
            await trio.sleep(10)

    first = trexec.MemoryRecorder()
    ran = False

    async def run_fn(run):
        nonlocal ran
        ran = True

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(1):
            await trexec.start_run(nursery, run_fn, recorders=[first, SlowStart()])
    assert not ran
    assert first.outcome == trexec.RunCancelled()


# --- outcomes (spec §4.2) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([trexec.ActionCancelled("x")], trexec.RunCancelled()),
        ([{"kind": "cancelled"}, {"kind": "cancelled"}], trexec.RunCancelled()),
        (
            [{"kind": "cancelled"}, "disk full"],
            trexec.RunFailed([{"kind": "cancelled"}, "disk full"]),
        ),
        ([], trexec.RunFailed([])),
        ("single", trexec.RunFailed(["single"])),
    ],
    ids=["all-cancelled", "marked-cancelled", "mixed", "empty", "single"],
)
async def test_failure_made_only_of_cancellations_is_a_cancellation(errors, expected):
    async def via_fail(run):
        run.fail(errors)

    async def via_raise(run):
        raise trexec.RunError(errors)

    async with trio.open_nursery() as nursery:
        first = await trexec.start_run(nursery, via_fail)
        second = await trexec.start_run(nursery, via_raise)
    assert first.check() == expected
    assert second.check() == expected


async def test_run_error_from_run_fn_own_nursery_is_a_failure():
    async def run_fn(run):
        async with trio.open_nursery() as inner:

            async def child():
                raise trexec.RunError("child failed")

            inner.start_soon(child)

    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn)
    assert handle.check() == trexec.RunFailed(["child failed"])


async def test_first_fail_wins_over_later_exceptions():
    async def run_fn(run):
        run.fail("first")
        run.fail("second")
        try:
            await trio.sleep_forever()
        finally:
            raise Boom("in cleanup")

    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn)
    assert handle.check() == trexec.RunFailed(["first"])


# --- handle and run ------------------------------------------------------------------


async def test_handle_wait_timeout_leaves_the_run_going(autojump_clock):
    async def run_fn(run):
        await trio.sleep(10)
        return "late"

    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn, run_id=5)
        assert handle.id == 5
        assert handle.check() is None
        with pytest.raises(trio.TooSlowError):
            await handle.wait(timeout=1)
        assert await handle.wait() == trexec.RunCompleted("late")
        assert not handle.recorder_errors
        assert "RunCompleted" in repr(handle)


async def test_run_handles_work_with_wait_all_and_as_completed(autojump_clock):
    async def sleeper(run):
        await trio.sleep(run.id)
        return run.id

    async with trio.open_nursery() as nursery:
        handles = [await trexec.start_run(nursery, sleeper, run_id=i) for i in (3, 1, 2)]
        order = [h.id async for h in trexec.as_completed(handles)]
        results = await trexec.wait_all(handles)
    assert order == [1, 2, 3]
    assert results == [outcome.Value(trexec.RunCompleted(i)) for i in (3, 1, 2)]


async def test_cancel_before_run_fn_gets_going_is_a_cancellation():
    async def run_fn(run):
        await run.emit("never seen")

    recorder = trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn, recorders=[recorder])
        handle.cancel()
        handle.cancel()  # idempotent
    assert handle.check() == trexec.RunCancelled()
    assert recorder.events == []
    assert recorder.outcome == trexec.RunCancelled()


async def test_emit_after_the_run_ended_and_emit_of_an_outcome_are_refused():
    kept = []

    async def run_fn(run):
        kept.append(run)
        with pytest.raises(trexec.InvalidArgument, match="event"):
            await run.emit(trexec.RunCompleted(1))

    async with trio.open_nursery() as nursery:
        await trexec.start_run(nursery, run_fn, run_id="done")
    with pytest.raises(trio.ClosedResourceError, match="has ended"):
        await kept[0].emit("late")
    assert repr(kept[0]) == "<trexec.Run id='done'>"
    assert kept[0].topic == "run:done"


async def test_other_subscribers_of_the_topic_see_events_then_the_outcome():
    bus = trexec.RunBus()
    async with bus.subscribe(trexec.run_topic("r")) as events:
        async with trio.open_nursery() as nursery:
            await trexec.start_run(nursery, _returns, run_id="r", bus=bus)
        assert [events.receive_nowait(), events.receive_nowait()] == [1, trexec.RunCompleted("ok")]
        assert bus.subscribers(trexec.run_topic("r")) == 1
    assert bus.subscribers(trexec.run_topic("r")) == 0


async def test_run_id_defaults_to_a_fresh_uuid_and_must_be_unique_while_running():
    bus = trexec.RunBus()
    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, _waits_forever, bus=bus)
        assert isinstance(handle.id, str) and len(handle.id) == 32
        with pytest.raises(trexec.InvalidArgument, match="run_id"):
            await trexec.start_run(nursery, _returns, run_id=handle.id, bus=bus)
        handle.cancel()


async def test_run_telemetry_reports_start_and_stop():
    seen = []
    detach = trexec.telemetry.attach(
        lambda name, m, meta: seen.append((name, meta)), prefix=("trexec", "run")
    )
    try:
        async with trio.open_nursery() as nursery:
            await trexec.start_run(nursery, _returns, run_id="t")
    finally:
        detach()
    assert seen == [
        (("trexec", "run", "start"), {"run_id": "t"}),
        (("trexec", "run", "stop"), {"run_id": "t", "outcome": "completed"}),
    ]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"nursery": "n"}, "nursery"),
        ({"run_fn": 3}, "run_fn"),
        ({"recorders": "rec"}, "recorders"),
        ({"recorders": [object()]}, "recorders"),
        ({"recorders": [trexec.MemoryRecorder]}, "recorders=<class 'trexec.MemoryRecorder'>"),
        ({"buffer": -1}, "buffer"),
        ({"finalize_timeout": 0}, "finalize_timeout"),
        ({"run_id": ""}, "run_id"),
        ({"bus": {}}, "bus"),
    ],
)
async def test_start_run_validates_its_arguments(kwargs, name):
    async with trio.open_nursery() as nursery:
        args = {"nursery": nursery, "run_fn": _returns, **kwargs}
        with pytest.raises(trexec.InvalidArgument, match=name):
            await trexec.start_run(args.pop("nursery"), args.pop("run_fn"), **args)


@pytest.mark.parametrize("errors", ["card declined", b"x", None, 3, {"kind": "x"}])
def test_run_failed_needs_a_list_of_errors(errors):
    # A str used to become a list of its letters, None a bare TypeError.
    with pytest.raises(trexec.InvalidArgument, match=r"^errors=.*: expected a list of errors"):
        trexec.RunFailed(errors)


async def test_the_same_recorder_twice_is_refused():
    recorder = trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        with pytest.raises(trexec.InvalidArgument, match="at most once"):
            await trexec.start_run(nursery, _returns, recorders=[recorder, recorder])


# --- following a run published by someone else (spec §4.5) ---------------------------


async def test_follow_run_drives_recorders_from_the_topic():
    bus = trexec.RunBus()
    recorder = trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        handle = await trexec.follow_run(nursery, bus, 42, [recorder])
        topic = trexec.run_topic(42)
        await bus.publish(topic, {"step": "reserve"})
        await bus.publish(topic, {"step": "charge"})
        await bus.publish(topic, trexec.RunFailed(["card declined"]))
        await bus.publish(topic, "after the end: not delivered")
        assert await handle.wait() == trexec.RunFailed(["card declined"])
    assert recorder.run_id == 42
    assert recorder.events == [{"step": "reserve"}, {"step": "charge"}]
    assert recorder.outcome == trexec.RunFailed(["card declined"])
    assert bus.subscribers(topic) == 0


async def test_follow_run_cancelled_finalizes_recorders_as_cancelled():
    bus = trexec.RunBus()
    recorder = trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        handle = await trexec.follow_run(nursery, bus, "wf", [recorder])
        await bus.publish(trexec.run_topic("wf"), "started")
        handle.cancel()
    assert recorder.events == ["started"]
    assert recorder.outcome == trexec.RunCancelled()
    assert handle.check() == trexec.RunCancelled()


async def test_follow_run_with_no_recorders_and_a_bad_bus():
    async with trio.open_nursery() as nursery:
        with pytest.raises(trexec.InvalidArgument, match="bus"):
            await trexec.follow_run(nursery, None, "x", [])
        handle = await trexec.follow_run(nursery, trexec.RunBus(), "x", [])
        handle.cancel()
    assert handle.check() == trexec.RunCancelled()


async def test_follow_run_cancelled_from_outside_finalizes_then_propagates(autojump_clock):
    bus = trexec.RunBus()
    recorder = LogRecorder("a", [], finalize_delay=2)
    with trio.move_on_after(1) as outer:
        async with trio.open_nursery() as nursery:
            handle = await trexec.follow_run(nursery, bus, "wf", [recorder])
            await bus.publish(trexec.run_topic("wf"), "started")
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert recorder.events == ["started"]
    assert recorder.finalized == [trexec.RunCancelled()]
    assert handle.check() == trexec.RunCancelled()


async def test_error_during_outside_cancellation_is_a_crash_and_cancellation_still_propagates(
    autojump_clock,
):
    recorder = trexec.MemoryRecorder()

    async def run_fn(run):
        async with trio.open_nursery() as inner:

            async def cleanup_fails():
                try:
                    await trio.sleep_forever()
                finally:
                    raise Boom("cleanup failed")

            inner.start_soon(cleanup_fails)
            await trio.sleep_forever()

    with trio.move_on_after(1) as outer:
        async with trio.open_nursery() as nursery:
            handle = await trexec.start_run(nursery, run_fn, recorders=[recorder])
    assert outer.cancelled_caught  # only the cancellation went up, and was caught
    assert isinstance(recorder.outcome, trexec.RunCrashed)
    assert recorder.outcome.exception.split(Boom)[0] is not None
    assert handle.check() is recorder.outcome


async def test_outside_cancellation_through_run_fn_own_nursery_is_a_cancellation(autojump_clock):
    recorder = trexec.MemoryRecorder()

    async def run_fn(run):
        async with trio.open_nursery() as inner:
            for _ in range(3):
                inner.start_soon(trio.sleep_forever)
            await run.emit("children started")

    with trio.move_on_after(1) as outer:
        async with trio.open_nursery() as nursery:
            await trexec.start_run(nursery, run_fn, recorders=[recorder])
    assert outer.cancelled_caught
    assert recorder.events == ["children started"]
    assert recorder.outcome == trexec.RunCancelled()


async def test_many_runs_ending_every_way_finalize_each_recorder_once(autojump_clock):
    # Seeded mix of endings and cancellation times; every recorder must see its
    # run's events in order, then exactly one finalize with the run's outcome.
    import random

    rng = random.Random(4)
    bus = trexec.RunBus()
    runs = []

    async def run_fn(run, plan):
        for i in range(plan["events"]):
            await run.emit(i)
            await trio.sleep(plan["pace"])
        ending = plan["ending"]
        if ending == "fail":
            run.fail(["no"])
        elif ending == "raise":
            raise trexec.RunError("no")
        elif ending == "crash":
            raise Boom("crash")
        elif ending == "hang":
            await trio.sleep_forever()
        return "ok"

    with trio.move_on_after(50):
        async with trio.open_nursery() as nursery:
            for n in range(60):
                plan = {
                    "events": rng.randrange(0, 20),
                    "pace": rng.choice([0, 0.1, 1]),
                    "ending": rng.choice(["return", "fail", "raise", "crash", "hang"]),
                }
                recorders = [
                    LogRecorder(n, [], finalize_delay=rng.choice([0, 2])) for _ in range(3)
                ]
                handle = await trexec.start_run(
                    nursery,
                    lambda run, plan=plan: run_fn(run, plan),
                    run_id=n,
                    recorders=recorders,
                    bus=bus,
                    buffer=rng.choice([0, 1, 8]),
                )
                runs.append((handle, recorders))
                if rng.random() < 0.2:
                    nursery.start_soon(_cancel_later, handle, rng.choice([0, 0.5, 3]))
    assert len(runs) == 60
    assert {type(handle.check()) for handle, _ in runs} == {
        trexec.RunCompleted,
        trexec.RunFailed,
        trexec.RunCancelled,
        trexec.RunCrashed,
    }
    for handle, recorders in runs:
        result = handle.check()
        assert result is not None
        for recorder in recorders:
            assert recorder.finalized == [result]
            assert recorder.events == list(range(len(recorder.events)))
    assert bus.subscribers(trexec.run_topic(0)) == 0


async def _cancel_later(handle, delay):
    await trio.sleep(delay)
    handle.cancel()


async def test_start_run_is_a_checkpoint_even_without_recorders() -> None:
    """spec §0.2: a caller already cancelled never starts a run."""
    ran = []

    async def run_fn(run: trexec.Run) -> None:
        ran.append(run.id)

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            scope.cancel()
            await trexec.start_run(nursery, run_fn)
        assert scope.cancelled_caught
    assert ran == []
