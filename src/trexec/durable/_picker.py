"""The picker and the workers (spec §5.5.2, §5.5.3): claims become jobs, jobs
become outcomes for the completer."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import trio

from ._ledger import Handoff, Ledger, Service, retrying
from ._records import Claim, RateLimitPolicy
from ._store import Store

if TYPE_CHECKING:
    from ._completer import Outcome
    from ._steps import StepRunner


class Picker(Service):
    """Claims batches sized to free capacity and queues them for the workers;
    when nothing is runnable, sleeps until ``store.next_due`` or a wake-up, at
    most ``poll_interval`` (spec §5.5.2). :meth:`stop` ends it."""

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        runs: Sequence[tuple[str, int]],
        policies: Mapping[str, RateLimitPolicy],
        *,
        batch_size: int,
        lease: float,
        poll_interval: float,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._runs = runs
        self._policies = policies
        self._batch_size = batch_size
        self._lease = lease
        self._poll_interval = poll_interval
        # ``done``: set once the picker is gone (a claim in flight has landed in ``held``).
        super().__init__()

    async def _serve(self) -> None:
        ledger, store, runs = self._ledger, self._store, self._runs
        while True:
            free = ledger.free()
            if free <= 0:
                ledger.capacity = trio.Event()
                await ledger.capacity.wait()
                continue
            wake = ledger.wake = trio.Event()
            limit = min(self._batch_size, free)
            ledger.claiming += limit
            try:
                claim = await retrying("claim", functools.partial(self._claim, limit))
            finally:
                ledger.claiming -= limit
            if ledger.accept(claim):
                continue
            due = await retrying("next_due", lambda: store.next_due(runs))
            idle = self._poll_interval if due is None else min(due, self._poll_interval)
            if idle > 0:
                with trio.move_on_after(idle):
                    await wake.wait()

    async def _claim(self, limit: int) -> Claim:
        # Shielded: a claim that committed must reach `held` (and so be released
        # at shutdown), or its rows would wait for their lease to expire.
        with trio.CancelScope(shield=True):
            claim = await self._store.claim(self._runs, limit, self._lease, self._policies)
        return claim


class Workers(Service):
    """``count`` tasks that run queued jobs' steps (``_steps.StepRunner``) and
    send each outcome to the completer (spec §5.5.3). :meth:`stop` cancels the
    steps in flight; when the workers end, the completer's channel closes."""

    def __init__(
        self,
        ledger: Ledger,
        runner: StepRunner,
        count: int,
        outcomes: Handoff[Outcome],
    ) -> None:
        self._ledger = ledger
        self._runner = runner
        self._count = count
        self._outcomes = outcomes
        super().__init__()  # ``done``: set once every worker is gone

    async def _serve(self) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self._count):
                nursery.start_soon(self._work)

    def _ended(self) -> None:
        # Even when cancelled from outside: the completer ends once drained.
        self._outcomes.close()

    async def _work(self) -> None:
        ledger, run, send = self._ledger, self._runner.run, self._outcomes.put
        held, jobs = ledger.held, ledger.jobs
        while True:
            # Drain without a schedule point while jobs are queued (the queue is
            # bounded by the picker); block only when it is empty.
            try:
                job = await jobs.get()
            except trio.EndOfChannel:
                return
            if job.id in ledger.cancelled:
                # Cancelled by this engine after the claim: never start it (spec §5.4.8).
                ledger.cancelled.discard(job.id)
                del held[job.lease]
                ledger.capacity.set()
                if (job.machine, job.version) in self._runner.hooked:
                    await self._runner.cancelled(job.id)  # spec §5.4.11: no step ran
                continue
            held[job.lease] = True
            started = time.perf_counter()
            commit, kind = await run(job)
            send((commit, job, kind, time.perf_counter() - started))
