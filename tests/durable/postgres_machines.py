"""Machines run by the PostgreSQL multi-process tests' worker processes
(``trexec worker --import postgres_machines``, with tests/durable on PYTHONPATH).

Every step records its execution and checks that no other process runs a step
of the same instance at the same moment: it holds a PostgreSQL advisory lock
(a session lock: the server frees it when a killed worker's connection dies)
named by the instance id while it runs. Where to write is given by the
environment: ``TREXEC_TEST_LOG`` (a file every process appends lines to) and
``TREXEC_TEST_CHECK_URL`` (the database holding the advisory locks).
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import psycopg
import trio

from trexec import durable

_conn: psycopg.Connection[Any] | None = None
_running: set[int] = set()
_slots: set[str] = set()


def _log(line: str) -> None:
    # O_APPEND writes of one short line are atomic across processes.
    with open(os.environ["TREXEC_TEST_LOG"], "a") as f:
        f.write(line + "\n")


async def _query(sql: str, id_: object) -> bool:
    """One advisory-lock query; reconnects across a server restart."""
    global _conn
    for _ in range(100):
        try:
            if _conn is None or _conn.closed:
                _conn = psycopg.connect(os.environ["TREXEC_TEST_CHECK_URL"], autocommit=True)
            row = _conn.execute(sql, (id_,)).fetchone()
            return bool(row and row[0])
        except psycopg.OperationalError:
            _conn = None
            await trio.sleep(0.2)
    raise RuntimeError("the check database stayed unreachable")


@asynccontextmanager
async def exclusive(ctx: durable.Context, seconds: float = 0.01) -> AsyncIterator[None]:
    """Run a step body, logging ``run <id> <step> <attempt>`` and ``overlap <id>``
    if a step of the same instance runs elsewhere at the same time; the body
    takes up to ``seconds``."""
    _log(f"run {ctx.id} {ctx.step} {ctx.attempt} {os.getpid()}")
    locked = await _query("SELECT pg_try_advisory_lock(7, %s)", ctx.id)
    if not locked or ctx.id in _running:
        _log(f"overlap {ctx.id} {ctx.step} {os.getpid()}")
    _running.add(ctx.id)
    try:
        await trio.sleep(random.uniform(0.0, seconds))
        yield
    finally:
        _running.discard(ctx.id)
        if locked:
            await _query("SELECT pg_advisory_unlock(7, %s)", ctx.id)


@attrs.define
class Trail:
    log: list[str] = attrs.Factory(list)


class Steps3(durable.Machine):
    """start -> middle -> finish -> Done(log): three steps, nothing else."""

    name = "pg_steps3"
    State = Trail

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        async with exclusive(ctx):
            trail = Trail([*ctx.state.log, step])
            if step == "start":
                return durable.Next("middle", trail)
            if step == "middle":
                return durable.Next("finish", trail)
            return durable.Done({"log": trail.log})


#: The chaos test pauses a worker every second: its steps last long enough
#: (32 at once, ~25 ms each, ~8 s for its 10,000 steps) that every paused
#: worker holds steps in flight whose outcomes then arrive stale.
CHAOS_STEP_SECONDS = 0.05


class ChaosChild(durable.Machine):
    """One step: Done."""

    name = "pg_chaos_child"
    State = Trail

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        async with exclusive(ctx, CHAOS_STEP_SECONDS):
            return durable.Done({"child": ctx.id})


class Chaos(durable.Machine):
    """start -> (two children) -> gathered -> (await signal "go") -> finish -> Done.

    The committed ``log`` is the proof: a stale outcome that slipped through
    fencing would repeat or skip an entry.
    """

    name = "pg_chaos"
    State = Trail

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        async with exclusive(ctx, CHAOS_STEP_SECONDS):
            trail = Trail([*ctx.state.log, step])
            if step == "start":
                children = [durable.Child(ChaosChild, Trail()) for _ in range(2)]
                return durable.ScheduleChildren("gathered", children, trail)
            if step == "gathered":
                if [c.status for c in ctx.children] != ["done", "done"]:
                    return durable.Stop(f"children not done: {ctx.children}")
                return durable.Await(["go"], "finish", trail)
            if step == "finish":
                if [s.name for s in ctx.awaited] != ["go"]:
                    return durable.Stop(f"expected one go signal, got {ctx.awaited}")
                return durable.Done({"log": trail.log})
            return durable.Stop(f"unknown step {step}")


async def _slot(key: str, limit: int) -> int | None:
    """The first of ``limit`` session advisory locks of ``key`` this process
    could take (the server frees it if the process is killed), or None."""
    for slot in range(limit):
        name = f"{key}/{slot}"
        # Session locks nest within one session: this process's own slots are in _slots.
        if name not in _slots and await _query(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 9))", name
        ):
            _slots.add(name)
            return slot
    return None


class Keyed(durable.Machine):
    """One slow step under a concurrency key (spec §11.2). It holds one of the
    key's ``concurrency_limit`` advisory-lock slots while it runs: finding none
    free means more instances of the key run at once than the limit allows
    (logged ``over``). Each run records the key's peak concurrency in the table
    ``TREXEC_TEST_PEAKS`` names."""

    name = "pg_keyed"
    concurrency_limit = 2

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        key = ctx.state["key"]
        slot = await _slot(key, self.concurrency_limit)
        _log(f"{'over' if slot is None else 'run'} {ctx.id} {key} {ctx.attempt} {os.getpid()}")
        if slot is not None:
            await _peak(key, slot + 1)
        try:
            await trio.sleep(ctx.state["seconds"])
            _log(f"end {ctx.id} {key} {ctx.attempt} {os.getpid()}")
        finally:
            if slot is not None:
                _slots.discard(f"{key}/{slot}")
                await _query("SELECT pg_advisory_unlock(hashtextextended(%s, 9))", f"{key}/{slot}")
        return durable.Done(os.getpid())


async def _peak(key: str, running: int) -> None:
    table = os.environ["TREXEC_TEST_PEAKS"]
    await _query(
        f"INSERT INTO {table} (key, peak) VALUES (%s, {running}) ON CONFLICT (key)"
        f" DO UPDATE SET peak = greatest({table}.peak, excluded.peak) RETURNING true",
        key,
    )
