"""The engine's parts and edges (spec §5.5.5, §5.5.6, §5.5.10, §5.3.1): no
import of workflows from durable, extensions, ``wait``'s bookkeeping and its
timeout message, the shutdown release that fails, State from a dict,
``schedule_in``."""

from __future__ import annotations

import ast
import logging
import pathlib

import attrs
import pytest
import trio
from machines import Counter, CountTo3
from stores import FAST

from trexec import InvalidArgument, durable

DURABLE = pathlib.Path(durable.__file__).parent


def test_durable_never_imports_workflows():
    """spec §5.5.10: the durable core is a lower layer than workflows."""
    for path in DURABLE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any("workflows" in name for name in names), f"{path.name} imports {names}"


class Parked(durable.Machine):
    name = "parts_parked"

    async def step(self, step, ctx):
        return durable.Await(["never"], "after", None)


class Blocking(durable.Machine):
    name = "parts_blocking"
    started: trio.Event

    async def step(self, step, ctx):
        Blocking.started.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_wait_timeout_says_what_it_waited_for_and_leaves_no_waiter(store):
    async with durable.open_engine(store, [], workers=0) as engine:
        id_ = await engine.insert(CountTo3, Counter(), key="order-7")
        with pytest.raises(trio.TooSlowError) as info:
            await engine.wait(id_, timeout=0.05)
        text = str(info.value)
        assert f"instance {id_}" in text and "'count_to_3' v1" in text and "'order-7'" in text
        assert "still 'scheduled' at step 'start'" in text
        assert "no engine running in this process runs machine 'count_to_3'" in text
        assert engine._ledger.waiting() == 0


async def test_wait_timeout_on_a_machine_this_process_runs_does_not_blame_the_engines(store):
    async with durable.open_engine(store, [Parked], **FAST) as engine:
        id_ = await engine.insert(Parked, None)
        with pytest.raises(trio.TooSlowError, match="still 'awaiting' at step 'after'") as info:
            await engine.wait(id_, timeout=0.1)
        assert "no engine running" not in str(info.value)
        assert engine._ledger.waiting() == 0


async def test_wait_on_an_instance_another_engine_finishes_leaves_no_waiter(store):
    async with durable.open_engine(store, [], workers=0, **FAST) as waiter:
        id_ = await waiter.insert(CountTo3, Counter())
        async with durable.open_engine(store, [CountTo3], **FAST):
            instance = await waiter.wait(id_, timeout=30)
        assert instance.status == "done"
        assert waiter._ledger.waiting() == 0


async def test_a_failing_release_at_shutdown_never_replaces_the_blocks_exception(store, caplog):
    """spec §5.5.5: the block's own exception wins; the release error is logged
    and noted on it (the rows come back when their leases expire)."""
    Blocking.started = trio.Event()
    with pytest.raises(ValueError, match="the block's own") as info:
        async with durable.open_engine(store, [Blocking], **FAST) as engine:
            await engine.insert(Blocking, None)
            await Blocking.started.wait()
            await store.close()  # every later store call raises StoreError
            raise ValueError("the block's own")
    assert any("releasing held instances" in note for note in info.value.__notes__)
    assert any(
        "releasing 1 held instance(s) failed" in r.getMessage() and r.levelno == logging.ERROR
        for r in caplog.records
    )


@attrs.frozen
class Order:
    amount: int
    currency: str = "EUR"


class Priced(durable.Machine):
    name = "parts_priced"
    State = Order

    async def step(self, step, ctx):
        return durable.Done(ctx.state.amount)


async def test_a_state_dict_is_structured_into_the_machines_state(store):
    async with durable.open_engine(store, [Priced], **FAST) as engine:
        id_ = await engine.insert(Priced, {"amount": 5})
        assert (await engine.get(id_)).state == Order(5)
        assert (await engine.wait(id_, timeout=30)).result == 5
        with pytest.raises(InvalidArgument, match=r"state=.*a Order for Priced: .*amount"):
            await engine.insert(Priced, {"amount": "lots"})
        with pytest.raises(InvalidArgument, match=r"a Order for Priced: .*amount"):
            await engine.insert(Priced, {})


async def test_scheduled_in_is_a_deprecated_alias_of_schedule_in(store):
    async with durable.open_engine(store, [], workers=0) as engine:
        with pytest.warns(DeprecationWarning, match="use schedule_in="):
            id_ = await engine.insert(CountTo3, Counter(), scheduled_in=3600)
        assert (await engine.get(id_)).status == "scheduled"
        with pytest.warns(DeprecationWarning):
            spec = durable.InsertSpec(CountTo3, Counter(), scheduled_in=5)
        assert spec.schedule_in == 5 == spec.scheduled_in
        with pytest.raises(InvalidArgument, match="scheduled_in"), pytest.warns(DeprecationWarning):
            durable.InsertSpec(CountTo3, Counter(), schedule_in=1, scheduled_in=5)


class Ticker:
    """An extension: one machine and one background task."""

    def __init__(self) -> None:
        self.ran = trio.Event()
        self.engine: durable.Engine | None = None

    def engine_machines(self):
        return [CountTo3]

    def engine_tasks(self, engine):
        self.engine = engine

        async def tick() -> None:
            self.ran.set()
            await trio.sleep_forever()

        return [tick]


async def test_an_extension_contributes_machines_and_background_tasks(store):
    ticker = Ticker()
    assert isinstance(ticker, durable.Extension)
    async with durable.open_engine(store, extensions=[ticker], **FAST) as engine:
        await ticker.ran.wait()
        assert ticker.engine is engine
        id_ = await engine.insert(CountTo3, Counter())
        assert (await engine.wait(id_, timeout=30)).status == "done"


async def test_bad_extensions_and_run_starters_are_invalid_arguments(store):
    with pytest.raises(InvalidArgument, match="extensions"):
        async with durable.open_engine(store, extensions=[object()]):
            pass  # pragma: no cover
    with pytest.raises(InvalidArgument, match=r"workflows.*a workflows\.Workflow"):
        async with durable.open_engine(store, workflows=[object()]):
            pass  # pragma: no cover
    async with durable.open_engine(store, workers=0) as engine:
        with pytest.raises(InvalidArgument, match=r"wf=.*a workflows\.Workflow"):
            await engine.start_workflow(object(), {})  # type: ignore[arg-type]


class PricedParent(durable.Machine):
    name = "parts_priced_parent"

    async def step(self, step, ctx):
        if step == "start":
            child = durable.Child(Priced, {"amount": 3})
            return durable.ScheduleChildren("joined", [child], None)
        return durable.Done([c.result for c in ctx.children])


async def test_a_childs_state_dict_is_structured_too(store):
    async with durable.open_engine(store, [PricedParent, Priced], **FAST) as engine:
        id_ = await engine.insert(PricedParent, None)
        assert (await engine.wait(id_, timeout=30)).result == [3]
        (child,) = await engine.children(id_)
        assert child.state == Order(3)
