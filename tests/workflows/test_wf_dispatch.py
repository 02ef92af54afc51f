"""The dispatcher (spec §6.7): dispatch_run, dispatch_steps, all or none."""

from __future__ import annotations

import pytest

from trexec import InvalidArgument, durable, workflows
from trexec.workflows import DispatchError, DispatchMetadata, RunDispatched, Step, Workflow


async def step(ctx):
    return ctx.step


WF = Workflow(
    "dispatch",
    [Step("a", step), Step("b", step), Step("c", step, after=["a", "b"])],
    execution="instances",
)


async def test_a_new_run_has_its_entry_steps_dispatched(store):
    async with durable.open_engine(store, workflows=[WF], workers=0) as engine:
        run_id = await engine.start_workflow(WF, None)
        key = (await engine.get(run_id)).state.run_key
        steps = [await engine.get(f"{key}/{name}") for name in ("a", "b")]
        assert [s.status for s in steps] == ["scheduled", "scheduled"]
        with pytest.raises(durable.NoTarget):
            await engine.get(f"{key}/c")
        # Dispatching again adds nothing: both entry steps are live.
        assert await workflows.dispatch_run(engine, run_id) == ([], [])


async def test_dispatch_run_redispatches_a_lost_step(store, autojump_clock):
    async with durable.open_engine(store, workflows=[WF], workers=0) as engine:
        run_id = await engine.start_workflow(WF, None)
        key = (await engine.get(run_id)).state.run_key
        lost = await engine.get(f"{key}/b")
        await engine.cancel(lost.id)
        metadata, events = await workflows.dispatch_run(engine, run_id, schedule_in=5)
        assert len(metadata) == 1
        meta = metadata[0]
        assert isinstance(meta, DispatchMetadata)
        assert (meta.run_id, meta.step, meta.kind, meta.key, meta.schedule_in) == (
            run_id,
            "b",
            "step",
            f"{key}/b",
            5.0,
        )
        assert events == [RunDispatched(run_id, meta)]
        fresh = await engine.get(f"{key}/b")
        assert fresh.id == meta.instance_id != lost.id
        assert fresh.status == "scheduled"


async def test_dispatch_steps_dispatches_named_steps_once(store):
    async with durable.open_engine(store, workflows=[WF], workers=0) as engine:
        run_id = await engine.start_workflow(WF, None)
        metadata, events = await workflows.dispatch_steps(engine, run_id, ["c", "c"])
        assert [m.step for m in metadata] == ["c"]
        assert [e.metadata for e in events] == metadata


async def test_dispatch_steps_is_all_or_none(store):
    async with durable.open_engine(store, workflows=[WF], workers=0) as engine:
        run_id = await engine.start_workflow(WF, None)
        key = (await engine.get(run_id)).state.run_key
        with pytest.raises(DispatchError, match=r"steps=\['a'\].*still running"):
            await workflows.dispatch_steps(engine, run_id, ["c", "a"])
        with pytest.raises(durable.NoTarget):
            await engine.get(f"{key}/c")  # c was not dispatched either


async def test_dispatch_rejects_bad_targets(store):
    async with durable.open_engine(store, workflows=[WF], workers=0) as engine:
        run_id = await engine.start_workflow(WF, None)
        with pytest.raises(DispatchError, match=r"steps=\['zzz'\]: expected steps of workflow"):
            await workflows.dispatch_steps(engine, run_id, ["a", "zzz"])
        with pytest.raises(DispatchError, match="run_id=999999: expected the id of an existing"):
            await workflows.dispatch_run(engine, 999999)
        key = (await engine.get(run_id)).state.run_key
        step_id = (await engine.get(f"{key}/a")).id
        with pytest.raises(DispatchError, match="expected a run of a workflow"):
            await workflows.dispatch_run(engine, step_id)
        with pytest.raises(InvalidArgument, match="steps='a'"):
            await workflows.dispatch_steps(engine, run_id, "a")
        with pytest.raises(InvalidArgument, match="run_id='x'"):
            await workflows.dispatch_run(engine, "x")
        with pytest.raises(InvalidArgument, match="schedule_in=-2"):
            await workflows.dispatch_run(engine, run_id, schedule_in=-2)
        for call, match in [
            (workflows.dispatch_run(None, run_id), "engine=None"),
            (workflows.dispatch_steps(store, run_id, ["a"]), "engine=<"),
            (workflows.cancel_run(None, run_id), "engine=None"),
            (workflows.dispatch_run(engine, 0), r"run_id=0: expected a run id \(int >= 1\)"),
            (workflows.dispatch_steps(engine, -1, ["a"]), "run_id=-1"),
            (workflows.cancel_run(engine, -1), "run_id=-1"),
            (workflows.dispatch_steps(engine, run_id, [["a"]]), r"steps item=\['a'\]"),
        ]:
            with pytest.raises(InvalidArgument, match=match):
                await call
        await engine.cancel(run_id)
        with pytest.raises(DispatchError, match="is 'cancelled': expected a live run"):
            await workflows.dispatch_run(engine, run_id)
