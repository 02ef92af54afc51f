"""``ctx.save``: a step stores its state while it runs (spec §5.5.12)."""

from __future__ import annotations

import pytest
import trio
from machines import Counter
from stores import FAST

from trexec import InvalidArgument, durable, testing
from trexec.durable._records import NewInstance, Release


class Saving(durable.Machine):
    """ "start" saves n + 1 (recording what the save returned and the state it
    began from), waits until released on attempt 1, then ends with n + 10."""

    name = "saving"
    State = Counter
    seen: list[tuple[int, int, bool]]
    saved: trio.Event
    release: trio.Event

    async def step(self, step, ctx):
        ok = await ctx.save(Counter(ctx.state.n + 1))
        Saving.seen.append((ctx.attempt, ctx.state.n, ok))
        Saving.saved.set()
        if ctx.attempt == 1:
            await Saving.release.wait()
        return durable.Done({"n": ctx.state.n + 10})


@pytest.fixture(autouse=True)
def _reset():
    Saving.seen, Saving.saved, Saving.release = [], trio.Event(), trio.Event()


async def test_a_saved_state_is_stored_while_the_step_runs(store):
    async with durable.open_engine(store, [Saving], **FAST) as engine:
        id_ = await engine.insert(Saving, Counter(5))
        with trio.fail_after(10):
            await Saving.saved.wait()
        during = await engine.get(id_)
        Saving.release.set()
        done = await engine.wait(id_, timeout=10)
    assert (during.status, during.step, during.attempt, during.state) == (
        "running", "start", 1, Counter(6),
    )  # fmt: skip
    assert Saving.seen == [(1, 5, True)]
    assert (done.status, done.result) == ("done", {"n": 15})  # the outcome replaces it


async def test_a_crash_reruns_the_step_from_the_saved_state(autojump_clock):
    async with testing.open_test_engine([Saving], lease=30) as engine:
        engine.faults.crash_after_step(Saving, "start")
        id_ = await engine.insert(Saving, Counter(5))
        await Saving.saved.wait()
        Saving.release.set()
        done = await engine.wait(id_)
    assert Saving.seen == [(1, 5, True), (2, 6, True)]  # attempt 2 began from the save
    assert done.result == {"n": 16}


async def test_a_save_after_the_lease_is_lost_stores_nothing(autojump_clock):
    async with testing.open_test_engine([Saving]) as engine:
        engine.faults.lose_lease(Saving, "start")
        id_ = await engine.insert(Saving, Counter(5))
        await Saving.saved.wait()
        Saving.release.set()
        done = await engine.wait(id_)
    # Attempt 1 lost its lease at its save: False, nothing stored, its outcome refused.
    assert Saving.seen == [(1, 5, False), (2, 5, True)]
    assert done.result == {"n": 15}


async def test_the_store_fences_a_save_by_the_claims_token(store):
    [id_] = await store.insert([NewInstance("m", 1, "start", '{"n":0}')])
    [job] = (await store.claim([("m", 1)], 1, 30.0, {})).jobs
    assert await store.save_state(job.lease, '{"n":1}') is True
    row = await store.get(id_)
    assert (row.status, row.step, row.state, row.attempt) == ("running", "start", '{"n":1}', 1)
    await store.release([Release(job.lease, True)])  # another worker's turn now
    assert await store.save_state(job.lease, '{"n":2}') is False
    [again] = (await store.claim([("m", 1)], 1, 30.0, {})).jobs
    assert (again.attempt, again.state) == (2, '{"n":1}')


async def test_save_checks_its_state_and_where_it_runs(store):
    class Bad(durable.Machine):
        name = "bad-save"
        State = Counter
        error: Exception | None = None

        async def step(self, step, ctx):
            try:
                await ctx.save(object())
            except InvalidArgument as exc:
                Bad.error = exc
            return durable.Done(None)

    async with durable.open_engine(store, [Bad], **FAST) as engine:
        await engine.wait(await engine.insert(Bad, Counter()), timeout=10)
    assert "state=<object object" in str(Bad.error)
    loose = durable.Context(1, "m", 1, "start", 1, None)
    with pytest.raises(durable.DurableError, match=r"ctx\.save: expected the context of a running"):
        await loose.save(None)
