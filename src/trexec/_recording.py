"""Driving the recorders of one run (spec §4.3, §4.4): subscribe and start each,
feed it events from its own bounded subscription, finalize it exactly once.

Used by ``start_run`` and ``follow_run``. Each started recorder gets a driver
task whose whole life is shielded from outside cancellation; the run's end sets
the deadline instead (``finalize_timeout``), so a cancelled run still finalizes
its recorders, and a stuck recorder cannot hold the nursery forever.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

import attrs
import trio

from . import _validate
from ._bus import RunBus, run_topic
from ._exceptions import RecorderStartError
from ._outcomes import RunCrashed, RunOutcome
from ._recorders import Recorder

logger = logging.getLogger("trexec.runs")

DEFAULT_FINALIZE_TIMEOUT = 10.0

Stage = Literal["start", "event", "flush", "finalize"]


@attrs.frozen
class RecorderFailure:
    """A recorder raised in ``stage`` (``"start"``, ``"event"``, ``"flush"`` or
    ``"finalize"``); ``error`` is its exception (or a ``trio.TooSlowError`` when it
    overran ``finalize_timeout``). Listed on ``RunHandle.recorder_failures``."""

    recorder: Any
    stage: Stage
    error: Exception


class _Slot:
    """One started recorder: its subscription and its driver's shielded scope."""

    __slots__ = ("dirty", "flush", "receive", "recorder", "scope", "send", "terminal")

    def __init__(
        self,
        recorder: Any,
        send: trio.MemorySendChannel[Any],
        receive: trio.MemoryReceiveChannel[Any],
    ) -> None:
        self.recorder = recorder
        self.send = send
        self.receive = receive
        # spec §4.4.2: outside cancellation never reaches a driver; end() sets a deadline.
        self.scope = trio.CancelScope(shield=True)
        self.terminal: RunOutcome | None = None
        # spec §4.4.5: flush() after events, once caught up; None for the base no-op.
        flush = getattr(recorder, "flush", None)
        if getattr(type(recorder), "flush", None) is Recorder.flush:
            flush = None
        self.flush = flush
        self.dirty = False  # events were delivered since the last flush


_END = object()  # the subscription has ended


class Recording:
    """The recorders of one run, from ``start`` to ``finalize``."""

    def __init__(
        self,
        run_id: str | int,
        bus: RunBus,
        buffer: int,
        grace: float,
        failures: list[RecorderFailure],
        *,
        terminal_on_topic: bool = False,
    ) -> None:
        self.run_id = run_id
        self.bus = bus
        self.topic = run_topic(run_id)
        self.buffer = buffer
        self.grace = grace
        self.failures = failures
        self.terminal_on_topic = terminal_on_topic  # follow_run: a RunOutcome ends the run
        self.recorders: list[Any] = []
        self.slots: list[_Slot] = []
        self.outcome: RunOutcome | None = None  # set by end()
        self.terminal: RunOutcome | None = None  # the outcome seen on the topic (follow)
        self.finished = trio.Event()  # every driver has finalized
        self._drivers = 0

    def check(self, recorders: Iterable[Any]) -> None:
        if isinstance(recorders, str | bytes) or not isinstance(recorders, Iterable):
            _validate.fail("recorders", recorders, "an iterable of trexec.Recorder")
        items = list(recorders)
        for recorder in items:
            if isinstance(recorder, type):  # its methods would fail unbound, at start
                _validate.fail("recorders", recorder, "a trexec.Recorder instance, not a class")
            for method in ("start", "event", "finalize"):
                if not callable(getattr(recorder, method, None)):
                    _validate.fail(
                        "recorders", recorder, f"a trexec.Recorder (it has no {method}())"
                    )
        if len({id(r) for r in items}) != len(items):
            _validate.fail("recorders", items, "each recorder at most once")
        self.recorders = items

    async def start_all(self, *, required_failure: RunOutcome) -> None:
        """Subscribe then start each recorder, in order (spec §4.3.2)."""
        for recorder in self.recorders:
            send, receive = self.bus._open(self.topic, self.buffer)
            try:
                await recorder.start(self.run_id)
            except Exception as exc:
                self.bus._close(self.topic, send)
                receive.close()
                if getattr(recorder, "required", False) is True:
                    # spec §4.3.4: a required recorder refuses the run.
                    await self.abandon(required_failure)
                    raise RecorderStartError(
                        f"required recorder {recorder!r} failed to start for run "
                        f"{self.run_id!r}: {exc!r}; the run was not started"
                    ) from exc
                self.record(recorder, "start", exc)  # spec §4.3.3: left out
                continue
            except BaseException:
                self.bus._close(self.topic, send)
                receive.close()
                raise
            self.slots.append(_Slot(recorder, send, receive))

    async def abandon(self, outcome: RunOutcome) -> None:
        """Finalize the started recorders of a run that will never run (spec §4.3.4)."""
        slots, self.slots = self.slots, []
        self.outcome = outcome
        for slot in slots:
            self.bus._close(self.topic, slot.send)
            slot.receive.close()
        for slot in slots:
            await self._finalize(slot, outcome)

    def spawn(self, nursery: trio.Nursery) -> None:
        self._drivers = len(self.slots)
        if not self.slots:
            self.finished.set()
        for slot in self.slots:
            nursery.start_soon(self._drive, slot, name=f"recorder {slot.recorder!r}")

    def end(self, outcome: RunOutcome) -> None:
        """The run has ended: unsubscribe every recorder and start the clock (spec §4.4.2).

        Each driver delivers what its buffer holds, then finalizes; the first call
        decides the outcome. Never blocks."""
        if self.outcome is None:
            self.outcome = outcome
        deadline = trio.current_time() + self.grace
        for slot in self.slots:
            self.bus._close(self.topic, slot.send)
            slot.scope.deadline = min(slot.scope.deadline, deadline)

    def record(self, recorder: Any, stage: Stage, error: Exception) -> None:
        """spec §4.4.4: a recorder's error is kept and logged, never raised."""
        error.add_note(f"raised by recorder {recorder!r} in {stage}() for run {self.run_id!r}")
        self.failures.append(RecorderFailure(recorder, stage, error))
        logger.error(
            "recorder %r raised in %s() for run %r", recorder, stage, self.run_id, exc_info=error
        )

    async def _drive(self, slot: _Slot) -> None:
        recorder = slot.recorder
        with slot.scope:
            while (message := await self._receive(slot)) is not _END:
                if self.terminal_on_topic and isinstance(message, RunOutcome):
                    slot.terminal = message  # spec §4.5.1
                    if self.terminal is None:
                        self.terminal = message
                    break
                try:
                    await recorder.event(message)
                except Exception as exc:
                    self.record(recorder, "event", exc)  # spec §4.4.4: keep going
                slot.dirty = True
        if slot.scope.cancelled_caught:
            left = slot.receive.statistics().current_buffer_used
            self.record(
                recorder,
                "event",
                trio.TooSlowError(
                    f"recorder {recorder!r} was still taking events {self.grace}s after "
                    f"run {self.run_id!r} ended; {left} buffered events were not delivered"
                ),
            )
        slot.receive.close()  # later publishes skip this subscriber
        self.bus._close(self.topic, slot.send)
        outcome = slot.terminal or self.outcome
        if outcome is None:  # pragma: no cover - end() always runs first
            outcome = RunCrashed(RuntimeError(f"run {self.run_id!r} ended without an outcome"))
        await self._finalize(slot, outcome)
        self._drivers -= 1
        if self._drivers == 0:
            self.finished.set()

    async def _receive(self, slot: _Slot) -> Any:
        """The next message for ``slot``, or ``_END``.

        While the run goes on, a recorder with a ``flush`` is flushed each time its
        buffer is empty after events (spec §4.4.5). Once the run has ended, what is
        left is taken without a checkpoint of ours, so a ``MockClock`` that jumps
        while the recorder waits on a thread cannot cut the drain short.
        """
        receive = slot.receive
        try:
            if (
                slot.dirty
                and slot.flush is not None
                and self.outcome is None
                and not receive.statistics().current_buffer_used
            ):
                await self._flush(slot)  # the run may end meanwhile: check again below
            if self.outcome is not None:
                try:
                    return receive.receive_nowait()
                except trio.WouldBlock:  # pragma: no cover - every sender is closed
                    pass
            return await receive.receive()
        except trio.EndOfChannel:
            return _END

    async def _flush(self, slot: _Slot) -> None:
        slot.dirty = False
        if slot.flush is not None:
            try:
                await slot.flush()
            except Exception as exc:
                self.record(slot.recorder, "flush", exc)

    async def _finalize(self, slot: _Slot, outcome: RunOutcome) -> None:
        """Call ``finalize(outcome)`` once, shielded, for at most ``grace`` seconds
        (spec §4.4.1, §4.4.2; no flush first, spec §4.4.5)."""
        recorder = slot.recorder
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.grace
            try:
                await recorder.finalize(outcome)
            except Exception as exc:
                self.record(recorder, "finalize", exc)
        if scope.cancelled_caught:
            self.record(
                recorder,
                "finalize",
                trio.TooSlowError(
                    f"recorder {recorder!r} did not finalize run {self.run_id!r} "
                    f"within finalize_timeout={self.grace}s"
                ),
            )
