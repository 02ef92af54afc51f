"""The values a poller deals in (spec §2.3 to §2.8): handler results, injected events,
timeout info and poller results. All immutable attrs classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias, final

import attrs

# Public through trexec._poller's __all__.
__all__: list[str] = []


def _as_events(value: Any) -> tuple[Any, ...]:
    # spec §2.3: a list is many events; anything else (a tuple included) is one event.
    if isinstance(value, list):
        return tuple(value)
    return (value,)


# --- handler results (spec §2.3) -----------------------------------------------------


@final
class _Continue:
    """Handler result: keep polling, send nothing."""

    __slots__ = ()
    __module__ = "trexec"  # the instance is public as trexec.CONTINUE (and pickles so)

    def __repr__(self) -> str:
        return "trexec.CONTINUE"

    def __reduce__(self) -> str:
        return "CONTINUE"


CONTINUE: Final = _Continue()


@attrs.frozen
class Inject:
    """Handler result: send ``events`` and keep polling.

    ``Inject(event)`` sends one event, ``Inject([e1, e2])`` each event of the
    list in order. Only a ``list`` means several events: a tuple is one event.
    """

    events: tuple[Any, ...] = attrs.field(converter=_as_events)


@attrs.frozen
class Done:
    """Handler result: send ``events`` and stop with :class:`PollSuccess`.

    ``Done(event)``, ``Done([e1, e2])``, or ``Done([])`` / ``Done()`` to send nothing.
    """

    events: tuple[Any, ...] = attrs.field(factory=list, converter=_as_events)


@attrs.frozen
class Fail:
    """Handler or ``on_timeout`` result: stop with ``PollError(poller_id, reason)``.

    ``reason`` is any object (a string, an exception, ...) and is kept as is.
    """

    reason: Any


HandlerResult: TypeAlias = _Continue | Inject | Done | Fail


# --- what a poller sends and reports --------------------------------------------------


@attrs.frozen
class InjectedEvent:
    """One event a poller sent on its ``events`` channel, tagged with where it came from."""

    event: Any
    command_index: int
    branch_id: int | None
    poller_id: int


@attrs.frozen
class TimeoutInfo:
    """What ``on_timeout`` callables receive (spec §2.6).

    ``elapsed``: seconds since the poller started; ``poll_count``: polls that
    returned (0 if none did); ``last_poll_result``: what the latest of them
    returned (``None`` if none did).
    """

    elapsed: float
    poll_count: int
    last_poll_result: Any


# The callable returns "ignore", "fail" or Fail(reason), or an awaitable of one.
OnTimeout: TypeAlias = Literal["ignore", "fail"] | Fail | Callable[[TimeoutInfo], Any]


# --- poller results (spec §2.8) -------------------------------------------------------


@attrs.frozen
class PollSuccess:
    """Poller result: the handler returned :class:`Done`."""

    poller_id: int


@attrs.frozen
class PollTimeoutIgnored:
    """Poller result: the timeout passed and ``on_timeout`` said ``"ignore"``."""

    poller_id: int


@attrs.frozen
class PollError:
    """Poller result: it stopped with an error.

    ``reason`` is the ``Fail(reason)`` value as given, or an exception the poller
    made (with its traceback): :class:`~trexec.PollFnError`,
    :class:`~trexec.HandlerError`, :class:`~trexec.OnTimeoutError`,
    :class:`~trexec.PollTimeout`, or :class:`~trexec.PollerError` when the
    events channel was closed.
    """

    poller_id: int
    reason: Any


@attrs.frozen
class PollStopped:
    """Poller result: ``stop()`` was called (or its nursery cancelled) before any other result."""

    poller_id: int


PollResult: TypeAlias = PollSuccess | PollTimeoutIgnored | PollError | PollStopped
