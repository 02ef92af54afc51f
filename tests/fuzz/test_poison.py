"""Poison data (issue 20): a stored state or signal payload that cannot be decoded
stops its instance once, with a clear error, never a crash loop; an instance of
a machine version no running code knows is left alone (spec §5.1.3), not retried."""

from __future__ import annotations

from typing import Any

import attrs
import psycopg
import pytest
import trio
from stores import PG_URL, STORE_KINDS, open_test_store, raw_connection

from trexec import durable


@attrs.define
class Count:
    n: int


class Counted(durable.Machine):
    name = "poison_counted"
    State = Count

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        if step == "start":
            return durable.Await(["go"], "go", ctx.state)
        return durable.Done(ctx.state.n + len(ctx.awaited))


def corrupt(store: Any, sql_sqlite: str, sql_pg: str, *params: Any) -> None:
    schema = getattr(store, "schema", None)
    if schema:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(sql_pg.replace("?", "%s"), params)
        return
    with raw_connection(store) as conn:
        conn.execute(sql_sqlite, params)


@pytest.fixture(params=STORE_KINDS)
async def store(request, tmp_path):
    async with open_test_store(request.param, tmp_path) as opened:
        await opened.migrate()
        yield opened


@pytest.mark.parametrize("text", ['{"n": "many"}', "{nope", "[" * 100_000 + "]" * 100_000])
async def test_a_state_that_cannot_be_decoded_stops_its_instance_once(store, text):
    async with durable.open_engine(store, workers=0) as producer:
        id_ = await producer.insert(Counted, Count(1), schedule_in=60)
    corrupt(
        store,
        "UPDATE instances SET state = ?, run_at = 0 WHERE id = ?",
        "UPDATE trexec_instances SET state = ?, run_at = now() WHERE id = ?",
        text,
        id_,
    )
    async with durable.open_engine(store, [Counted], poll_interval=0.02) as engine:
        done = await engine.wait(id_, timeout=10)
    assert done.status == "stopped"
    assert done.attempt == 1  # once, not a loop
    assert done.error


async def test_a_payload_that_cannot_be_decoded_stops_its_instance_once(store):
    async with durable.open_engine(store, [Counted], poll_interval=0.02) as engine:
        id_ = await engine.insert(Counted, Count(1))
        with trio.fail_after(10):
            while (await engine.get(id_)).status != "awaiting":
                await trio.sleep(0.01)
        await engine.signal(id_, "warmup", None)  # not awaited: stays in the inbox
        corrupt(
            store,
            "UPDATE signals SET payload = '{nope' WHERE instance_id = ?",
            "UPDATE trexec_signals SET payload = '{nope' WHERE instance_id = ?",
            id_,
        )
        await engine.signal(id_, "go", 1)
        done = await engine.wait(id_, timeout=10)
    assert done.status == "stopped"
    assert "payload" in done.error or "JSON" in done.error or "Expecting" in done.error
    assert done.attempt <= 2


async def test_an_unknown_machine_version_is_left_alone_not_retried(store):
    class Future(durable.Machine):
        name = "poison_counted"
        version = 99
        State = Count

        async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
            return durable.Done(None)

    async with durable.open_engine(store, workers=0) as producer:
        id_ = await producer.insert(Future, Count(1))
    async with durable.open_engine(store, [Counted], poll_interval=0.02) as engine:
        await trio.sleep(0.3)  # real time (spec §5.12): several polls pass
        left = await engine.get(id_)
    assert (left.status, left.attempt) == ("scheduled", 1)
