"""Concurrency keys on PostgreSQL (spec §11.2): which locked candidates a claim
may take, and the key locks a completion takes first.

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

from collections.abc import Sequence
from typing import Any

import psycopg

from . import _postgres_sql as sql

Conn = psycopg.Connection[Any]

__all__ = ["admit"]


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
