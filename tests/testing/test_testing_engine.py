"""``trexec.testing`` (docs/spec.md §10): virtual time, faults, determinism."""

from __future__ import annotations

import inspect
from typing import ClassVar

import pytest
import trio

from trexec import Backoff, InvalidArgument, durable, telemetry, testing, workflows
from trexec.durable import Store
from trexec.testing._faults import FaultyStore


class Payment(durable.Machine):
    """charge (side effect recorded) -> a day-long await of "settled" -> done."""

    name = "payment"
    charges: ClassVar[list[tuple[int, int]]] = []

    async def step(self, step, ctx):
        if step == "start":
            if ctx.attempt < 3:
                return durable.Retry(ctx.state, delay=3600)  # an hour each
            return durable.Next("charge", ctx.state)
        if step == "charge":
            Payment.charges.append((ctx.id, ctx.attempt))
            return durable.Await(["settled"], "refund", ctx.state, timeout=86400)
        return durable.Done({"settled": [s.name for s in ctx.awaited], "attempt": ctx.attempt})


@pytest.fixture(autouse=True)
def _reset():
    Payment.charges = []


@pytest.fixture
def events():
    """Every durable telemetry event emitted during the test, in order."""
    seen = []
    detach = telemetry.attach(lambda *event: seen.append(event), prefix=("trexec", "durable"))
    yield seen
    detach()


async def test_retries_awaits_and_scheduled_in_pass_in_virtual_time(autojump_clock):
    async with testing.open_test_engine([Payment]) as engine:
        assert isinstance(engine, durable.Engine) and isinstance(engine, testing.TestEngine)
        late = await engine.insert(Payment, {}, schedule_in=2 * 86400)
        now = await engine.insert(Payment, {})
        first = await engine.wait(now)
        assert first.result == {"settled": [], "attempt": 1}  # the await timed out
        assert trio.current_time() >= 2 * 3600 + 86400
        second = await engine.wait(late)
    assert second.status == "done"
    assert trio.current_time() >= 2 * 86400 + 2 * 3600 + 86400


async def test_crash_after_step_runs_the_step_again_after_the_lease_expires(autojump_clock, events):
    async with testing.open_test_engine([Payment], lease=30) as engine:
        iid = await engine.insert(Payment, {}, key="order-1")
        engine.faults.crash_after_step(Payment, "charge")
        await engine.signal("order-1", "settled")
        inst = await engine.wait(iid)
    assert inst.status == "done"
    # The side effect happened twice (at least once); the second run committed.
    assert Payment.charges == [(iid, 1), (iid, 2)]
    reclaimed = [meta for name, _, meta in events if name[2:] == ("reaper", "reclaimed")]
    assert [meta["ids"] for meta in reclaimed] == [[iid]]


async def test_lose_lease_rejects_the_first_outcome_by_fencing(autojump_clock, events):
    async with testing.open_test_engine([Payment]) as engine:
        engine.faults.lose_lease(Payment, "charge", times=2)
        iid = await engine.insert(Payment, {})
        inst = await engine.wait(iid)
    assert inst.status == "done"
    assert Payment.charges == [(iid, 1), (iid, 2), (iid, 3)]
    stale = [meta for name, _, meta in events if name[2:] == ("outcome", "stale")]
    assert [(m["step"], m["attempt"]) for m in stale] == [("charge", 1), ("charge", 2)]
    assert not any(name[2:] == ("reaper", "reclaimed") for name, *_ in events)


async def test_failing_commits_are_retried_nothing_lost_or_doubled(autojump_clock, events):
    async with testing.open_test_engine([Payment], workers=4) as engine:
        engine.faults.fail_commits(times=5)
        ids = [await engine.insert(Payment, {}) for _ in range(6)]
        done = [await engine.wait(id_) for id_ in ids]
    assert all(inst.status == "done" for inst in done)
    assert sorted(Payment.charges) == [(id_, 1) for id_ in ids]  # each charged once
    errors = [meta for name, _, meta in events if name[2:] == ("store", "error")]
    assert len(errors) == 5 and all(m["operation"] == "complete" for m in errors)
    assert "injected by testing.Faults" in errors[0]["error"]


async def test_a_workflow_backoff_of_hours_passes_in_virtual_time(autojump_clock):
    attempts = []

    async def flaky(ctx):
        attempts.append((ctx.attempt, trio.current_time()))
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    backoff = Backoff(initial=3600, max=7200)
    wf = workflows.Workflow("hourly", [workflows.Step("flaky", flaky, retries=2, backoff=backoff)])
    async with testing.open_test_engine(workflows=[wf]) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None))
    assert run.status == "done"
    (_, t1), (_, t2), (_, t3) = attempts
    assert t2 - t1 >= 3600 and t3 - t2 >= 7200


async def test_engines_share_one_test_store(autojump_clock):
    async with (
        testing.open_test_store() as store,
        testing.open_test_engine(store=store, workers=0) as client,
        testing.open_test_engine([Payment], store=store, seed=1) as worker,
    ):
        iid = await client.insert(Payment, {})
        inst = await worker.wait(iid)
        assert inst.status == "done"
        assert (await client.get(iid)).status == "done"


async def program(seed: int) -> list[tuple[int, str, int]]:
    """Steps that sleep the same virtual durations in several workers: many
    ties. Returns the order in which step runs started."""
    trace: list[tuple[int, str, int]] = []

    class Busy(durable.Machine):
        name = "busy"

        async def step(self, step, ctx):
            trace.append((ctx.id, step, ctx.attempt))
            await trio.sleep(ctx.id % 3)
            if step == "start":
                return (
                    durable.Retry(ctx.state, delay=ctx.id % 2)
                    if ctx.attempt < 2
                    else (durable.Next("more", ctx.state))
                )
            return durable.Done(None)

    async with testing.open_test_engine([Busy], workers=3, batch_size=2, seed=seed) as engine:
        engine.faults.crash_after_step(Busy, "more", times=2)
        ids = [await engine.insert(Busy, {}) for _ in range(12)]
        for id_ in ids:
            await engine.wait(id_)
    return trace


async def test_the_same_program_and_seed_run_steps_in_the_same_order(autojump_clock):
    first = await program(7)
    for _ in range(3):
        assert await program(7) == first
    assert len(first) == 12 * 3 + 2


async def test_the_scheduler_is_restored_after_the_block():
    from trio._core import _run

    state = _run._r.getstate()
    # pytest-trio turns the switch on for good when Hypothesis is installed.
    allowed = _run._ALLOW_DETERMINISTIC_SCHEDULING
    async with testing.open_test_engine(seed=3):
        assert _run._ALLOW_DETERMINISTIC_SCHEDULING
    assert _run._r.getstate() == state
    assert allowed == _run._ALLOW_DETERMINISTIC_SCHEDULING


class Other(durable.Machine):
    name = "other"


@pytest.mark.parametrize(
    ("fault", "args", "match"),
    [
        ("crash_after_step", (Other, "start"), "machine=<class .*Other'>.*Payment"),
        ("lose_lease", ("payment", "start"), "machine='payment'"),
        ("crash_after_step", (Payment, ""), "step=''"),
        ("lose_lease", (Payment, 5), "step=5"),
    ],
)
async def test_a_fault_for_what_the_engine_does_not_run_is_invalid(fault, args, match):
    async with testing.open_test_engine([Payment]) as engine:
        with pytest.raises(InvalidArgument, match=match):
            getattr(engine.faults, fault)(*args)
        with pytest.raises(InvalidArgument, match="times=0"):
            engine.faults.crash_after_step(Payment, "start", times=0)
        with pytest.raises(InvalidArgument, match="times=-1"):
            engine.faults.fail_commits(times=-1)


async def test_workers_0_runs_no_machine_so_no_step_fault_is_valid():
    async with testing.open_test_engine([Payment], workers=0) as engine:
        with pytest.raises(InvalidArgument, match="none"):
            engine.faults.crash_after_step(Payment, "start")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": "x"}, "seed='x'"),
        ({"seed": True}, "seed=True"),
        ({"frobnicate": 1}, "frobnicate=1"),
        ({"machines": "payment"}, "machines='payment'"),
        ({"machines": [int]}, "machines=<class 'int'>"),
        ({"workers": -1}, "workers=-1"),
        ({"lease": 0}, "lease=0"),
    ],
)
async def test_bad_arguments_are_invalid_argument(kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        async with testing.open_test_engine(**kwargs):
            pass


async def test_a_real_store_is_not_a_test_store(tmp_path):
    async with durable.open_store(f"sqlite:///{tmp_path}/x.db") as real:
        with pytest.raises(InvalidArgument, match=r"store=.*open_test_store"):
            async with testing.open_test_engine(store=real):
                pass


def test_the_fault_proxy_overrides_every_store_method():
    # A method added to Store later must be delegated too, or the proxy would
    # silently run Store's abstract stub.
    for name, _ in inspect.getmembers(Store, inspect.isfunction):
        if name.startswith("__"):
            continue
        assert name in FaultyStore.__dict__, f"FaultyStore does not delegate {name}"


async def test_the_factory_fixture_opens_and_closes_test_engines(
    trexec_engine_factory, autojump_clock
):
    engine = await trexec_engine_factory([Payment])
    other = await trexec_engine_factory(workers=0)  # its own store
    assert isinstance(engine, testing.TestEngine)
    iid = await engine.insert(Payment, {})
    assert (await engine.wait(iid)).status == "done"
    with pytest.raises(durable.NoTarget):
        await other.get(iid)
    with pytest.raises(InvalidArgument, match="frobnicate"):
        await trexec_engine_factory(frobnicate=1)


def test_the_plugin_defines_a_fixture_and_no_hook():
    from trexec.testing import _plugin

    assert not [name for name in vars(_plugin) if name.startswith("pytest_")]


class Nameless(durable.Machine):
    pass


async def test_a_machine_without_a_name_is_invalid_not_an_attribute_error():
    with pytest.raises(InvalidArgument, match=r"Nameless\.name"):
        async with testing.open_test_engine([Nameless]):
            pass


def test_the_same_seed_gives_the_same_run_in_other_processes():
    """Hash randomization (PYTHONHASHSEED) and memory layout differ per process."""
    import json
    import os
    import pathlib
    import subprocess
    import sys

    program = pathlib.Path(__file__).with_name("determinism_program.py")

    def run(hash_seed: str) -> list:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, str(program), "5"], env=env, capture_output=True, text=True,
            timeout=120, check=True,
        ).stdout  # fmt: skip
        return json.loads(out)

    first = run("1")
    assert len(first) > 9 * 3
    assert run("2") == first
