"""The engine's background tasks (spec §5.5, §5.8): picker, workers, completer,
heartbeat, reaper, and the shutdown that stops them.

:class:`EngineTasks` is the base of :class:`~trexec.durable.Engine`; it holds the
state those tasks share. ``_engine.py`` has the public API and ``open_engine``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import trio
from trio_util import periodic

from .. import telemetry
from ._exceptions import DuplicateKey, StoreError, StoreRejected
from ._outcomes import reason_text
from ._records import Claim, Commit, CommitStatus, Job, Lease, RateLimitPolicy, Release
from ._store import Store

if TYPE_CHECKING:
    from ._steps import StepRunner

logger = logging.getLogger("trexec.durable")
T = TypeVar("T")


class EngineTasks:
    """State shared by the engine's tasks, and the tasks themselves."""

    store: Store
    lease: float
    workers: int
    _runner: StepRunner
    _runs: tuple[tuple[str, int], ...]
    _policies: dict[str, RateLimitPolicy]
    _batch_size: int
    _max_held: int
    _poll_interval: float
    _grace: float
    _heartbeat_interval: float
    _reap_interval: float
    _held: dict[Lease, bool]
    _claiming: int
    _wake: trio.Event
    _capacity: trio.Event
    _waiters: dict[int, trio.Event]
    _cancelled: set[int]
    _jobs_send: trio.MemorySendChannel[Job]
    _jobs_receive: trio.MemoryReceiveChannel[Job]
    _commits_send: trio.MemorySendChannel[tuple[Commit, Job, str, float]]
    _commits_receive: trio.MemoryReceiveChannel[tuple[Commit, Job, str, float]]
    _completer_done: trio.Event
    _completer_scope: trio.CancelScope
    _picker_done: trio.Event
    _open: bool
    _nursery: trio.Nursery | None

    def _notify(self, id_: int) -> None:
        event = self._waiters.pop(id_, None)
        if event is not None:
            event.set()

    def _start(self, nursery: trio.Nursery) -> trio.CancelScope:
        """Start the reaper, picker and heartbeat; return the scope that stops the
        picker. ``open_engine`` starts the workers and the completer."""
        self._nursery = nursery
        picker_scope = trio.CancelScope()
        nursery.start_soon(self._reaper)
        if not (self.workers and self._runs):
            self._picker_done.set()
        else:
            nursery.start_soon(self._picker, picker_scope)
            nursery.start_soon(self._heartbeat)
        return picker_scope

    async def _picker(self, scope: trio.CancelScope) -> None:
        try:
            with scope:
                await self._pick()
        finally:
            self._picker_done.set()

    async def _pick(self) -> None:
        store, runs, policies = self.store, self._runs, self._policies
        while True:
            free = self._max_held - len(self._held) - self._claiming
            if free <= 0:
                self._capacity = trio.Event()
                await self._capacity.wait()
                continue
            wake = self._wake = trio.Event()
            limit = min(self._batch_size, free)
            self._claiming += limit
            try:
                claim = await self._retrying(
                    "claim", functools.partial(self._claim, runs, limit, self.lease, policies)
                )
            finally:
                self._claiming -= limit
            if self._accept(claim):
                continue
            due = await self._retrying("next_due", lambda: store.next_due(runs))
            idle = self._poll_interval if due is None else min(due, self._poll_interval)
            if idle > 0:
                with trio.move_on_after(idle):
                    await wake.wait()

    async def _claim(
        self,
        runs: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        policies: dict[str, RateLimitPolicy],
    ) -> Claim:
        # Shielded: a claim that committed must reach _held (and so be released
        # at shutdown), or its rows would wait for their lease to expire.
        with trio.CancelScope(shield=True):
            claim = await self.store.claim(runs, limit, lease, policies)
        return claim

    def _accept(self, claim: Claim) -> bool:
        """Hold and queue the claimed jobs; report throttled rows. True if any job."""
        for skipped in claim.throttled:
            telemetry.execute(
                ("trexec", "durable", "rate_limit", "throttled"),
                {"count": 1, "wait": skipped.wait},
                {"key": skipped.rate_limit, "id": skipped.id},
            )
        if not claim.jobs:
            return False
        telemetry.execute(("trexec", "durable", "pick"), {"count": len(claim.jobs)}, {})
        for job in claim.jobs:
            self._held[job.lease] = False
        for job in claim.jobs:
            try:
                self._jobs_send.send_nowait(job)
            except trio.ClosedResourceError:
                break  # shutting down: held, so released
        return True

    async def _worker(self) -> None:
        held, run, send = self._held, self._runner.run, self._commits_send
        receive = self._jobs_receive
        while True:
            # Drain without a schedule point while jobs are queued (the queue is
            # bounded by the picker); block only when it is empty.
            try:
                job = receive.receive_nowait()
            except trio.WouldBlock:
                try:
                    job = await receive.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            if job.id in self._cancelled:
                # Cancelled by this engine after the claim: never start it (spec §5.4.8).
                self._cancelled.discard(job.id)
                del held[job.lease]
                self._capacity.set()
                continue
            held[job.lease] = True
            started = time.perf_counter()
            commit, kind = await run(job)
            send.send_nowait((commit, job, kind, time.perf_counter() - started))

    async def _completer(self) -> None:
        receive, store, batch_size = self._commits_receive, self.store, self._batch_size
        while True:
            try:
                batch = [await receive.receive()]
            except trio.EndOfChannel:
                return
            while len(batch) < batch_size:
                try:
                    batch.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            commits = [commit for commit, *_ in batch]
            # The capacity this commit frees is refilled in the same transaction
            # (spec §5.5.3): one hop and one commit instead of two. Claims in
            # flight (the picker's, other completers') count as held.
            limit = 0
            if self._open:
                free = self._max_held - len(self._held) - self._claiming + len(batch)
                limit = max(0, min(self._batch_size, free))
            self._claiming += limit

            async def complete(
                commits: list[Commit] = commits, limit: int = limit
            ) -> tuple[list[CommitStatus], Claim]:
                # A started write always commits (spec §5.11); shield it so the
                # engine's record of what it holds never disagrees with the store.
                with trio.CancelScope(shield=True):
                    done = await store.complete_and_claim(
                        commits, self._runs, limit, self.lease, self._policies
                    )
                return done

            # Fenced commits are safe to retry (spec §5.5.8).
            try:
                statuses, claim = await self._retrying("complete", complete, rejectable=True)
            except StoreRejected as exc:
                # spec §5.5.9: the database refuses the batch itself; retried as it
                # is, it would stall every later outcome. Find the one it refuses.
                commits, statuses = await self._complete_each(commits, exc)
                claim = Claim(())
            finally:
                self._claiming -= limit
            for (_, job, kind, duration), commit, status in zip(
                batch, commits, statuses, strict=True
            ):
                self._committed(commit, job, kind, duration, status)
            self._accept(claim)
            self._wake.set()
            self._capacity.set()

    def _committed(self, commit: Commit, job: Job, kind: str, duration: float, status: str) -> None:
        if status == "duplicate_key":
            # A child's key is taken: a step error, routed to handle (spec §5.7).
            assert self._nursery is not None
            self._nursery.start_soon(self._rehandle, job, duration)
            return
        self._held.pop(job.lease, None)
        if status == "applied" and not telemetry._handlers:
            if commit.kind in ("done", "stop"):
                self._notify(job.id)
            return
        meta = {
            "id": job.id,
            "machine": job.machine,
            "version": job.version,
            "step": job.step,
            "attempt": job.attempt,
            "kind": kind,
            "commit": status,
        }
        telemetry.execute(("trexec", "durable", "step", "stop"), {"duration": duration}, meta)
        if status == "stale":
            # spec §5.8: the lease was lost; the outcome changed nothing.
            logger.warning("discarded the outcome of instance %s: its lease was lost", job.id)
            telemetry.execute(("trexec", "durable", "outcome", "stale"), {"count": 1}, meta)
        elif status == "cancelled":
            self._cancelled.discard(job.id)
            telemetry.execute(("trexec", "durable", "outcome", "cancelled"), {"count": 1}, meta)
        elif commit.kind in ("done", "stop"):
            self._notify(job.id)

    async def _rehandle(self, job: Job, duration: float) -> None:

        runner = self._runner
        ctx, _ = runner.context(job)
        error = DuplicateKey(f"instance {job.id}: a child's key is already held by a live instance")
        commit, kind = await runner.handle(
            job, runner.machines[(job.machine, job.version)], ctx, error
        )
        # Shutting down, the completer is gone: the lease stays held and is
        # released, so the step runs again (spec §5.5.4, at least once).
        with contextlib.suppress(trio.ClosedResourceError):
            self._commits_send.send_nowait((commit, job, kind, duration))

    async def _complete_each(
        self, commits: list[Commit], refused: StoreRejected
    ) -> tuple[list[Commit], list[CommitStatus]]:
        """Commit each outcome of a refused batch on its own; one the database
        refuses alone stops its instance, the refusal as the error (spec §5.5.9).
        Returns the commits as applied and their statuses."""
        applied: list[Commit] = []
        statuses: list[CommitStatus] = []
        for commit in commits:
            if len(commits) > 1:
                try:
                    [status] = await self._complete_alone(commit, rejectable=True)
                except StoreRejected as exc:
                    refused = exc
                else:
                    applied.append(commit)
                    statuses.append(status)
                    continue
            logger.error(
                "the store refused the %s outcome of instance %s; stopping it: %s",
                commit.kind, commit.lease.id, refused,
            )  # fmt: skip
            telemetry.execute(
                ("trexec", "durable", "outcome", "rejected"),
                {"count": 1},
                {"id": commit.lease.id, "kind": commit.kind, "error": str(refused)},
            )
            stop = Commit(commit.lease, "stop", error=reason_text(
                f"the store refused this {commit.kind} outcome: {refused}"
            ))  # fmt: skip
            [status] = await self._complete_alone(stop, rejectable=False)
            applied.append(stop)
            statuses.append(status)
        return applied, statuses

    async def _complete_alone(self, commit: Commit, *, rejectable: bool) -> list[CommitStatus]:
        async def once() -> list[CommitStatus]:
            with trio.CancelScope(shield=True):  # as complete_and_claim, spec §5.11
                statuses = await self.store.complete([commit])
            return statuses

        return await self._retrying("complete", once, rejectable=rejectable)

    async def _retrying(
        self, operation: str, call: Callable[[], Awaitable[T]], *, rejectable: bool = False
    ) -> T:
        """``await call()`` until it succeeds: a :class:`StoreError` (database down,
        busy, connection lost) is logged and retried with backoff, never fatal to
        the engine (spec §5.5.8). With ``rejectable`` a :class:`StoreRejected`
        propagates instead (spec §5.5.9)."""
        delay = 0.05
        while True:
            try:
                return await call()
            except StoreError as exc:
                if rejectable and isinstance(exc, StoreRejected):
                    raise
                logger.warning("store %s failed (retrying in %.2fs): %s", operation, delay, exc)
                telemetry.execute(
                    ("trexec", "durable", "store", "error"),
                    {"count": 1},
                    {"operation": operation, "error": str(exc)},
                )
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _heartbeat(self) -> None:
        # Start to start (trio-util's periodic): a slow renewal does not push the
        # next one later, so leases are renewed every interval (spec §5.8).
        async for _ in periodic(self._heartbeat_interval):
            if self._held:
                leases = list(self._held)
                lost = await self._retrying(
                    "heartbeat", functools.partial(self.store.heartbeat, leases, self.lease)
                )
                if lost:
                    logger.debug("heartbeat: lease lost for %s", sorted(lost))

    async def _reaper(self) -> None:
        # The first pass runs at once: an engine starting after a crash returns
        # the crashed worker's expired leases without waiting an interval.
        async for _ in periodic(self._reap_interval):
            reclaimed = await self._retrying("reap_expired", self.store.reap_expired)
            if reclaimed:
                # spec §5.8: expired leases return to runnable with attempt + 1.
                logger.warning("reaper: reclaimed %d expired instance(s)", len(reclaimed))
                telemetry.execute(
                    ("trexec", "durable", "reaper", "reclaimed"),
                    {"count": len(reclaimed)},
                    {"ids": [r.id for r in reclaimed]},
                )
                self._wake.set()

    async def _run_workers(self, scope: trio.CancelScope) -> None:
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    for _ in range(self.workers):
                        nursery.start_soon(self._worker)
        finally:
            # Even when cancelled from outside: the completer ends once drained.
            self._commits_send.close()

    async def _shutdown(self, picker: trio.CancelScope, workers: trio.CancelScope,
                        done: trio.Event, *, graceful: bool) -> None:  # fmt: skip
        """Stop picking; finish in-flight steps within the grace period (none if
        not ``graceful``); release everything still held (spec §5.5.4)."""
        self._open = False
        # spec §5.5.4: finished outcomes are committed even when the block was
        # cancelled from outside: the completer (shielded) drains its queue.
        picker.cancel()
        while True:  # queued jobs never start: they are released below
            try:
                self._jobs_receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        self._jobs_send.close()
        with trio.CancelScope(shield=True):
            await self._picker_done.wait()  # a claim in flight lands in _held
            if graceful:
                with trio.move_on_after(self._grace):
                    await done.wait()
            workers.cancel()
            with trio.move_on_after(max(self._grace, 5.0)):
                await done.wait()
                # The completer commits what finished, then ends.
                await self._completer_done.wait()
            self._completer_scope.cancel()  # past the bounded wait: stop it
            releases = [Release(lease, started) for lease, started in self._held.items()]
            if releases:
                logger.info("releasing %d held instance(s)", len(releases))
                await self.store.release(releases)
            self._held.clear()
