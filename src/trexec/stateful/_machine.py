"""``TrioStateMachine``: Hypothesis' rule-based state machines with async steps on
one Trio run per example (spec §3.1).

Hypothesis' engine stays as it is (drawing, shrinking, the example database,
``@reproduce_failure``, settings profiles). ``setup_state`` (where Hypothesis
collects a class's rules, initializers and invariants) hands it copies whose
functions and async preconditions are thin sync bridges running the user's
function on the example's Trio loop (``_example.Example.call``). The user's
functions, and the markers Hypothesis keeps on them, are left alone: a function
shared with a plain ``RuleBasedStateMachine`` stays sync there.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import weakref
from collections.abc import Callable
from typing import Any

import trio
import trio.testing
from hypothesis.stateful import (
    INITIALIZE_RULE_MARKER,
    INVARIANT_MARKER,
    RULE_MARKER,
    Invariant,
    Rule,
    RuleBasedStateMachine,
)

from .. import _validate
from .._poller import Poller
from .._poller_values import InjectedEvent
from ._example import Example

__all__ = ["TrioStateMachine"]

# class -> (Hypothesis' setup state, the bridged copy); weak: classes made in tests go.
_BRIDGED: weakref.WeakKeyDictionary[type, tuple[Any, Any]] = weakref.WeakKeyDictionary()
_TEARDOWN = "_trexec_teardown"


class TrioStateMachine(RuleBasedStateMachine):
    """A ``hypothesis.stateful.RuleBasedStateMachine`` whose steps run on Trio.

    ``@initialize``, ``@rule``, ``@invariant`` and ``@precondition`` functions
    may be ``async def`` (sync ones still work). One Trio run lives for a whole
    example: every step runs on its loop, one at a time, in the same task, so
    ``self.nursery`` and what was started in it (tasks, pollers, servers,
    connections) carry over from one rule to the next. Teardown awaits every
    poller, then cancels the nursery; nothing the example started outlives it.

    * ``clock`` (class attribute, optional): the ``trio.abc.Clock`` of every run,
      e.g. ``trio.testing.MockClock(autojump_threshold=0)``. A ``MockClock`` is
      copied for each example (same ``rate`` and ``autojump_threshold``, starting
      at 0, so every example replays alike); ``self.clock`` is the example's copy.
      Time on the loop passes only while a step runs (see the guide).
    * :meth:`start_poller` starts a :func:`trexec.start_poller` poller whose
      events go to :attr:`events`, tagged with the index of the rule that started
      it; :meth:`drain_events` returns them and clears the list.
    * A poller that ends with :class:`trexec.PollError` fails the example with
      :class:`~trexec.stateful.PollerFailed` after the step it happened in (or at
      teardown). A failure's exception carries a note listing the steps by
      rule index, the events and the poller results.
    * A rule (or initializer) ends once every task it set off is blocked again,
      so a poll it caused has answered before the next step; no time passes
      for that. Invariants and async preconditions are checks: they run on the
      loop but do not wait for other tasks. Sync preconditions run on
      Hypothesis' side between steps (they should only read attributes).

    Raises :class:`~trexec.InvalidArgument` at class creation for a bad
    ``clock`` or an async generator used as a rule, and
    :class:`~trexec.stateful.NotInExample` for ``self.nursery`` or
    ``self.start_poller`` used outside a running step.
    """

    clock: trio.abc.Clock | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        clock = cls.__dict__.get("clock")
        if clock is not None and not isinstance(clock, trio.abc.Clock):
            _validate.fail(
                f"{cls.__qualname__}.clock",
                clock,
                "a trio.abc.Clock such as trio.testing.MockClock(autojump_threshold=0), or None",
            )
        for name, value in vars(cls).items():  # spec §3.1.9: bad steps fail here
            for marker in (RULE_MARKER, INITIALIZE_RULE_MARKER, INVARIANT_MARKER):
                found = getattr(value, marker, None)
                if isinstance(found, Rule | Invariant):
                    _check_function(f"{cls.__qualname__}.{name}", found.function)
        teardown = cls.__dict__.get("teardown")
        if teardown is not None and not getattr(teardown, _TEARDOWN, False):
            type.__setattr__(cls, "teardown", _bridge_teardown(cls, teardown))

    @classmethod
    def setup_state(cls) -> Any:
        """Hypothesis' rules, initializers and invariants of ``cls``, bridged to the loop."""
        state = super().setup_state()  # cached per class by Hypothesis
        cached = _BRIDGED.get(cls)
        if cached is None or cached[0] is not state:
            name = cls.__qualname__
            bridged = dataclasses.replace(
                state,
                rules=[_bridge_rule(name, r) for r in state.rules],
                initializers=[_bridge_rule(name, r) for r in state.initializers],
                invariants=[_bridge_invariant(name, i) for i in state.invariants],
            )
            cached = _BRIDGED[cls] = (state, bridged)
        return cached[1]

    def __init__(self) -> None:
        super().__init__()
        clock = type(self).clock
        if isinstance(clock, trio.testing.MockClock):
            # spec §3.1.3: every example starts at virtual time 0, whatever ran
            # before it (timer arithmetic on floats depends on the absolute time).
            clock = trio.testing.MockClock(
                rate=clock.rate, autojump_threshold=clock.autojump_threshold
            )
            self.clock = clock
        self._trexec = Example(type(self).__qualname__, clock)

    @property
    def nursery(self) -> trio.Nursery:
        """The example's nursery: tasks started in it keep running across steps
        and are cancelled at teardown. Only inside a running step."""
        return self._trexec.nursery("self.nursery")

    @property
    def events(self) -> list[InjectedEvent]:
        """Events injected by this example's pollers since the last
        :meth:`drain_events` (``trexec.InjectedEvent``, ``command_index`` = rule index)."""
        return self._trexec.pending

    async def drain_events(self) -> list[InjectedEvent]:
        """Return the events injected since the last call and clear :attr:`events`
        (a checkpoint first, so a poller ready to send gets to)."""
        await trio.lowlevel.checkpoint()
        drained, self._trexec.pending = self._trexec.pending, []
        return drained

    def start_poller(self, **kwargs: Any) -> Poller:
        """Start a :func:`trexec.start_poller` poller in the example's nursery.

        Takes ``poll_fn``, ``handler``, ``interval``, ``timeout`` and optionally
        ``on_timeout`` and ``branch_id``; the events channel and
        ``command_index`` (the index of the running rule) are filled in. Its
        events go to :attr:`events`; it is awaited at teardown; a ``PollError``
        fails the example. Raises :class:`~trexec.InvalidArgument` naming the rule
        for a bad option, :class:`~trexec.stateful.NotInExample` outside a step.
        """
        return self._trexec.start_poller(kwargs)

    def teardown(self) -> None:
        """Await every poller, cancel the nursery and end the example's Trio run.

        A subclass may define its own ``teardown`` (sync or ``async def``): it
        runs on the loop once the pollers are done, with the nursery still open
        (close clients and connections there); calling ``super().teardown()``
        from it is not needed (and does nothing).
        """
        __tracebackhide__ = True
        self._trexec.finish(None, f"{type(self).__qualname__}.teardown", sys._getframe(1))


def _bridge_rule(machine: str, rule: Rule) -> Rule:
    where = f"{machine}.{rule.function.__name__}"
    return dataclasses.replace(
        rule,
        function=_bridge(where, rule.function, step=True),
        preconditions=tuple(_bridge_precondition(where, p) for p in rule.preconditions),
    )


def _bridge_invariant(machine: str, invariant: Invariant) -> Invariant:
    where = f"{machine}.{invariant.function.__name__}"
    return dataclasses.replace(
        invariant,
        function=_bridge(where, invariant.function, step=False),
        preconditions=tuple(_bridge_precondition(where, p) for p in invariant.preconditions),
    )


def _check_function(where: str, fn: object) -> None:
    if inspect.isasyncgenfunction(fn):
        _validate.fail(where, fn, "an async def (or a plain def), not an async generator")
    _validate.callable_(where, fn)


def _bridge(where: str, fn: Callable[..., Any], *, step: bool) -> Callable[..., Any]:
    _check_function(where, fn)

    @functools.wraps(fn)
    def on_loop(machine: TrioStateMachine, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        return machine._trexec.call(where, fn, (machine, *args), kwargs, step=step, settle=step)

    return on_loop


def _bridge_precondition(where: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if not _validate.is_async_callable(fn):
        return fn  # a sync precondition runs on Hypothesis' side, as always
    return _bridge(f"{where} (precondition)", fn, step=False)


def _bridge_teardown(cls: type, fn: Callable[..., Any]) -> Callable[..., Any]:
    where = f"{cls.__qualname__}.teardown"
    _check_function(where, fn)

    @functools.wraps(fn)
    def teardown(machine: TrioStateMachine) -> Any:
        __tracebackhide__ = True
        if machine._trexec.finishing:  # super().teardown() from a subclass's teardown
            return fn(machine)
        machine._trexec.finish(functools.partial(fn, machine), where, sys._getframe(1))
        return None

    setattr(teardown, _TEARDOWN, True)
    return teardown
