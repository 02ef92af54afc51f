"""The SQLite store's write operations, as plain functions on a connection that
run on the store's thread inside a transaction (spec §5.4, §5.6-§5.9).

``_sqlite.py`` opens the transactions and hands these functions to its thread;
the SQL they execute is in ``_sqlite_sql.py``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from . import _sqlite_sql as sql, _store_rules as rules
from ._exceptions import DuplicateKey
from ._records import (
    TERMINAL,
    AwaitCommit,
    ChildrenCommit,
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


def record(row: Sequence[Any]) -> InstanceRecord:
    return rules.record(row, json.loads)


def placeholders(n: int, width: int = 1) -> str:
    one = "?" if width == 1 else "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * n)


def machine_filter(machines: Sequence[tuple[str, int]]) -> tuple[str, list[Any]]:
    values = "VALUES " + placeholders(len(machines), 2)
    params: list[Any] = []
    for name, version in machines:
        params += [name, version]
    return values, params


@contextmanager
def write(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    # spec §5.11: every write transaction is BEGIN IMMEDIATE.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def insert_rows(c: sqlite3.Connection, items: Sequence[NewInstance], now: float) -> list[int]:
    ids = []
    for item in items:
        if item.parent_id is not None:
            cursor = c.execute(sql.PARENT_ADD_CHILD, (item.parent_id,))
            if cursor.rowcount == 0:
                raise rules.no_parent(item.parent_id)
        try:
            cursor = c.execute(
                sql.INSERT,
                (item.machine, item.version, item.step, item.state, item.key,
                 item.parent_id, now + item.scheduled_in, now, now, item.priority,
                 item.concurrency_key, item.concurrency_limit, item.trace_context),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise rules.key_taken(item.key) from exc
        assert cursor.lastrowid is not None
        ids.append(cursor.lastrowid)
    return ids


def candidates(
    c: sqlite3.Connection, now: float, machines: Sequence[tuple[str, int]], limit: int
) -> list[tuple[int, str, str | None, int]]:
    """Up to ``limit`` due rows in claim order (spec §11.1), within the slots
    their concurrency key has left (spec §11.2). A row whose key's slots are all
    held by running rows is marked ``key_blocked``: no claim reads it again
    until the trigger hands it a freed slot."""
    values, params = machine_filter(machines)
    query = sql.CLAIM_CANDIDATES.format(values)
    chosen: list[tuple[int, str, str | None, int]] = []
    seen: set[int] = set()
    held: dict[str, int] = {}  # key -> rows running in the store
    taken: dict[str, int] = {}  # key -> rows this claim takes
    for _ in range(8):  # each round blocks a row or ends: bounded, never a spin
        rows: list[Any] = []
        (priority,) = c.execute(sql.RUNNABLE_TOP_PRIORITY).fetchone()
        while priority is not None:
            rows += c.execute(query, (priority, now, *params, limit - len(rows)))
            if len(rows) >= limit:
                break
            (priority,) = c.execute(sql.RUNNABLE_PRIORITY_BELOW, (priority,)).fetchone()
        blocked = []
        for id_, status, rate_limit, weight, key, key_limit in rows:
            if id_ in seen or len(chosen) >= limit:
                continue
            seen.add(id_)
            if key is not None:
                if key not in held:
                    held[key] = c.execute(sql.KEY_RUNNING, (key,)).fetchone()[0]
                if held[key] >= key_limit:
                    blocked.append(id_)
                    continue
                if held[key] + taken.get(key, 0) >= key_limit:
                    # Blocked by this claim only: its rows may yet be throttled,
                    # so it stays claimable (the next claim sees them running).
                    continue
                taken[key] = taken.get(key, 0) + 1
            chosen.append((id_, status, rate_limit, weight))
        if blocked:
            c.execute(sql.KEY_BLOCK.format(placeholders(len(blocked))), blocked)
        if not blocked or len(chosen) >= limit:
            break
    return chosen


def take_tokens(
    c: sqlite3.Connection,
    rows: Sequence[tuple[int, str, str | None, int]],
    rate_limits: Mapping[str, RateLimitPolicy],
    now: float,
) -> tuple[list[int], list[Throttled]]:
    """Take tokens for each candidate row, oldest first (spec §5.9); return the
    ids to claim and the throttled rows, postponed to when their bucket refills."""
    buckets = rules.Buckets(rate_limits, now)
    ids: list[int] = []
    throttled: list[Throttled] = []
    for id_, _status, key, weight in rows:
        if key is not None and buckets.policy(key) is not None:
            if key not in buckets.changed:
                stored = c.execute(sql.BUCKET_GET, (key,)).fetchone()
                buckets.level(key, *(stored or (None, None)))
            wait = buckets.take(key, weight)
            if wait is not None:
                c.execute(sql.THROTTLE_ROW, (now + wait, id_))
                throttled.append(Throttled(id_, key, wait))
                continue
        ids.append(id_)
    for key, tokens in buckets.changed.items():
        c.execute(sql.BUCKET_SET, (key, tokens, now))
    return ids, throttled


def target(c: sqlite3.Connection, target: int | str) -> tuple[int, str, str]:
    query = sql.TARGET_BY_ID if isinstance(target, int) else sql.TARGET_BY_KEY
    return rules.live_target(target, c.execute(query, (target,)).fetchone())


def deliver(
    c: sqlite3.Connection,
    target: tuple[int, str, str],
    name: str,
    payload: str,
    dedup_key: str | None,
    now: float,
) -> Delivery:
    """Store a signal for the live instance ``target`` (id, status, awaits) and
    wake it if it awaits ``name`` (spec §5.6)."""
    id_, status, awaits = target
    if dedup_key is not None:
        row = c.execute(sql.DEDUP_GET, (id_, dedup_key)).fetchone()
        if row is not None:
            return Delivery(row[0], id_, True)
    cursor = c.execute(sql.DELIVER_SIGNAL, (id_, name, payload, dedup_key, now))
    signal_id = cursor.lastrowid
    assert signal_id is not None
    if dedup_key is not None:
        c.execute(sql.DEDUP_SET, (id_, dedup_key, signal_id))
    if status == "awaiting" and name in json.loads(awaits):
        c.execute(sql.WAKE_NOW, (now, now, id_))
    return Delivery(signal_id, id_, False)


#: Rows per bulk statement: 6 parameters a row stays under SQLite's oldest
#: default limit of 999 parameters.
BULK_ROWS = 150


def complete_many(
    c: sqlite3.Connection, commits: Sequence[Commit], now: float
) -> list[CommitStatus]:
    """Apply a batch of commits inside the caller's write transaction; one
    status per commit. The plain ``next`` and ``done`` commits (no effects,
    nothing consumed: almost every step) are written with one statement per
    kind; every other commit, and any plain one that did not apply (to tell
    ``stale`` from ``cancelled``), as by :func:`complete_one`. The commits are
    of distinct leases, so the order they apply in changes nothing."""
    statuses: list[CommitStatus | None] = [None] * len(commits)
    nexts: list[int] = []
    dones: list[int] = []
    for i, commit in enumerate(commits):
        if commit.effects is None:
            if isinstance(commit, NextCommit) and not commit.consumed:
                nexts.append(i)
            elif isinstance(commit, DoneCommit):
                dones.append(i)
        elif isinstance(commit, DoneCommit) and commit.effects.only_state:
            dones.append(i)  # a done with its final state (a workflow run's end, §6.6.5)
    if len(nexts) > 1:
        _next_many(c, commits, nexts, now, statuses)
    if len(dones) > 1:
        _done_many(c, commits, dones, now, statuses)
    for i, commit in enumerate(commits):
        if statuses[i] is None:
            statuses[i] = complete_one(c, commit, now)
    return [status for status in statuses if status is not None]


def any_signal(c: sqlite3.Connection) -> bool:
    """True when some inbox holds a signal, as of now in this transaction."""
    return bool(c.execute(sql.ANY_SIGNAL).fetchone()[0])


def complete_keeping(
    c: sqlite3.Connection,
    commits: Sequence[Commit],
    keep: Collection[int],
    limit: int,
    now: float,
    until: float,
) -> tuple[list[CommitStatus], list[Any]]:
    """:func:`complete_many`, except that up to ``limit`` plain ``next`` commits
    of instances in ``keep`` may keep their lease until ``until`` (spec §5.5.13).
    Returns the statuses and the kept rows (``CLAIM_ROWS`` columns, in commit
    order). The other commits apply first: a row they make runnable counts
    when the kept rows' priority is checked."""
    chosen = rules.keepable(commits, keep, limit)
    if not chosen:
        return complete_many(c, commits, now), []
    statuses: list[CommitStatus | None] = [None] * len(commits)
    taken = set(chosen)
    rest = [i for i in range(len(commits)) if i not in taken]
    for i, status in zip(rest, complete_many(c, [commits[i] for i in rest], now), strict=True):
        statuses[i] = status
    ids = [commits[i].lease.id for i in chosen]
    (top,) = c.execute(sql.KEEP_TOP_PRIORITY.format(placeholders(len(ids))), ids).fetchone()
    kept: dict[int, Any] = {}
    for start in range(0, len(chosen), BULK_ROWS):
        params: list[Any] = [until, now]
        for i in chosen[start : start + BULK_ROWS]:
            commit = commits[i]
            assert isinstance(commit, NextCommit)
            params += (commit.lease.id, commit.lease.token, commit.step, commit.state,
                       commit.weight)  # fmt: skip
        params.append(top or 0)  # the last placeholder, after the VALUES
        n = min(BULK_ROWS, len(chosen) - start)
        query = sql.COMPLETE_KEEP_MANY.format("VALUES " + placeholders(n, 5))
        kept.update((row[0], row) for row in c.execute(query, params))
    back = [i for i in chosen if commits[i].lease.id not in kept]
    for i, status in zip(back, complete_many(c, [commits[i] for i in back], now), strict=True):
        statuses[i] = status
    rows = []
    for i in chosen:
        if (row := kept.get(commits[i].lease.id)) is not None:
            statuses[i] = "applied"
            rows.append(row)
    return [status for status in statuses if status is not None], rows


def _next_many(
    c: sqlite3.Connection,
    commits: Sequence[Commit],
    indexes: list[int],
    now: float,
    statuses: list[CommitStatus | None],
) -> None:
    for start in range(0, len(indexes), BULK_ROWS):
        chunk = indexes[start : start + BULK_ROWS]
        params: list[Any] = [now, now]
        for i in chunk:
            commit = commits[i]
            assert isinstance(commit, NextCommit)
            lease = commit.lease
            params += (lease.id, lease.token, commit.step, commit.state, commit.rate_limit,
                       commit.weight)  # fmt: skip
        query = sql.COMPLETE_NEXT_MANY.format("VALUES " + placeholders(len(chunk), 6))
        applied = set(c.execute(query, params).fetchall())
        for i in chunk:
            lease = commits[i].lease
            if (lease.id, lease.token) in applied:
                statuses[i] = "applied"


def _done_many(
    c: sqlite3.Connection,
    commits: Sequence[Commit],
    indexes: list[int],
    now: float,
    statuses: list[CommitStatus | None],
) -> None:
    for start in range(0, len(indexes), BULK_ROWS):
        chunk = indexes[start : start + BULK_ROWS]
        params: list[Any] = [now]
        for i in chunk:
            commit = commits[i]
            assert isinstance(commit, DoneCommit)
            effects = commit.effects  # None, or only a final state (complete_many)
            params += (commit.lease.id, commit.lease.token, commit.result,
                       None if effects is None else effects.state)  # fmt: skip
        query = sql.COMPLETE_DONE_MANY.format("VALUES " + placeholders(len(chunk), 4))
        rows = c.execute(query, params).fetchall()
        if not rows:
            continue
        applied = {(id_, token) for id_, token, _ in rows}
        for i in chunk:
            lease = commits[i].lease
            if (lease.id, lease.token) in applied:
                statuses[i] = "applied"
        # What finish() does for each, the inboxes in one statement.
        ids = [id_ for id_, _, _ in rows]
        if any_signal(c):
            c.execute(sql.CLEAR_INBOXES.format(placeholders(len(ids))), ids)
        for _, _, parent_id in rows:
            if parent_id is not None:
                _child_finished(c, parent_id, now)


def complete_one(c: sqlite3.Connection, commit: Commit, now: float) -> CommitStatus:
    effects = commit.effects
    if effects is None:
        return rules.dispatch(Writer(c, now), commit)
    # spec §5.4.10: the effects are written in the commit's transaction, if it applies.
    targets = []
    for signal in effects.signals:
        query = sql.TARGET_BY_ID if isinstance(signal.target, int) else sql.TARGET_BY_KEY
        row = c.execute(query, (signal.target,)).fetchone()
        if row is None or row[1] in TERMINAL:
            if effects.fallback is not None:
                return rules.dispatch(Writer(c, now), effects.fallback)
            continue
        targets.append((signal, (int(row[0]), str(row[1]), str(row[2]))))
    status = rules.dispatch(Writer(c, now), commit)
    if status != "applied":
        return status
    if effects.state is not None:
        c.execute(sql.SET_STATE, (effects.state, commit.lease.id))
    for signal, target_row in targets:
        deliver(c, target_row, signal.name, signal.payload, signal.dedup_key, now)
    for item in effects.inserts:
        with contextlib.suppress(DuplicateKey):  # a live instance holds its key: skipped
            insert_rows(c, [item], now)
    return status


class Writer:
    """Writes each kind of commit (``_store_rules.CommitWriter``); every
    statement is fenced by (id, token, running) (spec §5.8)."""

    def __init__(self, c: sqlite3.Connection, now: float) -> None:
        self.c = c
        self.now = now

    def next(self, commit: NextCommit) -> CommitStatus:
        c, now, (id_, token) = self.c, self.now, (commit.lease.id, commit.lease.token)
        params = (commit.step, commit.state, now, commit.rate_limit, commit.weight, now)
        if not c.execute(sql.COMPLETE_NEXT, (*params, id_, token)).rowcount:
            return _rejected(c, id_)
        _consume(c, id_, commit.consumed)
        return "applied"

    def retry(self, commit: RetryCommit) -> CommitStatus:
        c, now, (id_, token) = self.c, self.now, (commit.lease.id, commit.lease.token)
        params = (commit.state, now + commit.delay, now)
        if not c.execute(sql.COMPLETE_RETRY, (*params, id_, token)).rowcount:
            return _rejected(c, id_)
        return "applied"

    def await_(self, commit: AwaitCommit) -> CommitStatus:
        c, now, (id_, token) = self.c, self.now, (commit.lease.id, commit.lease.token)
        awaits = json.dumps(list(commit.awaits))
        run_at = None if commit.timeout is None else now + commit.timeout
        params = (commit.step, commit.state, run_at, awaits, now)
        if not c.execute(sql.COMPLETE_AWAIT, (*params, id_, token)).rowcount:
            return _rejected(c, id_)
        _consume(c, id_, commit.consumed)
        # spec §5.6: a matching signal that arrived before parking wakes it now.
        if c.execute(sql.AWAIT_MATCHING_SIGNAL, (id_, awaits)).fetchone():
            c.execute(sql.WAKE_NOW, (now, now, id_))
        return "applied"

    def children(self, commit: ChildrenCommit) -> CommitStatus:
        c, now, id_ = self.c, self.now, commit.lease.id
        row = c.execute(sql.FENCE, (id_,)).fetchone()
        if row is None or row[0] != "running" or row[1] != commit.lease.token:
            return _rejected(c, id_)
        c.execute("SAVEPOINT children")
        try:
            insert_rows(c, [rules.child_of(child, id_) for child in commit.children], now)
        except DuplicateKey:
            c.execute("ROLLBACK TO children")
            c.execute("RELEASE children")
            return "duplicate_key"
        c.execute("RELEASE children")
        n = len(commit.children)
        # spec §5.7: zero children proceed at once.
        status_after, run_at = ("waiting_children", None) if n else ("scheduled", now)
        params = (status_after, commit.step, commit.state, run_at, n, now, id_)
        c.execute(sql.COMPLETE_CHILDREN, params)
        _consume(c, id_, commit.consumed)
        return "applied"

    def finish(self, commit: DoneCommit | StopCommit) -> CommitStatus:
        c, now, (id_, token) = self.c, self.now, (commit.lease.id, commit.lease.token)
        if isinstance(commit, DoneCommit):
            row = c.execute(sql.COMPLETE_DONE, (commit.result, now, id_, token)).fetchone()
        else:
            row = c.execute(sql.COMPLETE_STOP, (commit.error, now, id_, token)).fetchone()
        if row is None:
            return _rejected(c, id_)
        finish(c, id_, row[0], now)
        return "applied"


def _rejected(c: sqlite3.Connection, id_: int) -> CommitStatus:
    row = c.execute(sql.FENCE, (id_,)).fetchone()
    return "cancelled" if row is not None and row[0] == "cancelled" else "stale"


def _consume(c: sqlite3.Connection, id_: int, consumed: Sequence[int]) -> None:
    # spec §5.6: a progressing outcome deletes exactly the awaited ids it received.
    if consumed:
        c.executemany(sql.CONSUME_SIGNAL, [(sid, id_) for sid in consumed])


def finish(c: sqlite3.Connection, id_: int, parent_id: int | None, now: float) -> None:
    """What every terminal transition implies: inbox cleared (spec §5.6),
    parent barrier decremented (spec §5.7)."""
    c.execute(sql.CLEAR_INBOX, (id_,))
    if parent_id is not None:
        _child_finished(c, parent_id, now)


def _child_finished(c: sqlite3.Connection, parent_id: int, now: float) -> None:
    # spec §5.7: the parent's barrier drops by one; at zero it is scheduled now.
    if c.execute(sql.PARENT_CHILD_FINISHED, (now, parent_id)).rowcount:
        c.execute(sql.PARENT_RELEASE_BARRIER, (now, now, parent_id))
