"""What the demo records and shows: events, the live tally, the summary (spec §9.4).

Steps call ``Journal.emit(kind, order, **fields)`` (synchronous, never blocks).
One task drains the events in order into a :class:`Tally` (what the screen
shows) and into the order's ``trexec`` run, whose :class:`trexec.JsonlRecorder`
appends each event to the JSONL file. The file outlives the process: the summary is
computed from it, so a demo interrupted and resumed still reports every order.

Event kinds: ``queued``, ``step_started``, ``step_completed``,
``step_retry`` (a transient fault; the step runs again), ``step_failed``,
``authorization``, ``compensated``, and the terminal ``completed`` /
``compensated_run`` / ``failed``. Each carries ``t`` (Unix time) and ``order``.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

import trexec

TERMINAL = ("completed", "compensated_run", "failed")


@attrs.define
class OrderView:
    """What the screen knows about one order."""

    status: str = "pending"


@attrs.define
class Tally:
    """The live state of the demo, fed by events in order (for the screen)."""

    orders: dict[str, OrderView] = attrs.field(factory=dict)
    retries: int = 0
    lines: list[tuple[str, str]] = attrs.field(factory=list)  # (kind, text) to print

    def add(self, order: str) -> None:
        self.orders.setdefault(order, OrderView())

    def apply(self, event: dict[str, Any]) -> None:
        view = self.orders.get(event["order"])
        if view is None:  # not an order of this demo
            return
        kind = event["kind"]
        step = str(event.get("step"))
        if kind == "step_started" and view.status not in TERMINAL:
            view.status = _PHASES.get(step, "compensating")
        elif kind == "step_retry":
            self.retries += 1
            text = f"{event['order']}  retry        {step}: {event.get('error', '')}"
            self.lines.append((kind, text))
        elif kind == "compensated" and view.status not in TERMINAL:
            view.status = "compensating"
        elif kind in TERMINAL:
            view.status = kind
            detail = event.get("detail") or ""
            self.lines.append((kind, f"{event['order']}  {_LABELS[kind]:<12} {detail}".rstrip()))

    def counts(self) -> Counter[str]:
        return Counter(view.status for view in self.orders.values())

    @property
    def finished(self) -> int:
        return sum(1 for view in self.orders.values() if view.status in TERMINAL)


_PHASES = {step: step for step in ("reserve", "authorize", "capture")} | {
    "email": "fulfil",
    "ship": "fulfil",
}
_LABELS = {"completed": "completed", "compensated_run": "compensated", "failed": "FAILED"}


@attrs.define
class Journal:
    """The sink the steps and the session write events to."""

    tally: Tally
    _send: trio.MemorySendChannel[dict[str, Any]]

    def emit(self, kind: str, order: str, **fields: Any) -> None:
        """Record one event; synchronous, in emission order."""
        self._send.send_nowait({"t": time.time(), "kind": kind, "order": order, **fields})


@attrs.define
class _OrderRun:
    """The ``trexec`` run that records one order in this session.

    Events that arrive before ``run_fn`` has started wait in ``backlog``; the
    run publishes them first, in order, so the recorder sees every event.
    """

    order: str
    ended: trio.Event = attrs.field(factory=trio.Event)
    run: trexec.Run | None = None
    backlog: list[dict[str, Any]] = attrs.field(factory=list)
    end: dict[str, Any] = attrs.field(factory=dict)

    async def run_fn(self, run: trexec.Run) -> dict[str, Any]:
        while self.backlog:
            await run.emit(self.backlog.pop(0))
        self.run = run
        await self.ended.wait()
        if self.end["kind"] != "completed":
            raise trexec.RunError([self.end.get("detail") or self.end["kind"]])
        return {"order": self.order, "status": "completed"}

    async def emit(self, event: dict[str, Any]) -> None:
        if self.ended.is_set():
            return
        if self.run is None:
            self.backlog.append(event)
        else:
            await self.run.emit(event)
        if event["kind"] in TERMINAL:
            self.end = event
            self.ended.set()


@asynccontextmanager
async def open_journal(path: Path, tally: Tally, orders: list[str]) -> AsyncIterator[Journal]:
    """Yield a :class:`Journal` whose events reach ``tally`` and the JSONL file ``path``.

    Each of ``orders`` is followed by a ``trexec`` run (``run_id`` = the order id)
    recorded by :class:`trexec.JsonlRecorder` into ``path``: an order ends its run
    as ``RunCompleted``, ``RunFailed`` (compensated or failed) or, when the
    session stops first, ``RunCancelled``. On leaving the block every event
    emitted so far is recorded and the file is durable; keep the block outside
    the scope an interruption cancels (a cancelled block records what its
    recorders already hold, then ends every run as cancelled).
    """
    send, receive = trio.open_memory_channel[dict[str, Any]](math.inf)
    runs = {order: _OrderRun(order) for order in orders}  # spec §9.4: one run per order
    drained = trio.Event()

    async def drain() -> None:
        async for event in receive:  # until ``send`` closes
            tally.apply(event)
            if event["order"] in runs:
                await runs[event["order"]].emit(event)
        drained.set()

    async with trio.open_nursery() as nursery:
        handles = []
        for order_run in runs.values():
            recorder = trexec.JsonlRecorder(path)  # one per run: it holds the run's state
            handles.append(
                await trexec.start_run(
                    nursery, order_run.run_fn, run_id=order_run.order, recorders=[recorder]
                )
            )
        nursery.start_soon(drain)
        try:
            yield Journal(tally, send)
        finally:
            send.close()
            # Cancelled from outside (a second Ctrl-C), the runs end cancelled at once;
            # otherwise every event emitted so far is recorded first.
            await drained.wait()
            for handle in handles:
                handle.cancel()  # a no-op on the runs that ended
            for handle in handles:
                await handle.wait()


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The demo's events in the JSONL file, in order (lines of other shapes are skipped)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by a crash
                continue
            event = _find_event(record)
            if event is not None:
                yield event


def _find_event(record: Any) -> dict[str, Any] | None:
    # The recorder may wrap each event (run id, sequence number): look one level in.
    if isinstance(record, dict):
        if "kind" in record and "order" in record and "t" in record:
            return record
        for value in record.values():
            found = _find_event(value) if isinstance(value, dict) else None
            if found is not None:
                return found
    return None


@attrs.frozen
class Summary:
    """The end-of-demo figures, computed from the JSONL file."""

    orders: int
    completed: int
    compensated: int
    failed: int
    unfinished: int
    retries: int
    declined: int
    p50: float | None
    p99: float | None


def summarize(path: Path, order_ids: list[str]) -> Summary:
    """Summarize the events of ``order_ids`` found in ``path``.

    Run time: from an order's first step to its terminal event (an order that
    spanned an interruption counts the time the demo was stopped).
    """
    wanted = set(order_ids)
    first: dict[str, float] = {}
    terminal: dict[str, tuple[str, float]] = {}
    retries = 0
    declined: set[str] = set()  # orders whose payment was declined
    for event in read_events(path):
        order = event["order"]
        kind = event["kind"]
        if order not in wanted:
            continue
        if kind == "step_started":
            first.setdefault(order, event["t"])
        elif kind == "step_retry":
            retries += 1
        elif kind == "authorization" and event.get("status") == "declined":
            declined.add(order)
        elif kind in TERMINAL:
            terminal[order] = (kind, event["t"])
    kinds = Counter(kind for kind, _ in terminal.values())
    # spec §9.4: "of which declined" is a part of "compensated": an order declined
    # but still compensating when the session stopped is unfinished, not declined.
    declined = {o for o in declined if terminal.get(o, ("",))[0] == "compensated_run"}
    times = sorted(t - first[o] for o, (_, t) in terminal.items() if o in first)
    return Summary(
        orders=len(wanted),
        completed=kinds["completed"],
        compensated=kinds["compensated_run"],
        failed=kinds["failed"],
        unfinished=len(wanted) - len(terminal),
        retries=retries,
        declined=len(declined),
        p50=_percentile(times, 50),
        p99=_percentile(times, 99),
    )


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100 * len(values)))
    return values[rank - 1]
