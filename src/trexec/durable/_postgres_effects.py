"""The effects of a batch of commits on PostgreSQL (spec §5.4.9), written with
one statement per kind like the commits themselves (spec §8.8): a signal per
report and an insert per dispatched instance would otherwise cost a round trip
each inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _postgres_sql as sql
from ._records import Commit, NewInstance, SignalEffect

Conn = Any  # psycopg.Connection[Any]

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
            rows = c.execute(
                sql.INSERT_SKIP_LIVE,
                (
                    [i.machine for i in items],
                    [i.version for i in items],
                    [i.step for i in items],
                    [i.state for i in items],
                    [i.key for i in items],
                    [i.parent_id for i in items],
                    [float(i.scheduled_in) for i in items],
                ),
            ).fetchall()
            woke = woke or bool(rows)
        if self.states:
            c.execute(
                sql.SET_STATES, ([i for i, _ in self.states], [t for _, t in self.states])
            )
        self.signals, self.wake, self.inserts, self.states = [], [], [], []
        return woke
