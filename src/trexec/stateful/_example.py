"""The state of one example of a ``TrioStateMachine``: its Trio run, its steps,
its pollers and their events (spec §3.1.2-§3.1.7).

The machine (``_machine``) owns one ``Example``; every rule, initializer,
invariant, async precondition and teardown reaches the Trio loop through
:meth:`Example.call`.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from typing import Any

import outcome
import trio

from .._exceptions import InvalidArgument
from .._poller import Poller, start_poller
from .._poller_values import InjectedEvent, PollError
from .._sequence import _ReportSink
from ._exceptions import NotInExample, PollerFailed, StatefulError
from ._loop import GuestLoop
from ._report import annotate

# The keywords ``self.start_poller`` passes on to trexec.start_poller (spec §3.1.5).
POLLER_OPTIONS = frozenset({"poll_fn", "handler", "interval", "timeout", "on_timeout", "branch_id"})


class Example:
    """One example's Trio run and what happened in it (spec §3.1.2)."""

    def __init__(self, machine_name: str, clock: trio.abc.Clock | None) -> None:
        self.machine_name = machine_name
        self._clock = clock
        self._loop: GuestLoop | None = None
        self.closed = False
        self.failed = False  # a step raised: teardown stops pollers instead of awaiting them
        self.finishing = False
        self.steps: list[str] = []  # "name(args)" by rule index
        self.current = 0  # index of the step running (or last run)
        self.current_name = "the example"
        self.pending: list[InjectedEvent] = []  # what drain_events() returns next
        self.log: list[InjectedEvent] = []  # every event, for the report
        self.pollers: list[Poller] = []
        self._reported: set[int] = set()
        self._sink = _ReportSink(self._record)

    # --- the loop -------------------------------------------------------------------

    def _ensure_loop(self) -> GuestLoop:
        if self.closed:
            raise NotInExample(f"{self.machine_name}: this example has ended (after teardown)")
        if self._loop is None:
            try:
                trio.lowlevel.current_trio_token()
            except RuntimeError:
                pass
            else:
                raise StatefulError(
                    f"{self.machine_name} was run inside a Trio run: a TrioStateMachine "
                    "makes its own run per example; run it from a sync test "
                    f"({self.machine_name}.TestCase, or hypothesis.stateful."
                    "run_state_machine_as_test)"
                )
            self._loop = GuestLoop(self._clock)
            self._loop.start()
        return self._loop

    def nursery(self, what: str) -> trio.Nursery:
        """The example's nursery, for a caller on the loop (spec §3.1.9)."""
        loop = self._loop
        if loop is None or self.closed or not loop.running or loop.nursery is None:
            raise NotInExample(
                f"{self.machine_name}: {what} is only available while an example runs, "
                "in a rule, initializer, invariant, async precondition or teardown"
            )
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            raise NotInExample(
                f"{self.machine_name}: {what} was used outside the Trio loop (a sync "
                "precondition runs on Hypothesis' side: make it async def)"
            ) from None
        return loop.nursery

    # --- steps ------------------------------------------------------------------------

    def call(
        self,
        where: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        step: bool = False,
        settle: bool = True,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` on the loop (awaited if async); its result.

        ``step`` marks a rule or initializer: it gets the next rule index, and a
        poller failure seen after it fails the example (spec §3.1.6). ``settle``
        (all but invariants and preconditions) waits until every task the call
        set off is blocked again (spec §3.1.3).
        """
        __tracebackhide__ = True
        loop = self._ensure_loop()
        if step:
            self.current = len(self.steps)
            self.current_name = where
            self.steps.append(_describe_call(fn, args[1:], kwargs))
        result = loop.run(_on_loop, where, fn, args, kwargs, settle=settle)
        if isinstance(result, outcome.Error):
            self.failed = True
            annotate(result.error, self)
            result.unwrap()
        if step:
            self.raise_poller_failure()
        return result.unwrap()

    def start_poller(self, kwargs: dict[str, Any]) -> Poller:
        nursery = self.nursery("self.start_poller")
        unknown = sorted(set(kwargs) - POLLER_OPTIONS)
        if unknown:
            name = unknown[0]
            raise InvalidArgument(
                f"{self.current_name}: self.start_poller({name}={kwargs[name]!r}): expected "
                f"only {', '.join(sorted(POLLER_OPTIONS))} (the events channel, "
                "command_index and the nursery are the machine's)"
            )
        try:
            poller = start_poller(nursery, events=self._sink, command_index=self.current, **kwargs)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{self.current_name}: self.start_poller: {exc}") from None
        self.pollers.append(poller)
        return poller

    def _record(self, injected: InjectedEvent) -> None:
        self.pending.append(injected)
        self.log.append(injected)

    def raise_poller_failure(self) -> None:
        """Raise :class:`PollerFailed` for the first poller failure not raised yet."""
        for poller in self.pollers:
            result = poller.check()
            if isinstance(result, PollError) and poller.id not in self._reported:
                self._reported.add(poller.id)
                self.failed = True
                where = self.steps[poller.command_index] if self.steps else "?"
                error = PollerFailed(
                    f"poller {poller.id}, started by rule {poller.command_index} ({where}), "
                    f"failed: {result.reason!r}",
                    poller_id=poller.id,
                    rule_index=poller.command_index,
                    reason=result.reason,
                )
                annotate(error, self)
                if isinstance(result.reason, BaseException):
                    raise error from result.reason
                raise error

    # --- teardown -------------------------------------------------------------------------

    def finish(
        self, teardown: Callable[[], Any] | None, where: str, caller: types.FrameType | None
    ) -> None:
        """Await every poller (unless the example is failing already), run the
        user's ``teardown`` on the loop, cancel the nursery and end the run
        (spec §3.1.7)."""
        __tracebackhide__ = True
        if self.closed or self.finishing:
            return
        # An exception already on its way through Hypothesis' runner (``caller``,
        # which calls teardown in a ``finally``) wins: teardown only cleans up.
        failing = self.failed or _propagating(caller)
        if self._loop is None and teardown is None:
            self.closed = True
            return
        self.finishing = True
        try:
            if not failing:
                self.call(where, self._await_pollers, (), {})
            if teardown is not None:
                self.call(where, teardown, (), {})
        finally:
            loop = self._loop
            ended = loop.close() if loop is not None else outcome.Value(None)
            self.closed = True
            self.finishing = False
        if failing:
            return
        if isinstance(ended, outcome.Error):
            annotate(ended.error, self)
            ended.unwrap()
        self.raise_poller_failure()

    async def _await_pollers(self) -> None:
        position = 0
        while position < len(self.pollers):  # pollers may start more meanwhile
            await self.pollers[position]._wait_finished()
            position += 1


def _propagating(caller: types.FrameType | None) -> bool:
    """Is an exception on its way out through ``caller`` (not just being handled
    further up, e.g. Hypothesis replaying inside an ``except``)?"""
    error = sys.exc_info()[1]
    tb = error.__traceback__ if error is not None else None
    while tb is not None:
        if tb.tb_frame is caller:
            return True
        tb = tb.tb_next
    return False


async def _on_loop(
    where: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    __tracebackhide__ = True
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        if not inspect.iscoroutinefunction(fn):
            if inspect.iscoroutine(result):
                result.close()
            raise InvalidArgument(
                f"{where} returned an awaitable ({type(result).__name__}) but is not "
                "an async def: declare it async def so that it runs on the Trio loop"
            )
        result = await result
    return result


def _describe_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{getattr(fn, '__name__', fn)}({', '.join(parts)})"
