"""engine.explain and trexec explain (spec §5.16): each reason an instance is
not moving, and the live engines' announcements it relies on."""

from __future__ import annotations

import re

import pytest
import trio
from click.testing import CliRunner
from machines import Counter, CountTo3
from stores import REAL_STORE_KINDS, open_test_store

from trexec import durable
from trexec._cli import cli
from trexec.workflows import Step, Workflow

GATE: dict[str, trio.Event] = {}


class Parks(durable.Machine):
    name = "explain_parks"

    async def step(self, step, ctx):
        if step == "start":
            return durable.Await("go", "after", None)
        return durable.Done("went")


class Nobody(durable.Machine):
    """A machine no engine in these tests runs."""

    name = "explain_nobody"

    async def step(self, step, ctx):  # pragma: no cover
        return durable.Done(None)


class Parent(durable.Machine):
    name = "explain_parent"

    async def step(self, step, ctx):
        if step == "start":
            children = [durable.Child(Nobody, None, key=f"kid-{i}") for i in range(2)]
            return durable.ScheduleChildren("joined", children, None)
        return durable.Done(None)


class Blocks(durable.Machine):
    name = "explain_blocks"

    async def step(self, step, ctx):
        await GATE["blocks"].wait()
        return durable.Done(None)


class Stops(durable.Machine):
    name = "explain_stops"

    async def step(self, step, ctx):
        return durable.Stop("card declined")


async def until(engine, id_, status):
    with trio.fail_after(60):
        while (instance := await engine.get(id_)).status != status:
            assert instance.status not in ("done", "stopped", "cancelled"), instance
            await trio.sleep(0.01)


async def test_waiting_for_a_signal_none_in_the_inbox(store, autojump_clock):
    async with durable.open_engine(store, [Parks]) as engine:
        id_ = await engine.insert(Parks, None)
        await until(engine, id_, "awaiting")
        await engine.signal(id_, "unrelated")
        text = await engine.explain(id_)
    assert f"instance {id_} (explain_parks v1) is awaiting at step 'after'" in text
    assert "waiting for signal(s) 'go'; none in its inbox" in text
    assert "other signals: 'unrelated'" in text


async def test_parked_until_a_time(store, autojump_clock):
    async with durable.open_engine(store, [CountTo3]) as engine:
        await engine.insert(CountTo3, Counter(), schedule_in=100, key="later")
        text = await engine.explain("later")
    assert "is scheduled at step 'start'" in text
    assert re.search(r"parked until t=100\.\d+s \(in 100\.0s\)", text), text


async def test_waiting_for_children_names_them_and_their_status(store, autojump_clock):
    async with durable.open_engine(store, [Parent]) as engine:
        id_ = await engine.insert(Parent, None)
        await until(engine, id_, "waiting_children")
        text = await engine.explain(id_)
    assert "waiting for 2 of its 2 children" in text
    assert "(explain_nobody 'kid-0', scheduled at 'start')" in text
    assert "(explain_nobody 'kid-1', scheduled at 'start')" in text


async def test_runnable_but_no_engine_runs_its_machine(store, autojump_clock):
    async with durable.open_engine(store, workers=0) as reader:
        id_ = await reader.insert(Nobody, None)
        alone = await reader.explain(id_)
        async with durable.open_engine(store, [CountTo3]) as engine:
            await trio.sleep(0.1)  # its first heartbeat announced it
            text = await reader.explain(id_)
    assert "no running engine has claimed machine explain_nobody v1" in alone
    assert "no live engine announced itself" in alone
    assert "no running engine has claimed machine explain_nobody v1" in text
    assert f"engine {engine.id} (host " in text and "runs count_to_3@1" in text


async def test_running_under_a_lease_held_by_an_engine(store, autojump_clock):
    GATE["blocks"] = trio.Event()
    async with durable.open_engine(store, [Blocks], lease=30.0) as engine:
        id_ = await engine.insert(Blocks, None)
        await until(engine, id_, "running")
        await trio.sleep(11)  # a heartbeat since the claim lists it as held
        text = await engine.explain(id_)
        GATE["blocks"].set()
    assert "is running at step 'start'" in text
    assert f"lease held by engine {engine.id} (host " in text
    assert re.search(r"that expires at t=[\d.]+s \(in \d+\.\ds\)", text), text


async def test_finished_instances_say_how(store, autojump_clock):
    async with durable.open_engine(store, [CountTo3, Stops]) as engine:
        done = await engine.insert(CountTo3, Counter())
        stopped = await engine.insert(Stops, None)
        await engine.wait(done)
        await engine.wait(stopped)
        assert 'it finished: result {"n": 3' in await engine.explain(done)
        assert "it stopped: card declined" in await engine.explain(stopped)
        with pytest.raises(durable.NoTarget):
            await engine.explain(999_999)


async def test_a_workflow_run_names_the_steps_it_waits_for(store, autojump_clock):
    gate = trio.Event()

    async def fast(ctx):
        return 1

    async def slow(ctx):
        await gate.wait()
        return 2

    wf = Workflow("explain_wf", [Step("fast", fast), Step("slow", slow, after=["fast"])])
    async with durable.open_engine(store, workflows=[wf]) as engine:
        run_id = await engine.start_workflow(wf, {})
        with trio.fail_after(60):
            while "slow (running" not in (text := await engine.explain(run_id)):
                await trio.sleep(0.05)
        gate.set()
        await engine.wait(run_id)
        after = await engine.explain(run_id)
    assert "workflow run of 'explain_wf' (running) is waiting for steps: slow (running" in text
    assert "fast" not in text.split("waiting for steps:")[1]
    assert "ended in phase 'done'" in after


@pytest.mark.parametrize("kind", REAL_STORE_KINDS)
async def test_engines_announce_themselves_and_withdraw_at_shutdown(kind, tmp_path):
    async with open_test_store(kind, tmp_path) as store:
        await store.migrate()
        async with durable.open_engine(store, [CountTo3], lease=3.0) as engine:
            with trio.fail_after(10):
                while not (live := await store.engines()):
                    await trio.sleep(0.01)
            (me,) = live
            assert me.id == engine.id and me.machines == ("count_to_3@1",)
            assert me.expires_at > me.heartbeat_at >= me.started_at
        assert await store.engines() == []  # withdrawn at clean shutdown
        # A stale announcement (a killed engine) is ignored, and later forgotten.
        await store.announce("dead", "h", 1, ["m@1"], [], ttl=-1.0)
        assert await store.engines() == []
        await store.announce("ancient", "h", 2, ["m@1"], [], ttl=-10_000.0)
        await store.announce("alive", "h", 3, ["m@1"], [7], ttl=60.0)
        assert [e.id for e in await store.engines()] == ["alive"]
        assert (await store.engines())[0].holding == (7,)


def test_the_cli_explains_and_never_creates_a_store(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"

    async def seed():
        async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as e:
            return await e.insert(Nobody, None, key="k1")

    id_ = trio.run(seed)
    env = {"TREXEC_STORE": url, "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["explain", str(id_)], env=env)
    assert result.exit_code == 0, result.output
    assert "no live engine announced itself" in result.output
    result = CliRunner().invoke(cli, ["explain", "--key", "k1"], env=env)
    assert result.exit_code == 0 and f"instance {id_} " in result.output
    missing = f"sqlite:///{tmp_path}/nothing.db"
    result = CliRunner().invoke(cli, ["explain", "1", "--store", missing])
    assert result.exit_code == 1 and "no store at" in result.output
    assert not (tmp_path / "nothing.db").exists()
