"""trexec.workflows' public surface, machines_for, and describe/render (spec §6.2, §6.13)."""

from __future__ import annotations

import types

import pytest
import rich.console

from trexec import InvalidArgument, durable, workflows
from trexec.workflows import InvalidWorkflow, Step, Workflow
from trexec.workflows._engine_hooks import machines_for


def test_every_public_name_is_documented_and_reports_the_public_module():
    for name in workflows.__all__:
        obj = getattr(workflows, name)
        assert obj.__doc__, f"trexec.workflows.{name} has no docstring"
        if isinstance(obj, type | types.FunctionType):
            assert obj.__module__ == "trexec.workflows", name


async def noop(ctx):
    return None


def test_machines_for_gives_one_run_and_one_step_machine_per_workflow():
    wf = Workflow("m", [Step("a", noop)], version=3)
    run_cls, step_cls = machines_for([wf])
    assert (run_cls.name, run_cls.version) == ("workflow:m", 3)
    assert (step_cls.name, step_cls.version) == ("workflow:m:step", 3)
    assert machines_for([wf, wf]) == [run_cls, step_cls]  # same classes every time


def test_machines_for_rejects_bad_input():
    with pytest.raises(InvalidWorkflow, match=r"expected a workflows\.Workflow"):
        machines_for([object()])
    with pytest.raises(InvalidWorkflow, match="two workflows are named 'x'"):
        machines_for([Workflow("x", [Step("a", noop)]), Workflow("x", [Step("b", noop)])])


async def test_describe_and_render_a_run(store):
    async def fail(ctx):
        raise ValueError("bad input")

    wf = Workflow(
        "show",
        [Step("a", noop, compensate=noop), Step("b", fail, after=["a"])],
        execution="instances",
    )
    async with durable.open_engine(store, workflows=[wf], poll_interval=0.02) as engine:
        run = await engine.wait(await engine.start_workflow(wf, {"x": 1}), timeout=10)
        step = await engine.get(f"{run.state.run_key}/a")
    assert workflows.is_run(run) and not workflows.is_run(step)
    info = workflows.describe_run(run)
    assert info["id"] == run.id
    assert (info["workflow"], info["status"], info["phase"]) == ("show", "stopped", "failed")
    assert info["failure"] == "step 'b' failed: ValueError: bad input"
    assert [(r["step"], r["status"], r["compensation"]) for r in info["steps"]] == [
        ("a", "done", "done"),
        ("b", "failed", None),
    ]
    events = [entry["event"] for entry in info["history"]]
    assert events[0] == "dispatched" and events[-1] == "failed"
    console = rich.console.Console(record=True, width=120)
    console.print(workflows.render_run(run))
    text = console.export_text()
    assert "compensation" in text and "ValueError: bad input" in text
    with pytest.raises(InvalidArgument, match="a workflow run instance"):
        workflows.describe_run(step)
