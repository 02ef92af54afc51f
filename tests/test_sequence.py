"""Command sequences (spec §3): run_commands, run_parallel, assertion modes."""

from __future__ import annotations

import logging
import pathlib
import re

import pytest
import trio
import trio.testing

import trexec


class CallAdapter:
    """Each command is an ``async def command(ctx) -> list``; the adapter records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, int, float]] = []

    async def execute(self, command, ctx):
        self.calls.append((ctx.branch_id, ctx.command_index, trio.current_time()))
        return await command(ctx)


class SyncAdapter:
    def execute(self, command, ctx):  # not async: rejected before any command runs
        return []


def emit(*events):
    async def command(ctx):
        return list(events)

    return command


def sleep_then_emit(seconds, *events):
    async def command(ctx):
        await trio.sleep(seconds)
        return list(events)

    return command


def raise_(exc):
    async def command(ctx):
        raise exc

    return command


def with_poller(statuses, handler, *, after=0.0, timeout=10.0, on_timeout="fail", events=()):
    """Start a poller over ``statuses`` (one per poll, then the last), wait ``after``,
    return ``events``."""

    async def command(ctx):
        remaining = list(statuses)

        async def poll():
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

        ctx.start_poller(
            poll_fn=poll, handler=handler, interval=1, timeout=timeout, on_timeout=on_timeout
        )
        await trio.sleep(after)
        return list(events)

    return command


def summary(report):
    return [(e.event, e.command_index, e.branch_id, e.source) for e in report.events]


# --- recording (spec §3.3) ------------------------------------------------------------


async def test_command_events_are_recorded_in_order_with_their_origin(autojump_clock):
    report = await trexec.run_commands(CallAdapter(), [emit("a", "b"), emit(), emit("c")])
    assert summary(report) == [
        ("a", 0, None, "command"),
        ("b", 0, None, "command"),
        ("c", 2, None, "command"),
    ]
    assert report.ok
    assert report.failures == ()


async def test_branch_id_is_recorded_on_every_event(autojump_clock):
    report = await trexec.run_commands(CallAdapter(), [emit("a")], branch_id=3)
    assert report.events[0].branch_id == 3


async def test_a_command_events_come_before_what_its_pollers_injected_meanwhile(autojump_clock):
    command = with_poller(["x"], lambda s: trexec.Done("from poller"), after=5, events=["own"])
    report = await trexec.run_commands(CallAdapter(), [command])
    assert summary(report) == [("own", 0, None, "command"), ("from poller", 0, None, "poller")]
    poller_event = report.events[1]
    assert poller_event.poller_id == report.poller_results[0].poller_id


async def test_poller_events_arriving_during_a_later_command_keep_arrival_order(autojump_clock):
    handler = {"a": trexec.Inject("p1"), "b": trexec.Done("p2")}.get
    commands = [
        with_poller(["a", "b"], handler, events=["c0"]),
        sleep_then_emit(5, "c1"),
    ]
    report = await trexec.run_commands(CallAdapter(), commands)
    assert summary(report) == [
        ("c0", 0, None, "command"),
        ("p1", 0, None, "poller"),
        ("p2", 0, None, "poller"),  # at t=1, while command 1 still runs
        ("c1", 1, None, "command"),
    ]


async def test_every_active_poller_is_awaited_at_the_end(autojump_clock):
    handler = {"done": trexec.Done("finished")}.get
    command = with_poller(["p", "p", "p", "done"], lambda s: handler(s, trexec.CONTINUE))
    report = await trexec.run_commands(CallAdapter(), [command, emit("next")])
    assert trio.current_time() == 3.0
    assert isinstance(report.poller_results[0], trexec.PollSuccess)
    assert report.events[-1].event == "finished"


# --- failures and assertion modes (spec §3.4, §3.5) -----------------------------------


async def test_halt_raises_at_the_first_adapter_failure_and_stops_pollers(autojump_clock):
    adapter = CallAdapter()
    error = ValueError("card declined")
    commands = [
        with_poller(["p"], lambda s: trexec.CONTINUE, events=["started"]),
        raise_(error),
        emit("never"),
    ]
    with pytest.raises(trexec.SequenceFailed) as caught:
        await trexec.run_commands(adapter, commands)
    report = caught.value.report
    assert [c[1] for c in adapter.calls] == [0, 1]
    assert report.failures[0].reason is error
    assert report.failures[0].command_index == 1
    assert report.failures[0].poller_id is None
    assert isinstance(report.poller_results[0], trexec.PollStopped)
    assert trio.current_time() == 0.0


async def test_halt_on_a_poller_failure_cancels_the_running_command(autojump_clock):
    cancelled = []

    async def long_command(ctx):
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            cancelled.append(trio.current_time())
            raise
        return []

    failing = with_poller(
        ["p", "bad"], lambda s: trexec.Fail("bad status") if s == "bad" else trexec.CONTINUE
    )
    with pytest.raises(trexec.SequenceFailed) as caught:
        await trexec.run_commands(CallAdapter(), [failing, long_command])
    assert cancelled == [1.0]
    failure = caught.value.report.failures[0]
    assert failure.reason == "bad status"
    assert failure.poller_id == caught.value.report.poller_results[0].poller_id
    assert failure.traceback is None


async def test_log_mode_logs_each_failure_by_its_message_and_goes_on(autojump_clock, caplog):
    caplog.set_level(logging.ERROR, logger="trexec.sequence")
    adapter = CallAdapter()
    commands = [raise_(ValueError("card declined")), emit("a"), raise_(KeyError("sku"))]
    report = await trexec.run_commands(adapter, commands, assertion_mode="log")
    assert len(adapter.calls) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "command 0 failed: card declined",
        "command 2 failed: 'sku'",
    ]
    assert "Traceback" not in caplog.text
    assert [f.command_index for f in report.failures] == [0, 2]
    assert summary(report) == [("a", 1, None, "command")]


async def test_record_mode_keeps_full_details_with_tracebacks(autojump_clock, caplog):
    async def poll():
        raise ConnectionError("refused")

    async def start(ctx):
        ctx.start_poller(poll_fn=poll, handler=lambda r: trexec.CONTINUE, interval=1, timeout=5)
        return ["started"]

    report = await trexec.run_commands(
        CallAdapter(), [raise_(ValueError("bad input")), start], assertion_mode="record"
    )
    assert caplog.records == []
    adapter_failure, poller_failure = report.failures
    assert "ValueError: bad input" in adapter_failure.traceback
    assert "in command" in adapter_failure.traceback
    assert isinstance(poller_failure.reason, trexec.PollFnError)
    assert poller_failure.command_index == 1
    assert poller_failure.poller_id is not None
    assert "ConnectionError: refused" in poller_failure.traceback
    assert "in poll" in poller_failure.traceback


async def test_an_adapter_returning_a_non_list_is_a_failure_naming_it(autojump_clock):
    async def bad(ctx):
        return "done"

    report = await trexec.run_commands(CallAdapter(), [bad], assertion_mode="record")
    assert isinstance(report.failures[0].reason, trexec.InvalidArgument)
    assert "'done'" in report.failures[0].message


async def test_sequence_failed_is_a_trexec_error_not_a_group(autojump_clock):
    with pytest.raises(trexec.SequenceFailed) as caught:
        await trexec.run_commands(CallAdapter(), [raise_(RuntimeError("x"))])
    assert isinstance(caught.value, trexec.TrexecError)
    assert not isinstance(caught.value, BaseExceptionGroup)


# --- cancellation (spec §3.7) ---------------------------------------------------------


async def test_cancelling_the_call_cancels_commands_and_pollers(autojump_clock):
    seen = []

    async def observed(ctx):
        ctx.start_poller(
            poll_fn=trio.lowlevel.checkpoint,
            handler=lambda r: seen.append(trio.current_time()) or trexec.CONTINUE,
            interval=1,
            timeout=100,
        )
        await trio.sleep(100)
        return []

    with trio.move_on_after(2.5) as scope:
        await trexec.run_commands(CallAdapter(), [observed])
    assert scope.cancelled_caught
    assert seen == [0.0, 1.0, 2.0]
    await trio.sleep(10)
    assert seen == [0.0, 1.0, 2.0]


async def test_start_poller_after_the_sequence_ended_raises(autojump_clock):
    kept = []

    async def keep(ctx):
        kept.append(ctx)
        return []

    await trexec.run_commands(CallAdapter(), [keep])
    with pytest.raises(RuntimeError, match="ended"):
        kept[0].start_poller(
            poll_fn=trio.lowlevel.checkpoint,
            handler=lambda r: trexec.CONTINUE,
            interval=1,
            timeout=1,
        )


# --- run_parallel (spec §3.6) ---------------------------------------------------------


async def test_run_parallel_runs_prefix_then_branches_concurrently(autojump_clock):
    adapter = CallAdapter()
    report = await trexec.run_parallel(
        adapter,
        [sleep_then_emit(1, "p0")],
        [[sleep_then_emit(2, "a1"), emit("a2")], [sleep_then_emit(1, "b1")]],
    )
    assert sorted(adapter.calls, key=str) == [(0, 1, 1.0), (0, 2, 3.0), (1, 1, 1.0), (None, 0, 0.0)]
    assert trio.current_time() == 3.0
    assert summary(report) == [
        ("p0", 0, None, "command"),
        ("b1", 1, 1, "command"),
        ("a1", 1, 0, "command"),
        ("a2", 2, 0, "command"),
    ]


async def test_run_parallel_awaits_the_prefix_pollers_before_the_branches(autojump_clock):
    adapter = CallAdapter()
    settle = with_poller(
        ["p", "p", "ok"], lambda s: trexec.Done([]) if s == "ok" else trexec.CONTINUE
    )
    await trexec.run_parallel(adapter, [settle], [[emit("a")], [emit("b")]])
    assert sorted(c[2] for c in adapter.calls if c[0] is not None) == [2.0, 2.0]


async def test_run_parallel_halt_stops_every_branch_and_raises_sequence_failed(autojump_clock):
    adapter = CallAdapter()
    with pytest.raises(trexec.SequenceFailed) as caught:
        await trexec.run_parallel(
            adapter,
            [],
            [[sleep_then_emit(1, "a"), raise_(ValueError("boom"))], [sleep_then_emit(10, "b")]],
        )
    assert trio.current_time() == 1.0
    report = caught.value.report
    assert report.failures[0].branch_id == 0
    assert [e.event for e in report.events] == ["a"]


async def test_run_parallel_record_mode_merges_failures_from_every_branch(autojump_clock):
    report = await trexec.run_parallel(
        CallAdapter(),
        [emit("p")],
        [[raise_(ValueError("x"))], [sleep_then_emit(1), raise_(ValueError("y"))]],
        assertion_mode="record",
    )
    assert [(f.branch_id, f.command_index, f.message) for f in report.failures] == [
        (0, 1, "x"),
        (1, 2, "y"),
    ]


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"adapter": object()}, "adapter"),
        ({"adapter": SyncAdapter()}, "adapter"),
        ({"commands": "abc"}, "commands"),
        ({"commands": 3}, "commands"),
        ({"assertion_mode": "raise"}, "assertion_mode"),
        ({"branch_id": -1}, "branch_id"),
    ],
)
async def test_run_commands_rejects_bad_arguments(kwargs, name):
    args = {"adapter": CallAdapter(), "commands": [], **kwargs}
    with pytest.raises(trexec.InvalidArgument, match=name):
        await trexec.run_commands(**args)


async def test_run_parallel_rejects_bad_branches():
    with pytest.raises(trexec.InvalidArgument, match="branches"):
        await trexec.run_parallel(CallAdapter(), [], [3])


async def test_poller_events_sent_before_a_halt_are_kept(autojump_clock):
    async def start_and_wait(ctx):
        ctx.start_poller(
            poll_fn=trio.lowlevel.checkpoint,
            handler=lambda r: trexec.Inject("tick"),
            interval=1,
            timeout=100,
        )
        await trio.sleep(100)
        return ["never"]

    async def fail_later(ctx):
        await trio.sleep(2.5)
        raise ValueError("late failure")

    with pytest.raises(trexec.SequenceFailed) as caught:
        await trexec.run_parallel(CallAdapter(), [], [[start_and_wait], [fail_later]])
    report = caught.value.report
    assert [e.event for e in report.events] == ["tick", "tick", "tick"]
    assert report.failures[0].message == "late failure"


async def test_a_reason_with_a_broken_str_still_gives_a_message(autojump_clock):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    report = await trexec.run_commands(CallAdapter(), [raise_(Unprintable())], assertion_mode="log")
    assert report.failures[0].message == "Unprintable"


# --- the user guide's examples (docs/sequences.md) run as they are ---------------------------

DOC = pathlib.Path(__file__).parent.parent / "docs" / "sequences.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_user_guide_example_runs(number):
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(EXAMPLES[number], f"{DOC.name} example {number}", "exec"), namespace)
    trio.run(namespace["main"], clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_base_exception_from_the_adapter_escapes_as_itself_not_a_group(autojump_clock):
    class Shutdown(BaseException):
        pass

    with pytest.raises(Shutdown):
        await trexec.run_commands(CallAdapter(), [raise_(Shutdown())], assertion_mode="record")


async def test_a_base_exception_from_a_parallel_branch_escapes_as_itself(autojump_clock):
    class Shutdown(BaseException):
        pass

    # spec §3.7: the branch nursery's group inside the sequence's own is unwrapped too.
    with pytest.raises(Shutdown):
        await trexec.run_parallel(
            CallAdapter(),
            [emit("p")],
            [[raise_(Shutdown())], [sleep_then_emit(5, "x")]],
            assertion_mode="record",
        )


@pytest.mark.parametrize("call", ["run_commands", "run_parallel"])
async def test_cancelling_the_call_raises_cancelled_not_a_group(autojump_clock, call):
    async def command(ctx):
        for _ in range(2):
            ctx.start_poller(
                poll_fn=trio.lowlevel.checkpoint,
                handler=lambda r: trexec.CONTINUE,
                interval=1,
                timeout=100,
            )
        await trio.sleep(100)
        return []

    escaped = []
    with trio.move_on_after(2.5) as scope:
        try:
            if call == "run_commands":
                await trexec.run_commands(CallAdapter(), [command])
            else:
                await trexec.run_parallel(CallAdapter(), [], [[command], [command]])
        except BaseException as exc:
            escaped.append(exc)
            raise
    assert scope.cancelled_caught
    [exc] = escaped
    assert isinstance(exc, trio.Cancelled)  # spec §0.4, §3.7
