"""Run events to telemetry and to a RunBus, followed by recorders (spec §6.12)."""

from __future__ import annotations

import trio

import trexec
from trexec import Backoff, durable
from trexec.workflows import Step, Workflow, WorkflowEvent

FAST = {"poll_interval": 0.02}


async def ok(ctx):
    return ctx.step


def make(fail_b: bool, execution: str = "inline") -> Workflow:
    async def b(ctx):
        if fail_b:
            raise RuntimeError("b broke")
        return "b"

    async def undo(ctx):
        return None

    return Workflow(
        "events",
        [
            Step("a", ok, compensate=undo),
            Step("b", b, after=["a"], retries=1, backoff=Backoff(initial=0.001, max=0.001)),
        ],
        execution=execution,
    )


async def test_telemetry_sees_the_run_and_its_steps_in_order(store, wf_events):
    wf = make(fail_b=False)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        await engine.wait(run_id, timeout=10)
    kinds = [name[2:] for name, _, meta in wf_events]
    assert kinds == [
        ("run", "started"),
        ("step", "started"),
        ("step", "completed"),
        ("step", "started"),
        ("step", "completed"),
        ("run", "completed"),
    ]
    assert {meta["run_id"] for _, _, meta in wf_events} == {run_id}
    assert [meta["step"] for _, _, meta in wf_events] == [None, "a", "a", "b", "b", None]


async def test_a_recorder_follows_a_failed_durable_run_like_an_in_process_one(
    store, autojump_clock
):
    wf = make(fail_b=True)
    bus = trexec.RunBus()
    recorder = trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        async with durable.open_engine(store, workflows=[wf], workers=0) as producer:
            run_id = await producer.start_workflow(wf, None)
        # Subscribed before any worker runs the run: no event can be missed.
        handle = await trexec.follow_run(nursery, bus, run_id, [recorder])
        async with durable.open_engine(store, workflows=[wf], bus=bus, **FAST) as engine:
            with trio.fail_after(10):
                outcome = await handle.wait()
            run = await engine.wait(run_id, timeout=10)
    assert run.status == "stopped"
    assert isinstance(outcome, trexec.RunFailed)
    assert outcome.errors == ["step 'b' failed: RuntimeError: b broke"]
    assert recorder.outcome == outcome
    assert recorder.run_id == run_id
    events = [e for e in recorder.events if isinstance(e, WorkflowEvent)]
    assert [(e.kind, e.step) for e in events] == [
        ("run_started", None),
        ("step_started", "a"),
        ("step_completed", "a"),
        ("step_started", "b"),
        ("step_retrying", "b"),
        ("step_started", "b"),
        ("step_failed", "b"),
        ("compensation_started", "a"),
        ("compensation_completed", "a"),
        ("run_failed", None),
    ]
    assert events[-1].terminal


async def test_run_started_precedes_the_first_step_started_whoever_runs_first(store, wf_events):
    """spec §6.12.3: an engine that runs only the step machine picks the entry step
    before any engine ran the run's first step: the step waits for the run."""
    from trexec.workflows._step_machine import step_machine

    wf = make(fail_b=False, execution="instances")
    async with (
        durable.open_engine(store, [step_machine(wf)], **FAST) as steps_only,
        durable.open_engine(store, workers=0, workflows=[wf], **FAST) as producer,
    ):
        run_id = await producer.start_workflow(wf, None)
        key = (await producer.get(run_id)).state.run_key
        with trio.fail_after(10):  # the entry step was claimed and parked for the run
            while (await producer.get(f"{key}/a")).status != "awaiting":
                await trio.sleep(0.01)
        assert wf_events == []
        async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
            run = await engine.wait(run_id, timeout=10)
        assert steps_only is not None
    assert run.status == "done"
    kinds = [name[2:] for name, _, meta in wf_events]
    assert kinds[:2] == [("run", "started"), ("step", "started")]
