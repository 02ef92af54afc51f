"""Running actions: :func:`run_action` and :func:`start_action` (spec §1, after
Jido.Exec / Jido.Exec.Async). They validate, convert params and build an
:class:`~trexec.ActionHandle`, whose ``_run`` does the work (``_action_handle.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import trio

from . import _validate
from ._action_class import Action, convert_params, resolve
from ._action_handle import DEFAULT_BACKOFF, DEFAULTS, ActionHandle, Options
from ._backoff import Backoff
from ._exceptions import InvalidParams

__all__ = ["run_action", "start_action"]

T = TypeVar("T")
#: An async function action: ``async def fn(params, context) -> T``.
AsyncFn = Callable[[Any, Any], Awaitable[T]]


def _options(
    timeout: object, retries: object, backoff: object, compensation_timeout: object
) -> Options:
    # The common call passes no options: share one object, validate nothing.
    if (
        timeout is None
        and type(retries) is int
        and retries == 0
        and backoff is DEFAULT_BACKOFF
        and compensation_timeout == DEFAULTS.compensation_timeout
    ):
        return DEFAULTS
    if not isinstance(backoff, Backoff):
        _validate.fail("backoff", backoff, "a trexec.Backoff")
    return Options(
        timeout=_validate.seconds("timeout", timeout, allow_none=True),
        retries=_validate.count("retries", retries),
        backoff=backoff,
        compensation_timeout=_validate.seconds("compensation_timeout", compensation_timeout),
    )


def _prepare(
    action: object,
    params: object,
    context: object,
    timeout: object,
    retries: object,
    backoff: object,
    compensation_timeout: object,
) -> ActionHandle[Any]:
    run_fn, compensate, instance = resolve(action)
    opts = _options(timeout, retries, backoff, compensation_timeout)
    try:
        converted = convert_params(instance, params)  # spec §1.1
    except InvalidParams as exc:
        handle: ActionHandle[Any] = ActionHandle(
            instance if instance is not None else action, run_fn, compensate, params, context, opts
        )
        handle._set_error(exc, None)
        return handle
    return ActionHandle(
        instance if instance is not None else action,
        run_fn,
        compensate,
        converted,
        {} if context is None else context,
        opts,
    )


@overload
async def run_action(
    action: AsyncFn[T],
    params: object = ...,
    context: object = ...,
    *,
    timeout: float | None = ...,
    retries: int = ...,
    backoff: Backoff = ...,
    compensation_timeout: float = ...,
) -> T: ...
@overload
async def run_action(
    action: Action | type[Action],
    params: object = ...,
    context: object = ...,
    *,
    timeout: float | None = ...,
    retries: int = ...,
    backoff: Backoff = ...,
    compensation_timeout: float = ...,
) -> Any: ...
async def run_action(
    action: object,
    params: object = None,
    context: object = None,
    *,
    timeout: float | None = None,
    retries: int = 0,
    backoff: Backoff = DEFAULT_BACKOFF,
    compensation_timeout: float = 5.0,
) -> Any:
    """Run an action in the current task and return its result.

    ``action`` is an ``async def fn(params, context)``, an :class:`~trexec.Action`
    instance, or an ``Action`` subclass (instantiated with no arguments).
    ``params`` defaults to ``{}``; for an action with ``Params`` it is converted
    first (spec §1.1). ``context`` defaults to ``{}``; both are passed as given.

    - ``timeout`` bounds each attempt (seconds; backoff sleeps are not counted):
      an attempt that overruns is cancelled and counts as :class:`~trexec.ActionTimeout`.
    - ``retries=N`` re-runs the action up to N more times after
      :class:`~trexec.ActionFailed` or :class:`~trexec.ActionTimeout`, sleeping
      ``backoff.delay(n)`` before retry ``n`` (see :class:`~trexec.Backoff`).
    - After the last attempt fails, ``Action.compensate(error, params, context)``
      runs once, shielded from cancellation and bounded by ``compensation_timeout``
      seconds; its ``outcome.Outcome`` is ``error.compensation`` (an ``Error`` of
      ``trio.TooSlowError`` if it overran).

    Raises :class:`~trexec.ActionFailed` (the action's exception is ``__cause__``),
    :class:`~trexec.ActionTimeout`, :class:`~trexec.InvalidParams` (the action never
    ran), each with ``attempts`` set; :class:`~trexec.InvalidArgument` for a bad
    argument. Cancellation of the caller propagates as is: the action is cancelled,
    not retried, not compensated.
    """
    handle = _prepare(action, params, context, timeout, retries, backoff, compensation_timeout)
    if handle.done:  # invalid params
        await trio.lowlevel.checkpoint()
    else:
        await handle._run()
    return handle._unwrap()


@overload
def start_action(
    nursery: trio.Nursery,
    action: AsyncFn[T],
    params: object = ...,
    context: object = ...,
    *,
    timeout: float | None = ...,
    retries: int = ...,
    backoff: Backoff = ...,
    compensation_timeout: float = ...,
) -> ActionHandle[T]: ...
@overload
def start_action(
    nursery: trio.Nursery,
    action: Action | type[Action],
    params: object = ...,
    context: object = ...,
    *,
    timeout: float | None = ...,
    retries: int = ...,
    backoff: Backoff = ...,
    compensation_timeout: float = ...,
) -> ActionHandle[Any]: ...
def start_action(
    nursery: trio.Nursery,
    action: object,
    params: object = None,
    context: object = None,
    *,
    timeout: float | None = None,
    retries: int = 0,
    backoff: Backoff = DEFAULT_BACKOFF,
    compensation_timeout: float = 5.0,
) -> ActionHandle[Any]:
    """Start an action in ``nursery`` and return its :class:`ActionHandle` at once.

    Synchronous, like ``nursery.start_soon``; the options are those of
    :func:`run_action`. The action runs in a task of ``nursery`` (never outliving
    it); cancelling the nursery cancels the action, and its handle then reports
    :class:`~trexec.ActionCancelled`. The run never raises into the nursery: every
    failure is stored on the handle. Invalid params give a handle that is already
    done with :class:`~trexec.InvalidParams` (no task is started). Raises
    :class:`~trexec.InvalidArgument` for a bad argument.
    """
    if not isinstance(nursery, trio.Nursery):
        _validate.fail("nursery", nursery, "a trio.Nursery")
    handle = _prepare(action, params, context, timeout, retries, backoff, compensation_timeout)
    if not handle.done:
        nursery.start_soon(handle._run)
    return handle
