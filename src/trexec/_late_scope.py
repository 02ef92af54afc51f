"""Running an attempt's first step before its cancel scope exists (issue #15).

An action that returns without ever suspending cannot be cancelled, so its
cancel scope is pure cost (most of the per-action overhead over bare Trio). A
fast run therefore drives the action's coroutine one step by hand: if it
returns, no scope is made; if it suspends, the handle's scope is entered *late*,
before the suspension reaches Trio's run loop, as though it had been entered
first (spec §1.5): any scope or nursery the action opened during that step is
re-parented under it, which is what ``Nursery.start`` does when it moves a task.

This needs three Trio internals (``Task._cancel_status``,
``Task._activate_cancel_status``, the ``CancelStatus.parent`` setter).
:data:`AVAILABLE` is false when they are missing, and runs then enter their
scope up front as before.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Generator
from typing import Any

import attrs
import trio

__all__ = ["AVAILABLE", "Returned", "Suspended", "first_step", "outer_status", "resume"]

try:
    from trio._core._run import CancelStatus as _CancelStatus
except ImportError:  # pragma: no cover - a Trio that moved its internals
    AVAILABLE = False
else:
    AVAILABLE = (
        isinstance(getattr(_CancelStatus, "parent", None), property)
        and getattr(_CancelStatus.parent, "fset", None) is not None
        and hasattr(trio.lowlevel.Task, "_activate_cancel_status")
    )


@attrs.define(slots=True)
class Returned:
    """The attempt returned during its first step, without suspending."""

    value: Any


@attrs.define(slots=True)
class Suspended:
    """The attempt suspended: ``message`` is its first message for Trio's run loop."""

    coro: types.CoroutineType[Any, Any, Any]
    message: Any


def outer_status() -> Any:
    """The current task's cancel status, to be given back to :func:`resume`."""
    return trio.lowlevel.current_task()._cancel_status


def first_step(awaitable: Awaitable[Any]) -> Returned | Suspended | Awaitable[Any]:
    """Run ``awaitable`` up to its first suspension. Raises what that step raised.

    Something other than a coroutine is returned as is, to be awaited normally."""
    if type(awaitable) is not types.CoroutineType:
        return awaitable
    try:
        message = awaitable.send(None)
    except StopIteration as stop:
        return Returned(stop.value)
    return Suspended(awaitable, message)


def _enter_late(scope: trio.CancelScope, outer: Any) -> None:
    task: Any = trio.lowlevel.current_task()
    inner = task._cancel_status
    if inner is outer:  # the action opened no scope before suspending
        scope.__enter__()
        return
    top = inner  # the outermost status the action opened: a child of outer
    while top.parent is not outer:
        top = top.parent
    # No abort function is registered while a step runs, so switching the task's
    # status cannot deliver a cancellation here; the suspension checks it after.
    task._activate_cancel_status(outer)
    scope.__enter__()
    top.parent = task._cancel_status
    task._activate_cancel_status(inner)


@attrs.define(slots=True)
class _Exit:
    scope: trio.CancelScope

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info: Any) -> bool:
        return self.scope.__exit__(*exc_info)


@types.coroutine
def resume(suspended: Suspended, scope: trio.CancelScope, outer: Any) -> Generator[Any, Any, Any]:
    """Await the rest of a suspended attempt inside ``scope``, entered late.

    What ``yield from`` does, from the first message on. If ``scope`` catches its
    own cancellation this returns ``None``: check ``scope.cancelled_caught``."""
    coro, message = suspended.coro, suspended.message
    _enter_late(scope, outer)
    with _Exit(scope):
        while True:
            try:
                sent = yield message
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    message = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    message = coro.send(sent)
                except StopIteration as stop:
                    return stop.value
    return None
