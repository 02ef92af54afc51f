"""The effects of a batch of commits on PostgreSQL (spec §5.4.10), written with
one statement per kind like the commits themselves (spec §8.8): a signal per
report and an insert per dispatched instance would otherwise cost a round trip
each inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from . import _postgres_sql as sql, _store_rules as rules
from ._exceptions import DuplicateKey
from ._postgres_insert import insert_params, insert_rows
from ._records import TERMINAL, Commit, CommitStatus, Effects, NewInstance, SignalEffect

Conn = Any  # psycopg.Connection[Any]


class CompleteBatch(rules.CommitWriter, Protocol):
    """What the effects read and write of ``_postgres_ops.CompleteBatch``."""

    c: Conn
    wakes: bool
    effects: PendingEffects

    def flush(self) -> None: ...

    def _track(self, commit: Commit, status: CommitStatus) -> CommitStatus: ...


#: A live row's status and the signal names it awaits, as the batch left it.
Live = tuple[str, Sequence[str]]

#: The status each applied commit kind leaves its row in (as far as effects care).
AFTER = {
    "next": "scheduled",
    "retry": "scheduled",
    "children": "waiting_children",
    "done": "done",
    "stop": "stopped",
}


def batchable(signals: Sequence[SignalEffect], inserts: Sequence[NewInstance]) -> bool:
    """Signals to ids without dedup keys, inserts without parents: the common
    case, written in bulk. The rest goes one by one (its row locks and dedup
    checks need the statements before them applied)."""
    return all(isinstance(s.target, int) and s.dedup_key is None for s in signals) and all(
        i.parent_id is None for i in inserts
    )


class PendingEffects:
    """Signals, wake-ups, inserts and final states queued by a batch, written by
    :meth:`flush` (before any statement that could read them)."""

    def __init__(self) -> None:
        #: id -> (status, awaits) of every row the batch locked, kept up to date.
        self.live: dict[int, Live] = {}
        self.signals: list[tuple[int, str, str]] = []
        self.wake: list[int] = []
        self.inserts: list[NewInstance] = []
        self.states: list[tuple[int, str]] = []

    def committed(self, commit: Commit) -> None:
        """Track the status ``commit`` (applied) leaves its row in."""
        if commit.kind == "await":
            awaits = getattr(commit, "awaits", ())
            self.live[commit.lease.id] = ("awaiting", awaits)
        else:
            self.live[commit.lease.id] = (AFTER[commit.kind], ())

    def signal(self, effect: SignalEffect, live: Live) -> None:
        assert isinstance(effect.target, int)
        self.signals.append((effect.target, effect.name, effect.payload))
        status, awaits = live
        if status == "awaiting" and effect.name in awaits:
            self.wake.append(effect.target)
            self.live[effect.target] = ("scheduled", ())

    def flush(self, c: Conn) -> bool:
        """Write what is queued; True if it made an instance runnable."""
        woke = False
        if self.signals:
            s = self.signals
            c.execute(
                sql.DELIVER_SIGNALS,
                ([x[0] for x in s], [x[1] for x in s], [x[2] for x in s]),
            )
        if self.wake:
            c.execute(sql.WAKE_MANY, (sorted(set(self.wake)),))
            woke = True
        if self.inserts:
            items = self.inserts
            rows = c.execute(sql.INSERT_SKIP_LIVE, insert_params(items)).fetchall()
            woke = woke or bool(rows)
        if self.states:
            c.execute(sql.SET_STATES, ([i for i, _ in self.states], [t for _, t in self.states]))
        self.signals, self.wake, self.inserts, self.states = [], [], [], []
        return woke


def one_by_one(batch: CompleteBatch, commit: Commit, effects: Effects) -> CommitStatus:
    """Write ``commit`` of the ``CompleteBatch`` ``batch`` and its effects one
    statement at a time (keyed targets, dedup keys, parents: spec §5.4.10)."""
    batch.flush()
    c = batch.c
    targets = []
    for signal in effects.signals:
        query = sql.TARGET_BY_ID if isinstance(signal.target, int) else sql.TARGET_BY_KEY
        row = c.execute(query, (signal.target,)).fetchone()
        if row is None or row[1] in TERMINAL:
            if effects.fallback is not None:
                status = batch._track(effects.fallback, rules.dispatch(batch, effects.fallback))
                batch.flush()
                return status
            continue
        targets.append((signal, row))
    status = batch._track(commit, rules.dispatch(batch, commit))
    batch.flush()
    if status != "applied":
        return status
    if effects.state is not None:
        c.execute(sql.SET_STATE, (effects.state, commit.lease.id))
    for signal, (target, target_status, awaits) in targets:
        dedup = signal.dedup_key
        if dedup is not None and c.execute(sql.DEDUP_GET, (target, dedup)).fetchone():
            continue  # spec §5.6: a repeat of a delivered signal
        inserted = c.execute(
            sql.DELIVER_SIGNAL, (target, signal.name, signal.payload, signal.dedup_key)
        ).fetchone()
        if signal.dedup_key is not None and inserted is not None:
            c.execute(sql.DEDUP_SET, (target, signal.dedup_key, inserted[0]))
        if target_status == "awaiting" and signal.name in awaits:
            c.execute(sql.WAKE_NOW, (target,))
            batch.wakes = True
            if target in batch.effects.live:
                batch.effects.live[target] = ("scheduled", ())
    for item in effects.inserts:
        try:
            with c.transaction():  # a savepoint: a live key skips this insert only
                insert_rows(c, [item])
        except DuplicateKey:
            continue
        batch.wakes = True
    return status
