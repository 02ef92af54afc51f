"""The PostgreSQL store's transaction bodies (spec §5, §8): each function takes a
connection inside an open transaction and does one operation of the spec.

``_postgres.py`` runs them (one thread call, one transaction each) and maps
errors; the SQL itself lives in ``_postgres_sql.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

import attrs
import psycopg
import psycopg.errors

from . import _postgres_sql as sql, _store_rules as rules
from ._exceptions import DuplicateKey
from ._postgres_effects import PendingEffects, batchable, one_by_one
from ._postgres_insert import insert_rows as insert_rows
from ._records import (
    TERMINAL,
    AwaitCommit,
    ChildrenCommit,
    Commit,
    CommitStatus,
    Delivery,
    DoneCommit,
    Effects,
    NextCommit,
    RetryCommit,
    StopCommit,
)
from ._store import PRUNE_BATCH, prune_selection

__all__ = [
    "CompleteBatch",
    "Keep",
    "cancel",
    "complete",
    "complete_simple",
    "deliver_signal",
    "insert_rows",
    "prune_batch",
    "record",
    "signal",
]

Conn = psycopg.Connection[Any]


record = rules.record
signal = rules.signal


@attrs.frozen
class Keep:
    """Which plain ``next`` commits of a batch may keep their lease (spec
    §5.5.13): instances in ``ids``, at most ``limit``, leased for ``lease``
    seconds, checked against the runnable rows of ``machines``."""

    ids: Collection[int]
    limit: int
    lease: float
    machines: Sequence[tuple[str, int]]


def complete(
    c: Conn,
    commits: Sequence[Commit],
    notify: Callable[[Conn], None],
    *,
    unclaimed: bool = False,
    keep: Keep | None = None,
) -> tuple[list[CommitStatus], list[Any]]:
    """The transaction body of ``Store.complete`` (spec §5.4, §8.8): the
    statuses, and the rows ``keep`` kept (as the claim returns them, in commit
    order; only a ``simple`` batch keeps any).

    ``unclaimed``: the committing engine claims nothing in this transaction (it
    is shutting down, or full), so ``next``/``retry`` commits notify too (§8.5.2).
    """
    kept: list[Any] = []
    chosen = rules.keepable(commits, keep.ids, keep.limit) if keep is not None else []
    if simple(commits):
        statuses, wakes, kept = complete_simple(c, commits, chosen, keep)
    else:
        batch = CompleteBatch(c)
        batch.lock(commits)  # every row of the batch, kept ones too, in id order (§8.8.2)
        taken = set(chosen)
        rest = [commit for i, commit in enumerate(commits) if i not in taken]
        applied = iter([batch.add(commit) for commit in rest])
        batch.flush()
        wakes = batch.wakes
        if chosen:
            # spec §5.5.13: the plain `next` commits that may keep their lease,
            # after the rest: a row the rest put back in the queue now counts.
            plain, n = [commits[i] for i in chosen], len(commits)
            ruled, _, kept = complete_simple(c, plain, range(len(plain)), keep)
            by_index = dict(zip(chosen, ruled, strict=True))
            statuses = [by_index[i] if i in by_index else next(applied) for i in range(n)]
        else:
            statuses = list(applied)
    progressed = unclaimed and any(
        commit.kind in ("next", "retry") and status == "applied"
        for commit, status in zip(commits, statuses, strict=True)
    )
    if wakes or progressed:
        notify(c)
    return statuses, kept


def complete_simple(
    c: Conn, commits: Sequence[Commit], chosen: Sequence[int] = (), keep: Keep | None = None
) -> tuple[list[CommitStatus], bool, list[Any]]:
    """The common batch (``simple``) in one statement (spec §8.8.5); returns the
    statuses, as ``CompleteBatch.add`` gives them, whether a parent woke, and
    the rows kept of the ``next`` commits at indexes ``chosen`` (spec §5.5.13)."""
    keeping = set(chosen)
    rows = [
        (
            x.lease.id, x.lease.token, "keep" if i in keeping else "next", x.step, x.state,
            x.rate_limit, x.weight, None,
        ) if isinstance(x, NextCommit) else (
            x.lease.id, x.lease.token, x.kind, None,
            None if x.effects is None else x.effects.state,  # only_state: a final state
            None, None,
            x.result if isinstance(x, DoneCommit) else x.error,  # type: ignore[union-attr]
        )
        for i, x in enumerate(commits)
    ]  # fmt: skip
    machines = keep.machines if keep is not None else ()
    params = {
        "batch": json.dumps(rows, ensure_ascii=False),
        "machines": [m for m, _ in machines],
        "versions": [v for _, v in machines],
        "lease": float(keep.lease) if keep is not None else 0.0,
    }
    cursor = c.execute(sql.COMPLETE_SIMPLE, params)
    fenced = {row[0]: row[1:] for row in cursor.fetchall()}
    statuses: list[CommitStatus] = []
    finished: list[int] = []
    parents: list[int] = []
    kept: list[Any] = []
    for commit in commits:
        status, token, parent_id, was_kept, *claimed = fenced.get(
            commit.lease.id, ("gone", 0, None, None)
        )
        if status == "cancelled":
            statuses.append("cancelled")
        elif status != "running" or token != commit.lease.token:
            statuses.append("stale")  # spec §5.8.2: fenced (an unknown row too)
        else:
            statuses.append("applied")
            if was_kept:
                kept.append(claimed)
            elif commit.kind != "next":
                finished.append(commit.lease.id)
                if parent_id is not None:
                    parents.append(parent_id)
    if finished:
        # spec §5.6: a terminal outcome clears the inbox. A statement of its own,
        # whose snapshot sees every signal committed before the row locks.
        c.execute(sql.CLEAR_INBOXES, (finished,))
    if not parents:
        return statuses, False, kept
    # spec §5.7: the parents' barrier; parents locked in id order (§8.8.2).
    c.execute(sql.LOCK_ROWS, (sorted(set(parents)),))
    woke = c.execute(sql.PARENTS_CHILDREN_FINISHED, (parents,)).fetchall()
    return statuses, any(s == "scheduled" for _, s in woke), kept


def simple(commits: Sequence[Commit]) -> bool:
    """True for a batch ``COMPLETE_SIMPLE`` applies: next/done/stop commits
    without effects (a done's final state aside) or consumed signals, each
    instance named once."""
    for commit in commits:
        if commit.kind not in ("next", "done", "stop"):
            return False
        if commit.effects is not None and not (commit.kind == "done" and commit.effects.only_state):
            return False
        if isinstance(commit, NextCommit) and commit.consumed:
            return False
    return len({commit.lease.id for commit in commits}) == len(commits)


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
        self._await: list[AwaitCommit] = []
        self.effects = PendingEffects()

    def lock(self, commits: Sequence[Commit]) -> None:
        # The targets of signal effects too, in the same id order (no deadlock).
        ids = sorted(
            {commit.lease.id for commit in commits}
            | {
                s.target
                for c in commits
                if c.effects is not None
                for s in c.effects.signals
                if isinstance(s.target, int)
            }
        )
        if not any(commit.effects is not None for commit in commits):
            for id_, status, token, parent_id in self.c.execute(sql.FENCE, {"ids": ids}):
                self.rows[id_] = (status, token, parent_id)
            return
        for id_, status, token, parent_id, awaits in self.c.execute(
            sql.FENCE_EFFECTS, {"ids": ids}
        ):
            self.rows[id_] = (status, token, parent_id)
            self.effects.live[id_] = (status, awaits)

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
        if commit.effects is None:
            return self._track(commit, rules.dispatch(self, commit))
        if batchable(commit.effects.signals, commit.effects.inserts):
            return self._queue_effects(commit, commit.effects)
        return one_by_one(self, commit, commit.effects)

    def _track(self, commit: Commit, status: CommitStatus) -> CommitStatus:
        if status == "applied" and self.effects.live:
            self.effects.committed(commit)
        return status

    def _queue_effects(self, commit: Commit, effects: Effects) -> CommitStatus:
        # spec §5.4.10, in bulk: the rows' statuses as this batch left them decide.
        pending = self.effects
        targets = []
        for signal in effects.signals:
            assert isinstance(signal.target, int)
            live = pending.live.get(signal.target)
            if live is None or live[0] in TERMINAL:
                if effects.fallback is not None:
                    return self._track(effects.fallback, rules.dispatch(self, effects.fallback))
                continue
            targets.append((signal, live))
        status = self._track(commit, rules.dispatch(self, commit))
        if status != "applied":
            return status
        for signal, live in targets:
            pending.signal(signal, live)
        pending.inserts += effects.inserts
        if effects.state is not None:
            pending.states.append((commit.lease.id, effects.state))
        return status

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
        # Batched too (a run re-parks at every report): parked, consumed, then
        # woken at flush if a matching signal is already in its inbox (spec §5.6).
        self._await.append(commit)
        self._consumed += [(sid, commit.lease.id) for sid in commit.consumed]
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
        # Queued effects first: an await below must see the signals (spec §5.6).
        self.wakes = self.effects.flush(c) or self.wakes
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
        if self._await:
            a = self._await
            ids = [x.lease.id for x in a]
            c.execute(
                sql.COMPLETE_AWAITS,
                (
                    ids,
                    [x.step for x in a],
                    [x.state for x in a],
                    [x.timeout for x in a],
                    [json.dumps(list(x.awaits)) for x in a],
                    ids,
                ),
            )
            # No lost wake-up: a matching signal already in the inbox wakes it now.
            if c.execute(sql.WAKE_MATCHING, (ids,)).fetchall():
                self.wakes = True
        self._next, self._done, self._stop, self._consumed, self._finished = [], [], [], [], []
        self._await = []


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
