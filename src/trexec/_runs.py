"""Runs: ``start_run``, ``follow_run``, ``Run``, ``RunHandle`` and outcomes (spec §4).

A run is ``run_fn(run)`` in a task of the caller's nursery. What it emits goes
out on the :class:`~trexec.RunBus` topic :func:`~trexec.run_topic` ``(run.id)``;
each recorder has its own bounded subscription and its own driver task (see
``_recording``), so recorders never wait for one another and the run waits for
a recorder only when that recorder's buffer is full.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import outcome
import trio

from . import _validate, telemetry
from ._bus import DEFAULT_BUFFER, RunBus, check_buffer, check_run_id, run_topic
from ._exceptions import RunError
from ._outcomes import (
    RunCancelled,
    RunCompleted,
    RunCrashed,
    RunFailed,
    RunOutcome,
    is_cancellation,
)
from ._public import leaves
from ._recording import DEFAULT_FINALIZE_TIMEOUT, RecorderFailure, Recording
from ._waiting import Completion

__all__ = [
    "Run",
    "RunCancelled",
    "RunCompleted",
    "RunCrashed",
    "RunFailed",
    "RunHandle",
    "RunOutcome",
    "RecorderFailure",
    "follow_run",
    "start_run",
]

RunFn = Callable[["Run"], Awaitable[Any]]


class Run:
    """What ``run_fn`` receives: the run's ``id``, ``emit`` and ``fail``."""

    __slots__ = ("_bus", "_closed", "_failure", "_scope", "_topic", "id")

    id: str | int
    """The run's id (``run_id=`` of :func:`start_run`, else a fresh uuid4 hex)."""

    def __init__(self, run_id: str | int, bus: RunBus, scope: trio.CancelScope) -> None:
        self.id = run_id
        self._bus = bus
        self._topic = run_topic(run_id)
        self._scope = scope
        self._failure: list[Any] | None = None
        self._closed = False

    @property
    def topic(self) -> str:
        """The bus topic this run publishes on: ``run_topic(run.id)``."""
        return self._topic

    async def emit(self, event: object) -> None:
        """Publish ``event`` on the run's topic; every recorder gets it, in emission order.

        Waits while a recorder's buffer is full (backpressure, spec §4.3.1): events
        are never dropped. Raises :class:`~trexec.InvalidArgument` if ``event`` is a
        :class:`RunOutcome` (reserved for the end of the run) and
        ``trio.ClosedResourceError`` once the run has ended. Cancellation: a
        cancelled ``emit`` may have reached some recorders and not the others.
        """
        if self._closed:  # spec §4.2.5
            raise trio.ClosedResourceError(f"run {self.id!r} has ended: cannot emit {event!r}")
        if isinstance(event, RunOutcome):
            _validate.fail("event", event, "an event, not a run outcome (those end a run)")
        await self._bus.publish(self._topic, event)

    def fail(self, errors: object = ()) -> None:
        """End the run as ``RunFailed(errors)`` (spec §4.2.2): ``run_fn`` is cancelled.

        ``errors`` is a list or tuple, or a single error. The first call decides;
        later calls are ignored. Never blocks; ``run_fn`` sees ``trio.Cancelled`` at
        its next checkpoint. If every error is a cancellation the run ends as
        ``RunCancelled()`` instead (spec §4.2.4).
        """
        if self._failure is None:
            self._failure = list(errors) if isinstance(errors, list | tuple) else [errors]
            self._scope.cancel()

    def __repr__(self) -> str:
        return f"<trexec.Run id={self.id!r}>"


class RunHandle(Completion):
    """A started run (or a followed one): ``id``, ``wait``, ``cancel``, ``check``.

    Works with :func:`trexec.wait_all` and :func:`trexec.as_completed`, which give
    ``outcome.Value(run_outcome)``.
    """

    __slots__ = ("_failures", "_result", "_scope", "id")

    id: str | int
    """The run's id."""

    def __init__(self, run_id: str | int) -> None:
        super().__init__()
        self.id = run_id
        self._scope = trio.CancelScope()
        self._result: RunOutcome | None = None
        self._failures: list[RecorderFailure] = []

    def cancel(self) -> None:
        """Cancel the run (idempotent; never blocks): it ends as ``RunCancelled()``
        unless it already ended. For a followed run this stops following, and
        recorders that saw no outcome get ``RunCancelled()``. Recorders still
        finalize: that phase is shielded."""
        self._scope.cancel()

    async def wait(self, timeout: float | None = None) -> RunOutcome:
        """Wait for the outcome; returns once every recorder has finalized.

        Raises ``trio.TooSlowError`` if ``timeout`` seconds pass first (the run keeps
        going: call :meth:`cancel` to stop it), and
        :class:`~trexec.InvalidArgument` for a bad ``timeout``.
        """
        seconds = _validate.seconds("timeout", timeout, allow_none=True)
        with trio.fail_after(math.inf if seconds is None else seconds):
            await self._wait_finished()
        assert self._result is not None
        return self._result

    def check(self) -> RunOutcome | None:
        """The outcome once every recorder has finalized, else ``None``; never blocks."""
        return self._result if self.done else None

    @property
    def recorder_errors(self) -> list[Exception]:
        """Exceptions raised by recorders (in ``start``, ``event``, ``finalize``, or a
        ``trio.TooSlowError`` for one that overran ``finalize_timeout``), in the
        order they happened. Each carries a note naming the recorder and the stage."""
        return [failure.error for failure in self._failures]

    @property
    def recorder_failures(self) -> list[RecorderFailure]:
        """The same as :attr:`recorder_errors`, as ``RecorderFailure(recorder, stage,
        error)`` records."""
        return list(self._failures)

    def _outcome(self) -> outcome.Outcome[Any]:
        return outcome.Value(self._result)

    def __repr__(self) -> str:
        state = type(self._result).__name__ if self.done else "running"
        return f"<trexec.RunHandle id={self.id!r} {state}>"


def _check_start_args(
    nursery: object, bus: object, buffer: object, finalize_timeout: object
) -> float:
    if not isinstance(nursery, trio.Nursery):
        _validate.fail("nursery", nursery, "a trio.Nursery")
    if bus is not None and not isinstance(bus, RunBus):
        _validate.fail("bus", bus, "a trexec.RunBus or None")
    check_buffer(buffer)
    return float(_validate.seconds("finalize_timeout", finalize_timeout, allow_zero=False))


async def start_run(
    nursery: trio.Nursery,
    run_fn: RunFn,
    *,
    run_id: str | int | None = None,
    recorders: Iterable[Any] = (),
    bus: RunBus | None = None,
    buffer: int = DEFAULT_BUFFER,
    finalize_timeout: float = DEFAULT_FINALIZE_TIMEOUT,
) -> RunHandle:
    """Start ``run_fn(run)`` in ``nursery`` with ``recorders`` following it (spec §4.2).

    Before returning, every recorder is subscribed to the run's topic and its
    ``start(run_id)`` has returned (one after the other, in order), so the first
    ``emit`` is seen by all (spec §4.3.2). Then ``run_fn`` is started. Each recorder
    gets the events through its own buffer of ``buffer`` events (backpressure on
    ``emit`` when full), and ``finalize(outcome)`` exactly once (spec §4.4).

    A recorder whose ``start`` raises is left out and reported on
    ``handle.recorder_errors``; if its class sets ``required = True``, the run is
    refused instead: recorders already started get ``finalize(RunCancelled())``
    and this raises :class:`~trexec.RecorderStartError` (``__cause__`` = the
    recorder's error); ``run_fn`` never runs.

    The run ends as :class:`RunCompleted`, :class:`RunFailed`,
    :class:`RunCancelled` or :class:`RunCrashed`; exceptions from ``run_fn``
    become the outcome and are not raised into ``nursery``. ``trio.Cancelled``
    from outside and other ``BaseException``\\ s are raised again once the
    recorders have finalized.

    ``bus`` defaults to a private :class:`RunBus`; ``run_id`` to a uuid4 hex.
    ``finalize_timeout`` (seconds, > 0) bounds, per recorder and once the run has
    ended, the time to deliver its buffered events and then, again, ``finalize``.
    Raises :class:`~trexec.InvalidArgument` for a bad argument, or if a run with
    this id is already running on ``bus``. Cancellation while recorders start:
    those already started get ``finalize(RunCancelled())``; ``run_fn`` never runs.
    """
    grace = _check_start_args(nursery, bus, buffer, finalize_timeout)
    _validate.callable_("run_fn", run_fn)
    run_id = uuid.uuid4().hex if run_id is None else check_run_id(run_id)
    bus = RunBus() if bus is None else bus
    topic = run_topic(run_id)
    if topic in bus._running:  # spec §4.2.1
        _validate.fail("run_id", run_id, "an id no other running run on this bus has")
    handle = RunHandle(run_id)
    recording = Recording(run_id, bus, buffer, grace, handle._failures)
    recording.check(recorders)
    bus._running.add(topic)
    try:
        # spec §0.2: a checkpoint even with no recorders to start, so that a
        # cancelled caller never starts a run.
        await trio.lowlevel.checkpoint()
        await recording.start_all(required_failure=RunCancelled())
        run = Run(run_id, bus, handle._scope)
        nursery.start_soon(_supervise_run, handle, recording, run, run_fn, name=f"run {run_id}")
    except BaseException as exc:
        bus._running.discard(topic)
        await recording.abandon(RunCancelled() if _cancelled(exc) else RunCrashed(exc))
        raise
    return handle


async def follow_run(
    nursery: trio.Nursery,
    bus: RunBus,
    run_id: str | int,
    recorders: Iterable[Any],
    *,
    buffer: int = DEFAULT_BUFFER,
    finalize_timeout: float = DEFAULT_FINALIZE_TIMEOUT,
) -> RunHandle:
    """Drive ``recorders`` from whatever is published on ``run_topic(run_id)`` (spec §4.5).

    For work that is not a ``start_run`` (a durable workflow, another library):
    publish its events on the topic, then one :class:`RunOutcome`, which ends the
    run. Like :func:`start_run`, this returns once every recorder is subscribed
    and started (a ``required`` recorder failing raises
    :class:`~trexec.RecorderStartError`), then follows in a task of ``nursery``.
    Each recorder gets every event published from then on, then
    ``finalize(outcome)`` with the outcome published. ``handle.cancel()`` (or
    cancelling ``nursery``) stops following: recorders finalize with
    ``RunCancelled()``; the work itself is not touched.
    """
    grace = _check_start_args(nursery, bus, buffer, finalize_timeout)
    if bus is None:
        _validate.fail("bus", bus, "a trexec.RunBus")
    check_run_id(run_id)
    handle = RunHandle(run_id)
    recording = Recording(run_id, bus, buffer, grace, handle._failures, terminal_on_topic=True)
    recording.check(recorders)
    try:
        await recording.start_all(required_failure=RunCancelled())
        nursery.start_soon(_supervise_follow, handle, recording, name=f"follow run {run_id}")
    except BaseException as exc:
        await recording.abandon(RunCancelled() if _cancelled(exc) else RunCrashed(exc))
        raise
    return handle


# --- the run task ----------------------------------------------------------------


async def _supervise_run(handle: RunHandle, recording: Recording, run: Run, run_fn: RunFn) -> None:
    started = trio.current_time()
    telemetry.execute(
        ("trexec", "run", "start"),  # spec §4.2.7
        {},
        {"run_id": run.id},
    )
    result: RunOutcome = RunCrashed(RuntimeError(f"run {run.id!r} ended without an outcome"))
    reraise: BaseException | None = None
    try:
        async with trio.open_nursery() as drivers:
            recording.spawn(drivers)
            try:
                result, reraise = await _run_body(handle, run, run_fn)
            finally:
                # spec §4.4.3: whatever happened (even our own bug), recorders finalize.
                run._closed = True
                recording.end(result)
            with trio.CancelScope(shield=True, deadline=trio.current_time() + recording.grace):
                # Any other subscriber of the topic learns how the run ended.
                await run._bus.publish(run._topic, result)
    finally:
        run._bus._running.discard(run._topic)
        handle._result = result
        handle._finish()
        telemetry.execute(
            ("trexec", "run", "stop"),
            {"duration": trio.current_time() - started},
            {"run_id": run.id, "outcome": result.kind},
        )
    if reraise is not None:
        try:
            raise reraise
        finally:
            del reraise


async def _run_body(
    handle: RunHandle, run: Run, run_fn: RunFn
) -> tuple[RunOutcome, BaseException | None]:
    """Run ``run_fn`` and classify how it ended (spec §4.2); never raises.

    Returns the outcome and the exception to raise again once recorders have
    finalized (``trio.Cancelled`` from outside, ``KeyboardInterrupt``...)."""
    try:
        with handle._scope:
            value = await run_fn(run)
    except BaseException as exc:
        outcome_, reraise = _classify_exception(exc)
        if run._failure is not None:
            return _failed(run._failure), reraise
        return outcome_, reraise
    if run._failure is not None:
        return _failed(run._failure), None
    if handle._scope.cancelled_caught:
        return RunCancelled(), None
    return RunCompleted(value), None


def _classify_exception(exc: BaseException) -> tuple[RunOutcome, BaseException | None]:
    if isinstance(exc, RunError):
        return _failed(exc.errors), None
    if isinstance(exc, BaseExceptionGroup):
        # Not ours to handle: Cancelled, KeyboardInterrupt... go on up (spec §0.2).
        base, rest = exc.split(_not_ours)
        if rest is None:
            return (RunCancelled() if _cancelled(exc) else RunCrashed(exc)), base
        run_errors, other = rest.split(RunError)
        if other is None and run_errors is not None:
            # A RunError raised in run_fn's own nursery: still a failure (spec §4.2.2).
            errors = [
                e for leaf in leaves(run_errors) if isinstance(leaf, RunError) for e in leaf.errors
            ]
            return _failed(errors), base
        return RunCrashed(rest), base
    if isinstance(exc, Exception):
        return RunCrashed(exc), None
    if isinstance(exc, trio.Cancelled):
        return RunCancelled(), exc  # spec §4.2.3: cancelled from outside
    return RunCrashed(exc), exc


def _not_ours(exc: BaseException) -> bool:
    # split() tests groups too: a group is never "not ours" itself, only its leaves.
    return not isinstance(exc, Exception | BaseExceptionGroup)


def _failed(errors: list[Any]) -> RunOutcome:
    # spec §4.2.4: a failure whose errors are all cancellations is a cancellation.
    if errors and all(is_cancellation(e) for e in errors):
        return RunCancelled()
    return RunFailed(errors)


def _cancelled(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(isinstance(e, trio.Cancelled) for e in leaves(exc))
    return isinstance(exc, trio.Cancelled)


# --- the follow task ---------------------------------------------------------------


async def _supervise_follow(handle: RunHandle, recording: Recording) -> None:
    reraise: BaseException | None = None
    try:
        async with trio.open_nursery() as drivers:
            recording.spawn(drivers)
            try:
                with handle._scope:
                    await recording.finished.wait()
            except BaseException as exc:  # cancelled from outside: raised again below
                reraise = exc
            recording.end(RunCancelled())  # spec §4.5.2: for those that saw no outcome
    finally:
        handle._result = recording.terminal or RunCancelled()
        handle._finish()
    if reraise is not None:
        try:
            raise reraise
        finally:
            del reraise
