"""Bad input and misuse of trexec.stateful give clear TrexecErrors (spec §3.1.9)."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import pytest
import trio
from hypothesis.stateful import initialize, rule, run_state_machine_as_test
from stateful_settings import FAST

import trexec
from trexec.stateful import NotInExample, StatefulError, TrioStateMachine


def test_a_clock_that_is_not_a_trio_clock_fails_at_class_creation():
    with pytest.raises(trexec.InvalidArgument, match=r"BadClock\.clock=.*trio\.abc\.Clock"):

        class BadClock(TrioStateMachine):
            clock = 1.0  # type: ignore[assignment]

            @rule()
            async def step(self) -> None: ...


def test_an_async_generator_rule_fails_at_class_creation():
    with pytest.raises(trexec.InvalidArgument, match=r"Generator\.step.*async generator"):

        class Generator(TrioStateMachine):
            @rule()
            async def step(self):  # type: ignore[no-untyped-def]
                yield


class BadPoller(TrioStateMachine):
    @rule()
    async def watch(self) -> None:
        self.start_poller(poll_fn=trio.sleep_forever, handler=print, interval=-1, timeout=1)


def test_a_poller_option_error_names_the_rule():
    with pytest.raises(trexec.InvalidArgument, match=r"BadPoller\.watch: .*interval=-1"):
        run_state_machine_as_test(BadPoller, settings=FAST)


class ForeignOption(TrioStateMachine):
    @rule()
    def watch(self) -> None:
        self.start_poller(
            poll_fn=trio.sleep_forever, handler=print, interval=1, timeout=1, events=1
        )


def test_start_poller_refuses_the_options_the_machine_fills_in():
    with pytest.raises(trexec.InvalidArgument, match=r"ForeignOption\.watch.*events=1"):
        run_state_machine_as_test(ForeignOption, settings=FAST)


class ForgotAsync(TrioStateMachine):
    @rule()
    def step(self):  # type: ignore[no-untyped-def]
        return trio.sleep(0)  # a coroutine that would never run


def test_a_sync_rule_returning_a_coroutine_is_named():
    with pytest.raises(trexec.InvalidArgument, match=r"ForgotAsync\.step returned an awaitable"):
        run_state_machine_as_test(ForgotAsync, settings=FAST)


class Plain(TrioStateMachine):
    machines: ClassVar[list[Plain]] = []

    @initialize()
    async def start(self) -> None:
        self.nursery_seen = self.nursery
        type(self).machines.append(self)

    @rule()
    async def step(self) -> None: ...


def test_the_nursery_outside_an_example_is_a_clear_error():
    machine = Plain()
    with pytest.raises(NotInExample, match=r"Plain: self\.nursery is only available"):
        machine.nursery  # noqa: B018
    with pytest.raises(NotInExample, match=r"self\.start_poller"):
        machine.start_poller(poll_fn=trio.sleep_forever, handler=print, interval=1, timeout=1)
    assert issubclass(NotInExample, trexec.TrexecError)


def test_the_nursery_after_teardown_is_a_clear_error():
    Plain.machines.clear()
    run_state_machine_as_test(Plain, settings=FAST)
    machine = Plain.machines[-1]
    assert isinstance(machine.nursery_seen, trio.Nursery)
    with pytest.raises(NotInExample, match="only available while an example runs"):
        machine.nursery  # noqa: B018


async def test_running_inside_a_trio_run_is_refused():
    with pytest.raises(StatefulError, match="inside a Trio run"):
        run_state_machine_as_test(Plain, settings=FAST)


def test_a_missing_extra_is_a_one_line_hint():
    code = "import sys; sys.modules['hypothesis'] = None; import trexec.stateful"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: trexec.stateful needs Hypothesis: pip install 'trexec[hypothesis]'"
    )
    assert "During handling" not in proc.stderr
