"""A step instance that ends without reporting fails its step (spec §6.14).

Cancelled by hand while the run runs or while it is failing, or stopped by the
engine (a commit the database refuses, spec §5.5.9): the run fails for good,
compensates what completed and names the step and how its instance ended.
"""

from __future__ import annotations

import psycopg
import pytest
import trio
from stores import PG_URL, raw_connection

from trexec import durable
from trexec.workflows import Step, Workflow, _watchdog

FAST = {"poll_interval": 0.02}


@pytest.fixture(autouse=True)
def quick_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real time (spec §5.12): a short watchdog keeps these tests quick.
    monkeypatch.setattr(_watchdog, "WATCH_MIN", 0.05)
    monkeypatch.setattr(_watchdog, "WATCH_MAX", 0.2)


def saga(log: list[str], gate: trio.Event, entered: trio.Event, *, fail: bool) -> Workflow:
    async def first(ctx):
        log.append("first")
        return 1

    async def slow(ctx):
        entered.set()
        with trio.move_on_after(10):
            await gate.wait()
        return 2

    async def bad(ctx):
        await entered.wait()
        raise ValueError("bad input")

    async def undo(ctx):
        log.append(f"undo first: {ctx.error}")

    steps = [
        Step("first", first, compensate=undo),
        Step("slow", slow, after=["first"]),
    ]
    if fail:
        steps.append(Step("bad", bad, after=["first"]))
    return Workflow("lost", steps, execution="instances")


async def test_a_step_cancelled_by_hand_while_running_fails_the_run(store, wf_events):
    log: list[str] = []
    gate, entered = trio.Event(), trio.Event()
    wf = saga(log, gate, entered, fail=False)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        key = (await engine.get(run_id)).state.run_key
        await entered.wait()
        slow = await engine.get(f"{key}/slow")
        await engine.cancel(f"{key}/slow")
        run = await engine.wait(run_id, timeout=10)
        gate.set()
    error = f"step 'slow' failed: StepLost: its step instance {slow.id} was cancelled"
    assert run.status == "stopped"
    assert run.error.startswith(error)
    assert log == ["first", f"undo first: {error} (it never reported)"]
    failed = [meta["step"] for name, _, meta in wf_events if name[2:] == ("step", "failed")]
    assert failed == ["slow"]


async def test_a_step_cancelled_while_the_run_is_failing_ends_the_run(store):
    log: list[str] = []
    gate, entered = trio.Event(), trio.Event()
    wf = saga(log, gate, entered, fail=True)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        key = (await engine.get(run_id)).state.run_key
        await entered.wait()
        # "bad" fails for good: the run is failing, waiting for "slow" to report.
        with trio.fail_after(10):
            while (await engine.get(run_id)).state.phase != "failing":
                await trio.sleep(0.01)
        await engine.cancel(f"{key}/slow")
        run = await engine.wait(run_id, timeout=10)
        gate.set()
    assert run.status == "stopped"
    assert run.error == "step 'bad' failed: ValueError: bad input"
    assert run.state.steps["slow"].status == "failed"
    assert "was cancelled" in run.state.steps["slow"].error
    assert log == ["first", f"undo first: {run.error}"]


def refuse_marker(store) -> None:
    """A rule of the application's own that the database enforces: no result may
    hold the text 'forbidden-value' (spec §5.5.9). A step's result is committed
    with its instance's end (and its report, spec §6.6.4): that commit is refused."""
    if getattr(store, "schema", None):
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(
                f'ALTER TABLE "{store.schema}".trexec_instances'
                " ADD CONSTRAINT app_rule CHECK (result NOT LIKE '%forbidden-value%')"
            )
        return
    with raw_connection(store) as conn:
        conn.execute(
            "CREATE TRIGGER app_rule BEFORE UPDATE OF result ON instances"
            " WHEN NEW.result LIKE '%forbidden-value%' BEGIN SELECT RAISE(ABORT, 'app rule'); END"
        )


async def test_a_step_the_engine_stops_fails_the_run_naming_the_reason(store):
    log: list[str] = []

    async def first(ctx):
        log.append("first")
        return 1

    async def refused(ctx):
        return "forbidden-value"  # its commit is refused: the engine stops the instance

    async def undo(ctx):
        log.append("undo first")

    wf = Workflow(
        "refused",
        [Step("first", first, compensate=undo), Step("second", refused, after=["first"])],
        execution="instances",
    )
    refuse_marker(store)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        run = await engine.wait(run_id, timeout=10)
        second = await engine.get(f"{run.state.run_key}/second")
    assert second.status == "stopped"
    assert run.status == "stopped"
    expected = f"step 'second' failed: StepLost: its step instance {second.id} was stopped: "
    assert run.error.startswith(expected)
    assert log == ["first", "undo first"]


async def test_a_failed_step_instance_keeps_its_outcome_for_the_watchdog(store):
    # spec §6.14.2: a step's failure and its report are one commit; the stopped
    # instance also keeps its outcome, so a run whose watchdog reads it before
    # taking the report counts the real failure, not a lost step.
    async def broken(ctx):
        raise ValueError("planned failure")

    wf = Workflow("keeps", [Step("s", broken)], execution="instances")
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
        step = await engine.get(f"{run.state.run_key}/s")
    assert step.status == "stopped"
    assert (step.state.outcome, step.state.error) == ("failed", "planned failure")
    assert _watchdog.lost_report("s", step).error == "planned failure"
    assert run.error == "step 's' failed: ValueError: planned failure"
