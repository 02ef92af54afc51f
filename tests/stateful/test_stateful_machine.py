"""TrioStateMachine: steps on one Trio run per example (spec §3.1.2-§3.1.8)."""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest
import trio
import trio.testing
from hypothesis import settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from stateful_settings import FAST

import trexec
from trexec.stateful import PollerFailed, TrioStateMachine


class Clockwork(TrioStateMachine):
    """Sync and async steps sharing a background task started by the first one."""

    clock = trio.testing.MockClock(autojump_threshold=0)
    examples: ClassVar[list[dict[str, object]]] = []

    @initialize()
    async def start(self) -> None:
        self.ticks = 0
        self.slept = 0
        self.record: dict[str, object] = {"cancelled": False, "steps": 0}
        type(self).examples.append(self.record)

        async def ticker() -> None:
            try:
                while True:
                    await trio.sleep(1)
                    self.ticks += 1
            finally:
                self.record["cancelled"] = True

        self.nursery.start_soon(ticker)

    @rule(seconds=st.integers(0, 3))
    async def sleep(self, seconds: int) -> None:
        await trio.sleep(seconds)
        self.slept += seconds
        self.record["steps"] = int(self.record["steps"]) + 1  # type: ignore[call-overload]

    @rule()
    def sync_step(self) -> None:
        trio.lowlevel.current_task()  # a sync rule runs on the loop too
        self.record["steps"] = int(self.record["steps"]) + 1  # type: ignore[call-overload]

    @invariant()
    async def time_passes_only_in_steps(self) -> None:
        # The ticker keeps running from one step to the next, and the MockClock
        # stands still between steps: one tick per virtual second slept.
        await trio.lowlevel.checkpoint()
        assert self.ticks == self.slept

    @invariant()
    def sync_invariant(self) -> None:
        assert self.slept >= 0


def test_sync_and_async_steps_share_one_run_and_its_nursery():
    Clockwork.examples.clear()
    before = threading.active_count()
    run_state_machine_as_test(Clockwork, settings=FAST)
    assert Clockwork.examples
    assert any(int(r["steps"]) > 3 for r in Clockwork.examples)  # type: ignore[call-overload]
    # Teardown cancelled each example's background task; no run or thread is left.
    assert all(r["cancelled"] for r in Clockwork.examples)
    assert threading.active_count() == before
    with pytest.raises(RuntimeError):
        trio.lowlevel.current_trio_token()


class RealTime(TrioStateMachine):
    """No clock: the system clock, and Trio's I/O wait in its own thread."""

    @initialize()
    async def start(self) -> None:
        self.nursery.start_soon(trio.sleep_forever)

    @rule()
    async def nap(self) -> None:
        await trio.sleep(0.001)


def test_nothing_outlives_an_example_with_the_real_clock():
    before = set(threading.enumerate())  # other tests' daemon threads are not ours
    run_state_machine_as_test(RealTime, settings=FAST.__class__(FAST, max_examples=3))
    with pytest.raises(RuntimeError):
        trio.lowlevel.current_trio_token()
    # Trio may keep an idle worker of its thread cache (as after trio.to_thread);
    # no other thread is left.
    others = [t for t in threading.enumerate() if t not in before]
    assert all(t.name.startswith("Trio thread") for t in others), others


class Watched(TrioStateMachine):
    """Pollers started by rules; their events are tagged with the rule index."""

    clock = trio.testing.MockClock(autojump_threshold=0)
    results: ClassVar[list[list[object]]] = []

    @initialize()
    def start(self) -> None:
        self.value = 0
        self.seen: list[trexec.InjectedEvent] = []
        self.pollers: list[trexec.Poller] = []

    @rule()
    async def bump(self) -> None:
        self.value += 1
        await trio.sleep(1)

    @rule()
    def watch(self) -> None:
        async def poll() -> int:
            return self.value

        self.pollers.append(
            self.start_poller(
                poll_fn=poll,
                handler=lambda v: trexec.Inject(v),
                interval=1.0,
                timeout=2.5,
                on_timeout="ignore",
            )
        )

    @rule()
    async def drain(self) -> None:
        drained = await self.drain_events()
        assert self.events == []
        self.seen.extend(drained)

    def teardown(self) -> None:  # runs on the loop once every poller is done
        assert all(p.done for p in self.pollers)
        type(self).results.append([p.check() for p in self.pollers])
        self.seen.extend(self.events)
        for event in self.seen:
            assert isinstance(event, trexec.InjectedEvent)
            assert self.pollers  # an event came from a poller some rule started
        indexes = {p.id: p.command_index for p in self.pollers}
        assert all(e.command_index == indexes[e.poller_id] for e in self.seen)


def test_poller_events_carry_the_index_of_the_rule_that_started_the_poller():
    Watched.results.clear()
    run_state_machine_as_test(Watched, settings=FAST)
    assert any(Watched.results)


class AsyncPrecondition(TrioStateMachine):
    @initialize()
    async def start(self) -> None:
        self.open = False

    @rule()
    async def open_door(self) -> None:
        self.open = True

    async def _is_open(self) -> bool:
        trio.lowlevel.current_task()  # evaluated on the loop
        await trio.lowlevel.checkpoint()
        return self.open

    @precondition(_is_open)
    @rule()
    async def walk_through(self) -> None:
        assert self.open


def test_async_preconditions_run_on_the_loop():
    run_state_machine_as_test(AsyncPrecondition, settings=FAST)


class BrokenInvariant(TrioStateMachine):
    @initialize()
    async def start(self) -> None:
        self.total = 0

    @rule(n=st.integers(0, 10))
    async def add(self, n: int) -> None:
        await trio.sleep(0)
        self.total += n

    @invariant()
    async def below_ten(self) -> None:
        await trio.sleep(0)
        assert self.total < 10, f"total={self.total}"


def test_an_async_invariant_failure_fails_and_shrinks_with_a_report():
    with pytest.raises(AssertionError, match="total=10") as info:
        run_state_machine_as_test(BrokenInvariant, settings=FAST)
    report = next(n for n in info.value.__notes__ if n.startswith("trexec.stateful"))
    assert "0: start()" in report and "1: add(n=10)" in report
    assert "2:" not in report  # shrunk to one add
    assert not isinstance(info.value, BaseExceptionGroup)


class FailingPoller(TrioStateMachine):
    clock = trio.testing.MockClock(autojump_threshold=0)

    @initialize()
    async def start(self) -> None:
        self.polls = 0

    @rule()
    async def watch(self) -> None:
        async def poll() -> str:
            self.polls += 1
            if self.polls > 2:  # the service goes down on the third poll
                raise ConnectionError("the service is down")
            return "up"

        self.start_poller(
            poll_fn=poll, handler=lambda status: trexec.Inject(status), interval=1, timeout=3
        )
        await trio.sleep(1)


def test_a_poller_failure_fails_the_example():
    with pytest.raises(PollerFailed) as info:
        run_state_machine_as_test(FailingPoller, settings=FAST)
    error = info.value
    assert isinstance(error.reason, trexec.PollFnError)
    assert error.__cause__ is error.reason
    assert isinstance(error.reason.__cause__, ConnectionError)
    report = next(n for n in error.__notes__ if n.startswith("trexec.stateful"))
    assert "PollError" in report and "PollFnError" in report
    # The events the poller sent before it failed, tagged with the rule that started it.
    assert f"[{error.rule_index}] poller {error.poller_id}: 'up'" in report


class BackgroundCrash(TrioStateMachine):
    clock = trio.testing.MockClock(autojump_threshold=0)

    @initialize()
    async def start(self) -> None:
        async def crash_later() -> None:
            await trio.sleep(2)
            raise KeyError("background")

        self.nursery.start_soon(crash_later)

    @rule()
    async def wait(self) -> None:
        await trio.sleep(1)


def test_a_failing_background_task_fails_the_example_without_a_group():
    with pytest.raises(KeyError, match="background") as info:
        run_state_machine_as_test(BackgroundCrash, settings=FAST)
    assert not isinstance(info.value, BaseExceptionGroup)


class AsyncTeardown(TrioStateMachine):
    torn_down: ClassVar[list[bool]] = []

    @initialize()
    async def start(self) -> None:
        self.resource_open = True

    @rule()
    def noop(self) -> None:
        pass

    async def teardown(self) -> None:
        self.nursery.start_soon(trio.sleep_forever)  # still open; cancelled after
        await trio.sleep(0)
        super().teardown()  # harmless
        type(self).torn_down.append(self.resource_open)


def test_an_async_teardown_runs_on_the_loop_with_the_nursery_open():
    AsyncTeardown.torn_down.clear()
    run_state_machine_as_test(AsyncTeardown, settings=FAST)
    assert AsyncTeardown.torn_down and all(AsyncTeardown.torn_down)


class Passing(TrioStateMachine):
    clock = trio.testing.MockClock(autojump_threshold=0)

    @rule()
    async def step(self) -> None:
        await trio.sleep(1)


TestPassing = Passing.TestCase
TestPassing.settings = FAST


class PlainSync(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.calls = 0

    @rule()
    def step(self) -> None:
        self.calls += 1


class SharesPlainFunctions(TrioStateMachine):
    start = PlainSync.start
    step = PlainSync.step


def test_functions_shared_with_a_plain_machine_stay_sync_there():
    run_state_machine_as_test(SharesPlainFunctions, settings=FAST)
    run_state_machine_as_test(PlainSync, settings=FAST)  # no Trio run, no bridge


class Counted(TrioStateMachine):
    examples = 0

    @initialize()
    async def start(self) -> None:
        type(self).examples += 1

    @rule()
    async def step(self) -> None:
        await trio.sleep(0)


def test_settings_profiles_apply():
    previous = settings.get_current_profile_name()
    settings.register_profile("trexec-stateful-tiny", max_examples=3, database=None, deadline=None)
    settings.load_profile("trexec-stateful-tiny")
    try:
        Counted.examples = 0
        run_state_machine_as_test(Counted)  # no settings given: the profile's
    finally:
        settings.load_profile(previous)
    assert 1 <= Counted.examples <= 3
