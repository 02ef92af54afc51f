"""The SQLite store's write operations, as plain functions on a connection that
run on the store's thread inside a transaction (spec §5.4, §5.6-§5.9).

``_sqlite.py`` opens the transactions and hands these functions to its thread;
the SQL they execute is in ``_sqlite_sql.py``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from . import _sqlite_sql as sql
from ._exceptions import DuplicateKey, NoTarget, StoreError
from ._records import TERMINAL, Commit, CommitStatus, InstanceRecord, NewInstance, RateLimitPolicy


def record(row: Sequence[Any]) -> InstanceRecord:
    (id_, machine, version, step, status, state, result, error, attempt, key, parent_id,
     awaits, pending, run_at, created, updated) = row  # fmt: skip
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
        awaits=tuple(json.loads(awaits)),
        pending_children=pending,
        run_at=run_at,
        created_at=created,
        updated_at=updated,
    )


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
                raise NoTarget(f"parent_id={item.parent_id!r}: no such instance")
        try:
            cursor = c.execute(
                sql.INSERT,
                (item.machine, item.version, item.step, item.state, item.key,
                 item.parent_id, now + item.scheduled_in, now, now),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey(f"key={item.key!r}: a live instance already holds this key") from exc
        assert cursor.lastrowid is not None
        ids.append(cursor.lastrowid)
    return ids


def take_tokens(
    c: sqlite3.Connection,
    rate_key: str,
    weight: int,
    rate_limits: Mapping[str, RateLimitPolicy],
    now: float,
) -> float | None:
    """Take ``weight`` tokens from the bucket of ``rate_key``; None if taken,
    else the seconds until the bucket holds enough (spec §5.9)."""
    policy = rate_limits.get(rate_key.split(":", 1)[0])
    if policy is None:
        return None  # unknown name: not limited (the engine reports it)
    row = c.execute(sql.BUCKET_GET, (rate_key,)).fetchone()
    tokens = policy.burst
    if row is not None:
        tokens = min(policy.burst, row[0] + max(0.0, now - row[1]) * policy.rate)
    needed = min(float(weight), policy.burst)
    if tokens + 1e-9 < needed:
        c.execute(sql.BUCKET_SET, (rate_key, tokens, now))
        return (needed - tokens) / policy.rate
    c.execute(sql.BUCKET_SET, (rate_key, tokens - weight, now))
    return None


def target(c: sqlite3.Connection, target: int | str) -> tuple[int, str, str]:
    if isinstance(target, int):
        row = c.execute(sql.TARGET_BY_ID, (target,)).fetchone()
    else:
        row = c.execute(sql.TARGET_BY_KEY, (target,)).fetchone()
    if row is None:
        what = "id" if isinstance(target, int) else "key"
        raise NoTarget(f"{what}={target!r}: no live instance")
    if row[1] in TERMINAL:
        raise NoTarget(f"id={target!r}: the instance is {row[1]}")
    return row  # type: ignore[no-any-return]


def complete_one(c: sqlite3.Connection, commit: Commit, now: float) -> CommitStatus:
    id_, token = commit.lease.id, commit.lease.token
    kind = commit.kind
    # spec §5.8: every statement below is fenced by (id, token, running).
    if kind == "next":
        params: tuple[Any, ...] = (
            commit.step,
            commit.state,
            now,
            commit.rate_limit,
            commit.weight,
            now,
        )
        if not c.execute(sql.COMPLETE_NEXT, (*params, id_, token)).rowcount:
            return _rejected(c, id_)
        _consume(c, id_, commit.consumed)
    elif kind == "retry":
        params = (commit.state, now + commit.delay, now)
        if not c.execute(sql.COMPLETE_RETRY, (*params, id_, token)).rowcount:
            return _rejected(c, id_)
    elif kind == "await":
        awaits = json.dumps(list(commit.awaits))
        run_at = None if commit.timeout is None else now + commit.timeout
        params = (commit.step, commit.state, run_at, awaits, now)
        if not c.execute(sql.COMPLETE_AWAIT, (*params, id_, token)).rowcount:
            return _rejected(c, id_)
        # spec §5.6: a matching signal that arrived before parking wakes it now.
        if c.execute(sql.AWAIT_MATCHING_SIGNAL, (id_, awaits)).fetchone():
            c.execute(sql.WAKE_NOW, (now, now, id_))
    elif kind == "children":
        return _complete_children(c, commit, now)
    elif kind in ("done", "stop"):
        if kind == "done":
            row = c.execute(sql.COMPLETE_DONE, (commit.result, now, id_, token)).fetchone()
        else:
            row = c.execute(sql.COMPLETE_STOP, (commit.error, now, id_, token)).fetchone()
        if row is None:
            return _rejected(c, id_)
        finish(c, id_, row[0], now)
    else:  # pragma: no cover - the engine builds only the kinds above
        raise StoreError(f"unknown commit kind {kind!r}")
    return "applied"


def _rejected(c: sqlite3.Connection, id_: int) -> CommitStatus:
    row = c.execute(sql.FENCE, (id_,)).fetchone()
    return "cancelled" if row is not None and row[0] == "cancelled" else "stale"


def _complete_children(c: sqlite3.Connection, commit: Commit, now: float) -> CommitStatus:
    id_ = commit.lease.id
    row = c.execute(sql.FENCE, (id_,)).fetchone()
    if row is None or row[0] != "running" or row[1] != commit.lease.token:
        return _rejected(c, id_)
    c.execute("SAVEPOINT children")
    try:
        insert_rows(c, [_child_of(child, id_) for child in commit.children], now)
    except DuplicateKey:
        c.execute("ROLLBACK TO children")
        c.execute("RELEASE children")
        return "duplicate_key"
    c.execute("RELEASE children")
    n = len(commit.children)
    # spec §5.7: zero children proceed at once.
    status_after, run_at = ("waiting_children", None) if n else ("scheduled", now)
    c.execute(sql.COMPLETE_CHILDREN, (status_after, commit.step, commit.state, run_at, n, now, id_))
    _consume(c, id_, commit.consumed)
    return "applied"


def _consume(c: sqlite3.Connection, id_: int, consumed: Sequence[int]) -> None:
    # spec §5.6: a progressing outcome deletes exactly the awaited ids it received.
    if consumed:
        c.executemany(sql.CONSUME_SIGNAL, [(sid, id_) for sid in consumed])


def finish(c: sqlite3.Connection, id_: int, parent_id: int | None, now: float) -> None:
    """What every terminal transition implies: inbox cleared (spec §5.6),
    parent barrier decremented (spec §5.7)."""
    c.execute(sql.CLEAR_INBOX, (id_,))
    if parent_id is not None and c.execute(sql.PARENT_CHILD_FINISHED, (now, parent_id)).rowcount:
        c.execute(sql.PARENT_RELEASE_BARRIER, (now, now, parent_id))


def _child_of(child: NewInstance, parent_id: int) -> NewInstance:
    return NewInstance(
        machine=child.machine,
        version=child.version,
        step=child.step,
        state=child.state,
        scheduled_in=child.scheduled_in,
        key=child.key,
        parent_id=parent_id,
    )
