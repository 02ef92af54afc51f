"""Waiting on many handles at once: ``wait_all`` and ``as_completed`` (spec §1.4).

Both work on anything built on :class:`Completion`, the small base shared by
:class:`~trexec.ActionHandle` and :class:`~trexec.Poller`: a one-shot
``trio.Event`` (created only when a task has to wait) plus synchronous
done-callbacks, so waiting on N handles costs no task per handle.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

import outcome
import trio

from . import _validate

H = TypeVar("H", bound="Completion")


class Completion:
    """Base of every handle that finishes once: ``done``, an event, done-callbacks.

    Subclasses call :meth:`_finish` exactly once, when their result is set, and
    implement :meth:`_outcome` (a *fresh* ``outcome.Outcome`` on every call: an
    Outcome can be unwrapped only once).
    """

    __slots__ = ("_callbacks", "_done", "_finished")

    def __init__(self) -> None:
        self._done = False
        # Most handles finish before anyone waits on them (issue #15: start + wait of
        # 10k actions): the event is made by the first waiter, not by every handle.
        self._finished: trio.Event | None = None
        self._callbacks: list[Callable[[Any], None]] | None = []

    @property
    def done(self) -> bool:
        """True once the result is set; never blocks."""
        return self._done

    def _finish(self) -> None:
        self._done = True
        if self._finished is not None:
            self._finished.set()
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback(self)

    def _add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(self)`` once finished (at once if already finished)."""
        if self._callbacks is None:
            callback(self)
        else:
            self._callbacks.append(callback)

    def _remove_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self._callbacks is not None and callback in self._callbacks:
            self._callbacks.remove(callback)

    async def _wait_finished(self) -> None:
        """Block until finished; a checkpoint even when it already is (``Event.wait``)."""
        if self._done:
            await trio.lowlevel.checkpoint()
            return
        if self._finished is None:
            self._finished = trio.Event()
        await self._finished.wait()

    def _outcome(self) -> outcome.Outcome[Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def _handles(handles: Iterable[H]) -> list[H]:
    if isinstance(handles, str | bytes) or not isinstance(handles, Iterable):
        _validate.fail("handles", handles, "an iterable of ActionHandle or Poller")
    items = list(handles)
    for item in items:
        if not isinstance(item, Completion):
            _validate.fail("handles", item, "an ActionHandle or a Poller")
    return items


async def wait_all(
    handles: Iterable[Completion], timeout: float | None = None
) -> list[outcome.Outcome[Any]]:
    """Wait until every handle is finished; return their outcomes in the order given.

    An :class:`~trexec.ActionHandle` gives ``Value(result)`` or ``Error(ActionError)``;
    a :class:`~trexec.Poller` gives ``Value(poll_result)``. Waiting never cancels the
    work. Raises ``trio.TooSlowError`` if ``timeout`` seconds pass first, and
    :class:`~trexec.InvalidArgument` for a bad argument.
    """
    items = _handles(handles)
    deadline_in = _validate.seconds("timeout", timeout, allow_none=True)
    with trio.fail_after(math.inf if deadline_in is None else deadline_in):
        for handle in items:
            await handle._wait_finished()
    await trio.lowlevel.checkpoint()  # spec §0.2: a full checkpoint, even with all done
    return [handle._outcome() for handle in items]


def as_completed(handles: Iterable[H]) -> AsyncIterator[H]:
    """Yield each handle as it finishes, in completion order (finished ones first).

    Usage: ``async for handle in trexec.as_completed(handles): handle.check()``.
    Costs no task per handle. Raises :class:`~trexec.InvalidArgument` for a bad
    argument, at the call (spec §0.3), not at the first iteration.
    """
    return _as_completed(_handles(handles))


async def _as_completed(items: list[H]) -> AsyncIterator[H]:
    send, receive = trio.open_memory_channel[H](math.inf)
    callback = send.send_nowait
    for handle in items:
        handle._add_done_callback(callback)
    try:
        for _ in range(len(items)):
            yield await receive.receive()
    finally:
        for handle in items:
            handle._remove_done_callback(callback)
        send.close()
        receive.close()


def finished(handles: Sequence[Completion]) -> bool:
    """True when every handle is finished."""
    return all(h.done for h in handles)
