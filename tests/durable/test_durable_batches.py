"""A batch of commits in one ``Store.complete`` call (spec §5.4, §5.8): each gets
its own status, whatever its neighbours' (the SQLite store writes the plain
``next`` and ``done`` commits of a batch with one statement per kind)."""

from __future__ import annotations

from trexec.durable._records import ChildrenCommit, DoneCommit, NewInstance, NextCommit, Release

M = [("m", 1)]


def row() -> NewInstance:
    return NewInstance("m", 1, "start", "{}")


async def test_a_batch_gives_each_commit_its_own_status(store):
    a, b, c, d, e, f = await store.insert([row() for _ in range(6)])
    jobs = {job.id: job for job in (await store.claim(M, 10, 30.0, {})).jobs}
    await store.cancel(d)
    await store.cancel(f)
    # b's lease is lost and b claimed again: its old lease is stale in the same batch.
    await store.release([Release(jobs[b].lease, True)])
    [b_again] = (await store.claim(M, 10, 30.0, {})).jobs
    commits = [
        NextCommit(jobs[a].lease, step="two", state='{"n":1}', rate_limit="r", weight=2),
        NextCommit(jobs[b].lease, step="stale", state="{}"),
        NextCommit(b_again.lease, step="three", state="{}"),
        NextCommit(jobs[d].lease, step="two", state="{}"),
        DoneCommit(jobs[c].lease, result="1"),
        DoneCommit(jobs[e].lease, result="2"),
        DoneCommit(jobs[f].lease, result="3"),
        DoneCommit(jobs[b].lease, result="stale"),
    ]
    assert await store.complete(commits) == [
        "applied", "stale", "applied", "cancelled", "applied", "applied", "cancelled", "stale",
    ]  # fmt: skip
    got = {id_: await store.get(id_) for id_ in (a, b, c, d, e, f)}
    assert (got[a].status, got[a].step, got[a].state, got[a].attempt) == (
        "scheduled", "two", '{"n":1}', 1,
    )  # fmt: skip
    assert (got[b].status, got[b].step) == ("scheduled", "three")
    assert (got[c].status, got[c].result) == ("done", "1")
    assert (got[e].status, got[e].result) == ("done", "2")
    assert got[d].status == got[f].status == "cancelled"
    # The next claim sees a's rate limit and weight, and every applied row runnable.
    assert sorted(job.id for job in (await store.claim(M, 10, 30.0, {})).jobs) == [a, b]


async def test_children_finishing_in_one_batch_release_their_parent_once(store):
    [parent] = await store.insert([row()])
    [job] = (await store.claim(M, 10, 30.0, {})).jobs
    children = tuple(NewInstance("m", 1, "child", "{}") for _ in range(3))
    commit = ChildrenCommit(job.lease, step="joined", state="{}", children=children)
    assert await store.complete([commit]) == ["applied"]
    kids = (await store.claim(M, 10, 30.0, {})).jobs
    assert len(kids) == 3
    signal = await store.deliver_signal(kids[0].id, "note", "1", None)
    assert not signal.duplicate
    assert (
        await store.complete([DoneCommit(kid.lease, result="0") for kid in kids]) == ["applied"] * 3
    )
    assert await store.inbox(kids[0].id) == []  # a terminal instance's inbox is cleared
    parent_row = await store.get(parent)
    assert (parent_row.status, parent_row.step) == ("scheduled", "joined")
    [resumed] = (await store.claim(M, 10, 30.0, {})).jobs
    assert resumed.id == parent and len(resumed.children) == 3
