"""The PostgreSQL claim (spec §8.7, §11): candidates in claim order, their
concurrency keys (spec §11.2), their rate limits (spec §5.9).

Every claim that may take a row of key ``k`` first holds the transaction-level
advisory lock of ``k`` (the key's serialization point across processes), then
counts the key's running rows in a later statement, whose snapshot sees every
claim that held the lock before. Claims only *try* the lock: a claim never
waits, so it can never be part of a deadlock; a candidate whose key is busy is
left runnable for the next claim. The trigger that hands a freed slot on
(``_postgres_sql.py``, migration 4) takes the same lock, so a claim that blocks
a row and a commit that frees the key's slot never miss each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from . import _postgres_sql as sql, _store_rules as rules
from ._records import Claim, InstanceRecord, Job, RateLimitPolicy, Throttled

Conn = psycopg.Connection[Any]
signal = rules.signal

__all__ = ["admit", "apply_rate_limits", "claim_op", "jobs"]


def admit(c: Conn, candidates: Sequence[tuple[int, str | None, int]]) -> list[int]:
    """``candidates`` are (id, concurrency_key, concurrency_limit) rows this
    transaction holds, in claim order. Returns the ids within their key's free
    slots; marks ``key_blocked`` those whose key's slots are all held by running
    rows (they leave the claim scan until the trigger unblocks them)."""
    keys = sorted({key for _, key, _ in candidates if key is not None})
    if not keys:
        return [id_ for id_, _, _ in candidates]
    locked = [key for key, got in c.execute(sql.KEYS_TRY_LOCK, (keys,)) if got]
    held = dict(c.execute(sql.KEYS_RUNNING, (locked,)).fetchall()) if locked else {}
    taken: dict[str, int] = {}
    chosen: list[int] = []
    blocked: list[int] = []
    for id_, key, limit in candidates:
        if key is None:
            chosen.append(id_)
        elif key not in held:
            continue  # another transaction holds the key: left for the next claim
        elif held[key] >= limit:
            blocked.append(id_)
        elif held[key] + taken.get(key, 0) < limit:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(id_)
    if blocked:
        c.execute(sql.KEYS_BLOCK, (blocked,))
    return chosen


def claim_op(
    machines: Sequence[tuple[str, int]],
    limit: int,
    lease: float,
    rate_limits: Mapping[str, RateLimitPolicy],
) -> Callable[..., Claim]:
    """The transaction body of ``Store.claim`` (spec §5.5, §8.7)."""
    params: dict[str, Any] = {
        "machines": [m for m, _ in machines],
        "versions": [v for _, v in machines],
        "limit": limit,
        "lease": float(lease),
    }

    def op(c: Conn, limit: int = limit) -> Claim:
        # `limit`: fewer rows than asked, when kept rows took the rest (§5.5.13).
        args = params if limit == params["limit"] else {**params, "limit": limit}
        throttled: list[Throttled] = []
        if not rate_limits:
            # spec §8.7.1: one statement; SKIP LOCKED lets workers claim side by side.
            rows = c.execute(sql.CLAIM, args).fetchall()
            keyed = [(r[1], r[16], r[17]) for r in rows if not r[0]]
            if keyed:  # spec §11.2: rows with a concurrency key, locked, not yet claimed
                chosen = admit(c, keyed)
                if chosen:
                    rows += [
                        (True, *row, *order[row[0]], None, None)
                        for order in [{r[1]: (r[14], r[15]) for r in rows}]
                        for row in c.execute(sql.CLAIM_ROWS, {**args, "ids": chosen})
                    ]
            # RETURNING has no order: restore the claim's (priority DESC, run_at, id) order.
            rows = [row for row in rows if row[0]]
            rows.sort(key=lambda row: (-row[14], row[15], row[1]))
            claimed = [row[1:14] for row in rows]
        else:
            candidates = c.execute(sql.CLAIM_CANDIDATES, args).fetchall()
            admitted = set(admit(c, [(r[0], r[3], r[4]) for r in candidates]))
            candidates = [r[:3] for r in candidates if r[0] in admitted]
            chosen, throttled = apply_rate_limits(c, candidates, rate_limits)
            claimed = []
            if chosen:
                by_id = {row[0]: row for row in c.execute(sql.CLAIM_ROWS, {**args, "ids": chosen})}
                claimed = [by_id[i] for i in chosen]
        return Claim(jobs(c, claimed), tuple(throttled))

    return op


def jobs(c: Conn, claimed: Sequence[Sequence[Any]]) -> tuple[Job, ...]:
    """The jobs of claimed rows (the claim's ``RETURNING`` columns, the inbox
    last), each with its children if it has any."""
    if not claimed:
        return ()
    children: dict[int, list[InstanceRecord]] = {}
    parents = [row[0] for row in claimed if row[10]]
    if parents:
        for row in c.execute(sql.CLAIM_CHILDREN, (parents,)):
            child = rules.record(row)
            assert child.parent_id is not None
            children.setdefault(child.parent_id, []).append(child)
    return tuple(
        rules.job(
            row,
            row[9],
            [rules.signal(s) for s in row[12] or ()],
            children.get(row[0], ()),
            row[11],  # spec §14.2: the instance's trace context
        )
        for row in claimed
    )


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
