"""trexec.otel (spec §14): spans and their attributes, one trace across
processes, workflow step spans, metrics, uninstrument."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest
import trio
from machines import CountTo3
from opentelemetry.trace import StatusCode
from stores import PG_URL, REAL_STORE_KINDS, open_test_store

import trexec
import trexec.otel
from trexec import _instrument, durable
from trexec.workflows import Step, Workflow

FAST = {"poll_interval": 0.02}
HERE = pathlib.Path(__file__).parent


async def test_an_action_run_is_one_span_with_its_outcome(otel):
    async def greet(params, context):
        return "hi"

    async def broken(params, context):
        raise ValueError("nope")

    assert await trexec.run_action(greet) == "hi"
    with pytest.raises(trexec.ActionFailed):
        await trexec.run_action(broken)
    ok, failed = otel.spans("trexec.action")
    assert ok.name.startswith("trexec.action ") and ok.name.endswith("greet")
    assert ok.attributes["trexec.outcome"] == "ok"
    assert failed.name.endswith("broken")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["trexec.outcome"] == "ActionFailed"


async def test_steps_are_spans_of_the_trace_active_at_insert(store, otel):
    with otel.tracer.start_as_current_span("request") as request:
        async with durable.open_engine(store, [CountTo3], **FAST) as engine:
            id_ = await engine.insert(CountTo3, {"n": 0})
            await engine.wait(id_, timeout=10)
    steps = otel.spans("trexec.durable.step")
    assert [s.name for s in steps] == [
        "trexec.durable.step count_to_3.start",
        "trexec.durable.step count_to_3.middle",
        "trexec.durable.step count_to_3.finish",
    ]
    for span, step in zip(steps, ["start", "middle", "finish"], strict=True):
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.parent.span_id == request.get_span_context().span_id
        assert dict(span.attributes) == {
            "trexec.instance_id": id_,
            "trexec.machine": "count_to_3",
            "trexec.step": step,
            "trexec.attempt": 1,
            "trexec.outcome": "done" if step == "finish" else "next",
        }
    counts = {p.attributes["trexec.outcome"]: p.value for p in otel.points("trexec.durable.steps")}
    assert counts == {"next": 2, "done": 1}
    durations = otel.points("trexec.durable.step.duration")
    assert sum(p.count for p in durations) == 3


async def test_an_instance_inserted_outside_a_trace_starts_its_own(store, otel):
    async with durable.open_engine(store, [CountTo3], **FAST) as engine:
        id_ = await engine.insert(CountTo3, {"n": 0})
        await engine.wait(id_, timeout=10)
    steps = otel.spans("trexec.durable.step")
    assert len(steps) == 3 and all(s.parent is None for s in steps)


async def test_a_signal_gives_its_trace_to_an_instance_without_one(store, otel):
    class Waits(durable.Machine):
        name = "otel_waits"

        async def step(self, step, ctx):
            if step == "start":
                return durable.Await("go", "after", None)
            return durable.Done(None)

    async with durable.open_engine(store, [Waits], **FAST) as engine:
        id_ = await engine.insert(Waits, None)
        with trio.fail_after(10):  # parked: its first step ran outside any trace
            while (await engine.get(id_)).status != "awaiting":
                await trio.sleep(0.01)
        with otel.tracer.start_as_current_span("webhook") as hook:
            await engine.signal(id_, "go")
        await engine.wait(id_, timeout=10)
    first, after = otel.spans("trexec.durable.step")
    assert first.parent is None
    assert after.name == "trexec.durable.step otel_waits.after"
    assert after.context.trace_id == hook.get_span_context().trace_id


async def test_the_backlog_gauge_counts_runnable_instances(store, otel, autojump_clock):
    class Other(durable.Machine):
        name = "otel_nobody_runs_this"

        async def step(self, step, ctx):
            return durable.Done(None)

    async with durable.open_engine(store, [CountTo3], lease=3.0) as engine:
        await engine.insert(Other, None)
        await engine.insert(Other, None)
        await trio.sleep(2.5)  # a heartbeat or two
        points = otel.points("trexec.durable.backlog")
    assert {p.attributes["trexec.machine"]: p.value for p in points} == {"otel_nobody_runs_this": 2}


async def test_workflow_steps_are_spans_of_the_run_trace(store, otel):
    async def reserve(ctx):
        return "r"

    async def charge(ctx):
        return "c"

    wf = Workflow(
        "otel_shop", [Step("reserve", reserve), Step("charge", charge, after=["reserve"])]
    )
    with otel.tracer.start_as_current_span("checkout") as checkout:
        async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
            run_id = await engine.start_workflow(wf, {})
            assert (await engine.wait(run_id, timeout=10)).status == "done"
    wf_spans = otel.spans("trexec.workflow.step")
    assert sorted(s.name for s in wf_spans) == [
        "trexec.workflow.step otel_shop.charge",
        "trexec.workflow.step otel_shop.reserve",
    ]
    trace_id = checkout.get_span_context().trace_id
    assert all(s.context.trace_id == trace_id for s in otel.spans("trexec."))
    by_id = {s.context.span_id: s for s in otel.spans()}
    for span in wf_spans:
        assert span.attributes["trexec.run_id"] == run_id
        parent = by_id[span.parent.span_id]  # the durable step that ran it
        assert parent.name.startswith("trexec.durable.step workflow-step:otel_shop") or (
            parent.name.startswith("trexec.durable.step")
        )


async def test_uninstrument_removes_every_hook(otel):
    async def greet(params, context):
        return "hi"

    other = trexec.otel.instrument(otel.tracer_provider, otel.meter_provider)
    other()
    other()  # idempotent
    assert _instrument.hooks is None
    await trexec.run_action(greet)
    assert otel.spans() == []


def test_instrument_checks_its_providers():
    with pytest.raises(trexec.InvalidArgument, match="tracer_provider"):
        trexec.otel.instrument(tracer_provider=object())
    with pytest.raises(trexec.InvalidArgument, match="meter_provider"):
        trexec.otel.instrument(meter_provider=42)
    assert _instrument.hooks is None


@pytest.mark.parametrize("kind", REAL_STORE_KINDS)
async def test_a_trace_crosses_processes_with_the_instance(kind, tmp_path, otel):
    async with open_test_store(kind, tmp_path) as store:
        await store.migrate()
        with otel.tracer.start_as_current_span("web request") as request:
            async with durable.open_engine(store, workers=0) as engine:
                id_ = await engine.insert(CountTo3, {"n": 0})
        args = [sys.executable, str(HERE / "otel_worker.py")]
        if kind == "sqlite":
            args += [f"sqlite:///{tmp_path}/durable.db", str(id_)]
        else:
            args += [PG_URL, str(id_), store.schema]  # type: ignore[attr-defined]
        done = await trio.run_process(args, capture_stdout=True, capture_stderr=True)
    spans = json.loads(done.stdout)
    steps = [s for s in spans if s["name"].startswith("trexec.durable.step")]
    assert [s["attributes"]["trexec.step"] for s in steps] == ["start", "middle", "finish"]
    context = request.get_span_context()
    assert all(s["trace_id"] == context.trace_id for s in steps)
    assert all(s["parent"] == context.span_id for s in steps)


def test_without_the_extra_instrument_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(trexec.MissingExtra, match=r"pip install 'trexec\[otel\]'"):
        trexec.otel.instrument()
    assert _instrument.hooks is None


def test_nothing_below_trexec_otel_imports_opentelemetry():
    import subprocess

    code = (
        "import sys, trexec, trexec.durable, trexec.workflows, trexec.testing, trexec.otel;"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
