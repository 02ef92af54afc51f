"""The PostgreSQL store's transaction bodies (spec §5, §8): each function takes a
connection inside an open transaction and does one operation of the spec.

``_postgres.py`` runs them (one thread call, one transaction each) and maps
errors; the SQL itself lives in ``_postgres_sql.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
import psycopg.errors

from . import _postgres_sql as sql, _store_rules as rules
from ._exceptions import DuplicateKey
from ._records import (
    AwaitCommit,
    ChildrenCommit,
    Claim,
    Commit,
    CommitStatus,
    Delivery,
    DoneCommit,
    InstanceRecord,
    NewInstance,
    NextCommit,
    RateLimitPolicy,
    RetryCommit,
    StopCommit,
    Throttled,
)
from ._store import PRUNE_BATCH, prune_selection

__all__ = [
    "CompleteBatch",
    "claim_op",
    "cancel",
    "complete",
    "deliver_signal",
    "insert_rows",
    "prune_batch",
    "record",
    "signal",
]

Conn = psycopg.Connection[Any]


record = rules.record
signal = rules.signal


def insert_rows(c: Conn, items: Sequence[NewInstance]) -> list[int]:
    """Insert ``items`` (spec §5.3); raises DuplicateKey / NoTarget (nothing inserted)."""
    parents: dict[int, int] = {}
    for item in items:
        if item.parent_id is not None:
            parents[item.parent_id] = parents.get(item.parent_id, 0) + 1
    if parents:
        found = {row[0] for row in c.execute(sql.LOCK_PARENTS, (sorted(parents),))}
        missing = sorted(set(parents) - found)
        if missing:
            raise rules.no_parent(missing[0])
        c.execute(sql.PARENT_ADD_CHILDREN, (list(parents), list(parents.values())))
    try:
        rows = c.execute(
            sql.INSERT,
            (
                [i.machine for i in items],
                [i.version for i in items],
                [i.step for i in items],
                [i.state for i in items],
                [i.key for i in items],
                [i.parent_id for i in items],
                [float(i.scheduled_in) for i in items],
                [i.trace_context for i in items],
            ),
        ).fetchall()
    except psycopg.errors.UniqueViolation as exc:
        key = duplicate_key(exc, items)
        raise rules.key_taken(key) from exc
    return sorted(row[0] for row in rows)


def claim_op(
    machines: Sequence[tuple[str, int]],
    limit: int,
    lease: float,
    rate_limits: Mapping[str, RateLimitPolicy],
) -> Callable[[Conn], Claim]:
    """The transaction body of ``Store.claim`` (spec §5.5, §8.7)."""
    params: dict[str, Any] = {
        "machines": [m for m, _ in machines],
        "versions": [v for _, v in machines],
        "limit": limit,
        "lease": float(lease),
    }

    def op(c: Conn) -> Claim:
        throttled: list[Throttled] = []
        if not rate_limits:
            # spec §8.7.1: one statement; SKIP LOCKED lets workers claim side by side.
            rows = c.execute(sql.CLAIM, params).fetchall()
            # RETURNING has no order: restore the claim's (run_at, id) order.
            rows.sort(key=lambda row: (row[-1], row[0]))
            claimed = [row[:-1] for row in rows]
        else:
            candidates = c.execute(sql.CLAIM_CANDIDATES, params).fetchall()
            chosen, throttled = apply_rate_limits(c, candidates, rate_limits)
            claimed = []
            if chosen:
                by_id = {
                    row[0]: row for row in c.execute(sql.CLAIM_ROWS, {**params, "ids": chosen})
                }
                claimed = [by_id[i] for i in chosen]
        if not claimed:
            return Claim((), tuple(throttled))
        children: dict[int, list[InstanceRecord]] = {}
        parents = [row[0] for row in claimed if row[10]]
        if parents:
            for row in c.execute(sql.CLAIM_CHILDREN, (parents,)):
                child = record(row)
                assert child.parent_id is not None
                children.setdefault(child.parent_id, []).append(child)
        jobs = tuple(
            rules.job(
                row, row[9], [signal(s) for s in row[12] or ()], children.get(row[0], ()), row[11]
            )
            for row in claimed
        )
        return Claim(jobs, tuple(throttled))

    return op


def apply_rate_limits(
    c: Conn,
    candidates: Sequence[tuple[int, str | None, int]],
    rate_limits: Mapping[str, RateLimitPolicy],
) -> tuple[list[int], list[Throttled]]:
    """Take tokens from each candidate's bucket, oldest first; return the ids to
    claim and the throttled rows, postponed to when their bucket refills."""

    now = c.execute(sql.CLOCK).fetchone()[0]  # type: ignore[index]
    buckets = rules.Buckets(rate_limits, now)
    keys = sorted({k for _, k, _ in candidates if k is not None and buckets.policy(k)})
    if not keys:
        return [id_ for id_, _, _ in candidates], []
    bursts = [buckets.policy(k).burst for k in keys]  # type: ignore[union-attr]
    c.execute(sql.BUCKETS_ENSURE, (keys, bursts))
    for key, tokens, updated in c.execute(sql.BUCKETS_LOCK, (keys,)):
        buckets.level(key, tokens, updated)
    chosen: list[int] = []
    throttled: list[Throttled] = []
    for id_, key, weight in candidates:
        wait = None if key is None or key not in buckets.changed else buckets.take(key, weight)
        if wait is not None:
            assert key is not None
            throttled.append(Throttled(id_, key, wait))
            continue
        chosen.append(id_)
    changed = buckets.changed
    c.execute(sql.BUCKETS_SET, (list(changed), list(changed.values()), [now] * len(changed)))
    if throttled:
        c.execute(sql.THROTTLE_ROWS, ([t.id for t in throttled], [t.wait for t in throttled]))
    return chosen, throttled


def complete(
    c: Conn,
    commits: Sequence[Commit],
    notify: Callable[[Conn], None],
    *,
    unclaimed: bool = False,
) -> list[CommitStatus]:
    """The transaction body of ``Store.complete`` (spec §5.4, §8.8).

    ``unclaimed``: the committing engine claims nothing in this transaction (it
    is shutting down, or full), so ``next``/``retry`` commits notify too (§8.5.2).
    """
    batch = CompleteBatch(c)
    batch.lock(commits)
    statuses = [batch.add(commit) for commit in commits]
    batch.flush()
    progressed = unclaimed and any(
        commit.kind in ("next", "retry") and status == "applied"
        for commit, status in zip(commits, statuses, strict=True)
    )
    if batch.wakes or progressed:
        notify(c)
    return statuses


class CompleteBatch:
    """Applies a batch of commits in one transaction, in order (spec §5.4).

    Every named row is locked first, in id order (two batches never deadlock).
    Runs of ``next``/``done``/``stop`` commits, the bulk of any workload, are
    applied with one statement per kind; the rarer kinds one by one, after
    flushing what came before them, so the result equals applying each commit
    in turn.
    """

    def __init__(self, c: Conn) -> None:
        self.c = c
        self.rows: dict[int, tuple[str, int, int | None]] = {}
        self.wakes = False
        self._next: list[NextCommit] = []
        self._done: list[DoneCommit] = []
        self._stop: list[StopCommit] = []
        self._consumed: list[tuple[int, int]] = []
        self._finished: list[tuple[int, int | None]] = []

    def lock(self, commits: Sequence[Commit]) -> None:
        ids = sorted({commit.lease.id for commit in commits})
        for id_, status, token, parent_id in self.c.execute(sql.FENCE, (ids,)):
            self.rows[id_] = (status, token, parent_id)

    def add(self, commit: Commit) -> CommitStatus:
        id_ = commit.lease.id
        row = self.rows.get(id_)
        if row is None:
            return "stale"
        status, token, parent_id = row
        if status == "cancelled":
            return "cancelled"
        # spec §5.8: fencing: only the current claim's outcome applies.
        if status != "running" or token != commit.lease.token:
            return "stale"
        self.rows[id_] = ("committed", token, parent_id)  # a second commit is stale
        return rules.dispatch(self, commit)

    # --- CommitWriter: runs of next/done/stop are batched, the rest one by one ---

    def next(self, commit: NextCommit) -> CommitStatus:
        self._next.append(commit)
        self._consumed += [(sid, commit.lease.id) for sid in commit.consumed]
        return "applied"

    def finish(self, commit: DoneCommit | StopCommit) -> CommitStatus:
        if isinstance(commit, DoneCommit):
            self._done.append(commit)
        else:
            self._stop.append(commit)
        self._finished.append((commit.lease.id, self.rows[commit.lease.id][2]))
        return "applied"

    def retry(self, commit: RetryCommit) -> CommitStatus:
        self.flush()
        self.c.execute(sql.COMPLETE_RETRY, (commit.state, float(commit.delay), commit.lease.id))
        return "applied"

    def await_(self, commit: AwaitCommit) -> CommitStatus:
        self.flush()
        c, id_ = self.c, commit.lease.id
        c.execute(
            sql.COMPLETE_AWAIT,
            (commit.step, commit.state, commit.timeout, list(commit.awaits), id_),
        )
        # spec §5.6: a matching signal that arrived before parking wakes it now.
        if c.execute(sql.AWAIT_MATCHING_SIGNAL, (id_, list(commit.awaits))).fetchone():
            c.execute(sql.WAKE_NOW, (id_,))
        return "applied"

    def children(self, commit: ChildrenCommit) -> CommitStatus:
        self.flush()
        c, id_ = self.c, commit.lease.id
        children = [rules.child_of(child, id_) for child in commit.children]
        if children:
            try:
                # spec §8.8.1: a savepoint: a key clash undoes only this commit.
                with c.transaction():
                    insert_rows(c, children)
            except DuplicateKey:
                self.rows[id_] = ("running", commit.lease.token, self.rows[id_][2])
                return "duplicate_key"
            self.wakes = True
        n = len(children)
        # spec §5.7: zero children proceed at once.
        status_after = "waiting_children" if n else "scheduled"
        c.execute(
            sql.COMPLETE_CHILDREN, (status_after, commit.step, commit.state, not n, n, 0, id_)
        )
        if commit.consumed:
            consumed = list(commit.consumed)
            c.execute(sql.CONSUME_SIGNALS, (consumed, [id_] * len(consumed)))
        return "applied"

    def flush(self) -> None:
        c = self.c
        if self._next:
            n = self._next
            c.execute(
                sql.COMPLETE_NEXT,
                (
                    [x.lease.id for x in n],
                    [x.step for x in n],
                    [x.state for x in n],
                    [x.rate_limit for x in n],
                    [x.weight for x in n],
                    [x.lease.id for x in n],
                ),
            )
        if self._consumed:
            c.execute(
                sql.CONSUME_SIGNALS,
                ([s for s, _ in self._consumed], [i for _, i in self._consumed]),
            )
        if self._done:
            ids = [x.lease.id for x in self._done]
            c.execute(sql.COMPLETE_DONE, (ids, [x.result for x in self._done], ids))
        if self._stop:
            ids = [x.lease.id for x in self._stop]
            c.execute(sql.COMPLETE_STOP, (ids, [x.error for x in self._stop], ids))
        if self._finished:
            # spec §5.6: a terminal outcome clears the inbox; §5.7: the parent's barrier.
            c.execute(sql.CLEAR_INBOXES, ([i for i, _ in self._finished],))
            parents = [p for _, p in self._finished if p is not None]
            if parents:
                c.execute(sql.LOCK_ROWS, (sorted(set(parents)),))
                woke = c.execute(sql.PARENTS_CHILDREN_FINISHED, (parents,)).fetchall()
                self.wakes = self.wakes or any(s == "scheduled" for _, s in woke)
        self._next, self._done, self._stop, self._consumed, self._finished = [], [], [], [], []


def duplicate_key(exc: psycopg.errors.UniqueViolation, items: Sequence[NewInstance]) -> str | None:
    """The key the server named in its error, else the first key of ``items``."""
    detail = exc.diag.message_detail or ""
    for item in items:
        if item.key is not None and f"=({item.key})" in detail:
            return item.key
    return next((i.key for i in items if i.key is not None), None)


def prune_batch(
    older_than: float, statuses: Sequence[str], after: int, room: int | None
) -> Callable[[Conn], tuple[int, int | None]]:
    """One batch: up to PRUNE_BATCH roots with ``id > after``; returns (deleted,
    the cursor for the next batch, None once every root was examined)."""
    limit = PRUNE_BATCH if room is None else min(PRUNE_BATCH, room)
    params = {
        "after": after,
        "statuses": list(statuses),
        "older_than": older_than,
        "limit": limit,
    }

    def op(c: Conn) -> tuple[int, int | None]:
        roots = [row[0] for row in c.execute(sql.PRUNE_ROOTS, params)]
        if not roots:
            return 0, None
        cursor = roots[-1] if len(roots) == limit else None
        members = c.execute(sql.PRUNE_TREES, (roots,)).fetchall()
        ids = prune_selection(roots, members, room)
        if not ids:
            return 0, cursor
        # Only finished trees are locked: a live row is what other transactions
        # lock (complete locks a child, then its parent), so prune never waits
        # on one. A tree that changed before the lock (a member got a child,
        # or another prune deleted it) is kept for a later batch.
        locked = {row[0] for row in c.execute(sql.PRUNE_LOCK, (sorted(ids),))}
        root_of = {id_: root for root, id_, _ in members}
        changed = {root_of[id_] for id_ in ids if id_ not in locked}
        changed |= {root_of[p] for (p,) in c.execute(sql.PRUNE_JOINED, (ids, ids))}
        ids = [id_ for id_ in ids if root_of[id_] not in changed]
        if not ids:
            return 0, cursor
        c.execute(sql.PRUNE_SIGNALS, (ids,))
        c.execute(sql.PRUNE_DEDUP, (ids,))
        return len(c.execute(sql.PRUNE_INSTANCES, (ids,)).fetchall()), cursor

    return op


# --- signals and cancel (spec §5.6, §5.4.8) -------------------------------------------------


def _target(c: Conn, target: int | str, by_id: str, by_key: str) -> tuple[Any, ...]:
    row = c.execute(by_id if isinstance(target, int) else by_key, (target,)).fetchone()
    return rules.live_target(target, row)


def deliver_signal(
    c: Conn,
    *,
    target: int | str,
    name: str,
    payload: str,
    dedup_key: str | None,
    notify: Callable[[Conn], None],
) -> Delivery:
    """The transaction body of ``Store.deliver_signal`` (spec §5.6)."""
    # The row lock orders this against the step parking (no lost wake-up).
    if dedup_key is None:
        query = sql.DELIVER_BY_ID if isinstance(target, int) else sql.DELIVER_BY_KEY
        row = c.execute(query, (target, name, payload)).fetchone()
        # Unknown or terminal: NoTarget (and the CTE stored nothing).
        id_, status, awaits, signal_id = rules.live_target(target, row)
        if status == "awaiting" and name in awaits:
            c.execute(sql.WAKE_NOW, (id_,))
            notify(c)
        return Delivery(signal_id, id_, False)
    id_, status, awaits = _target(c, target, sql.TARGET_BY_ID, sql.TARGET_BY_KEY)
    row = c.execute(sql.DEDUP_GET, (id_, dedup_key)).fetchone()
    if row is not None:
        return Delivery(row[0], id_, True)
    signal_id = c.execute(sql.DELIVER_SIGNAL, (id_, name, payload, dedup_key)).fetchone()[0]  # type: ignore[index]
    c.execute(sql.DEDUP_SET, (id_, dedup_key, signal_id))
    if status == "awaiting" and name in awaits:
        c.execute(sql.WAKE_NOW, (id_,))
        notify(c)
    return Delivery(signal_id, id_, False)


def cancel(c: Conn, *, target: int | str, notify: Callable[[Conn], None]) -> tuple[int, str]:
    """The transaction body of ``Store.cancel`` (spec §5.4.8, §5.7)."""
    id_, status, parent_id = _target(c, target, sql.TARGET_PARENT_BY_ID, sql.TARGET_PARENT_BY_KEY)
    c.execute(sql.CANCEL, (id_,))
    c.execute(sql.CLEAR_INBOXES, ([id_],))
    if parent_id is not None:
        woke = c.execute(sql.PARENTS_CHILDREN_FINISHED, ([parent_id],)).fetchall()
        if any(s == "scheduled" for _, s in woke):
            notify(c)
    return int(id_), str(status)
