"""One Trio run per example, driven from Hypothesis' thread in guest mode (spec §3.1.2).

Hypothesis calls rules synchronously; a rule must nevertheless run *on* the Trio
loop, inside the run that holds the example's nursery. The run is a Trio guest
run whose host loop is this module: Trio hands its ticks to ``_ticks`` (a queue),
and the host runs them only while it waits for a job (a step) to finish. So:

* a step is a job given to the *driver* task, parked in ``wait_task_rescheduled``;
  the host reschedules it directly (guest mode allows sync Trio calls from the
  host thread; ``reschedule`` wakes an I/O wait in Trio's thread if one is
  pending), then runs ticks until the job is done: no thread hop when nothing
  waits for I/O, one round trip through Trio's I/O thread otherwise;
* a step ends once its function has returned *and* every task is blocked again
  (``wait_all_tasks_blocked``: no time passes for it, a ``MockClock`` does not
  jump): a poll the step set off has answered before the next step;
* between steps the host runs no tick, so the Trio side is frozen: no task runs
  and a ``MockClock`` does not move (spec §3.1.3), which keeps examples
  deterministic whatever Hypothesis does in between.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import outcome
import trio
import trio.testing

from .._sequence import _single_exception


class _Job:
    __slots__ = ("args", "fn", "result", "settle")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], settle: bool) -> None:
        self.fn = fn
        self.args = args
        self.settle = settle
        self.result: outcome.Outcome[Any] | None = None


class GuestLoop:
    """A Trio run with a nursery, running jobs one at a time for a host thread."""

    def __init__(self, clock: trio.abc.Clock | None) -> None:
        self._clock = clock
        self._ticks: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._driver: trio.lowlevel.Task | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._parked = False
        self.nursery: trio.Nursery | None = None
        self.outcome: outcome.Outcome[None] | None = None  # set when the run has ended

    @property
    def running(self) -> bool:
        return self.outcome is None

    def start(self) -> None:
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=self._ticks.put,
            run_sync_soon_not_threadsafe=self._ticks.put,
            done_callback=self._done,
            clock=self._clock,
        )
        self._pump(lambda: self._parked)

    # --- the Trio side --------------------------------------------------------------

    async def _main(self) -> None:
        with _single_exception():  # spec §3.1.8: a lone failure, not a group of one
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                self._driver = trio.lowlevel.current_task()
                while (job := await self._next_job()) is not None:
                    result = await outcome.acapture(job.fn, *job.args)
                    # spec §3.1.3: a step ends when what it set off has run too
                    # (every task blocked again), with no time passing meanwhile.
                    if job.settle and nursery.child_tasks:  # none: nothing to settle
                        await trio.testing.wait_all_tasks_blocked()
                    job.result = result
                nursery.cancel_scope.cancel()

    async def _next_job(self) -> _Job | None:
        self._parked = True

        def abort(_: object) -> trio.lowlevel.Abort:
            self._parked = False
            return trio.lowlevel.Abort.SUCCEEDED

        job: _Job | None = await trio.lowlevel.wait_task_rescheduled(abort)
        return job

    def _done(self, result: outcome.Outcome[None]) -> None:
        self.outcome = result

    # --- the host side ----------------------------------------------------------------

    def _pump(self, ready: Callable[[], bool]) -> None:
        while not ready() and self.outcome is None:
            self._ticks.get()()

    def _give(self, job: _Job | None) -> bool:
        """Hand ``job`` to the parked driver; False if the run is ending instead."""
        if not self._parked or self.outcome is not None:
            return False
        assert self._driver is not None
        self._parked = False
        trio.lowlevel.reschedule(self._driver, outcome.Value(job))
        return True

    def run(self, fn: Callable[..., Any], *args: Any, settle: bool = True) -> outcome.Outcome[Any]:
        """Run ``await fn(*args)`` in the driver task; its outcome. With ``settle``,
        the job ends only once every other task is blocked again too.

        If the run ends first (a task in the nursery raised, which cancels the
        driver), the run's own error is the outcome.
        """
        job = _Job(fn, args, settle)
        if self._give(job):
            self._pump(lambda: job.result is not None and self._parked)
            result = job.result
            if result is not None and not (
                isinstance(result, outcome.Error) and isinstance(result.error, trio.Cancelled)
            ):
                return result
        self._pump(lambda: False)  # the run is ending: its outcome says why
        assert self.outcome is not None
        if isinstance(self.outcome, outcome.Error):
            return self.outcome
        return outcome.Error(RuntimeError("the example's Trio run ended before its step"))

    def close(self) -> outcome.Outcome[None]:
        """Cancel the nursery (every task in it) and finish the run; the run's outcome."""
        if not self._give(None) and self.outcome is None and self._token is not None:
            # The driver is inside a job the host stopped waiting for (an exception
            # such as KeyboardInterrupt reached the host): cancel it from the loop.
            assert self.nursery is not None
            self._token.run_sync_soon(self.nursery.cancel_scope.cancel)
        self._pump(lambda: False)
        assert self.outcome is not None
        return self.outcome
