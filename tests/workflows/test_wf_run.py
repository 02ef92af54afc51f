"""Runs on the durable engine (spec §6.2, §6.6): happy path, parallel branches, joins."""

from __future__ import annotations

import math

import pytest
import trio

import trexec
from trexec import durable, workflows
from trexec.workflows import Step, Workflow

FAST = {"poll_interval": 0.02}


async def test_a_run_completes_with_every_step_result(store):
    async def reserve(ctx):
        return {"reserved": ctx.input["sku"]}

    async def charge(ctx):
        assert ctx.results["reserve"] == {"reserved": "A1"}
        return {"charged": 10, "attempt": ctx.attempt, "step": ctx.step}

    wf = Workflow("happy", [Step("reserve", reserve), Step("charge", charge, after=["reserve"])])
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, {"sku": "A1"})
        run = await engine.wait(run_id, timeout=10)
    assert run.status == "done"
    assert run.result == {
        "reserve": {"reserved": "A1"},
        "charge": {"charged": 10, "attempt": 1, "step": "charge"},
    }
    info = workflows.describe_run(run)
    assert info["phase"] == "done"
    assert [(row["step"], row["status"]) for row in info["steps"]] == [
        ("reserve", "done"),
        ("charge", "done"),
    ]


async def test_ctx_carries_the_run_id_and_input(store):
    seen = []

    async def look(ctx):
        seen.append((ctx.run_id, ctx.input, dict(ctx.results), ctx.error))

    wf = Workflow("ctx", [Step("look", look)])
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, [1, 2])
        await engine.wait(run_id, timeout=10)
    assert seen == [(run_id, [1, 2], {}, None)]


async def test_independent_steps_run_at_the_same_time(store, autojump_clock):
    # Each branch waits for the other to have started: only overlap lets both end.
    started = {"left": trio.Event(), "right": trio.Event()}

    def branch(me: str, other: str):
        async def fn(ctx):
            started[me].set()
            with trio.fail_after(5):
                await started[other].wait()
            return me

        return fn

    wf = Workflow(
        "parallel", [Step("left", branch("left", "right")), Step("right", branch("right", "left"))]
    )
    async with durable.open_engine(store, workflows=[wf], workers=4, **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "done"
    assert run.result == {"left": "left", "right": "right"}


@pytest.mark.parametrize("execution", ["inline", "instances"])
async def test_a_step_starts_as_soon_as_its_own_dependencies_are_done(
    store, autojump_clock, execution
):
    # "slow" only finishes once "b" (after "a") has run: waves would deadlock.
    b_done = trio.Event()

    async def a(ctx):
        return "a"

    async def b(ctx):
        b_done.set()
        return "b"

    async def slow(ctx):
        with trio.fail_after(5):
            await b_done.wait()
        return "slow"

    wf = Workflow(
        "eager", [Step("a", a), Step("slow", slow), Step("b", b, after=["a"])], execution=execution
    )
    async with durable.open_engine(store, workflows=[wf], workers=4, **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    # "slow" could only finish after "b" ran: b did not wait for the a/slow wave.
    assert run.status == "done"
    assert sorted(run.result) == ["a", "b", "slow"]


async def test_a_join_waits_for_all_of_its_dependencies(store, autojump_clock):
    order = []
    release_slow = trio.Event()

    def step(name: str, wait: trio.Event | None = None):
        async def fn(ctx):
            if wait is not None:
                with trio.fail_after(5):
                    await wait.wait()
            order.append(name)
            if name == "fast":
                release_slow.set()
            return {"name": name, "seen": sorted(ctx.results)}

        return fn

    wf = Workflow(
        "join",
        [
            Step("start", step("start")),
            Step("fast", step("fast"), after=["start"]),
            Step("slow", step("slow", release_slow), after=["start"]),
            Step("join", step("join"), after=["fast", "slow"]),
        ],
    )
    async with durable.open_engine(store, workflows=[wf], workers=4, **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "done"
    assert order == ["start", "fast", "slow", "join"]
    assert run.result["join"] == {"name": "join", "seen": ["fast", "slow", "start"]}


@pytest.mark.parametrize(
    "result",
    [object(), {"x": math.nan}],  # NaN passes json.dumps by default but is not storable
    ids=["object", "nan"],
)
async def test_a_step_returning_non_json_fails_the_run_without_retrying(
    store, result, autojump_clock
):
    # spec §6.3.2, §5.1.4
    calls = []

    async def bad(ctx):
        calls.append(ctx.attempt)
        return result

    wf = Workflow(
        "nonjson", [Step("bad", bad, retries=3, backoff=trexec.Backoff(initial=0, max=0))]
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "stopped"
    assert calls == [1]
    assert "step 'bad' failed: StepResultError" in run.error
    assert "JSON-serializable" in run.error
