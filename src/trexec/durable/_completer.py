"""The completer (spec §5.5.3, §5.5.4, §5.5.9, §5.5.13): groups the outcomes of steps
that finish close together into one ``store.complete_and_claim`` transaction;
an instance proceeds only after it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio

from .. import telemetry
from ._exceptions import DuplicateKey, StoreRejected
from ._ledger import Handoff, Ledger, Service, retrying
from ._outcomes import reason_text
from ._records import (
    Claim,
    Commit,
    CommitStatus,
    DoneCommit,
    Job,
    NextCommit,
    RateLimitPolicy,
    StopCommit,
)
from ._steps import StepRunner
from ._store import Store

logger = logging.getLogger("trexec.durable")

#: The commits that end an instance (a set: checked for every outcome).
_FINISHED = frozenset({DoneCommit, StopCommit})

#: What a worker hands the completer: the commit, its job, the step's outcome
#: kind (for telemetry) and how long the step took.
Outcome = tuple[Commit, Job, str, float]


class Completer(Service):
    """Commits the workers' outcomes in batches of up to ``batch_size``, and
    claims in the same transaction what that frees (spec §5.5.3).

    Runs shielded from the start (spec §5.5.4): finished outcomes are committed
    even when the engine's block is cancelled from outside; the shutdown calls
    :meth:`stop` after its bounded wait. (Never toggle ``shield`` on a running
    task: a checkpoint in flight would see its cancellation vanish.)
    """

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        runner: StepRunner,
        runs: Sequence[tuple[str, int]],
        policies: Mapping[str, RateLimitPolicy],
        *,
        batch_size: int,
        lease: float,
        chain_steps: int,
        spawn: Callable[..., Any],
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._runner = runner
        self._runs = runs
        self._policies = policies
        self._batch_size = batch_size
        self._lease = lease
        self._chain_steps = chain_steps
        # spec §5.5.13: instance id -> steps its lease has run in a row, for
        # the instances that kept their lease; an entry lives until its next
        # outcome is committed.
        self._chained: dict[int, int] = {}
        # Re-running `handle` after a child key clash is a step: it runs in the
        # engine's nursery, not in the completer's shielded scope.
        self._spawn = spawn
        #: Where the workers put their outcomes.
        self.outcomes: Handoff[Outcome] = Handoff()
        # spec §5.5.4: shielded from the start; ``done`` is set once it is gone.
        super().__init__(shield=True)

    def skip(self) -> None:
        """For an engine that runs no steps: nothing will ever be sent."""
        self.outcomes.close()
        self.done.set()

    async def _serve(self) -> None:
        outcomes, ledger, store, batch_size = (
            self.outcomes,
            self._ledger,
            self._store,
            self._batch_size,
        )
        while True:
            try:
                batch = [await outcomes.get()]
            except trio.EndOfChannel:
                return
            # Steps that never wait finish within a scheduling round: let the
            # workers run the jobs they hold before this commit, or it would
            # split what they hold into two transactions.
            while len(outcomes) + 1 < batch_size:
                before = len(outcomes)
                await trio.lowlevel.checkpoint()
                if len(outcomes) == before:
                    break
            batch += outcomes.take(batch_size - 1)
            commits = [outcome[0] for outcome in batch]
            # The capacity this commit frees is refilled in the same transaction
            # (spec §5.5.3): one hop and one commit instead of two. Claims in
            # flight (the picker's, other completers') count as held.
            limit = max(0, min(batch_size, ledger.free() + len(batch))) if ledger.open else 0
            ledger.claiming += limit
            # spec §5.5.13: a plain `next` may keep its lease and run on here.
            keep = self._keep(batch, limit)

            async def complete(
                commits: list[Commit] = commits, limit: int = limit, keep: Mapping[int, int] = keep
            ) -> tuple[list[CommitStatus], Claim]:
                # A started write always commits (spec §5.11); shield it so the
                # engine's record of what it holds never disagrees with the store.
                with trio.CancelScope(shield=True):
                    done = await store.complete_and_claim(
                        commits, self._runs, limit, self._lease, self._policies, keep=keep
                    )
                return done

            # Fenced commits are safe to retry (spec §5.5.8).
            try:
                statuses, claim = await retrying("complete", complete, rejectable=True)
            except StoreRejected as exc:
                # spec §5.5.9: the database refuses the batch itself; retried as it
                # is, it would stall every later outcome. Find the one it refuses.
                commits, statuses = await self._complete_each(commits, exc)
                claim = Claim(())
            finally:
                ledger.claiming -= limit
            for (_, job, kind, duration), commit, status in zip(
                batch, commits, statuses, strict=True
            ):
                self._committed(commit, job, kind, duration, status)
            if keep:
                self._kept(claim, keep, batch)
            ledger.accept(claim)
            ledger.wake.set()
            ledger.capacity.set()

    def _keep(self, batch: list[Outcome], limit: int) -> dict[int, int]:
        """Instance id -> steps in a row, for the outcomes whose instance may
        keep its lease if its commit is a plain ``next`` (the store decides
        that, ``_store_rules.keepable``; spec §5.5.13)."""
        chained, most = self._chained, self._chain_steps
        keep: dict[int, int] = {}
        if not chained and (most <= 1 or not limit):
            return keep
        for commit, _, _, _ in batch:
            steps = chained.pop(commit.lease.id, 0) + 1 if chained else 1
            if steps < most and limit and type(commit) is NextCommit:
                keep[commit.lease.id] = steps
        return keep

    def _kept(self, claim: Claim, keep: Mapping[int, int], batch: list[Outcome]) -> None:
        # The store returns kept rows as claimed jobs with the token they had; a
        # row it put back in the queue and claimed again has a new token.
        tokens = {job.id: job.token for _, job, _, _ in batch}
        for job in claim.jobs:
            if job.id in keep and tokens[job.id] == job.token:
                self._chained[job.id] = keep[job.id]

    def _committed(self, commit: Commit, job: Job, kind: str, duration: float, status: str) -> None:
        ledger = self._ledger
        if status == "duplicate_key":
            # A child's key is taken: a step error, routed to handle (spec §5.7).
            self._spawn(self._rehandle, job, duration)
            return
        ledger.drop(job.lease)
        finished = type(commit) in _FINISHED
        if status == "applied" and not telemetry._handlers:
            if finished:
                ledger.finished(job.id)
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
            ledger.cancelled.discard(job.id)
            telemetry.execute(("trexec", "durable", "outcome", "cancelled"), {"count": 1}, meta)
            if (job.machine, job.version) in self._runner.hooked:
                # spec §5.4.11: this engine ran the step the cancel discarded.
                self._spawn(self._runner.cancelled, job.id, commit)
        elif finished:
            ledger.finished(job.id)

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
            self.outcomes.put((commit, job, kind, duration))

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
            reason = f"the store refused this {commit.kind} outcome: {refused}"
            stop = StopCommit(commit.lease, reason_text(reason))
            [status] = await self._complete_alone(stop, rejectable=False)
            applied.append(stop)
            statuses.append(status)
        return applied, statuses

    async def _complete_alone(self, commit: Commit, *, rejectable: bool) -> list[CommitStatus]:
        async def once() -> list[CommitStatus]:
            with trio.CancelScope(shield=True):  # as complete_and_claim, spec §5.11
                statuses = await self._store.complete([commit])
            return statuses

        return await retrying("complete", once, rejectable=rejectable)
