"""The rules every store applies the same way, once (spec §5.2-§5.9): a store
module keeps only its dialect (SQL), connection handling, locking and
notification, and calls these for the decisions.

* the schema migrations (``migrate``);
* rows to records (``record``, ``signal``, ``job``), a child's row (``child_of``);
* target lookup and its errors (``live_target``, ``no_parent``, ``key_taken``);
* the rate-limit token bucket (``Buckets``, spec §5.9);
* listing filters (``list_query``);
* the dispatch of a commit on its kind (``dispatch`` over a ``CommitWriter``,
  spec §5.4), checked exhaustive by mypy.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol, assert_never

import attrs

from ._exceptions import DuplicateKey, NoTarget, StoreError
from ._records import (
    STATUSES,
    TERMINAL,
    AwaitCommit,
    ChildrenCommit,
    Commit,
    CommitStatus,
    DoneCommit,
    InstanceRecord,
    Job,
    Lease,
    NewInstance,
    NextCommit,
    RateLimitPolicy,
    RetryCommit,
    SignalRecord,
    StopCommit,
)

__all__ = [
    "Buckets",
    "CommitWriter",
    "child_of",
    "dispatch",
    "job",
    "keepable",
    "key_taken",
    "list_query",
    "migrate",
    "live_target",
    "no_parent",
    "record",
    "signal",
]

# --- keeping a lease (spec §5.5.13) -------------------------------------------------


def keepable(commits: Sequence[Commit], keep: Collection[int], limit: int) -> list[int]:
    """The indexes of the first ``limit`` commits that may keep their lease:
    plain ``next`` commits (no effects, nothing consumed, no rate limit for
    the next step) of instances in ``keep``. The store still checks the row
    (concurrency key, priority) and applies the others as plain ``next``."""
    if not keep or limit <= 0:
        return []
    chosen = []
    for i, commit in enumerate(commits):
        if (
            type(commit) is NextCommit
            and commit.lease.id in keep
            and commit.effects is None
            and not commit.consumed
            and commit.rate_limit is None
        ):
            chosen.append(i)
            if len(chosen) == limit:
                break
    return chosen


# --- schema (spec §5.2) -------------------------------------------------------------


def migrate(
    c: Any, current: int, migrations: Mapping[int, Sequence[str]], set_version: str, where: str
) -> int:
    """Apply, on connection ``c``, every migration after version ``current`` in
    order, recording each version with ``set_version``; return the latest.
    Raises :class:`StoreError` if ``current`` is newer than this code knows
    (``where`` names the store and schema in the message)."""
    latest = max(migrations)
    if current > latest:
        raise StoreError(
            f"{where}: schema version {current} is newer than this trexec"
            f" (expects {latest}); upgrade trexec"
        )
    for version in range(current + 1, latest + 1):
        for statement in migrations[version]:
            c.execute(statement)
        c.execute(set_version, (str(version),))
    return latest


# --- rows to records (spec §5.2) ---------------------------------------------------


def record(row: Sequence[Any], awaits: Callable[[Any], Sequence[str]] = tuple) -> InstanceRecord:
    """An instance row (the columns of every store's ``INSTANCE_COLUMNS``, in
    order) as a record; ``awaits`` decodes the dialect's list of signal names."""
    (id_, machine, version, step, status, state, result, error, attempt, key, parent_id,
     waits, pending, run_at, created, updated, priority, concurrency_key) = row  # fmt: skip
    return InstanceRecord(
        id=id_,
        machine=machine,
        version=version,
        step=step,
        status=status,
        state=state,
        result=result,
        error=error,
        attempt=attempt,
        key=key,
        parent_id=parent_id,
        awaits=tuple(awaits(waits)),
        pending_children=pending,
        run_at=run_at,
        created_at=created,
        updated_at=updated,
        priority=priority,
        concurrency_key=concurrency_key,
    )


def job(
    row: Sequence[Any],
    awaits: Iterable[str],
    inbox: Iterable[SignalRecord],
    children: Iterable[InstanceRecord],
    trace_context: str | None = None,
) -> Job:
    """A claimed row (id, token, machine, version, step, attempt, state, key,
    parent_id, ...) with what the claim read beside it, as a job (spec §5.5)."""
    id_, token, machine, version, step, attempt, state, key, parent_id = row[:9]
    return Job._make(
        (id_, token, machine, version, step, attempt, state, key, parent_id, tuple(awaits),
         tuple(inbox), tuple(children), trace_context, Lease._make((id_, token)))
    )  # fmt: skip


def signal(row: Sequence[Any]) -> SignalRecord:
    """A signal row (id, name, payload, dedup_key, created_at) as a record."""
    return SignalRecord(*row)


def child_of(child: NewInstance, parent_id: int) -> NewInstance:
    """A ``ScheduleChildren`` child as inserted: a child of ``parent_id`` (spec §5.7)."""
    return attrs.evolve(child, parent_id=parent_id)


# --- targets and their errors (spec §5.6, §5.3) ---------------------------------------


def live_target(target: int | str, row: Sequence[Any] | None) -> tuple[Any, ...]:
    """The row a signal or cancel addresses (its second column is the status);
    raises :class:`NoTarget` if there is none or it is terminal."""
    if row is None:
        what = "id" if isinstance(target, int) else "key"
        raise NoTarget(f"{what}={target!r}: no live instance")
    if row[1] in TERMINAL:
        raise NoTarget(f"id={target!r}: the instance is {row[1]}")
    return tuple(row)


def no_parent(parent_id: int) -> NoTarget:
    """The error for an insert whose ``parent_id`` names no instance."""
    return NoTarget(f"parent_id={parent_id!r}: no such instance")


def key_taken(key: str | None) -> DuplicateKey:
    """The error for an insert whose business key a live instance holds."""
    return DuplicateKey(f"key={key!r}: a live instance already holds this key")


# --- rate limits (spec §5.9) ---------------------------------------------------------------


class Buckets:
    """The token buckets one claim reads and takes from. ``level(key, tokens,
    updated)`` loads a stored bucket (missing: full); ``take(key, weight)``
    takes ``weight`` tokens if the bucket holds ``min(weight, burst)``, else
    returns the seconds until it will. ``changed`` is what to store back."""

    def __init__(self, policies: Mapping[str, RateLimitPolicy], now: float) -> None:
        self._policies = policies
        self._now = now
        self.changed: dict[str, float] = {}

    def policy(self, key: str | None) -> RateLimitPolicy | None:
        """The policy of ``name[:partition]``; None: not limited (an unknown name
        is reported by the engine, spec §5.9)."""
        return None if key is None else self._policies.get(key.split(":", 1)[0])

    def level(self, key: str, tokens: float | None, updated: float | None) -> float:
        policy = self.policy(key)
        assert policy is not None
        level = policy.burst
        if tokens is not None and updated is not None:
            level = min(policy.burst, tokens + max(0.0, self._now - updated) * policy.rate)
        self.changed[key] = level
        return level

    def take(self, key: str, weight: int) -> float | None:
        """Take from a bucket loaded by :meth:`level`; None if taken, else the wait."""
        policy = self.policy(key)
        assert policy is not None
        tokens = self.changed[key]
        needed = min(float(weight), policy.burst)
        if tokens + 1e-9 < needed:
            return (needed - tokens) / policy.rate
        self.changed[key] = tokens - weight  # it may go negative (spec §5.9)
        return None


# --- listing -------------------------------------------------------------------------------


def list_query(
    select: str,
    mark: str,
    *,
    status: str | None,
    machine: str | None,
    key: str | None,
    limit: int,
    after_id: int | None,
    before_id: int | None,
    newest_first: bool,
    key_hint: str = "",
    machines: Sequence[str] = (),
) -> tuple[str, list[Any]]:
    """The SQL and parameters of :meth:`Store.list`: ``select`` is the store's
    ``SELECT ... FROM instances`` and ``mark`` its placeholder (``?`` or ``%s``).

    Equalities only, then ``ORDER BY id``: each query is one index range scan
    in id order that stops after ``limit``, or a union of a few such scans
    (spec §12.3.2).
    A ``key`` uses the key index (``key_hint`` is appended to ``select``:
    SQLite, without statistics, would pass it over). Status and machine are
    served by ``(machine, status, id)`` alone: a machine without a status is
    one scan per status; a status without a machine one scan per machine of
    ``machines`` (the store's ``MACHINES``: every machine of the table).
    """
    order = "DESC" if newest_first else "ASC"
    if key is None and machine is not None and status is None:
        branches = [(machine, s) for s in STATUSES]
    elif key is None and machine is None and status is not None:
        branches = [(m, status) for m in machines]
    else:
        if key is not None:
            select += key_hint
        filters = (("status", status), ("machine", machine), ("key", key))
        return _ranged(select, mark, filters, after_id, before_id, order, limit)
    if not branches:
        return f"{select} WHERE 1 = 0", []
    # Each branch is one ordered index scan that stops after ``limit`` rows, so the
    # merge sorts at most len(branches) * limit rows, whatever the table's size.
    parts: list[str] = []
    params: list[Any] = []
    for n, (m, s) in enumerate(branches):
        sql, p = _ranged(
            select, mark, [("machine", m), ("status", s)], after_id, before_id, order, limit
        )
        parts.append(f"SELECT * FROM ({sql}) AS b{n}")
        params += p
    params.append(limit)
    return f"{' UNION ALL '.join(parts)} ORDER BY id {order} LIMIT {mark}", params


def _ranged(
    select: str,
    mark: str,
    filters: Iterable[tuple[str, object]],
    after_id: int | None,
    before_id: int | None,
    order: str,
    limit: int,
) -> tuple[str, list[Any]]:
    """One index range scan: the equalities of ``filters`` that are not None,
    the id bounds, in id order, at most ``limit`` rows."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in filters:
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if after_id is not None:
        clauses.append(f"id > {mark}")
        params.append(after_id)
    if before_id is not None:
        clauses.append(f"id < {mark}")
        params.append(before_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"{select}{where} ORDER BY id {order} LIMIT {mark}", [*params, limit]


# --- the commit dispatch (spec §5.4) --------------------------------------------------------


class CommitWriter(Protocol):
    """How one store writes each kind of commit, inside its transaction. Each
    returns the commit's status (spec §5.8: fenced by its lease)."""

    def next(self, commit: NextCommit) -> CommitStatus: ...

    def retry(self, commit: RetryCommit) -> CommitStatus: ...

    def await_(self, commit: AwaitCommit) -> CommitStatus: ...

    def children(self, commit: ChildrenCommit) -> CommitStatus: ...

    def finish(self, commit: DoneCommit | StopCommit) -> CommitStatus: ...


def dispatch(writer: CommitWriter, commit: Commit) -> CommitStatus:
    """Write ``commit`` with the writer's method for its kind."""
    match commit:
        case NextCommit():
            return writer.next(commit)
        case RetryCommit():
            return writer.retry(commit)
        case AwaitCommit():
            return writer.await_(commit)
        case ChildrenCommit():
            return writer.children(commit)
        case DoneCommit() | StopCommit():
            return writer.finish(commit)
        case _:  # pragma: no cover - mypy proves it unreachable
            assert_never(commit)
