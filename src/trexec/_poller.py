"""Resource pollers (spec §2): poll a resource until its handler says it is done.

    poller = trexec.start_poller(
        nursery,
        poll_fn=lambda: client.get(f"/payments/{pid}"),
        handler=on_response,          # -> CONTINUE | Inject(ev) | Done(ev) | Fail(reason)
        interval=0.5,
        timeout=30.0,
        events=send_channel,          # receives InjectedEvent(...)
    )
    result = await poller.wait()      # PollSuccess | PollTimeoutIgnored | PollError | PollStopped

One poller is one task in the caller's nursery: a loop of poll, handle, park
until the next start, inside two cancel scopes, the deadline (``timeout``) and
``stop()``. Pollers park on their nursery's shared ``_poll_timer`` rather than
``trio.sleep`` (or ``trio_util.periodic``, which has the same start-to-start
rule but costs a cancel scope per sleep). The handler-result and result value
types live in ``_poller_values``.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import outcome
import trio

from . import _poll_timer, _validate, telemetry
from ._exceptions import HandlerError, OnTimeoutError, PollerError, PollFnError, PollTimeout
from ._poller_values import (
    CONTINUE,
    Done,
    Fail,
    Inject,
    InjectedEvent,
    OnTimeout,
    PollError,
    PollResult,
    PollStopped,
    PollSuccess,
    PollTimeoutIgnored,
    TimeoutInfo,
)
from ._waiting import Completion

# The value types live in _poller_values; they are public through this module.
__all__ = [
    "CONTINUE",
    "Done",
    "Fail",
    "Inject",
    "InjectedEvent",
    "PollError",
    "PollStopped",
    "PollSuccess",
    "PollTimeoutIgnored",
    "Poller",
    "TimeoutInfo",
    "start_poller",
    "wait_pollers",
]

_ids = itertools.count(1)

_HANDLER_RESULTS = "trexec.CONTINUE, trexec.Inject(...), trexec.Done(...) or trexec.Fail(reason)"
_ON_TIMEOUT_CHOICES = "'ignore', 'fail', trexec.Fail(reason) or a callable(TimeoutInfo)"


def _reason(cls: type[PollerError], *args: Any, cause: BaseException | None = None) -> PollerError:
    """Make a poller-made error reason that keeps a traceback (spec §2.7)."""
    try:
        raise cls(*args) from cause
    except PollerError as exc:
        return exc


class Poller(Completion):
    """A running resource poller, made by :func:`start_poller`.

    ``id`` (an int unique in the process), ``command_index``, ``branch_id``,
    ``interval`` and ``timeout`` are the values it was started with;
    ``poll_count`` counts the polls that returned. ``done`` is true once the
    result is set. Works with :func:`trexec.wait_all` and
    :func:`trexec.as_completed` (its outcome is ``Value(result)``).
    """

    __slots__ = (
        "_events",
        "_handler",
        "_last_poll_result",
        "_on_timeout",
        "_poll_fn",
        "_result",
        "_scope",
        "_started",
        "_timer",
        "branch_id",
        "command_index",
        "id",
        "interval",
        "poll_count",
        "timeout",
    )

    def __init__(
        self,
        *,
        poll_fn: Callable[[], Awaitable[Any]],
        handler: Callable[[Any], Any],
        interval: float,
        timeout: float,
        events: trio.abc.SendChannel[InjectedEvent],
        command_index: int,
        on_timeout: OnTimeout,
        branch_id: int | None,
        timer: _poll_timer.PollTimer,
    ) -> None:
        super().__init__()
        self.id: int = next(_ids)
        self.command_index = command_index
        self.branch_id = branch_id
        self.interval = interval
        self.timeout = timeout
        self.poll_count = 0
        self._poll_fn = poll_fn
        self._handler = handler
        self._events = events
        self._on_timeout = on_timeout
        self._last_poll_result: Any = None
        self._result: PollResult | None = None
        self._timer = timer
        self._started = trio.current_time()
        # Created here, entered by the task: stop() works even before the task runs.
        self._scope = trio.CancelScope()

    def __repr__(self) -> str:
        state = "pending" if self._result is None else repr(self._result)
        return f"<trexec.Poller id={self.id} command_index={self.command_index} {state}>"

    # --- public API --------------------------------------------------------------------

    async def wait(self, timeout: float | None = None) -> PollResult:
        """Wait for the result and return it (spec §2.9).

        ``timeout`` defaults to the poller's own timeout plus 1 s; if it passes
        first, raises ``trio.TooSlowError`` and the poller keeps running
        (call :meth:`stop` to end it). Cancelling the wait does not stop the poller.
        """
        limit = _validate.seconds("timeout", timeout, allow_none=True)
        if self._result is None:
            with trio.fail_after(self.timeout + 1.0 if limit is None else limit):
                await self._wait_finished()
        else:
            await trio.lowlevel.checkpoint()  # finished: no deadline can fail it
        assert self._result is not None
        return self._result

    def check(self) -> PollResult | None:
        """Never blocks: ``None`` while the poller runs, else its result (spec §2.9)."""
        return self._result

    def stop(self) -> None:
        """Stop polling now; idempotent and safe on a finished poller (spec §2.10).

        Once ``stop()`` returns, the poller sends no event: an event send in
        flight on a memory channel is either already delivered or cancelled
        undelivered (a list from one handler result may be cut short). The
        result becomes :class:`PollStopped` unless one was already set, and
        waiters wake at once; the task ends at its next checkpoint.
        """
        if self._result is None:
            self._scope.cancel()
            self._set(PollStopped(self.id))

    # --- the polling task --------------------------------------------------------------

    def _set(self, result: PollResult) -> None:
        if self._result is None:  # spec §2.8: the first result wins
            self._result = result
            self._finish()
            # spec §2.14
            telemetry.execute(
                ("trexec", "poller", "stop"),
                {"duration": trio.current_time() - self._started, "poll_count": self.poll_count},
                {
                    "poller_id": self.id,
                    "command_index": self.command_index,
                    "branch_id": self.branch_id,
                    "result": type(result).__name__,
                },
            )

    def _outcome(self) -> outcome.Outcome[Any]:
        return outcome.Value(self._result)

    async def _run(self) -> None:
        started = trio.current_time()
        try:
            with self._scope:
                if self._result is not None:  # stopped before the task began
                    return
                result = await self._poll_until(started + self.timeout)
                if result is None and self._result is None:
                    # spec §2.5: the deadline passed (a poll in flight was cancelled).
                    result = await self._timeout_result(trio.current_time() - started)
                if result is not None:
                    self._set(result)
        except Exception:
            # spec §2.10: a poll, handler or on_timeout raised a group mixing stop()'s
            # Cancelled with an error; the scope took the Cancelled. Already PollStopped.
            assert self._result is not None
        except BaseExceptionGroup as group:
            # spec §2.7: cancelled from outside while a poll or handler raised an error:
            # only the Cancelled (and other BaseExceptions) propagate, never the error.
            errors, rest = group.split(Exception)
            if errors is None or rest is None:
                raise
            raise rest  # noqa: B904 - the group it was split from is the context
        finally:
            self._timer.release()
            if self._result is None:
                # spec §2.11: cancelled from outside (the nursery) or interrupted.
                self._set(PollStopped(self.id))

    async def _poll_until(self, deadline: float) -> PollResult | None:
        """Poll every ``interval`` (start to start) until a result or the deadline (None)."""
        try:
            with trio.move_on_at(deadline) as scope:  # spec §2.5: the deadline is a scope
                while True:
                    # spec §2.2: first poll at once, then start to start; an overrun
                    # starts the next poll at once, so polls never overlap.
                    started = trio.current_time()
                    result = await self._poll_once()
                    if (
                        scope.cancel_called
                        and isinstance(result, PollError)
                        and isinstance(result.reason, PollFnError | HandlerError)
                    ):
                        # spec §2.5: poll_fn or the handler raised while the deadline
                        # cancelled it: the deadline passed all the same.
                        return None
                    if result is not None or self._result is not None:
                        return result
                    await self._timer.sleep_until(started + self.interval)
        except Exception:
            # spec §2.5: a poll or handler raised a group mixing the deadline's Cancelled
            # with an error; the scope took the Cancelled: the deadline passed all the same.
            pass
        return None

    async def _poll_once(self) -> PollResult | None:
        try:
            pending = self._poll_fn()
            if not inspect.isawaitable(pending):
                # spec §2.1: poll_fn must return an awaitable; a plain value is a bug
                # (a sync call would block every task in the run).
                return PollError(
                    self.id,
                    _reason(
                        PollFnError,
                        f"poll_fn returned {pending!r}: expected an awaitable "
                        "(an async def, or a lambda returning a coroutine)",
                    ),
                )
            response = await pending
        except Exception as exc:  # spec §2.7
            return PollError(self.id, _reason(PollFnError, f"poll_fn raised {exc!r}", cause=exc))
        self.poll_count += 1
        self._last_poll_result = response

        try:
            decision = self._handler(response)
            if inspect.isawaitable(decision):  # an async handler is accepted too
                decision = await decision
        except Exception as exc:  # spec §2.7
            return PollError(self.id, _reason(HandlerError, f"handler raised {exc!r}", cause=exc))

        # spec §2.3: the handler results.
        if decision is CONTINUE:
            return None
        if isinstance(decision, Inject):
            return await self._send(decision.events)
        if isinstance(decision, Done):
            return await self._send(decision.events) or PollSuccess(self.id)
        if isinstance(decision, Fail):
            return PollError(self.id, decision.reason)  # spec §2.7: reason kept as is
        return PollError(
            self.id,
            _reason(HandlerError, f"handler returned {decision!r}: expected {_HANDLER_RESULTS}"),
        )

    async def _send(self, events: tuple[Any, ...]) -> PollResult | None:
        """Send each event in order; an error result if the channel is closed (spec §2.4)."""
        for event in events:
            if self._result is not None:  # spec §2.10: stopped, send nothing more
                return None
            try:
                await self._events.send(
                    InjectedEvent(event, self.command_index, self.branch_id, self.id)
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                # spec §2.4: nobody can receive events any more: stop with an error.
                message = f"events channel closed ({exc!r}); could not send {event!r}"
                return PollError(self.id, _reason(PollerError, message, cause=exc))
            except Exception as exc:  # spec §2.7: a custom channel failed
                message = f"sending {event!r} on the events channel raised {exc!r}"
                return PollError(self.id, _reason(PollerError, message, cause=exc))
        return None

    async def _timeout_result(self, elapsed: float) -> PollResult:
        """Apply ``on_timeout`` (spec §2.6)."""
        info = TimeoutInfo(elapsed, self.poll_count, self._last_poll_result)
        choice: Any = self._on_timeout
        if callable(choice):
            try:
                choice = choice(info)
                if inspect.isawaitable(choice):
                    choice = await choice
            except Exception as exc:
                message = f"on_timeout raised {exc!r}"
                return PollError(self.id, _reason(OnTimeoutError, message, cause=exc))
        if isinstance(choice, Fail):
            return PollError(self.id, choice.reason)
        if isinstance(choice, str) and choice == "ignore":
            return PollTimeoutIgnored(self.id)
        if isinstance(choice, str) and choice == "fail":
            return PollError(self.id, _reason(PollTimeout, info))
        message = (
            f"on_timeout returned {choice!r}: expected 'ignore', 'fail' or trexec.Fail(reason)"
        )
        return PollError(self.id, _reason(OnTimeoutError, message))


def start_poller(
    nursery: trio.Nursery,
    *,
    poll_fn: Callable[[], Awaitable[Any]],
    handler: Callable[[Any], Any],
    interval: float,
    timeout: float,
    events: trio.abc.SendChannel[InjectedEvent],
    command_index: int = 0,
    on_timeout: OnTimeout = "fail",
    branch_id: int | None = None,
) -> Poller:
    """Start polling a resource in ``nursery``; synchronous, like ``nursery.start_soon``.

    ``poll_fn()`` must return an awaitable (an ``async def``, or a lambda such as
    ``lambda: client.get(url)``); it is called at once, then every ``interval``
    seconds start to start (a slow poll delays the next; polls never overlap).
    ``handler(response)`` (sync, or async) returns :data:`CONTINUE`,
    :class:`Inject`, :class:`Done` or :class:`Fail`; each event is sent on
    ``events`` as :class:`InjectedEvent`. After ``timeout`` seconds a poll in
    flight is cancelled and ``on_timeout`` (``"ignore"``, ``"fail"``,
    ``Fail(reason)`` or a callable taking :class:`TimeoutInfo`) decides the result.

    The poller never raises into the nursery: every failure becomes a
    :class:`PollError` result. Cancelling the nursery ends it as
    :class:`PollStopped`. Raises :class:`~trexec.InvalidArgument` for a bad argument.
    """
    # spec §2.1: validate everything before a task exists.
    if not isinstance(nursery, trio.Nursery):
        _validate.fail("nursery", nursery, "a trio.Nursery")
    _validate.callable_("poll_fn", poll_fn)
    _validate.callable_("handler", handler)
    interval = _validate.seconds("interval", interval, allow_zero=False)
    timeout = _validate.seconds("timeout", timeout, allow_zero=False)
    if not isinstance(events, trio.abc.SendChannel):
        _validate.fail("events", events, "a trio.MemorySendChannel (any trio.abc.SendChannel)")
    command_index = _validate.count("command_index", command_index)
    if branch_id is not None:
        branch_id = _validate.count("branch_id", branch_id)
    if not (
        isinstance(on_timeout, Fail)
        or (isinstance(on_timeout, str) and on_timeout in ("ignore", "fail"))
        or callable(on_timeout)
    ):
        _validate.fail("on_timeout", on_timeout, _ON_TIMEOUT_CHOICES)
    timer = _poll_timer.acquire(nursery)  # spec §2.13
    poller = Poller(
        timer=timer,
        poll_fn=poll_fn,
        handler=handler,
        interval=interval,
        timeout=timeout,
        events=events,
        command_index=command_index,
        on_timeout=on_timeout,
        branch_id=branch_id,
    )
    try:
        nursery.start_soon(poller._run, name=f"trexec poller {poller.id}")
    except BaseException:
        timer.release()
        raise
    return poller


async def wait_pollers(
    pollers: Iterable[Poller], timeout: float | None = None
) -> list[tuple[int, PollResult]]:
    """Wait until every poller is finished; return ``(poller.id, result)`` in the order given.

    ``timeout`` defaults to the largest poller timeout plus 1 s; if it passes
    first, raises ``trio.TooSlowError`` and the pollers keep running. Raises
    :class:`~trexec.InvalidArgument` for a bad argument.
    """
    if isinstance(pollers, str | bytes) or not isinstance(pollers, Iterable):
        _validate.fail("pollers", pollers, "an iterable of trexec.Poller")
    items = list(pollers)
    for item in items:
        if not isinstance(item, Poller):
            _validate.fail("pollers", item, "a trexec.Poller")
    limit = _validate.seconds("timeout", timeout, allow_none=True)
    if limit is None:  # spec §2.12
        limit = max((p.timeout for p in items), default=0.0) + 1.0
    if all(p.done for p in items):
        await trio.lowlevel.checkpoint()  # finished: no deadline can fail it
    else:
        with trio.fail_after(limit):
            for poller in items:
                await poller._wait_finished()
    return [(p.id, p._result) for p in items if p._result is not None]
