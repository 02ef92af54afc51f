"""Retries with backoff and compensation (spec §6.4, §6.8, §6.9)."""

from __future__ import annotations

from trexec import Backoff, durable, workflows
from trexec.workflows import Step, Workflow

FAST = {"poll_interval": 0.02}


class Flaky(Exception):
    pass


async def test_a_failed_step_is_retried_with_exponential_backoff(store, wf_events, autojump_clock):
    attempts = []

    async def flaky(ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt < 4:
            raise Flaky(f"attempt {ctx.attempt}")
        return "ok"

    wf = Workflow(
        "retry", [Step("flaky", flaky, retries=3, backoff=Backoff(initial=0.01, max=0.03))]
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "done"
    assert run.result == {"flaky": "ok"}
    assert attempts == [1, 2, 3, 4]
    delays = [m["delay"] for name, m, _ in wf_events if name[2:] == ("step", "retrying")]
    # spec §6.4: min * 2**(n-1), capped at max.
    assert delays == [0.01, 0.02, 0.03]
    assert workflows.describe_run(run)["steps"][0]["attempts"] == 4


async def test_a_step_that_keeps_failing_fails_the_run_after_its_retries(store, autojump_clock):
    attempts = []

    async def broken(ctx):
        attempts.append(ctx.attempt)
        raise Flaky("still broken")

    wf = Workflow(
        "giveup", [Step("broken", broken, retries=2, backoff=Backoff(initial=0.001, max=0.001))]
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert attempts == [1, 2, 3]
    assert run.status == "stopped"
    assert run.error == "step 'broken' failed: Flaky: still broken"


def saga(log: list, *, fail: str, failing_compensation: str | None = None) -> Workflow:
    def step(name: str):
        async def fn(ctx):
            if name == fail:
                raise Flaky(f"{name} exploded")
            log.append(("run", name))
            return name

        return fn

    def undo(name: str):
        async def fn(ctx):
            log.append(("undo", name, ctx.error.step, ctx.attempt, sorted(ctx.results)))
            if name == failing_compensation:
                raise Flaky(f"cannot undo {name}")
            return f"undid {name}"

        return fn

    return Workflow(
        "saga",
        [
            Step("reserve", step("reserve"), compensate=undo("reserve")),
            Step("charge", step("charge"), after=["reserve"], compensate=undo("charge")),
            Step("note", step("note"), after=["charge"]),  # nothing to undo
            Step(
                "ship",
                step("ship"),
                after=["note"],
                compensate=undo("ship"),
                retries=1,
                backoff=Backoff(initial=0.001, max=0.001),
            ),
        ],
    )


async def test_a_failed_run_compensates_completed_steps_newest_first(store):
    log: list = []
    wf = saga(log, fail="ship")
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "stopped"
    assert run.error == "step 'ship' failed: Flaky: ship exploded"
    done = ["charge", "note", "reserve"]
    assert log == [
        ("run", "reserve"),
        ("run", "charge"),
        ("run", "note"),
        # ship failed (after its retry): never compensated; note has no compensation.
        ("undo", "charge", "ship", 1, done),
        ("undo", "reserve", "ship", 1, done),
    ]
    info = workflows.describe_run(run)
    assert info["phase"] == "failed"
    table = {row["step"]: (row["status"], row["compensation"]) for row in info["steps"]}
    assert table == {
        "reserve": ("done", "done"),
        "charge": ("done", "done"),
        "note": ("done", None),
        "ship": ("failed", None),
    }


async def test_a_compensation_failure_is_retried_then_kept_on_the_run(store):
    log: list = []
    wf = saga(log, fail="ship", failing_compensation="charge")
    # charge's compensation follows charge's policy: no retries.
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "stopped"
    assert run.error == (
        "step 'ship' failed: Flaky: ship exploded; "
        "compensation of step 'charge' failed: Flaky: cannot undo charge"
    )
    # The failure did not stop the saga: reserve was still compensated.
    assert [entry[1] for entry in log if entry[0] == "undo"] == ["charge", "reserve"]
    table = {row["step"]: row for row in workflows.describe_run(run)["steps"]}
    assert table["charge"]["compensation"] == "failed"
    assert table["charge"]["compensation_error"] == "Flaky: cannot undo charge"


async def test_a_compensation_is_retried_per_its_step_policy(store, autojump_clock):
    log: list = []
    calls = []

    async def ok(ctx):
        return 1

    async def boom(ctx):
        raise Flaky("no")

    async def undo(ctx):
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise Flaky("transient")

    wf = Workflow(
        "comp-retry",
        [
            Step("a", ok, compensate=undo, retries=2, backoff=Backoff(initial=0.001, max=0.001)),
            Step("b", boom, after=["a"]),
        ],
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert calls == [1, 2]
    assert run.status == "stopped"
    assert run.error == "step 'b' failed: Flaky: no"
    assert log == []


async def test_a_run_that_fails_first_step_compensates_nothing(store):
    log: list = []
    wf = saga(log, fail="reserve")
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "stopped"
    assert log == []
    assert run.error == "step 'reserve' failed: Flaky: reserve exploded"


async def test_an_infrastructure_error_after_many_user_retries_is_still_retried(
    store, monkeypatch, autojump_clock
):
    """spec §6.10.4: infrastructure errors are counted apart from the user's retries."""
    from trexec.workflows import _step_machine

    real_get = _step_machine.run_view
    attempts: list[int] = []
    hiccups: list[int] = []

    async def get_with_a_hiccup(engine, target):
        if len(attempts) == 11 and not hiccups:  # just before the 12th attempt
            hiccups.append(len(attempts))
            raise RuntimeError("store hiccup")
        return await real_get(engine, target)

    monkeypatch.setattr(_step_machine, "run_view", get_with_a_hiccup)

    async def flaky(ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt <= 11:
            raise Flaky(f"attempt {ctx.attempt}")
        return "ok"

    wf = Workflow(
        "infra", [Step("s", flaky, retries=11, backoff=Backoff(initial=0.001, max=0.001))]
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=20)
    assert hiccups == [11]
    assert (run.status, run.result) == ("done", {"s": "ok"})
    assert attempts == list(range(1, 13))
