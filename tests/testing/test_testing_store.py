"""The test store (docs/spec.md §10.1): the SQLite store inline on the Trio thread,
on Trio's clock. (The store contract itself runs on it through
``tests/durable``'s ``STORE_KINDS``.)"""

from __future__ import annotations

import pytest
import trio

from trexec import durable, testing
from trexec.durable._records import DoneCommit, NewInstance


async def test_leases_and_delays_follow_trio_time(autojump_clock):
    async with testing.open_test_store() as store:
        await store.migrate()
        (id_,) = await store.insert([NewInstance("m", 1, "start", "{}", scheduled_in=60)])
        assert await store.next_due([("m", 1)]) == 60
        assert (await store.claim([("m", 1)], 1, 30.0, {})).jobs == ()
        await trio.sleep(60)
        (job,) = (await store.claim([("m", 1)], 1, 30.0, {})).jobs
        await trio.sleep(29)
        assert await store.reap_expired() == []
        await trio.sleep(2)
        assert [r.id for r in await store.reap_expired()] == [id_]
        assert (await store.get(id_)).attempt == 2
        assert await store.complete([DoneCommit(job.lease, result="1")]) == ["stale"]


async def test_a_call_cancelled_before_it_starts_changes_nothing():
    async with testing.open_test_store() as store:
        await store.migrate()
        with trio.CancelScope() as scope:
            scope.cancel()
            await store.insert([NewInstance("m", 1, "start", "{}")])
        assert scope.cancelled_caught
        assert await store.list() == []


async def test_writes_wake_every_subscriber_and_unsubscribe_stops_it():
    woken = []
    async with testing.open_test_store() as store:
        await store.migrate()
        unsubscribe = store.subscribe(lambda: woken.append(1))
        await store.insert([NewInstance("m", 1, "start", "{}")])
        assert woken == [1]
        assert await store.reap_expired() == []  # reclaimed nothing: no wake-up
        assert woken == [1]
        unsubscribe()
        await store.insert([NewInstance("m", 1, "start", "{}")])
        assert woken == [1]


async def test_a_closed_test_store_raises_store_error():
    async with testing.open_test_store() as store:
        await store.migrate()
    with pytest.raises(durable.StoreError, match="closed"):
        await store.get(1)
