"""The handle of a started action, and the run itself: :class:`ActionHandle`
(spec §1.2, §1.3, §1.5 to §1.8).

A run is one coroutine, :meth:`ActionHandle._run`: ``run_action`` awaits it in the
caller's task; ``start_action`` starts it in the caller's nursery with
``start_soon``. Either way the attempts run inside the handle's own
``trio.CancelScope`` (``cancel()`` cancels it), and the result is stored on the
handle, so ``wait``, ``check``, ``wait_all`` and ``as_completed`` only read it.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Generic, TypeVar

import attrs
import outcome
import trio

from . import _instrument, _late_scope, _validate, telemetry
from ._action_class import CompensateFn, RunFn, action_name
from ._backoff import Backoff
from ._exceptions import ActionCancelled, ActionError, ActionFailed, ActionTimeout
from ._waiting import Completion

__all__ = ["ActionHandle"]

T = TypeVar("T")

_ids = itertools.count(1)

DEFAULT_BACKOFF = Backoff()

# The scope of a run whose first step suspended is entered by _late_scope.resume.
_NOT_YET = contextlib.nullcontext()


@attrs.frozen
class Options:
    """The validated options of one run (see ``run_action``); calls that pass none
    share ``DEFAULTS``."""

    timeout: float | None = None
    retries: int = 0
    backoff: Backoff = DEFAULT_BACKOFF
    compensation_timeout: float = 5.0


DEFAULTS = Options()


class ActionHandle(Completion, Generic[T]):
    """A started action (see :func:`start_action`).

    ``id`` is an int unique within the process (handles are numbered from 1 in
    start order); ``name`` is the action's name; ``done`` is true once the result
    is set. The result can be read any number of times, with :meth:`wait`,
    :meth:`check`, :func:`~trexec.wait_all` or :func:`~trexec.as_completed`.
    """

    __slots__ = (
        "_action",
        "_attempts",
        "_cancel_requested",
        "_compensate",
        "_context",
        "_error",
        "_id",
        "_opts",
        "_params",
        "_run_fn",
        "_scope",
        "_value",
    )

    def __init__(
        self,
        action: object,
        run_fn: RunFn,
        compensate: CompensateFn | None,
        params: Any,
        context: Any,
        opts: Options,
    ) -> None:
        super().__init__()
        self._id = next(_ids)
        self._action = action
        self._run_fn = run_fn
        self._compensate = compensate
        self._params = params
        self._context = context
        self._opts = opts
        self._scope: trio.CancelScope | None = None
        self._cancel_requested = False
        self._attempts = 0
        self._value: Any = None
        self._error: ActionError | None = None

    @property
    def id(self) -> int:
        """This handle's id: an int unique within the process."""
        return self._id

    @property
    def name(self) -> str:
        """The action's name (``Action.name``, or the function's qualified name)."""
        return action_name(self._action)

    @property
    def attempts(self) -> int:
        """How many attempts have started so far (0 before the first, and when the
        params were invalid)."""
        return self._attempts

    def cancel(self) -> None:
        """Cancel the action through its cancel scope (spec §1.5).

        Idempotent, never blocks, and a no-op once the action is done. Afterwards
        :meth:`wait` raises :class:`~trexec.ActionCancelled`, unless the action
        finished anyway (it returned without reaching another checkpoint).
        An action cancelled before it started never runs.
        """
        if not self._done:
            self._cancel_requested = True
            if self._scope is None:  # made by the run only once it needs one
                self._scope = trio.CancelScope()
            self._scope.cancel()

    def check(self) -> outcome.Outcome[T] | None:
        """Never blocks: ``None`` while pending, else a fresh ``outcome.Outcome``:
        ``Value(result)`` or ``Error(ActionError)``."""
        return self._outcome() if self.done else None

    async def wait(self, timeout: float | None = None) -> T:
        """Wait for the action and return its result, or raise its
        :class:`~trexec.ActionError`. Can be called any number of times.

        If ``timeout`` seconds pass first, raises ``trio.TooSlowError``; the action
        keeps running (cancel it with :meth:`cancel`). Cancelling the waiting task
        likewise leaves the action alone. Always a checkpoint.
        Raises :class:`~trexec.InvalidArgument` for a bad ``timeout``.
        """
        if timeout is not None:
            timeout = _validate.seconds("timeout", timeout)
        if self._done:
            await trio.lowlevel.checkpoint()
        elif timeout is None:
            await super()._wait_finished()
        else:
            with trio.fail_after(timeout):
                await super()._wait_finished()
        return self._unwrap()

    def __repr__(self) -> str:
        if not self.done:
            state = "cancelling" if self._cancel_requested else "running"
        elif self._error is None:
            state = "done"
        else:
            state = f"failed: {type(self._error).__name__}"
        return f"<trexec.ActionHandle #{self._id} {self.name!r} {state}>"

    # --- Completion -----------------------------------------------------------

    def _outcome(self) -> outcome.Outcome[T]:
        if self._error is None:
            return outcome.Value(self._value)
        return outcome.Error(self._error.with_traceback(None))

    async def _wait_finished(self) -> None:
        # wait_all checkpoints once itself; a finished handle needs no schedule point.
        if not self._done:
            await super()._wait_finished()

    # --- the run --------------------------------------------------------------

    def _unwrap(self) -> T:
        if self._error is None:
            return self._value  # type: ignore[no-any-return]
        # Reset the traceback so that raising the stored error again and again
        # does not grow it; the original failure keeps its own on __cause__.
        raise self._error.with_traceback(None)

    def _set_value(self, value: Any, started: float | None) -> None:
        self._value = value
        self._finish()
        if started is not None:
            self._emit("stop", started)

    def _set_error(self, error: ActionError, started: float | None) -> None:
        error.attempts = self._attempts
        self._error = error
        self._finish()
        if started is not None:
            self._emit("exception", started)

    def _emit(self, event: str, started: float) -> None:
        measurements = {"duration": trio.current_time() - started} if event != "start" else {}
        metadata: dict[str, Any] = {"id": self._id, "action": self.name}
        if event != "start":
            metadata["attempts"] = self._attempts
        if self._error is not None:
            metadata["kind"] = type(self._error).__name__
            metadata["error"] = self._error
        telemetry.execute(("trexec", "action", event), measurements, metadata)

    async def _run(self) -> None:
        """Run the attempts; store the result. Raises only what came from outside
        (``trio.Cancelled`` of an enclosing scope, ``KeyboardInterrupt``, ...)."""
        hooks = _instrument.hooks
        if hooks is None:  # spec §14.1: not instrumented costs this test only
            return await self._attempts_run()
        with hooks.action(self.name) as span:
            await self._attempts_run()
            error = self._error
            span.outcome("ok" if error is None else type(error).__name__, error)
        return None

    async def _attempts_run(self) -> None:
        # Telemetry costs one list check when no handler is attached.
        started = trio.current_time() if telemetry._handlers else None
        if started is not None:
            self._emit("start", started)
        if self._cancel_requested:  # spec §1.5: cancelled before it started
            self._set_error(self._cancelled(), started)
            return
        opts = self._opts
        fn, params, context = self._run_fn, self._params, self._context
        per_attempt = opts.timeout if opts.retries else None
        error: ActionError | None = None
        escaped: Exception | None = None
        try:
            # A single attempt's timeout is the handle scope's own deadline: one cancel
            # scope per action instead of two (cancel() sets a flag to tell them apart).
            deadline_at = None
            if opts.timeout is not None and not opts.retries:
                deadline_at = trio.current_time() + opts.timeout  # spec §1.2
            # spec §1.5: a single attempt takes its first step before the handle's
            # scope is entered: nothing can cancel it until it suspends (a deadline that
            # passed meanwhile fires at that suspension), and an action that never
            # suspends (issue #15) costs no cancel scope at all.
            first: Any = None
            if not opts.retries and _late_scope.AVAILABLE:
                outer = _late_scope.outer_status()
                self._attempts = 1
                try:
                    first = _late_scope.first_step(fn(params, context))
                except Exception as exc:  # handled in the loop below, like any failure
                    first = exc
                if type(first) is _late_scope.Returned:
                    self._set_value(first.value, started)
                    return
            scope = self._scope
            if scope is None:
                scope = self._scope = trio.CancelScope()
            if deadline_at is not None:
                scope.deadline = deadline_at
            late = type(first) is _late_scope.Suspended
            try:
                with _NOT_YET if late else scope:
                    while True:
                        error = attempt = None
                        try:
                            if first is not None:
                                pending, first = first, None
                                if isinstance(pending, Exception):  # raised, never suspended
                                    if self._cancel_requested:  # by itself (spec §1.5)
                                        escaped = pending
                                        break
                                    # spec §1.2: raised after its deadline passed: a timeout
                                    timed_out = scope.cancel_called
                                    error = (
                                        self._timed_out(pending)
                                        if timed_out
                                        else self._failed(pending)
                                    )
                                elif not late:
                                    value = await pending
                                else:
                                    value = await _late_scope.resume(pending, scope, outer)
                                    if scope.cancelled_caught:  # cancel() or deadline
                                        break
                            elif per_attempt is None:
                                self._attempts += 1
                                value = await fn(params, context)
                            else:
                                self._attempts += 1
                                with trio.move_on_after(per_attempt) as attempt:  # spec §1.2
                                    value = await fn(params, context)
                                if attempt.cancelled_caught:
                                    error = self._timed_out()
                        except Exception as exc:  # spec §1.2: Cancelled, KeyboardInterrupt pass
                            if self._cancel_requested:  # spec §1.5: raised while cancelled
                                escaped = exc
                                break
                            if scope.cancelled_caught:  # left a late scope, as below
                                escaped = exc
                                break
                            # spec §1.2: raised while its deadline cancelled it (a plain
                            # error, or a group whose Cancelled the scope took): a timeout.
                            deadline = scope if attempt is None else attempt
                            timed_out = deadline.cancel_called
                            error = self._timed_out(exc) if timed_out else self._failed(exc)
                        if error is None:
                            self._set_value(value, started)
                            return
                        if self._attempts > opts.retries:  # spec §1.3: that was the last
                            break
                        await trio.sleep(opts.backoff.delay(self._attempts))  # spec §1.3
            except Exception as exc:
                # Only while our scope is cancelled: the action raised a group mixing
                # our Cancelled with errors, and the scope stripped the Cancelled.
                escaped = exc
            if self._cancel_requested:  # spec §1.5: cancel() was called while it ran
                self._set_error(self._cancelled(cause=escaped), started)
                return
            if scope.cancelled_caught:  # the single attempt's deadline passed (spec §1.2)
                error = self._timed_out(escaped)
            elif escaped is not None:
                error = self._failed(escaped)
            assert error is not None  # the loop only breaks with an error
            try:
                # spec §1.6: an enclosing scope was cancelled and the action turned its
                # Cancelled into an error: a cancellation, never compensated (§1.7).
                await trio.lowlevel.checkpoint_if_cancelled()
            except trio.Cancelled as cancelled:
                self._set_error(self._cancelled(cancelled, cause=error.__cause__), started)
                raise
            error.attempts = self._attempts
            if self._compensate is not None:  # spec §1.7: once, after the last failure
                error.compensation = await self._compensation(error)
            self._set_error(error, started)
        except BaseException as exc:
            # spec §1.6: cancelled from outside, or interrupted: record it, re-raise as is.
            errors, rest = (
                exc.split(Exception) if isinstance(exc, BaseExceptionGroup) else (None, exc)
            )
            if not self.done:
                self._set_error(self._cancelled(rest, cause=errors), started)
            if errors is not None and rest is not None:
                # spec §1.2: a group mixing an outside Cancelled with the action's errors:
                # only the Cancelled propagates, the errors are the __cause__.
                raise rest  # noqa: B904 - the group it was split from is the context
            raise

    def _failed(self, exc: Exception) -> ActionFailed:
        error = ActionFailed(
            f"action {self.name!r} raised {type(exc).__name__}: {exc}{self._attempt_note()}"
        )
        error.__cause__ = exc  # spec §1.2: the original, with its traceback
        return error

    def _timed_out(self, cause: BaseException | None = None) -> ActionTimeout:
        error = ActionTimeout(
            f"action {self.name!r} timed out after {self._opts.timeout}s{self._attempt_note()}"
        )
        error.__cause__ = cause  # what the action raised while being cancelled, if anything
        return error

    def _cancelled(
        self, exc: BaseException | None = None, *, cause: BaseException | None = None
    ) -> ActionCancelled:
        if exc is None:
            cancelled = ActionCancelled(f"action {self.name!r} was cancelled")
        elif isinstance(exc, trio.Cancelled) or (
            isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None
        ):
            cancelled = ActionCancelled(f"action {self.name!r} was cancelled from outside")
        else:
            interrupt = type(exc).__name__
            cancelled = ActionCancelled(f"action {self.name!r} was interrupted by {interrupt}")
        cancelled.__cause__ = cause
        return cancelled

    def _attempt_note(self) -> str:
        total = self._opts.retries + 1
        return f" (attempt {self._attempts} of {total})" if total > 1 else ""

    async def _compensation(self, error: ActionError) -> outcome.Outcome[Any]:
        # spec §1.7: shielded, so a cancellation arriving now cannot leave the undo
        # half done, and bounded by compensation_timeout so it cannot hang the caller.
        assert self._compensate is not None
        timeout = self._opts.compensation_timeout
        # The try is outside the scope: a group mixing the deadline's Cancelled with an
        # error leaves the scope as that error, which is the compensation's outcome too.
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + timeout
                return outcome.Value(await self._compensate(error, self._params, self._context))
        except Exception as exc:
            return outcome.Error(exc)
        return outcome.Error(
            trio.TooSlowError(f"compensate of {self.name!r} did not finish within {timeout}s")
        )
