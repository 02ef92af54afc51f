"""Steps in a row on one claim (spec §5.5.13): a plain ``next`` commit keeps
its lease, on every store; the engine runs the next step on the worker that
holds it, up to ``chain_steps`` steps, then puts it back in the queue."""

from __future__ import annotations

from typing import ClassVar

import pytest
import trio
from machines import Counter, CountTo3
from stores import FAST

import trexec
from trexec import durable
from trexec.durable._records import DoneCommit, Job, NewInstance, NextCommit, StopCommit

M = [("m", 1)]

#: This module also runs on a SQLite file with inline calls (spec §5.11.6).
INLINE_TOO = True


def row(**kw: object) -> NewInstance:
    return NewInstance("m", 1, "a", "{}", **kw)  # type: ignore[arg-type]


def step_b(job: Job, **kw: object) -> NextCommit:
    return NextCommit(job.lease, "b", '{"at": "b"}', **kw)  # type: ignore[arg-type]


async def claim_all(store: durable.Store, n: int = 10) -> dict[int, Job]:
    return {job.id: job for job in (await store.claim(M, n, 30.0, {})).jobs}


# --- the store ---------------------------------------------------------------------


async def test_a_kept_next_stays_running_at_its_new_step_and_comes_back_first(store):
    kept_id, other_id = await store.insert([row(), row()])
    jobs = await claim_all(store)
    signal = await store.deliver_signal(kept_id, "go", '"payload"', None)
    statuses, claim = await store.complete_and_claim(
        [step_b(jobs[kept_id]), step_b(jobs[other_id])], M, 2, 30.0, {}, keep={kept_id: 1}
    )
    assert statuses == ["applied", "applied"]
    kept, fresh = claim.jobs
    # The kept row, first: same token, its new step, state and attempt 1, and
    # the inbox it has now (a signal delivered while the last step ran).
    assert (kept.id, kept.token, kept.step, kept.state, kept.attempt) == (
        kept_id, jobs[kept_id].token, "b", '{"at": "b"}', 1,
    )  # fmt: skip
    assert [s.id for s in kept.inbox] == [signal.signal_id]
    # The other went back to the queue and this claim took it again: a new token.
    assert (fresh.id, fresh.step) == (other_id, "b")
    assert fresh.token == jobs[other_id].token + 1
    assert (await store.get(kept_id)).status == "running"
    # The kept row is held as a claimed one is: its outcome commits with that token.
    statuses, _ = await store.complete_and_claim([DoneCommit(kept.lease, '"done"')], M, 1, 30.0, {})
    assert statuses == ["applied"]
    assert (await store.get(kept_id)).status == "done"


async def test_only_plain_next_commits_of_the_instances_named_are_kept_up_to_the_limit(store):
    ids = await store.insert([row() for _ in range(5)])
    jobs = await claim_all(store)
    a, b, c, d, e = (jobs[i] for i in ids)
    commits = [
        step_b(a),
        step_b(b, rate_limit="api"),  # its next step is rate limited: claimed again
        step_b(c, consumed=(12345,)),  # consumes signals: not a plain next
        DoneCommit(d.lease, "null"),
        step_b(e),
    ]
    statuses, claim = await store.complete_and_claim(
        commits, M, 1, 30.0, {}, keep={a.id: 1, b.id: 1, c.id: 1, d.id: 1, e.id: 1}
    )
    assert statuses == ["applied"] * 5
    # limit 1: only the first eligible is kept, and the claim takes nothing more.
    assert [(job.id, job.token) for job in claim.jobs] == [(a.id, a.token)]
    assert [(await store.get(i)).status for i in ids] == [
        "running", "scheduled", "scheduled", "done", "scheduled",
    ]  # fmt: skip


async def test_a_row_with_a_concurrency_key_goes_back_to_the_queue(store):
    """Its slot goes back through the queue (spec §11.2): the claim may take it
    again, with a new token, but it is not kept."""
    keyed, plain = await store.insert([row(concurrency_key="k"), row()])
    jobs = await claim_all(store)
    _, claim = await store.complete_and_claim(
        [step_b(jobs[keyed]), step_b(jobs[plain])], M, 2, 30.0, {}, keep={keyed: 1, plain: 1}
    )
    assert [(job.id, job.token) for job in claim.jobs] == [
        (plain, jobs[plain].token), (keyed, jobs[keyed].token + 1),
    ]  # fmt: skip


async def test_a_higher_priority_runnable_row_sends_a_kept_row_back_to_the_queue(store):
    low, mid = await store.insert([row(), row(priority=5)])
    jobs = await claim_all(store)
    [waiting] = await store.insert([row(priority=3)])
    _, claim = await store.complete_and_claim(
        [step_b(jobs[low]), step_b(jobs[mid])], M, 2, 30.0, {}, keep={low: 1, mid: 1}
    )
    # mid (5) beats the waiting row (3) and is kept, with its token; low (0)
    # goes back to the queue, and the claim takes the waiting row instead.
    assert [job.id for job in claim.jobs] == [mid, waiting]
    assert claim.jobs[0].token == jobs[mid].token
    assert (await store.get(low)).status == "scheduled"


async def test_a_row_the_same_batch_puts_back_at_a_higher_priority_counts(store):
    low, high = await store.insert([row(), row(priority=9)])
    jobs = await claim_all(store)
    # high's next step is rate limited, so it goes back to the queue at 9: low
    # (0) may not pass it by keeping its lease. The claim takes high.
    _, claim = await store.complete_and_claim(
        [step_b(jobs[low]), step_b(jobs[high], rate_limit="api")],
        M, 1, 30.0, {}, keep={low: 1, high: 1},
    )  # fmt: skip
    assert [job.id for job in claim.jobs] == [high]
    assert claim.jobs[0].token == jobs[high].token + 1
    assert (await store.get(low)).status == "scheduled"


async def test_a_kept_commit_is_fenced_and_applying_it_twice_keeps_it_once(store):
    kept_id, gone_id = await store.insert([row(), row()])
    jobs = await claim_all(store)
    await store.cancel(gone_id)
    commits = [step_b(jobs[kept_id]), step_b(jobs[gone_id])]
    keep = {kept_id: 1, gone_id: 1}
    statuses, claim = await store.complete_and_claim(commits, M, 2, 30.0, {}, keep=keep)
    assert statuses == ["applied", "cancelled"]
    assert [job.id for job in claim.jobs] == [kept_id]
    # spec §8.4.2: a retry after a COMMIT whose fate is unknown applies the same
    # commit again: the row is still held with that token, so it is kept again,
    # unchanged.
    statuses, again = await store.complete_and_claim(commits, M, 2, 30.0, {}, keep=keep)
    assert statuses == ["applied", "cancelled"]
    assert again.jobs == claim.jobs
    record = await store.get(kept_id)
    assert (record.status, record.step, record.attempt) == ("running", "b", 1)


async def test_a_stale_lease_keeps_nothing(store):
    [id_] = await store.insert([row()])
    jobs = await claim_all(store)
    await store.complete_and_claim([StopCommit(jobs[id_].lease, "x")], M, 0, 30.0, {})
    statuses, claim = await store.complete_and_claim(
        [step_b(jobs[id_])], M, 1, 30.0, {}, keep={id_: 1}
    )
    assert statuses == ["stale"] and claim.jobs == ()


async def test_a_kept_row_whose_lease_expires_is_reaped_at_its_new_step(store, autojump_clock):
    [id_] = await store.insert([row()])
    jobs = await claim_all(store)
    await store.complete_and_claim([step_b(jobs[id_])], M, 1, 5.0, {}, keep={id_: 1})
    await trio.sleep(4.0)
    assert await store.reap_expired() == []  # the lease was renewed: 5 s from the commit
    await trio.sleep(2.0)
    [reclaimed] = await store.reap_expired()
    assert (reclaimed.id, reclaimed.step, reclaimed.attempt) == (id_, "b", 2)


# --- the engine ----------------------------------------------------------------------


def count_kept(store: durable.Store) -> list[int]:
    """Wrap ``store.complete_and_claim``; the list counts the jobs that came
    back with the token of a lease just committed (kept, not claimed again)."""
    real, kept = store.complete_and_claim, [0]

    async def counting(commits, *args, **kwargs):  # type: ignore[no-untyped-def]
        statuses, claim = await real(commits, *args, **kwargs)
        leases = {commit.lease for commit in commits}
        kept[0] += sum(job.lease in leases for job in claim.jobs)
        return statuses, claim

    store.complete_and_claim = counting  # type: ignore[method-assign]
    return kept


@pytest.mark.parametrize(("chain_steps", "kept"), [(8, 2), (2, 1), (1, 0)])
async def test_the_engine_runs_up_to_chain_steps_steps_on_one_claim(
    store, autojump_clock, chain_steps, kept
):
    counted = count_kept(store)
    async with durable.open_engine(store, [CountTo3], chain_steps=chain_steps, **FAST) as engine:
        ids = [await engine.insert(CountTo3, Counter()) for _ in range(4)]
        results = [(await engine.wait(i, timeout=10)).result for i in ids]
    assert results == [{"n": 3, "log": ["start", "middle", "finish"]}] * 4
    assert counted[0] == 4 * kept


class Blocks(durable.Machine):
    """``a`` -> ``b``; ``b`` blocks on its first attempt."""

    name = "blocks"
    seen: ClassVar[list[tuple[str, int]]] = []

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        Blocks.seen.append((step, ctx.attempt))
        if step == "a":
            return durable.Next("b", None)
        if ctx.attempt == 1:
            await trio.sleep_forever()
        return durable.Done(step)


async def test_a_kept_step_cut_short_by_shutdown_runs_again_elsewhere(store, autojump_clock):
    """spec §5.5.4: a kept job is held as a claimed one is; leaving the block
    releases it with attempt + 1, at the step it had reached."""
    Blocks.seen = []
    counted = count_kept(store)
    async with durable.open_engine(store, [Blocks], shutdown_grace=0.0, **FAST) as engine:
        id_ = await engine.insert(Blocks, None, step="a")
        while Blocks.seen != [("a", 1), ("b", 1)]:
            await trio.sleep(0.01)
    assert counted[0] == 1
    async with durable.open_engine(store, [Blocks], **FAST) as engine:
        assert (await engine.wait(id_, timeout=10)).result == "b"
    assert Blocks.seen == [("a", 1), ("b", 1), ("b", 2)]


async def test_chain_steps_is_validated(store):
    for bad in (0, -1, 1.5, True, "8"):
        with pytest.raises(trexec.InvalidArgument, match="chain_steps"):
            async with durable.open_engine(store, [CountTo3], chain_steps=bad):
                pass


class Yields(durable.Machine):
    """Three steps, each a schedule point that never waits."""

    name = "yields"

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        await trio.sleep(0)
        return durable.Next(step + "+", None) if len(step) < 3 else durable.Done(None)


@pytest.mark.parametrize(
    ("machine", "state", "first"), [(CountTo3, Counter(), "start"), (Yields, None, "a")]
)
async def test_one_commit_carries_every_job_the_engine_holds(
    store, autojump_clock, machine, state, first
):
    """spec §5.5.3: up to workers + batch_size outcomes per transaction, and
    the steps that never wait are gathered into it, not split in two (Yields:
    each step lets the completer run before the next step starts)."""
    real, sizes = store.complete_and_claim, []

    async def recording(commits, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(commits))
        return await real(commits, *args, **kwargs)

    store.complete_and_claim = recording
    specs = [durable.InsertSpec(machine, state, step=first) for _ in range(12)]
    async with durable.open_engine(store, [machine], workers=2, batch_size=4, **FAST) as engine:
        ids = await engine.insert_many(specs)
        for id_ in ids:
            await engine.wait(id_, timeout=10)
    assert max(sizes) == 6 and sum(sizes) == 36, sizes
