"""Inserting instances on PostgreSQL (spec §5.3, §5.4.10): the one place that
turns ``NewInstance`` rows into ``INSERT`` arrays, used by inserts, children
and the inserts of effects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.errors

from . import _postgres_sql as sql, _store_rules as rules
from ._records import NewInstance

__all__ = ["duplicate_key", "insert_params", "insert_rows"]

Conn = psycopg.Connection[Any]


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
        rows = c.execute(sql.INSERT, insert_params(items)).fetchall()
    except psycopg.errors.UniqueViolation as exc:
        key = duplicate_key(exc, items)
        raise rules.key_taken(key) from exc
    return sorted(row[0] for row in rows)


def duplicate_key(exc: psycopg.errors.UniqueViolation, items: Sequence[NewInstance]) -> str | None:
    """The key the server named in its error, else the first key of ``items``."""
    detail = exc.diag.message_detail or ""
    for item in items:
        if item.key is not None and f"=({item.key})" in detail:
            return item.key
    return next((i.key for i in items if i.key is not None), None)


def insert_params(items: Sequence[NewInstance]) -> tuple[list[Any], ...]:
    """The column arrays of ``INSERT``/``INSERT_SKIP_LIVE`` for ``items``."""
    return (
        [i.machine for i in items],
        [i.version for i in items],
        [i.step for i in items],
        [i.state for i in items],
        [i.key for i in items],
        [i.parent_id for i in items],
        [float(i.scheduled_in) for i in items],
        [i.priority for i in items],
        [i.concurrency_key for i in items],
        [i.concurrency_limit for i in items],
        [i.trace_context for i in items],
    )
