"""One ``trexec demo`` session: start or resume, run, interrupt cleanly (spec §9.6).

The demo's own bookkeeping is a small JSON state file next to the journal:
the store URL, the seed, the number of orders, and the durable run id of each
order. The runs themselves live in the durable store; the state file only says
which runs belong to the demo, so a second ``trexec demo`` resumes exactly the
unfinished ones. The state is written before any SIGINT can stop the session
(the inserts are shielded), so Ctrl-C never leaves a run the demo forgot.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from rich.console import Console
from trio_util import run_and_cancelling

from trexec import durable, workflows

from . import DEFAULT_JOURNAL, DEFAULT_STORE
from .checkout import WORKFLOW_NAME, Services, build_workflow
from .gateway import Gateway, serve_gateway
from .journal import TERMINAL, Journal, Tally, open_journal, read_events, summarize
from .orders import Order, make_orders
from .ui import print_files, show_progress, summary_table

STATE_VERSION = 1
LEASE = 5.0  # seconds: a killed demo's runs are reclaimed soon after a restart
ARRIVAL = 0.15  # spec §9.3: seconds between two orders' arrivals: orders flow, not all at once


@attrs.define
class Options:
    """The command line, validated."""

    orders: int
    workers: int
    seed: int | None
    store: str
    journal: Path
    reset: bool
    live: bool


@attrs.define
class DemoState:
    """What the demo remembers between sessions (``<journal>.state.json``)."""

    store: str
    seed: int
    orders: int
    demo: str = attrs.field(factory=lambda: uuid.uuid4().hex[:12])  # tags this demo's runs
    runs: dict[str, Any] = attrs.field(factory=dict)  # order id -> durable run id
    finished: bool = False

    @staticmethod
    def path(journal: Path) -> Path:
        return journal.with_name(journal.stem + ".state.json")

    @classmethod
    def load(cls, journal: Path) -> DemoState | None:
        try:
            data = json.loads(cls.path(journal).read_text(encoding="utf-8"))
            if data.pop("version") != STATE_VERSION:
                return None
            return cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError):
            return None  # unreadable: treated as no previous demo

    def save(self, journal: Path) -> None:
        """Atomically replace the state file."""
        target = self.path(journal)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(
            json.dumps({"version": STATE_VERSION, **attrs.asdict(self)}), encoding="utf-8"
        )
        os.replace(tmp, target)


async def run_demo(opts: Options, console: Console) -> int:
    """Run (or resume) the demo and print its summary; return the exit status.

    SIGINT is handled here, not raised: the first one cancels the session (the
    journal still records its last events, the engine releases its runs) and
    the status is 130; a second one raises ``KeyboardInterrupt`` at once.
    Errors from the store, the gateway or the engine propagate (the command
    prints them as one line).
    """
    opts.journal.parent.mkdir(parents=True, exist_ok=True)
    previous = DemoState.load(opts.journal)
    state, notice = _plan(opts, previous)
    started = time.monotonic()
    interrupted = False

    async def on_sigint(work: trio.CancelScope) -> None:
        nonlocal interrupted
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                if interrupted:  # a second Ctrl-C: stop waiting for a clean exit
                    raise KeyboardInterrupt
                interrupted = True
                console.print("\n[yellow]Interrupted: stopping cleanly...[/]")
                work.cancel()

    orders = make_orders(state.orders, state.seed)
    gateway = Gateway(seed=state.seed)
    tally = Tally()
    for order in orders:
        tally.add(order.id)
    clean = False
    if notice == "new":
        # A store that fails to open keeps the old journal.
        clean = await _open_new(state.store, reset=opts.reset)
        opts.journal.unlink(missing_ok=True)
    _replay(opts.journal, tally)
    async with trio.open_nursery() as top:
        work = trio.CancelScope()
        top.start_soon(on_sigint, work)
        # spec §9.6: the journal is outside the scope SIGINT cancels: it records the session's
        # last events and ends the unfinished orders' runs as cancelled after it.
        async with open_journal(opts.journal, tally, _unfinished(tally)) as journal:
            with work:
                await _session(
                    opts, console, state, previous, notice, orders, journal, gateway, clean
                )
        top.cancel_scope.cancel()
    summary = summarize(opts.journal, [order.id for order in orders])
    table = summary_table(summary, elapsed=time.monotonic() - started, requests=gateway.requests)
    console.print(table)
    files = {"journal": opts.journal, "state": DemoState.path(opts.journal)}
    if opts.store.startswith("sqlite:///"):
        files["store"] = Path(opts.store.removeprefix("sqlite:///"))
    print_files(console, files)
    if not opts.store.startswith("sqlite:///"):
        console.print(f"{'store':<8} {_redact(opts.store)}", markup=False)
    if summary.unfinished:
        console.print(
            f"{summary.unfinished} orders unfinished: "
            f"run `trexec demo` again{_same_options(opts)} to resume (--reset starts over).",
            style="yellow",
        )
    elif not interrupted:
        state.finished = True
        state.save(opts.journal)
    return 130 if interrupted else 0


def _plan(opts: Options, previous: DemoState | None) -> tuple[DemoState, str]:
    """Resume the previous demo, or start a new one; say which on screen."""
    if (
        previous is not None
        and not opts.reset
        and not previous.finished
        and previous.store == opts.store
        and previous.runs
    ):
        return previous, "resume"
    seed = opts.seed if opts.seed is not None else random.randrange(10**6)
    return DemoState(store=opts.store, seed=seed, orders=opts.orders), "new"


def _same_options(opts: Options) -> str:
    """What a resume must repeat: the demo resumes only on the same store, and
    finds its state file beside the same journal."""
    same = []
    if opts.store != DEFAULT_STORE:
        same.append("--store")
    if opts.journal != Path(DEFAULT_JOURNAL):
        same.append("--journal")
    return f" with the same {' and '.join(same)}" if same else ""


def _unfinished(tally: Tally) -> list[str]:
    return [order for order, view in tally.orders.items() if view.status not in TERMINAL]


def _replay(journal: Path, tally: Tally) -> None:
    """Put the orders a previous session finished in their final status, and count
    its retries: the live view counts the whole demo, as the summary does."""
    for event in read_events(journal):
        if event["kind"] in (*TERMINAL, "step_retry"):
            tally.apply(event)
    tally.lines.clear()


async def _session(
    opts: Options,
    console: Console,
    state: DemoState,
    previous: DemoState | None,
    notice: str,
    orders: list[Order],
    journal: Journal,
    gateway: Gateway,
    clean: bool,
) -> None:
    async with (
        serve_gateway(gateway) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0) as client,
    ):
        svc = Services(client=client, emit=journal.emit, demo=state.demo)
        _headline(console, state, notice, journal.tally, opts.workers, url)
        async with run_and_cancelling(show_progress, console, journal.tally, live=opts.live):
            await _run_durable(opts, state, previous, svc, journal, orders, clean)


def _headline(
    console: Console, state: DemoState, notice: str, tally: Tally, workers: int, url: str
) -> None:
    if notice == "resume":
        left = len(tally.orders) - tally.finished
        console.print(
            f"[bold]Resuming[/] the interrupted demo: {left} of {state.orders} orders "
            f"unfinished (seed {state.seed}). --reset starts over."
        )
    else:
        console.print(
            f"[bold]trexec demo[/]: {state.orders} orders, {workers} workers, seed {state.seed}"
        )
    console.print(f"store {_redact(state.store)} | payment gateway {url}", highlight=False)


async def _run_durable(
    opts: Options,
    state: DemoState,
    previous: DemoState | None,
    svc: Services,
    journal: Journal,
    orders: list[Order],
    clean: bool,
) -> None:
    workflow = build_workflow(svc)
    async with (
        durable.open_store(state.store) as store,
        durable.open_engine(  # migrates the schema
            store, machines=[], workflows=[workflow], workers=opts.workers, lease=LEASE
        ) as engine,
    ):
        if previous is not None and previous is not state and previous.store == state.store:
            await _cancel_leftovers(engine, previous)
        if clean:  # spec §9.6: --reset leaves nothing of earlier demos that has ended
            await engine.prune(0)
        if not state.runs:
            with trio.CancelScope(shield=True):  # spec §9.6: no run the demo forgets
                await _insert(engine, workflow, state, orders, opts.journal, journal)
        async with trio.open_nursery() as nursery:
            for order in _unfinished(journal.tally):
                nursery.start_soon(_follow, engine, order, state.runs[order], journal)


async def _open_new(url: str, *, reset: bool) -> bool:
    """Open the store of a new demo (raises if it cannot open); with ``reset``,
    start from an empty store when it holds nothing but demo runs.

    A SQLite store is deleted; on another store the demo's ended runs are pruned
    once its leftovers are cancelled (True tells the session to). A store that
    holds anything else is left alone (False).
    """
    from ..durable._open import sqlite_path

    async with durable.open_store(url) as store:
        if not reset:
            return False
        await store.migrate()
        after = 0
        while page := await store.list(limit=500, after_id=after):
            if any(not r.machine.startswith(f"workflow:{WORKFLOW_NAME}") for r in page):
                return False  # spec §9.6: never delete what the demo did not make
            after = page[-1].id
    path = sqlite_path(url)
    if path is None:
        return True
    _delete_sqlite(path)
    return False  # nothing left to prune


def _delete_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


async def _cancel_leftovers(engine: durable.Engine, previous: DemoState) -> None:
    """``--reset`` (or a new demo): cancel the unfinished runs of the previous one."""
    if previous.finished:
        return
    for run_id in previous.runs.values():
        try:
            instance = await engine.get(run_id)
            if instance.status not in ("done", "stopped", "cancelled"):
                await engine.cancel(run_id)
        except durable.NoTarget:
            pass


async def _insert(
    engine: durable.Engine,
    workflow: workflows.Workflow,
    state: DemoState,
    orders: list[Order],
    path: Path,
    journal: Journal,
) -> None:
    for index, order in enumerate(orders):
        order_input = {**order.to_json(), "demo": state.demo}
        delay = index * ARRIVAL if index else None
        try:  # spec §9.6: a run is found by its order's id (`trexec show order-0001`)
            run_id = await engine.start_workflow(
                workflow, order_input, schedule_in=delay, key=order.id
            )
        except durable.DuplicateKey:  # an earlier demo's run of that order still winds down
            key = f"{order.id}.{state.demo[:6]}"
            run_id = await engine.start_workflow(workflow, order_input, schedule_in=delay, key=key)
        state.runs[order.id] = run_id
        journal.emit("queued", order.id, run_id=state.runs[order.id])
    state.save(path)


async def _follow(engine: durable.Engine, order: str, run_id: Any, journal: Journal) -> None:
    """Wait for one run to end and journal how it ended."""
    try:
        instance = await engine.wait(run_id)
    except durable.NoTarget:  # the store was emptied behind the demo's back
        journal.emit("failed", order, detail=f"run {run_id} is not in the store any more")
        return
    if instance.status == "done":
        journal.emit("completed", order, detail="")
    elif instance.status == "stopped":
        journal.emit("compensated_run", order, detail=str(instance.error))
    else:
        journal.emit("failed", order, detail=f"{instance.status}: {instance.error}")


def _redact(url: str) -> str:
    """A store URL without its password, for the screen and the journal."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}@{host}"
