"""Leases, fencing, the reaper, shutdown and restart (spec §5.5, §5.8)."""

from __future__ import annotations

import trio
from machines import Counter, CountTo3
from stores import FAST

from trexec import durable

#: Also on a SQLite file with inline calls (spec §5.11.6).
INLINE_TOO = True


class Stuck(durable.Machine):
    """Attempt 1 of "start" blocks until released, then moves on; later attempts
    finish at once, reporting the attempt."""

    name = "stuck"
    State = Counter
    started: trio.Event
    release: trio.Event

    async def step(self, step, ctx):
        if step == "start" and ctx.attempt == 1:
            Stuck.started.set()
            await Stuck.release.wait()
            return durable.Next("after", Counter(ctx.state.n + 100))
        return durable.Done({"attempt": ctx.attempt, "step": step, "n": ctx.state.n})


def reset_stuck():
    Stuck.started, Stuck.release = trio.Event(), trio.Event()


async def test_a_stale_workers_outcome_is_rejected_and_changes_nothing(
    store, events, autojump_clock
):
    reset_stuck()
    # Engine A never renews its lease (a hung or partitioned worker) and never reaps.
    hung = {"lease": 0.05, "heartbeat_interval": 3600, "reap_interval": 3600}
    async with durable.open_engine(store, [Stuck], **hung, **FAST) as a:
        id_ = await a.insert(Stuck, Counter())
        await Stuck.started.wait()
        # Engine B reaps the expired lease and finishes the instance (attempt 2).
        async with durable.open_engine(store, [Stuck], reap_interval=0.02, **FAST) as b:
            instance = await b.wait(id_, timeout=10)
            assert instance.result == {"attempt": 2, "step": "start", "n": 0}
        Stuck.release.set()  # A's step now returns Next(...): it must be rejected
        while not any(name[2:] == ("outcome", "stale") for name, *_ in events):
            await trio.sleep(0.01)
        after = await a.get(id_)
    assert after.status == "done" and after.state == Counter(0) and after.step == "start"
    reclaimed = [m for name, m, _ in events if name[2:] == ("reaper", "reclaimed")]
    assert reclaimed and reclaimed[0]["count"] == 1


async def test_heartbeats_keep_a_long_step_leased(store, events, autojump_clock):
    reset_stuck()
    opts = {"lease": 0.1, "heartbeat_interval": 0.02, "reap_interval": 0.02}
    async with durable.open_engine(store, [Stuck], **opts, **FAST) as engine:
        id_ = await engine.insert(Stuck, Counter())
        await Stuck.started.wait()
        await trio.sleep(0.3)  # three leases long: renewed, never reaped
        Stuck.release.set()
        instance = await engine.wait(id_, timeout=10)
    assert instance.result == {"attempt": 1, "step": "after", "n": 100}
    assert not any(name[2:] == ("reaper", "reclaimed") for name, *_ in events)


async def test_leaving_the_block_finishes_in_flight_steps_within_the_grace(store, autojump_clock):
    reset_stuck()
    async with durable.open_engine(store, [Stuck], shutdown_grace=10, **FAST) as engine:
        id_ = await engine.insert(Stuck, Counter())
        await Stuck.started.wait()
        Stuck.release.set()  # finishes during shutdown: committed, next step not picked
    async with durable.open_engine(store, workers=0) as reader:
        instance = await reader.get(id_)
    assert (instance.status, instance.step, instance.attempt) == ("scheduled", "after", 1)


async def test_leaving_the_block_releases_steps_past_the_grace_for_another_engine(
    store, autojump_clock
):
    reset_stuck()
    async with durable.open_engine(store, [Stuck], shutdown_grace=0.01, **FAST) as engine:
        id_ = await engine.insert(Stuck, Counter())
        await Stuck.started.wait()
    # Released (not left to lease expiry): the next engine runs it at once.
    async with durable.open_engine(store, [Stuck], lease=3600, **FAST) as engine:
        instance = await engine.wait(id_, timeout=10)
    assert instance.result == {"attempt": 2, "step": "start", "n": 0}


async def test_restart_mid_flight_loses_nothing(store, autojump_clock):
    async with durable.open_engine(store, [CountTo3], workers=0) as producer:
        ids = await producer.insert_many(
            [durable.InsertSpec(CountTo3, Counter(i)) for i in range(40)]
        )
    async with durable.open_engine(store, [CountTo3], workers=2, batch_size=2, **FAST) as first:
        while (await first.get(ids[3])).status != "done":
            await trio.sleep(0.001)
    async with durable.open_engine(store, [CountTo3], **FAST) as second:
        results = [await second.wait(i, timeout=20) for i in ids]
    assert [r.result["n"] for r in results] == [i + 3 for i in range(40)]
    assert all(r.result["log"] == ["start", "middle", "finish"] for r in results)


async def test_an_engine_exits_cleanly_when_its_caller_is_cancelled(store, autojump_clock):
    reset_stuck()
    with trio.move_on_after(0.2) as scope:
        async with durable.open_engine(store, [Stuck], **FAST) as engine:
            id_ = await engine.insert(Stuck, Counter())
            await trio.sleep_forever()
    assert scope.cancelled_caught
    async with durable.open_engine(store, [Stuck], **FAST) as engine:
        instance = await engine.wait(id_, timeout=10)
    assert instance.result["attempt"] == 2  # released by the cancelled engine


async def test_the_body_exception_propagates_unwrapped(store):
    class Boom(Exception):
        pass

    try:
        async with durable.open_engine(store, [CountTo3], **FAST):
            raise Boom("from the body")
    except Boom as exc:
        assert str(exc) == "from the body"
    else:
        raise AssertionError("not raised")


async def test_a_store_error_is_retried_not_fatal(store, events, autojump_clock):
    real = store.complete_and_claim
    failures = []

    async def flaky_complete_and_claim(commits, *args, **kwargs):
        if not failures:  # the first commit fails, as if the database blipped
            failures.append(len(commits))
            raise durable.StoreError("connection lost")
        return await real(commits, *args, **kwargs)

    store.complete_and_claim = flaky_complete_and_claim
    async with durable.open_engine(store, [CountTo3], **FAST) as engine:
        instance = await engine.wait(await engine.insert(CountTo3, Counter()), timeout=10)
    assert instance.result["n"] == 3 and failures
    errors = [meta for name, _, meta in events if name[2:] == ("store", "error")]
    assert errors == [{"operation": "complete", "error": "connection lost"}]


async def test_an_engine_starting_after_a_crash_reaps_expired_leases_at_once(
    store, events, autojump_clock
):
    """spec §5.8.3: the reaper's first pass runs as the engine starts."""
    async with durable.open_engine(store, workers=0) as producer:
        id_ = await producer.insert(CountTo3, Counter(0))
    # A worker claims it, then dies without a trace: only its lease is left.
    claim = await store.claim([(CountTo3.name, CountTo3.version)], 1, 0.01, {})
    assert [job.id for job in claim.jobs] == [id_]
    await trio.sleep(0.05)  # the lease expires
    opts = {"lease": 3600, "reap_interval": 3600}  # no second reaper pass in this test
    async with durable.open_engine(store, [CountTo3], **opts, **FAST) as engine:
        instance = await engine.wait(id_, timeout=10)
    assert instance.result == {"n": 3, "log": ["start", "middle", "finish"]}
    reclaimed = [meta for name, _, meta in events if name[2:] == ("reaper", "reclaimed")]
    assert reclaimed == [{"ids": [id_]}]


class Other(CountTo3):
    name = "other_count"


class Third(CountTo3):
    name = "third_count"


async def test_the_reaper_reclaims_expired_leases_of_every_machine(store):
    """spec §5.8.3, §8.7.3: the reaper reads running rows machine by machine
    (no index on status alone); it takes every expired lease, whatever the
    machine, and none that still holds."""
    async with durable.open_engine(store, workers=0) as producer:
        ids = {m: [await producer.insert(m, Counter(0)) for _ in range(2)]
               for m in (CountTo3, Other, Third)}  # fmt: skip
    expired = []
    for machine in (CountTo3, Third):
        claim = await store.claim([(machine.name, machine.version)], 2, 0.01, {})
        expired += [job.id for job in claim.jobs]
    held = await store.claim([(Other.name, Other.version)], 1, 3600, {})
    await trio.sleep(0.05)  # real time on every store: the 0.01 s leases expire
    reclaimed = await store.reap_expired()
    assert sorted(r.id for r in reclaimed) == sorted(expired) == sorted(ids[CountTo3] + ids[Third])
    assert {r.machine for r in reclaimed} == {CountTo3.name, Third.name}
    assert all(r.attempt == 2 for r in reclaimed)
    assert await store.reap_expired() == []
    (job,) = held.jobs
    assert (await store.get(job.id)).status == "running"


async def test_an_exception_group_from_the_body_propagates_as_it_is(store):
    """spec §5.5.5: the body's own exception, even a group, is not collapsed."""
    for group in [
        ExceptionGroup("mine", [ValueError("a"), KeyError("b")]),
        ExceptionGroup("mine", [ValueError("a")]),
    ]:
        try:
            async with durable.open_engine(store, [CountTo3], **FAST):
                raise group
        except ExceptionGroup as exc:
            assert exc is group
        else:
            raise AssertionError("not raised")


class Second(durable.Machine):
    """``start`` -> ``second``; the instance with state 2 finishes ``start`` only
    once the completer is busy committing the other one."""

    name = "second"
    busy: trio.Event

    async def step(self, step, ctx):
        if ctx.state == 2:
            await Second.busy.wait()
        return durable.Next("second", ctx.state)


async def test_a_cancelled_block_still_commits_the_outcomes_that_finished(store, autojump_clock):
    """spec §5.5.4: the shutdown is shielded; finished outcomes are committed,
    not released to run again, even when the caller cancelled the block."""
    real, gate = store.complete_and_claim, trio.Event()
    Second.busy = trio.Event()

    async def slow_complete_and_claim(commits, *args, **kwargs):
        Second.busy.set()
        await gate.wait()
        return await real(commits, *args, **kwargs)

    async def open_gate_soon():
        await trio.sleep(0.05)
        gate.set()

    store.complete_and_claim = slow_complete_and_claim
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            async with durable.open_engine(store, [Second], workers=2, **FAST) as engine:
                ids = await engine.insert_many([durable.InsertSpec(Second, n) for n in (1, 2)])
                await Second.busy.wait()
                await trio.sleep(0.05)  # the second outcome waits for the completer
                nursery.start_soon(open_gate_soon)
                scope.cancel()
                await trio.sleep_forever()
    store.complete_and_claim = real
    async with durable.open_engine(store, workers=0) as reader:
        after = [await reader.get(i) for i in ids]
    assert [(i.status, i.step, i.attempt) for i in after] == [("scheduled", "second", 1)] * 2


async def test_cancelling_the_block_mid_flight_again_and_again_loses_nothing(store, autojump_clock):
    """spec §5.5.4: the completer is shielded from the start and cancelled by the
    shutdown; toggling its shield while it sat in a checkpoint made trio raise
    "AssertionError: this should never happen" (seen as a flaky demo Ctrl-C)."""
    async with durable.open_engine(store, workers=0) as producer:
        ids = await producer.insert_many(
            [durable.InsertSpec(CountTo3, Counter(i)) for i in range(200)]
        )
    for i in range(40):
        with trio.move_on_after(0.002 + (i % 10) * 0.001):
            async with durable.open_engine(store, [CountTo3], workers=4, batch_size=4, **FAST):
                await trio.sleep(10)
    async with durable.open_engine(store, [CountTo3], **FAST) as engine:
        results = [await engine.wait(id_, timeout=20) for id_ in ids]
    assert [r.result["n"] for r in results] == [i + 3 for i in range(200)]
