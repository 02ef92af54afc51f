"""The store interface every durable backend implements (spec §5.2).

The engine (``_engine.py``) talks only to this interface; ``_sqlite.py`` (the
embedded default) and ``_postgres.py`` implement it with the same semantics.
Each method is one operation of the spec, and each write method is ONE
transaction: all of it commits, or none of it does.

Rules every implementation follows:

* The store, never the engine, reads "now": SQLite from a clock callable, the
  PostgreSQL store from the database's ``now()``. The engine passes durations
  (``lease``, ``delay``, ``timeout``, ``scheduled_in``) in seconds.
* States, results and signal payloads are JSON text, stored and returned as is.
* Ids are integers assigned by the store, increasing with insertion order.
* Errors: a business-key clash raises :class:`DuplicateKey`, an unknown or
  (where stated) finished target raises :class:`NoTarget`; every driver error
  is mapped to :class:`StoreError` (``__cause__`` = the driver's exception).
  A method that raises has changed nothing.
* Cancellation: a write that has started always runs to its commit or rollback
  (the engine's state and the database never disagree about whether it
  happened); the cancellation is delivered afterwards. A read may be
  interrupted.
* A store is opened by an async context manager (``open_store``) and is bound
  to the Trio run that opened it; ``close`` is idempotent.

Terms: an instance is *live* while its status is not terminal (``done``,
``stopped``, ``cancelled``). It is *runnable* when its status is ``scheduled``
and ``run_at <= now``, or ``awaiting`` with a timeout and ``run_at <= now``.
``attempt`` is 1 on the first run of a step.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from .. import _validate
from ._exceptions import StoreError
from ._records import (
    TERMINAL,
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
from ._schedule_store import ScheduleRow

__all__ = ["Store"]

#: The statuses ``Store.prune`` deletes by default: every terminal one (spec §5.15).
PRUNE_STATUSES: tuple[str, ...] = ("done", "stopped", "cancelled")
#: Roots ``Store.prune`` examines per transaction (spec §5.15).
PRUNE_BATCH = 1000


class Store(abc.ABC):
    """Where durable instances live. See the module docstring for shared rules."""

    #: The URL the store was opened with (secrets removed), for messages.
    url: str

    @abc.abstractmethod
    async def migrate(self) -> int:
        """Create or upgrade the schema to the store's latest schema version; return it.

        Idempotent and safe to run from several processes at once. Raises
        :class:`StoreError` if the database's schema is newer than this code.
        """

    @abc.abstractmethod
    async def insert(self, items: Sequence[NewInstance]) -> list[int]:
        """Insert every item in one transaction; return their ids in order.

        Each row starts ``scheduled`` at ``attempt`` 1, runnable at
        ``now + scheduled_in``. With ``parent_id`` the row is a child of that
        parent (listed in its ``Job.children``); if the parent is
        ``waiting_children``, its pending count grows by one (spec §5.7).
        Raises :class:`DuplicateKey` if a ``key`` is held by a live instance (or
        repeated in ``items``), :class:`NoTarget` if a ``parent_id`` is unknown;
        then nothing is inserted.
        """

    @abc.abstractmethod
    async def claim(
        self,
        machines: Sequence[tuple[str, int]],
        limit: int,
        lease: float,
        rate_limits: Mapping[str, RateLimitPolicy],
    ) -> Claim:
        """Claim up to ``limit`` runnable instances of ``machines`` ((name, version)
        pairs) in one transaction, oldest ``run_at`` first (spec §5.5).

        Each claimed row becomes ``running`` with a fresh fencing token (greater
        than any earlier token of that row) and a lease expiring at
        ``now + lease``. A row claimed from ``awaiting`` (its timeout passed)
        gets ``awaits`` cleared, so its step sees no awaited signals (spec §5.6).
        ``Job.inbox``/``Job.children`` are read in the same transaction.

        Rate limits (spec §5.9): a row whose ``rate_limit`` key (``name`` or
        ``name:partition``) names a policy in ``rate_limits`` is claimed only if
        the bucket of that whole key holds at least ``min(weight, burst)``
        tokens (buckets start full, refill at ``rate`` per second up to
        ``burst``); claiming takes ``weight`` tokens (the bucket may go
        negative). Otherwise the row is skipped, its ``run_at`` moved to when
        the bucket will hold enough, and it is reported in ``Claim.throttled``.
        A key whose name has no policy is not limited. Buckets are shared by
        every engine on the store.
        """

    @abc.abstractmethod
    async def next_due(self, machines: Sequence[tuple[str, int]]) -> float | None:
        """Seconds until the earliest runnable row of ``machines`` (0.0 if one is
        runnable now), or None if none is scheduled or awaiting with a timeout."""

    @abc.abstractmethod
    async def heartbeat(self, leases: Sequence[Lease], lease: float) -> set[int]:
        """Extend every lease still held (row ``running`` with that token) to
        ``now + lease``, in one transaction; return the ids whose lease was lost."""

    @abc.abstractmethod
    async def save_state(self, lease: Lease, state: str) -> bool:
        """Store ``state`` as the state of the instance ``lease`` holds (row
        ``running`` with that token), leaving its step, status and lease as they
        are; False, changing nothing, if the lease was lost (spec §5.5.12)."""

    @abc.abstractmethod
    async def complete(self, commits: Sequence[Commit]) -> list[CommitStatus]:
        """Apply step outcomes in ONE transaction; return one status per commit.

        Each commit is fenced: it applies only if its row is ``running`` with
        ``commit.lease.token``; a ``cancelled`` row gives ``"cancelled"``, any
        other mismatch ``"stale"``, and neither changes anything. An applied
        commit clears the lease and does everything its kind implies (spec §5.4):

        * ``next``: ``scheduled`` at ``step`` now, new ``state``, ``attempt`` 1,
          ``awaits`` cleared, the ``consumed`` signal ids deleted (only those
          of this instance), ``rate_limit``/``weight`` stored for the claim of
          the next step.
        * ``retry``: ``scheduled`` at the same step at ``now + delay``, new
          ``state``, ``attempt + 1``; ``awaits``, inbox and rate limit kept.
        * ``await``: ``awaiting`` at ``step`` (the next step), new ``state``,
          ``attempt`` 1, ``awaits`` set, ``run_at`` = ``now + timeout`` (None
          without a timeout), rate limit cleared. No lost wake-up: if the inbox
          already holds a signal named in ``awaits``, the row is ``scheduled``
          now instead (spec §5.6).
        * ``children``: the ``children`` inserted (``parent_id`` = this row) and
          the row ``waiting_children`` at ``step`` with pending count
          ``len(children)``, new ``state``, ``attempt`` 1, ``awaits`` cleared,
          ``consumed`` deleted; with no children it is ``scheduled`` now
          instead. A child key held by a live instance gives
          ``"duplicate_key"`` and changes nothing of this commit.
        * ``done`` (``result``) / ``stop`` (``error``): terminal; state kept,
          the inbox cleared, ``run_at`` cleared; if the row has a parent in
          ``waiting_children``, the parent's pending count drops by one and at
          zero the parent becomes ``scheduled`` now (spec §5.7).
        """

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
        """``complete(commits)``, then ``claim(machines, limit, ...)`` if ``limit`` > 0
        (spec §5.5.3). This default makes two transactions; a store may do both
        in one (the SQLite store does). Either way the commits are applied
        exactly as by ``complete``, before the claim reads anything.

        ``keep``: ids of instances whose plain ``next`` commit may keep its
        lease (spec §5.5.13). A store that keeps one leaves the row ``running``
        at its new step, with the same token and its lease renewed to ``now +
        lease``, and returns it among the claim's jobs, first, in place of one
        of the ``limit`` rows; its status is ``"applied"``. It keeps a row only
        if its next step has no rate limit, the row has no concurrency key,
        and no runnable row of these machines (nor a row this batch makes
        runnable) has a higher priority. Keeping none is always correct: this
        default keeps none."""
        statuses = await self.complete(commits)
        if limit <= 0:
            return statuses, Claim(())
        return statuses, await self.claim(machines, limit, lease, rate_limits)

    @abc.abstractmethod
    async def release(self, releases: Sequence[Release]) -> None:
        """Hand held rows back: each still held (``running`` with its token)
        becomes ``scheduled`` now, ``attempt + 1`` if ``attempted``; inbox,
        ``awaits`` and state unchanged. One transaction."""

    @abc.abstractmethod
    async def reap_expired(self) -> list[Reclaimed]:
        """Return every ``running`` row whose lease expired to ``scheduled`` now
        with ``attempt + 1`` (whatever its machine); one transaction. Safe to run
        concurrently from many engines: each row is reclaimed once (spec §5.8)."""

    @abc.abstractmethod
    async def deliver_signal(
        self, target: int | str, name: str, payload: str, dedup_key: str | None
    ) -> Delivery:
        """Append a signal to the inbox of ``target`` (an id, or the business key
        of a live instance) in one transaction (spec §5.6).

        If the target is ``awaiting`` and ``name`` is in its ``awaits``, it
        becomes ``scheduled`` now. With a ``dedup_key`` already used on this
        target (even by a signal since consumed), nothing is stored and the
        earlier signal's id is returned with ``duplicate=True``. Raises
        :class:`NoTarget` if the target is unknown or not live.
        """

    @abc.abstractmethod
    async def cancel(self, target: int | str) -> tuple[int, str]:
        """Cancel a live instance (by id or live key); return its id and previous status.

        The row becomes ``cancelled`` (lease, ``run_at`` and inbox cleared) and
        releases its parent's barrier like any terminal commit; an outcome later
        committed for it gives ``"cancelled"``. Its children are not touched.
        Raises :class:`NoTarget` if unknown or already terminal.
        """

    async def prune(
        self,
        older_than: float,
        statuses: Iterable[str] = PRUNE_STATUSES,
        limit: int | None = None,
    ) -> int:
        """Delete finished instances last updated more than ``older_than`` seconds
        before the store's clock, with their signals and dedup keys; return how
        many instances were deleted (spec §5.15).

        Whole trees go, never part of one: a *root* (no parent, or its parent
        already deleted) whose status is in ``statuses`` and which is old enough
        is deleted together with all its descendants, whatever their status and
        age, provided none of them is live; a tree with a live member is kept
        whole. So a live instance is never deleted, nor a finished child whose
        parent is kept (its ``ctx.children`` and ``Store.children`` read them).

        At most ``limit`` instances (None: no limit); a tree larger than what
        remains of ``limit`` is skipped. Unlike the other writes it runs in
        batches (up to ``PRUNE_BATCH``, 1,000, roots a transaction), so a big
        prune never holds locks long: if it raises or is cancelled, the batches
        already committed stay deleted (each one whole trees). Raises
        :class:`~trexec.InvalidArgument` for a bad argument.
        """
        older, chosen, most = prune_arguments(older_than, statuses, limit)
        deleted = 0
        after: int | None = 0
        while after is not None and (most is None or deleted < most):
            room = None if most is None else most - deleted
            count, after = await self._prune_after(older, chosen, after, room)
            deleted += count
        return deleted

    @abc.abstractmethod
    async def _prune_after(
        self, older_than: float, statuses: Sequence[str], after: int, room: int | None
    ) -> tuple[int, int | None]:
        """One transaction of :meth:`prune`: the roots with ``id > after`` (up to
        ``PRUNE_BATCH``, and trees of at most ``room`` instances in all); return
        (instances deleted, the cursor for the next batch or None once every
        root was examined)."""

    @abc.abstractmethod
    async def get(self, target: int | str) -> InstanceRecord | None:
        """The row with this id, or for a key the live instance holding it (else
        the most recent one that held it); None if there is none."""

    @abc.abstractmethod
    async def inbox(self, instance_id: int) -> list[SignalRecord]:
        """The signals in an instance's inbox, oldest first."""

    @abc.abstractmethod
    async def children(self, instance_id: int) -> list[InstanceRecord]:
        """Every instance whose parent is ``instance_id``, oldest first."""

    @abc.abstractmethod
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
        """Instances by increasing id (decreasing with ``newest_first``), at most
        ``limit``, filtered by ``status``/``machine``/``key`` (exact match) when
        given, with ``after_id < id < before_id`` for the bounds given (keyset
        pagination). Every combination is an index range scan that stops after
        ``limit`` rows, however large the table (spec §12.3)."""

    # --- schedules (spec §11.4) ------------------------------------------------------
    # Not abstract: a store that keeps no schedules still runs engines without them.

    async def register_schedules(self, schedules: Sequence[tuple[str, str, str]]) -> None:
        """Add each ``(name, cron, tz)`` not yet known, its cursor at the store's
        "now"; give a known one a changed cron or tz, keeping its cursor (spec
        §11.3). One transaction."""
        raise _no_schedules(self)

    async def schedule_rows(self) -> tuple[float, tuple[ScheduleRow, ...]]:
        """The store's "now" and every schedule, by name."""
        raise _no_schedules(self)

    async def fire_schedule(
        self, name: str, cursor: float, new_cursor: float, items: Sequence[NewInstance]
    ) -> bool:
        """In ONE transaction: move schedule ``name``'s cursor from ``cursor`` to
        ``new_cursor`` (compare-and-set) and insert ``items``; return True. If the
        cursor is no longer ``cursor`` or the schedule is paused, change nothing
        and return False: of engines racing for a tick, one inserts it (spec
        §11.4). Raises :class:`DuplicateKey` as :meth:`insert` does (then nothing
        changed)."""
        raise _no_schedules(self)

    async def set_schedule_paused(self, name: str, paused: bool) -> ScheduleRow:
        """Pause or resume schedule ``name`` for every engine; return its row.
        Resuming moves an older cursor to "now" (spec §11.6). Raises
        :class:`NoTarget` for an unknown name."""
        raise _no_schedules(self)

    def subscribe(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` (synchronously, in Trio) whenever the store learns
        that work may have become runnable through another process (PostgreSQL:
        LISTEN/NOTIFY); return ``unsubscribe()``. An engine's picker subscribes
        to wake at once instead of waiting for ``poll_interval`` (spec §5.5.2).
        The default never calls back (the SQLite store: other processes are
        noticed by polling)."""
        return lambda: None

    # --- observation (spec §5.16, §14): defaults for stores that keep none -------

    async def announce(  # noqa: B027 - a store may keep no announcements
        self, engine: str, host: str, pid: int, machines: Sequence[str],
        holding: Sequence[int], ttl: float,
    ) -> None:  # fmt: skip
        """Record (or refresh) live engine ``engine``'s announcement, valid for
        ``ttl`` seconds; forget announcements long expired (spec §5.16)."""

    async def withdraw(self, engine: str) -> None:  # noqa: B027
        """Remove ``engine``'s announcement (its clean shutdown)."""

    async def engines(self) -> builtins.list[EngineRecord]:
        """The announcements not yet expired, oldest engine first."""
        return []

    async def attach_trace(self, target: int | str, trace_context: str) -> None:  # noqa: B027
        """Store ``trace_context`` with ``target`` (an id, or the key of a live
        instance) unless it has one (spec §14.2); an unknown target is ignored."""

    async def lease_expiry(self, instance_id: int) -> tuple[float | None, float]:
        """The instance's lease expiry (None when not ``running``) and the store's now."""
        return None, 0.0

    async def count_runnable(self) -> dict[str, int]:
        """Runnable instances now, per machine name (spec §14.3: the backlog)."""
        return {}

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection/thread; idempotent. Later calls raise
        :class:`StoreError`."""


def _no_schedules(store: Store) -> StoreError:
    return StoreError(f"{store.url}: this store keeps no schedules")


def prune_arguments(
    older_than: object, statuses: object, limit: object
) -> tuple[float, tuple[str, ...], int | None]:
    """``Store.prune``'s arguments checked (spec §5.15): ``older_than`` seconds
    >= 0, ``statuses`` a non-empty iterable of terminal statuses (duplicates
    dropped), ``limit`` None or an int >= 1. Raises
    :class:`~trexec.InvalidArgument` naming the bad value."""
    seconds = _validate.seconds("older_than", older_than)
    if isinstance(statuses, str | bytes) or not isinstance(statuses, Iterable):
        _validate.fail("statuses", statuses, "an iterable of 'done', 'stopped', 'cancelled'")
    given = tuple(statuses)
    if not given:
        _validate.fail("statuses", statuses, "at least one of 'done', 'stopped', 'cancelled'")
    for status in given:  # before dict.fromkeys: an unhashable item is a TypeError there
        _validate.one_of("statuses", status, PRUNE_STATUSES)
    chosen = tuple(dict.fromkeys(given))
    if limit is not None:
        _validate.count("limit", limit, minimum=1)
    return seconds, chosen, limit  # type: ignore[return-value]


def prune_selection(
    roots: Sequence[int], members: Iterable[tuple[int, int, str]], room: int | None
) -> list[int]:
    """The ids one prune batch deletes (spec §5.15): the whole tree of each root
    (``members`` are ``(root, id, status)`` rows, the root included), in root
    order, except a tree with a live member and a tree that does not fit in
    ``room`` (None: no limit)."""
    trees: dict[int, list[int]] = {root: [] for root in roots}
    kept: set[int] = set()
    for root, id_, status in members:
        if status not in TERMINAL:
            kept.add(root)
        trees.setdefault(root, []).append(id_)
    chosen: list[int] = []
    for root in roots:
        tree = trees[root]
        if root in kept or not tree or (room is not None and len(chosen) + len(tree) > room):
            continue
        chosen += tree
    return chosen
