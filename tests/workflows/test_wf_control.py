"""Starting later, cancelling, and surviving a crash mid-step (spec §6.2, §6.10, §6.11)."""

from __future__ import annotations

import pytest
import trio

from trexec import InvalidArgument, durable, workflows
from trexec.workflows import DispatchError, Step, Workflow

FAST = {"poll_interval": 0.02}


async def test_schedule_in_delays_the_whole_run(store, autojump_clock):
    ran = []

    async def step(ctx):
        ran.append(ctx.step)

    wf = Workflow("later", [Step("a", step)], execution="instances")
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None, schedule_in=1.0)
        before = await engine.get(run_id)
        step_before = await engine.get(before.state.run_key + "/a")
        assert (before.status, step_before.status, ran) == ("scheduled", "scheduled", [])
        run = await engine.wait(run_id, timeout=10)
    assert run.status == "done"
    assert ran == ["a"]


def blocking_saga(
    log: list, gate: trio.Event, entered: trio.Event | None = None, execution: str = "inline"
) -> Workflow:
    async def first(ctx):
        log.append("first")
        return 1

    async def second(ctx):
        if entered is not None:
            entered.set()
        with trio.fail_after(5):
            await gate.wait()
        log.append("second")
        return 2

    async def third(ctx):
        log.append("third")
        return 3

    def undo(name: str):
        async def fn(ctx):
            log.append(f"undo {name}: {ctx.error}")

        return fn

    return Workflow(
        "blocking",
        [
            Step("first", first, compensate=undo("first")),
            Step("second", second, after=["first"], compensate=undo("second")),
            Step("third", third, after=["second"], compensate=undo("third")),
        ],
        execution=execution,
        # The cancel is sent while "second" runs: each step commits on its own, so
        # the run sees it before "third" (a commit window would chain "third").
        commit_window=0,
    )


async def test_cancel_run_stops_dispatching_and_compensates_newest_first(
    store, wf_events, autojump_clock
):
    log: list = []
    gate, entered = trio.Event(), trio.Event()
    wf = blocking_saga(log, gate, entered)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        with trio.fail_after(5):
            await entered.wait()  # "second" is running its function
        await workflows.cancel_run(engine, run_id)
        gate.set()  # "second" finishes after the cancel: it is compensated too
        run = await engine.wait(run_id, timeout=10)
        with pytest.raises(DispatchError, match="expected a live run to cancel"):
            await workflows.cancel_run(engine, run_id)
    assert run.status == "cancelled"
    cancelled = "run failed: Cancelled: the run was cancelled"
    assert log == ["first", "second", f"undo second: {cancelled}", f"undo first: {cancelled}"]
    assert "third" not in log
    kinds = [name[2:] for name, _, meta in wf_events if meta["run_id"] == run_id]
    assert kinds[-1] == ("run", "cancelled")


async def test_engine_cancel_starts_nothing_new_and_compensates_what_completed(
    store, wf_events, autojump_clock
):
    log: list = []
    gate, entered = trio.Event(), trio.Event()
    wf = blocking_saga(log, gate, entered, execution="instances")  # spec §6.11.2
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        with trio.fail_after(5):
            await entered.wait()  # "second" is running its function
        await engine.cancel(run_id)
        gate.set()  # "second" was in flight: it completes, then finds its run cancelled
        run = await engine.wait(run_id, timeout=10)
        key = run.state.run_key
        second = await engine.wait(f"{key}/second", timeout=10)  # it made the compensator
        compensator = await engine.wait(f"{key}/cancelled/compensator", timeout=10)
        with pytest.raises(durable.NoTarget):
            await engine.get(f"{key}/third")
    assert (run.status, second.status, compensator.status) == ("cancelled", "done", "done")
    cancelled = "run failed: Cancelled: the run was cancelled"
    assert compensator.result == {"cancelled_run": run_id, "error": cancelled}
    assert log == ["first", "second", f"undo second: {cancelled}", f"undo first: {cancelled}"]
    kinds = [name[2:] for name, _, meta in wf_events if meta["run_id"] == run_id]
    assert kinds[-1] == ("run", "cancelled")


async def test_a_run_survives_its_engine_closing_mid_step(store, autojump_clock):
    attempts = []
    blocked = trio.Event()

    async def slow(ctx):
        attempts.append(ctx.attempt)
        if len(attempts) == 1:
            blocked.set()
            await trio.sleep_forever()  # the engine closes under it
        return "finished"

    async def after(ctx):
        return ctx.results["slow"] + "!"

    wf = Workflow("crash", [Step("slow", slow), Step("after", after, after=["slow"])])
    async with durable.open_engine(store, workflows=[wf], shutdown_grace=0, **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        with trio.fail_after(5):
            await blocked.wait()
    # The step was cancelled and its claim released; a new engine picks it up.
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(run_id, timeout=10)
    assert run.status == "done"
    assert run.result == {"slow": "finished", "after": "finished!"}
    assert len(attempts) == 2  # the crashed attempt left nothing behind but a re-run


async def test_start_workflow_checks_its_arguments(store):
    async def step(ctx):
        return None

    wf = Workflow("args", [Step("a", step)])
    async with durable.open_engine(store, workflows=[wf], workers=0) as engine:
        with pytest.raises(InvalidArgument, match=r"input=.*JSON-serializable"):
            await engine.start_workflow(wf, object())
        with pytest.raises(InvalidArgument, match=r"^input=nan: .*JSON-serializable"):
            await engine.start_workflow(wf, {"x": float("nan")}["x"])
        with pytest.raises(InvalidArgument, match="schedule_in=-1"):
            await engine.start_workflow(wf, None, schedule_in=-1)
        with pytest.raises(InvalidArgument, match="wf='args'"):
            await engine.start_workflow("args", None)
        assert await engine.list() == []  # nothing was inserted


async def test_engine_cancel_while_compensating_hands_the_rest_to_the_compensator(
    store, autojump_clock
):
    log: list = []
    gate, entered = trio.Event(), trio.Event()

    async def ok(ctx):
        return ctx.step

    async def fail(ctx):
        raise RuntimeError("c broke")

    async def undo_a(ctx):
        log.append("undo a")

    async def undo_b(ctx):
        entered.set()
        with trio.fail_after(5):
            await gate.wait()
        log.append("undo b")

    wf = Workflow(
        "cancel-compensating",
        [
            Step("a", ok, compensate=undo_a),
            Step("b", ok, after=["a"], compensate=undo_b),
            Step("c", fail, after=["b"]),
        ],
        execution="instances",  # spec §6.11.2: the compensator is an instances-mode rule
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        with trio.fail_after(5):
            await entered.wait()  # the run is compensating b
        await engine.cancel(run_id)
        gate.set()
        run = await engine.wait(run_id, timeout=10)
        key = run.state.run_key
        await engine.wait(f"{key}/b/compensation", timeout=10)
        compensator = await engine.wait(f"{key}/cancelled/compensator", timeout=10)
    assert run.status == "cancelled"
    assert compensator.status == "done"
    assert log == ["undo b", "undo a"]  # each compensation ran once, newest first


async def test_engine_cancel_before_a_scheduled_run_starts_runs_nothing(store, autojump_clock):
    ran: list = []

    async def step(ctx):
        ran.append(ctx.step)

    wf = Workflow(
        "cancel-early", [Step("a", step, compensate=step), Step("b", step)], execution="instances"
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None, schedule_in=0.2)
        await engine.cancel(run_id)
        run = await engine.wait(run_id, timeout=10)
        key = run.state.run_key
        entries = [await engine.wait(f"{key}/{name}", timeout=10) for name in ("a", "b")]
        compensator = await engine.wait(f"{key}/cancelled/compensator", timeout=10)
    assert run.status == "cancelled"
    assert [e.status for e in entries] == ["stopped", "stopped"]
    assert all(e.error.startswith("skipped: run") for e in entries)
    assert compensator.status == "done"  # found nothing completed to compensate
    assert ran == []


async def test_a_rerun_of_plan_does_not_dispatch_a_step_twice(store, monkeypatch, autojump_clock):
    # spec §6.10.2: the run's plan step fails after choosing to dispatch "b" and
    # before its commit; the dispatch is part of that commit (§6.6.4), so nothing
    # was inserted and the re-run dispatches "b" exactly once.
    from trexec.workflows import _run_machine

    runs = []

    async def a(ctx):
        return "a"

    async def b(ctx):
        runs.append(ctx.attempt)
        return "b"

    real = _run_machine.step_specs
    calls = []

    def crashing_specs(wf, run_id, state, steps, delay=0.0):
        calls.append(tuple(steps))
        if len(calls) == 1:
            raise RuntimeError("lost before the commit")
        return real(wf, run_id, state, steps, delay)

    monkeypatch.setattr(_run_machine, "step_specs", crashing_specs)
    wf = Workflow("rerun", [Step("a", a), Step("b", b, after=["a"])], execution="instances")
    async with durable.open_engine(store, workflows=[wf], workers=4, **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
        instances = await engine.list(machine="workflow:rerun:step")
    assert calls == [("b",), ("b",)]
    assert run.status == "done"
    assert run.result == {"a": "a", "b": "b"}
    assert [i.key for i in instances].count(f"{run.state.run_key}/b") == 1
    assert runs == [1]
