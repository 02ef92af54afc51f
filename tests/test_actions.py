"""Actions (spec §1): run_action, start_action, ActionHandle, through the public API."""

from __future__ import annotations

import functools
import pathlib
import re
import traceback

import attrs
import outcome
import pytest
import trio
import trio.testing

import trexec


async def echo(params, context):
    return params


async def boom(params, context):
    raise ValueError("card declined")


def sleeper(seconds, result="slept"):
    async def sleep(params, context):
        await trio.sleep(seconds)
        return result

    return sleep


class Flaky:
    """An action that fails ``failures`` times, then returns ``"ok"``; records when
    each attempt started."""

    def __init__(self, failures, exc=ValueError):
        self.failures = failures
        self.exc = exc
        self.starts = []

    async def __call__(self, params, context):
        self.starts.append(trio.current_time())
        if len(self.starts) <= self.failures:
            raise self.exc(f"attempt {len(self.starts)}")
        return "ok"


# --- run_action: results and errors (spec §1.1, §1.2) ---------------------------


async def test_run_action_returns_the_result():
    assert await trexec.run_action(echo, {"a": 1}) == {"a": 1}


async def test_params_and_context_default_to_empty_dicts():
    seen = []

    async def record(params, context):
        seen.append((params, context))

    await trexec.run_action(record)
    assert seen == [({}, {})]


async def test_context_is_passed_as_given():
    context = {"user": "ada"}

    async def whose(params, ctx):
        return ctx

    assert await trexec.run_action(whose, None, context) is context


async def test_failure_raises_action_failed_with_cause_and_traceback():
    with pytest.raises(trexec.ActionFailed, match="card declined") as info:
        await trexec.run_action(boom)
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    frames = [frame.name for frame in traceback.extract_tb(cause.__traceback__)]
    assert frames[-1] == "boom"
    assert info.value.attempts == 1


async def test_timeout_raises_action_timeout(autojump_clock):
    with pytest.raises(trexec.ActionTimeout, match=r"timed out after 1\.0s") as info:
        await trexec.run_action(sleeper(5), timeout=1)
    assert info.value.attempts == 1
    assert trio.current_time() == pytest.approx(1)


async def test_action_that_finishes_in_time_returns(autojump_clock):
    assert await trexec.run_action(sleeper(1), timeout=2) == "slept"


async def test_keyboard_interrupt_is_not_wrapped():
    async def interrupt(params, context):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await trexec.run_action(interrupt)


async def test_outside_cancellation_propagates_unwrapped(autojump_clock):
    with trio.move_on_after(1) as scope:
        await trexec.run_action(sleeper(5), retries=3)
    assert scope.cancelled_caught


async def test_action_exception_group_is_an_action_failure():
    async def group(params, context):
        raise ExceptionGroup("many", [ValueError("a"), KeyError("b")])

    with pytest.raises(trexec.ActionFailed) as info:
        await trexec.run_action(group)
    assert isinstance(info.value.__cause__, ExceptionGroup)


# --- params (spec §1.1) ----------------------------------------------------------


@attrs.frozen
class ChargeParams:
    amount: int
    currency: str = attrs.field(default="EUR", validator=attrs.validators.in_(["EUR", "USD"]))


class Charge(trexec.Action):
    name = "charge"
    Params = ChargeParams

    def __init__(self):
        self.runs = []
        self.compensations = []

    async def run(self, params, context):
        self.runs.append(params)
        if params.amount > 100:
            raise ValueError("over limit")
        return f"charged {params.amount} {params.currency}"

    async def compensate(self, error, params, context):
        self.compensations.append((error, params))
        return "refunded"


async def test_params_are_converted_to_the_params_class():
    charge = Charge()
    assert await trexec.run_action(charge, {"amount": "12"}) == "charged 12 EUR"
    assert charge.runs == [ChargeParams(12, "EUR")]


async def test_a_params_instance_is_accepted_as_is():
    params = ChargeParams(5, "USD")
    charge = Charge()
    await trexec.run_action(charge, params)
    assert charge.runs[0] is params


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"amount": "lots"}, r"expected int @ \$\.amount"),
        ({}, r"required field missing @ \$\.amount"),
        ({"amount": 1, "currency": "XYZ"}, r"'currency' must be in"),
        (42, r"params=42: expected a mapping or a ChargeParams instance"),
    ],
)
async def test_invalid_params_name_the_field_and_never_run(params, field):
    charge = Charge()
    with pytest.raises(trexec.InvalidParams, match=field) as info:
        await trexec.run_action(charge, params, retries=2)
    assert charge.runs == []
    assert charge.compensations == []
    assert info.value.attempts == 0


async def test_an_action_subclass_is_instantiated_per_run():
    class Hello(trexec.Action):
        async def run(self, params, context):
            return f"hello {params['who']}"

    assert Hello.name == "Hello"
    assert await trexec.run_action(Hello, {"who": "ada"}) == "hello ada"


async def test_start_action_with_invalid_params_gives_a_finished_handle():
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, Charge(), {"amount": "x"})
        assert handle.done
        with pytest.raises(trexec.InvalidParams):
            await handle.wait()


async def test_invalid_params_handle_is_named_after_the_action():
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, Charge, {"amount": "x"})
    assert handle.name == "charge"
    assert "'charge'" in repr(handle)


def test_params_that_is_not_an_attrs_class_is_rejected():
    with pytest.raises(trexec.InvalidArgument, match=r"Bad\.Params=<class 'dict'>"):

        class Bad(trexec.Action):
            Params = dict


# --- retries and backoff (spec §1.3) ---------------------------------------------


async def test_retries_rerun_after_failure_with_backoff_delays(autojump_clock):
    flaky = Flaky(failures=3)
    backoff = trexec.Backoff(initial=1, factor=2, max=3)
    assert await trexec.run_action(flaky, retries=3, backoff=backoff) == "ok"
    gaps = [b - a for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)]
    assert gaps == pytest.approx([1, 2, 3])


async def test_handle_counts_attempts_as_they_start(autojump_clock):
    flaky = Flaky(failures=2)
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(
            nursery, flaky, retries=2, backoff=trexec.Backoff(initial=1, factor=1)
        )
        assert handle.attempts == 0
        await trio.sleep(0.5)
        assert handle.attempts == 1
        await trio.sleep(1)
        assert handle.attempts == 2
    assert handle.attempts == 3
    assert handle.check().unwrap() == "ok"


async def test_retries_exhausted_raise_the_last_failure(autojump_clock):
    flaky = Flaky(failures=5)
    with pytest.raises(trexec.ActionFailed, match=r"attempt 3 \(attempt 3 of 3\)") as info:
        await trexec.run_action(flaky, retries=2)
    assert info.value.attempts == 3
    assert len(flaky.starts) == 3


async def test_timeouts_are_retried_and_apply_per_attempt(autojump_clock):
    attempts = []

    async def slow_then_fast(params, context):
        attempts.append(trio.current_time())
        await trio.sleep(10 if len(attempts) < 3 else 0.5)
        return "fast"

    backoff = trexec.Backoff(initial=1, factor=1)
    assert await trexec.run_action(slow_then_fast, timeout=1, retries=2, backoff=backoff) == "fast"
    assert attempts == pytest.approx([0, 2, 4])


async def test_invalid_params_are_not_retried():
    charge = Charge()
    with pytest.raises(trexec.InvalidParams):
        await trexec.run_action(charge, {"amount": None}, retries=5)
    assert charge.runs == []


async def test_cancellation_is_not_retried(autojump_clock):
    flaky = Flaky(failures=0)

    async def slow(params, context):
        await flaky(params, context)
        await trio.sleep(10)

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, slow, retries=3)
        await trio.sleep(1)
        handle.cancel()
    with pytest.raises(trexec.ActionCancelled):
        await handle.wait()
    assert len(flaky.starts) == 1


# --- compensation (spec §1.7) ----------------------------------------------------


async def test_compensation_runs_once_after_the_last_failure(autojump_clock):
    charge = Charge()
    with pytest.raises(trexec.ActionFailed) as info:
        await trexec.run_action(charge, {"amount": 500}, retries=2)
    assert len(charge.runs) == 3
    assert len(charge.compensations) == 1
    error, params = charge.compensations[0]
    assert error is info.value
    assert params == ChargeParams(500)
    assert info.value.compensation.unwrap() == "refunded"


async def test_compensation_never_runs_after_success():
    charge = Charge()
    await trexec.run_action(charge, {"amount": 1})
    assert charge.compensations == []


async def test_compensation_failure_is_attached_to_the_error():
    class Broken(trexec.Action):
        async def run(self, params, context):
            raise ValueError("run")

        async def compensate(self, error, params, context):
            raise RuntimeError("undo failed")

    with pytest.raises(trexec.ActionFailed) as info:
        await trexec.run_action(Broken)
    compensation = info.value.compensation
    assert isinstance(compensation, outcome.Error)
    assert isinstance(compensation.error, RuntimeError)


async def test_compensation_runs_after_a_timeout(autojump_clock):
    undone = []

    class Slow(trexec.Action):
        async def run(self, params, context):
            await trio.sleep(10)

        async def compensate(self, error, params, context):
            undone.append(type(error))

    with pytest.raises(trexec.ActionTimeout) as info:
        await trexec.run_action(Slow, timeout=1)
    assert undone == [trexec.ActionTimeout]
    assert info.value.compensation.unwrap() is None


async def test_compensation_is_bounded_by_compensation_timeout(autojump_clock):
    class Stuck(trexec.Action):
        async def run(self, params, context):
            raise ValueError("run")

        async def compensate(self, error, params, context):
            await trio.sleep_forever()

    with pytest.raises(trexec.ActionFailed) as info:
        await trexec.run_action(Stuck, compensation_timeout=2)
    assert isinstance(info.value.compensation.error, trio.TooSlowError)
    assert trio.current_time() == pytest.approx(2)


async def test_compensation_is_shielded_from_outside_cancellation(autojump_clock):
    finished = []

    class Undo(trexec.Action):
        async def run(self, params, context):
            raise ValueError("run")

        async def compensate(self, error, params, context):
            await trio.sleep(3)
            finished.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, Undo)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert finished == pytest.approx([3])
    assert isinstance(handle.check().error, trexec.ActionFailed)


async def test_no_compensation_after_cancel(autojump_clock):
    undone = []

    class Slow(trexec.Action):
        async def run(self, params, context):
            await trio.sleep(10)

        async def compensate(self, error, params, context):
            undone.append(error)

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, Slow)
        await trio.sleep(1)
        handle.cancel()
    assert undone == []


# --- handles: wait, check, cancel (spec §1.5) ------------------------------------


async def test_start_action_runs_in_the_nursery_and_wait_returns_the_result(autojump_clock):
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, sleeper(1, "r"))
        assert not handle.done
        assert await handle.wait() == "r"
        assert handle.done


async def test_result_can_be_read_any_number_of_times():
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, echo, "x")
        assert await handle.wait() == "x"
        assert await handle.wait() == "x"
        assert handle.check().unwrap() == "x"
        assert handle.check().unwrap() == "x"


async def test_error_can_be_raised_any_number_of_times_without_growing_traceback():
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, boom)
    depths = []
    for _ in range(3):
        with pytest.raises(trexec.ActionFailed) as info:
            await handle.wait()
        depths.append(len(traceback.extract_tb(info.value.__traceback__)))
    assert depths[0] == depths[1] == depths[2]
    assert isinstance(handle.check().error, trexec.ActionFailed)


async def test_check_never_blocks_and_is_none_while_pending(autojump_clock):
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, sleeper(1, "r"))
        assert handle.check() is None
        await trio.sleep(2)
        first, second = handle.check(), handle.check()
    assert first is not second
    assert first.unwrap() == second.unwrap() == "r"


async def test_wait_timeout_raises_too_slow_and_leaves_the_action_running(autojump_clock):
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, sleeper(5, "late"))
        with pytest.raises(trio.TooSlowError):
            await handle.wait(timeout=1)
        assert not handle.done
        assert await handle.wait() == "late"
    assert trio.current_time() == pytest.approx(5)


async def test_cancel_makes_wait_raise_action_cancelled(autojump_clock):
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, sleeper(5))
        await trio.sleep(1)
        handle.cancel()
        with pytest.raises(trexec.ActionCancelled) as info:
            await handle.wait()
    assert info.value.attempts == 1
    assert trio.current_time() == pytest.approx(1)


@pytest.mark.parametrize("retries", [0, 2])
async def test_cancel_with_a_timeout_set_is_a_cancellation_not_a_timeout(autojump_clock, retries):
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, sleeper(5), timeout=3, retries=retries)
        await trio.sleep(1)
        handle.cancel()
    with pytest.raises(trexec.ActionCancelled):
        await handle.wait()
    assert trio.current_time() == pytest.approx(1)


async def test_cancel_is_idempotent_and_a_no_op_once_done(autojump_clock):
    async with trio.open_nursery() as nursery:
        running = trexec.start_action(nursery, sleeper(5))
        finished = trexec.start_action(nursery, echo, "done")
        await trio.sleep(1)
        running.cancel()
        running.cancel()
        finished.cancel()
    assert isinstance(running.check().error, trexec.ActionCancelled)
    assert finished.check().unwrap() == "done"


async def test_cancel_before_the_task_starts_never_runs_the_action():
    ran = []

    async def record(params, context):
        ran.append(1)

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, record)
        handle.cancel()
    assert ran == []
    assert isinstance(handle.check().error, trexec.ActionCancelled)
    assert handle.check().error.attempts == 0


async def test_cancel_during_backoff_stops_retrying(autojump_clock):
    flaky = Flaky(failures=10)
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(
            nursery, flaky, retries=5, backoff=trexec.Backoff(initial=10, factor=1, max=10)
        )
        await trio.sleep(1)
        handle.cancel()
    assert isinstance(handle.check().error, trexec.ActionCancelled)
    assert len(flaky.starts) == 1


async def test_cancelling_the_nursery_cancels_the_action_and_propagates(autojump_clock):
    with trio.move_on_after(1) as outer:
        async with trio.open_nursery() as nursery:
            handle = trexec.start_action(nursery, sleeper(5))
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert trio.current_time() == pytest.approx(1)
    with pytest.raises(trexec.ActionCancelled, match="from outside"):
        await handle.wait()


async def test_failure_never_crashes_the_nursery():
    async with trio.open_nursery() as nursery:
        handles = [trexec.start_action(nursery, boom) for _ in range(3)]
    assert all(isinstance(h.check().error, trexec.ActionFailed) for h in handles)


async def messy(params, context):
    """Raises an error while being cancelled, from inside its own nursery: the
    nursery raises a group mixing Cancelled with the error."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise ValueError("cleanup failed") from None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, trexec.ActionCancelled),  # cancel()
        ({"timeout": 1}, trexec.ActionTimeout),  # one attempt: the handle's own deadline
        ({"timeout": 1, "retries": 1}, trexec.ActionTimeout),  # a deadline per attempt
    ],
)
async def test_errors_raised_while_cancelled_never_escape_into_the_nursery(
    autojump_clock, options, expected
):
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, messy, **options)
        await trio.sleep(0.5)
        if not options:
            handle.cancel()
    error = handle.check().error
    assert type(error) is expected
    assert isinstance(error.__cause__, ExceptionGroup)
    assert error.__cause__.subgroup(ValueError) is not None


async def raises_on_cancel(params, context):
    """Turns the Cancelled it gets into a plain error (no group)."""
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        raise ValueError("cleanup failed") from None


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_plain_error_raised_while_timing_out_is_a_timeout(autojump_clock, retries):
    # spec §1.2: raised while its deadline cancels it: still ActionTimeout.
    with pytest.raises(trexec.ActionTimeout) as info:
        await trexec.run_action(raises_on_cancel, timeout=1, retries=retries)
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.attempts == retries + 1


@pytest.mark.parametrize("retries", [0, 1])
async def test_a_plain_error_raised_while_cancelled_is_the_cause(autojump_clock, retries):
    # spec §1.5: ActionCancelled, the error it raised while cancelled as __cause__.
    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, raises_on_cancel, retries=retries)
        await trio.sleep(0.5)
        handle.cancel()
    error = handle.check().error
    assert type(error) is trexec.ActionCancelled
    assert isinstance(error.__cause__, ValueError)
    assert error.attempts == 1


async def test_errors_raised_while_cancelled_from_outside_never_escape(autojump_clock):
    # spec §1.2, §1.6: only the outside Cancelled propagates; the errors are the cause.
    with trio.move_on_after(1) as outer:
        async with trio.open_nursery() as nursery:
            handle = trexec.start_action(nursery, messy)
            await trio.sleep_forever()
    assert outer.cancelled_caught
    error = handle.check().error
    assert type(error) is trexec.ActionCancelled
    assert "from outside" in str(error)
    assert error.__cause__.subgroup(ValueError) is not None
    with trio.move_on_after(1) as outer:
        await trexec.run_action(messy)
    assert outer.cancelled_caught


async def test_a_compensation_raising_a_group_at_its_deadline_never_escapes(autojump_clock):
    class MessyUndo(trexec.Action):
        async def run(self, params, context):
            raise ValueError("run")

        async def compensate(self, error, params, context):
            await messy(params, context)

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, MessyUndo, compensation_timeout=1)
    error = handle.check().error
    assert type(error) is trexec.ActionFailed
    assert error.compensation.error.subgroup(ValueError) is not None


async def test_keyboard_interrupt_in_a_started_action_propagates_and_is_recorded():
    async def interrupt(params, context):
        raise KeyboardInterrupt

    with pytest.RaisesGroup(KeyboardInterrupt, allow_unwrapped=True, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            handle = trexec.start_action(nursery, interrupt)
    error = handle.check().error
    assert isinstance(error, trexec.ActionCancelled)
    assert "KeyboardInterrupt" in str(error)


# --- waiting on many (spec §1.4) -------------------------------------


async def test_wait_all_returns_outcomes_in_input_order(autojump_clock):
    async with trio.open_nursery() as nursery:
        handles = [
            trexec.start_action(nursery, sleeper(3, "slow")),
            trexec.start_action(nursery, boom),
            trexec.start_action(nursery, sleeper(1, "fast")),
        ]
        results = await trexec.wait_all(handles)
    assert results[0].unwrap() == "slow"
    assert isinstance(results[1].error, trexec.ActionFailed)
    assert results[2].unwrap() == "fast"


async def test_wait_all_timeout_leaves_the_actions_running(autojump_clock):
    async with trio.open_nursery() as nursery:
        handles = [trexec.start_action(nursery, sleeper(d, d)) for d in (1, 5)]
        with pytest.raises(trio.TooSlowError):
            await trexec.wait_all(handles, timeout=2)
        assert [h.done for h in handles] == [True, False]
        assert [r.unwrap() for r in await trexec.wait_all(handles)] == [1, 5]


async def test_as_completed_yields_handles_in_completion_order(autojump_clock):
    async with trio.open_nursery() as nursery:
        handles = [trexec.start_action(nursery, sleeper(d, d)) for d in (3, 1, 2)]
        order = [h.check().unwrap() async for h in trexec.as_completed(handles)]
    assert order == [1, 2, 3]


# --- identity and repr (spec §1.5) -----------------------------------------------


async def test_handle_ids_are_unique_ints_and_repr_says_the_state(autojump_clock):
    async with trio.open_nursery() as nursery:
        a = trexec.start_action(nursery, sleeper(1))
        b = trexec.start_action(nursery, Charge(), {"amount": 1})
        assert isinstance(a.id, int)
        assert a.id != b.id
        assert repr(a) == f"<trexec.ActionHandle #{a.id} 'sleeper.<locals>.sleep' running>"
        a.cancel()
        assert "cancelling" in repr(a)
    assert repr(b) == f"<trexec.ActionHandle #{b.id} 'charge' done>"
    assert repr(a).endswith("failed: ActionCancelled>")
    assert b.name == "charge"


# --- argument validation (spec §1.9) ---------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, r"timeout=-1: expected"),
        ({"timeout": "soon"}, r"timeout='soon': expected"),
        ({"retries": -1}, r"retries=-1: expected an int >= 0"),
        ({"retries": 1.5}, r"retries=1\.5: expected an int >= 0"),
        ({"backoff": 0.1}, r"backoff=0\.1: expected a trexec\.Backoff"),
        ({"compensation_timeout": None}, r"compensation_timeout=None: expected"),
    ],
)
async def test_bad_options_raise_invalid_argument(kwargs, message):
    with pytest.raises(trexec.InvalidArgument, match=message):
        await trexec.run_action(echo, **kwargs)
    async with trio.open_nursery() as nursery:
        with pytest.raises(trexec.InvalidArgument, match=message):
            trexec.start_action(nursery, echo, **kwargs)


def sync_fn(params, context):
    return params


@pytest.mark.parametrize(
    "bad",
    [42, "echo", None, trexec.Action, trexec.Action(), sync_fn, lambda params, context: echo],
)
async def test_a_non_action_is_rejected(bad):
    with pytest.raises(trexec.InvalidArgument, match=r"action=.*: expected an async callable"):
        await trexec.run_action(bad)


async def test_a_non_nursery_is_rejected():
    with pytest.raises(trexec.InvalidArgument, match=r"nursery=None: expected a trio\.Nursery"):
        trexec.start_action(None, echo)


# --- telemetry (spec §1.8) -------------------------------------------------------


async def test_telemetry_reports_start_stop_and_exception(autojump_clock):
    events = []
    detach = trexec.telemetry.attach(
        lambda name, measurements, metadata: events.append((name, measurements, metadata)),
        prefix=("trexec", "action"),
    )
    try:
        await trexec.run_action(sleeper(2), timeout=5)
        with pytest.raises(trexec.ActionFailed):
            await trexec.run_action(boom)
    finally:
        detach()
    names = [name[-1] for name, _, _ in events]
    assert names == ["start", "stop", "start", "exception"]
    assert events[1][1]["duration"] == pytest.approx(2)
    assert events[1][2]["action"] == "sleeper.<locals>.sleep"
    assert events[3][2]["kind"] == "ActionFailed"


# --- the user guide's examples run (docs/actions.md) -----------------------------

GUIDE = pathlib.Path(__file__).parent.parent / "docs" / "actions.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)


@pytest.mark.parametrize("source", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_guide_example_runs(source, monkeypatch, capsys):
    clock = trio.testing.MockClock(autojump_threshold=0)
    monkeypatch.setattr(trio, "run", functools.partial(trio.run, clock=clock))
    exec(compile(source, str(GUIDE), "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out


def test_a_sync_run_or_compensate_is_rejected_at_class_definition():
    with pytest.raises(trexec.InvalidArgument, match=r"Sync\.run=.*: expected an async def"):

        class Sync(trexec.Action):
            def run(self, params, context):
                return 1

    with pytest.raises(trexec.InvalidArgument, match=r"SyncUndo\.compensate=.*: expected"):

        class SyncUndo(trexec.Action):
            async def run(self, params, context):
                return 1

            def compensate(self, error, params, context):
                return 1


async def test_compensation_sees_the_attempt_count(autojump_clock):
    seen = []

    class Fails(trexec.Action):
        async def run(self, params, context):
            raise ValueError("no")

        async def compensate(self, error, params, context):
            seen.append(error.attempts)

    with pytest.raises(trexec.ActionFailed):
        await trexec.run_action(Fails, retries=2)
    assert seen == [3]


def test_action_repr_names_the_class_and_action():
    assert repr(Charge()) == "<Charge action 'charge'>"


async def test_no_compensation_when_the_action_turns_an_outer_cancel_into_an_error(
    autojump_clock,
):
    """spec §1.6/§1.7: the enclosing scope was cancelled; the action catching its
    Cancelled and raising an error instead is still a cancellation: not compensated,
    the handle records ActionCancelled (the error as its cause), Cancelled propagates."""
    undone = []

    class Converts(trexec.Action):
        name = "converts"

        async def run(self, params, context):
            try:
                await trio.sleep(10)
            except trio.Cancelled:
                raise RuntimeError("converted the cancel") from None

        async def compensate(self, error, params, context):
            undone.append(error)

    async with trio.open_nursery() as nursery:
        handle = trexec.start_action(nursery, Converts())
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert undone == []
    with pytest.raises(trexec.ActionCancelled, match="cancelled from outside") as info:
        await handle.wait()
    assert isinstance(info.value.__cause__, RuntimeError)
