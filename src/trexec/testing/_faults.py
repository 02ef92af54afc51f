"""Injected faults (spec §10.4): :class:`Faults` and the store proxy that applies them.

The engine is not touched: a test engine runs over :class:`FaultyStore`, which
delegates every call to the test store and intercepts only the commits
(``complete``, ``complete_and_claim``). It learns which machine and step each
lease belongs to from the claims it passes through.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from .. import _validate
from ..durable import Machine, Store, StoreError
from ..durable._records import (
    Claim,
    Commit,
    CommitStatus,
    Delivery,
    EngineRecord,
    InstanceRecord,
    Lease,
    NewInstance,
    RateLimitPolicy,
    Reclaimed,
    Release,
    SignalRecord,
)
from ..durable._schedule_store import ScheduleRow
from ..durable._store import PRUNE_STATUSES

_CRASH, _LOSE = "crash_after_step", "lose_lease"
_Where = tuple[str, int, str]  # (machine name, version, step)


class Faults:
    """The faults armed on one test engine (``engine.faults``, spec §10.4).

    Each call arms the next ``times`` matching events; calls add up. A fault for
    a machine the engine does not run raises :class:`~trexec.InvalidArgument`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, runs: Iterable[type[Machine]]) -> None:
        # getattr: built before open_engine has checked the classes.
        self._runs = {(getattr(m, "name", None), getattr(m, "version", None)): m for m in runs}
        self._armed: dict[tuple[str, _Where], int] = {}
        self._failing_commits = 0

    def _where(self, machine: object, step: object) -> _Where:
        key = (getattr(machine, "name", None), getattr(machine, "version", None))
        run = self._runs.get(key) if isinstance(machine, type) else None
        if run is None or run is not machine:
            names = ", ".join(m.__qualname__ for m in self._runs.values()) or "none"
            _validate.fail("machine", machine, f"a Machine class this engine runs ({names})")
        if not isinstance(step, str) or not step or "\x00" in step:
            _validate.fail("step", step, "a non-empty str naming a step (no NUL characters)")
        return run.name, run.version, step

    def crash_after_step(self, machine: type[Machine], step: str, *, times: int = 1) -> None:
        """The next ``times`` runs of ``step`` of ``machine`` run (their side effects
        happen), then their worker dies before the outcome commits: the row stays
        ``running`` until its lease expires and the reaper returns it with
        ``attempt + 1``, as after a kill -9 (spec §5.8)."""
        self._arm(_CRASH, self._where(machine, step), times)

    def lose_lease(self, machine: type[Machine], step: str, *, times: int = 1) -> None:
        """While the next ``times`` runs of ``step`` of ``machine`` run, another
        worker reclaims the instance (``attempt + 1``), at the step's first
        ``ctx.save`` or else at its commit: the save returns False, the first
        worker's outcome is rejected by the store's fencing (spec §5.4) and the
        step runs again."""
        self._arm(_LOSE, self._where(machine, step), times)

    def fail_commits(self, *, times: int = 1) -> None:
        """The next ``times`` outcome commits (transactions) raise the store's
        connection error, :class:`~trexec.durable.StoreError`, having changed
        nothing; the engine retries them with backoff (spec §5.5.8)."""
        self._failing_commits += _validate.count("times", times, minimum=1)

    def _arm(self, kind: str, where: _Where, times: int) -> None:
        key = (kind, where)
        self._armed[key] = self._armed.get(key, 0) + _validate.count("times", times, minimum=1)

    def _take(self, kind: str, where: _Where) -> bool:
        left = self._armed.get((kind, where), 0)
        if left:
            self._armed[(kind, where)] = left - 1
        return bool(left)

    def _take_commit_failure(self) -> bool:
        if self._failing_commits:
            self._failing_commits -= 1
            return True
        return False


class FaultyStore(Store):
    """Delegates to ``inner``; applies ``faults`` to outcome commits (spec §10.4)."""

    def __init__(self, inner: Store, faults: Faults) -> None:
        self.inner = inner
        self.url = inner.url
        self._faults = faults
        self._where: dict[Lease, _Where] = {}

    def _seen(self, claim: Claim) -> Claim:
        for job in claim.jobs:
            self._where[job.lease] = (job.machine, job.version, job.step)
        return claim

    async def _commit(
        self, commits: Sequence[Commit]
    ) -> tuple[list[CommitStatus | None], list[Commit]]:
        """Decide each commit's fate; return the statuses decided here (None: ask
        the store) and the commits to apply."""
        if self._faults._take_commit_failure():
            raise StoreError(f"{self.url}: connection lost (injected by testing.Faults)")
        decided: list[CommitStatus | None] = []
        kept: list[Commit] = []
        lost: list[Release] = []
        for commit in commits:
            where = self._where.get(commit.lease)
            if where is not None and self._faults._take(_CRASH, where):
                decided.append("stale")  # never reaches the store: the worker died
                continue
            if where is not None and self._faults._take(_LOSE, where):
                lost.append(Release(commit.lease, attempted=True))
            decided.append(None)
            kept.append(commit)
        if lost:
            await self.inner.release(lost)  # another worker took it: the token moves on
        return decided, kept

    def _merge(
        self, commits: Sequence[Commit], decided: list[CommitStatus | None],
        applied: list[CommitStatus],
    ) -> list[CommitStatus]:  # fmt: skip
        results = iter(applied)
        statuses = [next(results) if status is None else status for status in decided]
        for commit, status in zip(commits, statuses, strict=True):
            if status != "duplicate_key":  # the engine commits this lease again
                self._where.pop(commit.lease, None)
        return statuses

    async def complete(self, commits: Sequence[Commit]) -> list[CommitStatus]:
        decided, kept = await self._commit(commits)
        applied = await self.inner.complete(kept) if kept else []
        return self._merge(commits, decided, applied)

    async def complete_and_claim(
        self,
        commits: Sequence[Commit],
        machines: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        rate_limits: Mapping[str, RateLimitPolicy],
        *,
        keep: Collection[int] = (),
    ) -> tuple[list[CommitStatus], Claim]:
        decided, kept = await self._commit(commits)
        applied, claim = await self.inner.complete_and_claim(
            kept, machines, limit, lease, rate_limits, keep=keep
        )
        return self._merge(commits, decided, applied), self._seen(claim)

    async def claim(
        self,
        machines: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        rate_limits: Mapping[str, RateLimitPolicy],
    ) -> Claim:
        return self._seen(await self.inner.claim(machines, limit, lease, rate_limits))

    # --- plain delegation ---------------------------------------------------------

    async def migrate(self) -> int:
        return await self.inner.migrate()

    async def insert(self, items: Sequence[NewInstance]) -> list[int]:
        return await self.inner.insert(items)

    async def next_due(self, machines: Sequence[tuple[str, int]]) -> float | None:
        return await self.inner.next_due(machines)

    async def heartbeat(self, leases: Sequence[Lease], lease: float) -> set[int]:
        return await self.inner.heartbeat(leases, lease)

    async def save_state(self, lease: Lease, state: str) -> bool:
        where = self._where.get(lease)
        if where is not None and self._faults._take(_LOSE, where):
            await self.inner.release([Release(lease, attempted=True)])  # reclaimed meanwhile
        return await self.inner.save_state(lease, state)

    async def release(self, releases: Sequence[Release]) -> None:
        for r in releases:
            self._where.pop(r.lease, None)
        await self.inner.release(releases)

    async def reap_expired(self) -> list[Reclaimed]:
        return await self.inner.reap_expired()

    async def deliver_signal(
        self, target: int | str, name: str, payload: str, dedup_key: str | None
    ) -> Delivery:
        return await self.inner.deliver_signal(target, name, payload, dedup_key)

    async def cancel(self, target: int | str) -> tuple[int, str]:
        return await self.inner.cancel(target)

    async def prune(
        self, older_than: float, statuses: Iterable[str] = PRUNE_STATUSES,
        limit: int | None = None,
    ) -> int:  # fmt: skip
        return await self.inner.prune(older_than, statuses, limit)

    async def _prune_after(
        self, older_than: float, statuses: Sequence[str], after: int, room: int | None
    ) -> tuple[int, int | None]:
        return await self.inner._prune_after(older_than, statuses, after, room)

    async def get(self, target: int | str) -> InstanceRecord | None:
        return await self.inner.get(target)

    async def inbox(self, instance_id: int) -> list[SignalRecord]:
        return await self.inner.inbox(instance_id)

    async def children(self, instance_id: int) -> list[InstanceRecord]:
        return await self.inner.children(instance_id)

    async def list(
        self,
        *,
        status: str | None = None,
        machine: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
        key: str | None = None,
        before_id: int | None = None,
        newest_first: bool = False,
    ) -> list[InstanceRecord]:
        return await self.inner.list(
            status=status,
            machine=machine,
            limit=limit,
            after_id=after_id,
            key=key,
            before_id=before_id,
            newest_first=newest_first,
        )

    async def register_schedules(self, schedules: Sequence[tuple[str, str, str]]) -> None:
        await self.inner.register_schedules(schedules)

    async def schedule_rows(self) -> tuple[float, tuple[ScheduleRow, ...]]:
        return await self.inner.schedule_rows()

    async def fire_schedule(
        self, name: str, cursor: float, new_cursor: float, items: Sequence[NewInstance]
    ) -> bool:
        return await self.inner.fire_schedule(name, cursor, new_cursor, items)

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRow:
        return await self.inner.set_schedule_paused(name, paused)

    def subscribe(self, callback: Callable[[], object]) -> Callable[[], None]:
        return self.inner.subscribe(callback)

    async def announce(
        self, engine: str, host: str, pid: int, machines: Sequence[str],
        holding: Sequence[int], ttl: float,
    ) -> None:  # fmt: skip
        await self.inner.announce(engine, host, pid, machines, holding, ttl)

    async def withdraw(self, engine: str) -> None:
        await self.inner.withdraw(engine)

    async def engines(self) -> builtins.list[EngineRecord]:
        return await self.inner.engines()

    async def attach_trace(self, target: int | str, trace_context: str) -> None:
        await self.inner.attach_trace(target, trace_context)

    async def lease_expiry(self, instance_id: int) -> tuple[float | None, float]:
        return await self.inner.lease_expiry(instance_id)

    async def count_runnable(self) -> dict[str, int]:
        return await self.inner.count_runnable()

    async def close(self) -> None:
        """The test engine's block closes the store it opened; a shared one is
        closed by its own ``open_test_store`` block."""
