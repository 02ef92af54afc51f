"""Fuzz insert, signal and start_workflow on both stores (issue 20, spec §5.1.4).

Each call either works, and the value round-trips exactly through the store (as
JSON: what ``json.loads(json.dumps(value))`` gives), or raises a ``TrexecError``
naming the argument: never another exception, a hang or a stuck instance.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import fuzz_portal
import pytest
import trio
from fuzz_portal import open_engine_in
from fuzz_strategies import Deep, names, odd_text, payloads, real
from hypothesis import example, given, strategies as st
from stores import STORE_KINDS

from trexec import TrexecError, durable
from trexec.workflows import Step, Workflow


class Echo(durable.Machine):
    """Parks for one ``ping`` and ends with its state and the ping's payload."""

    name = "fuzz_echo"

    async def step(self, step: str, ctx: durable.Context) -> durable.Outcome:
        if step == "start":
            return durable.Await(["ping"], "got", ctx.state)
        return durable.Done({"state": ctx.state, "payload": ctx.awaited[0].payload})


async def echo_input(ctx: Any) -> Any:
    return ctx.input


WORKFLOW = Workflow("fuzz_echo_wf", [Step("echo", echo_input)])


def round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


@pytest.fixture(scope="module", params=STORE_KINDS)
def engine(request: pytest.FixtureRequest, portal: Any, tmp_path_factory: Any) -> Any:
    tmp: pathlib.Path = tmp_path_factory.mktemp("fuzz")
    opened, close = open_engine_in(portal, request.param, tmp, [Echo], [WORKFLOW])
    yield opened
    close()


def names_the(error: BaseException, *words: str) -> bool:
    text = str(error)
    return any(word in text for word in words)


@given(state=payloads, key=st.one_of(st.none(), odd_text), payload=payloads)
# Found by this test: a deep value raised RecursionError (not a TrexecError).
@example(state=Deep(900), key=None, payload=None)
@example(state=None, key=None, payload=Deep(100_000))
def test_insert_then_signal_round_trips_or_is_refused(engine, portal, state, key, payload):
    state, payload = real(state), real(payload)

    async def scenario() -> Any:
        try:
            id_ = await engine.insert(Echo, state, key=key)
        except durable.DuplicateKey:
            return None  # an earlier example holds this key: fine
        except TrexecError as exc:
            assert names_the(exc, "state", "key"), exc
            return None
        stored = await engine.get(id_)
        assert stored.state == round_trip(state)
        if key is not None:
            assert (await engine.get(key)).id == id_
        try:
            await engine.signal(id_, "ping", payload)
        except TrexecError as exc:
            assert names_the(exc, "payload"), exc
            await engine.cancel(id_)  # leave nothing parked for the next example
            return None
        done = await engine.wait(id_, timeout=20)
        assert done.status == "done", done.error
        assert done.result == {"state": round_trip(state), "payload": round_trip(payload)}
        return None

    portal.call(scenario)


@given(target=st.one_of(names, st.integers(-5, 5)), name=names, dedup=st.one_of(st.none(), names))
def test_signal_with_odd_targets_and_names_is_refused_or_delivered(engine, portal, target, name,
                                                                  dedup):  # fmt: skip
    async def scenario() -> None:
        try:
            await engine.signal(target, name, None, dedup_key=dedup)
        except TrexecError as exc:
            assert names_the(exc, "target", "name", "dedup_key", "key", "id"), exc

    portal.call(scenario)


@example(value=Deep(100_000), delay=None)  # found: RecursionError
@given(value=payloads, delay=st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=3)))
def test_start_workflow_round_trips_its_input_or_is_refused(engine, portal, value, delay):
    value = real(value)

    async def scenario() -> None:
        try:
            run_id = await engine.start_workflow(WORKFLOW, value, schedule_in=delay)
        except TrexecError as exc:
            assert names_the(exc, "input", "schedule_in"), exc
            return
        await engine.cancel(run_id) if delay else None
        if delay:
            return
        run = await engine.wait(run_id, timeout=20)
        assert run.status == "done", run.error
        assert run.result == {"echo": round_trip(value)}

    portal.call(scenario)


def test_the_portal_reports_a_hang(portal):
    with pytest.raises(trio.TooSlowError):
        old, fuzz_portal.CALL_TIMEOUT = fuzz_portal.CALL_TIMEOUT, 0.05
        try:
            portal.call(trio.sleep_forever)
        finally:
            fuzz_portal.CALL_TIMEOUT = old
