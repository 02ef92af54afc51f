"""Fuzz the value classes and synchronous entry points (issue 20): Backoff (both),
RateLimit, action params, poller options, open_store URLs and options.

Each call either works (and what it built behaves: a finite delay within its
bounds, params converted) or raises a ``TrexecError`` naming the value.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
import trio
from fuzz_strategies import Deep, names, odd_text, payloads, real
from hypothesis import example, given, strategies as st

import trexec
from trexec import TrexecError, durable, workflows

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.sampled_from([1e11, 1e12, 2**31, 2**63, -0.0, 5e-324]),
)


def names_one_of(error: BaseException, *fields: str) -> None:
    assert any(field in str(error) for field in fields), str(error)


@given(initial=numbers, factor=numbers, max_=numbers, jitter=numbers, retry=numbers)
def test_backoff_builds_a_finite_delay_or_names_the_field(initial, factor, max_, jitter, retry):
    try:
        backoff = trexec.Backoff(initial, factor, max_, jitter)
    except TrexecError as exc:
        names_one_of(exc, "initial", "factor", "max", "jitter")
        return
    try:
        delay = backoff.delay(retry)
    except TrexecError as exc:
        names_one_of(exc, "retry")
        return
    assert math.isfinite(delay)
    assert 0 <= delay <= backoff.max


@pytest.mark.filterwarnings("ignore:workflows.Backoff:DeprecationWarning")
@given(low=numbers, high=numbers, retry=numbers)
def test_workflow_backoff_builds_a_finite_delay_or_names_the_field(low, high, retry):
    try:
        backoff = workflows.Backoff(low, high)
    except TrexecError as exc:
        names_one_of(exc, "min", "max")
        return
    try:
        delay = backoff.delay(retry)
    except TrexecError as exc:
        names_one_of(exc, "retry")
        return
    assert math.isfinite(delay) and 0 <= delay <= backoff.max


@given(count=numbers, per=numbers, burst=numbers)
def test_rate_limit_is_built_or_names_the_field(count, per, burst):
    try:
        limit = durable.RateLimit(count, per, burst)
    except TrexecError as exc:
        names_one_of(exc, "count", "per", "burst")
        return
    policy = limit.policy()
    assert policy is not None


@attrs.define
class Order:
    amount: int
    currency: str = attrs.field(default="EUR", validator=attrs.validators.in_(["EUR", "USD"]))
    note: str | None = None


class Place(trexec.Action):
    name = "place"
    Params = Order

    async def run(self, params: Any, context: Any) -> Any:
        return params


params_values = st.one_of(
    payloads,
    st.fixed_dictionaries(
        {"amount": st.one_of(st.integers(), numbers, odd_text)},
        optional={"currency": odd_text, "note": st.one_of(odd_text, numbers), "extra": payloads},
    ),
)


@given(params=params_values)
@example(params=Deep(5000))  # found: RecursionError from cattrs, not InvalidParams
async def test_action_params_convert_or_raise_invalid_params(params):
    params = real(params)
    try:
        result = await trexec.run_action(Place(), params)
    except trexec.InvalidParams as exc:
        assert str(exc)
        return
    assert isinstance(result, Order)
    assert isinstance(result.amount, int)


async def _poll() -> str:
    return "ok"


@given(
    interval=numbers,
    timeout=numbers,
    command_index=numbers,
    branch_id=numbers,
    on_timeout=st.one_of(st.sampled_from(["ignore", "fail", "nope", ""]), numbers, names),
)
async def test_poller_options_start_or_name_the_option(
    interval, timeout, command_index, branch_id, on_timeout
):
    send, receive = trio.open_memory_channel[Any](100)
    async with trio.open_nursery() as nursery:
        try:
            poller = trexec.start_poller(
                nursery,
                poll_fn=_poll,
                handler=lambda response: trexec.Done([response]),
                interval=interval,
                timeout=timeout,
                events=send,
                command_index=command_index,
                on_timeout=on_timeout,
                branch_id=branch_id,
            )
        except TrexecError as exc:
            names_one_of(exc, "interval", "timeout", "command_index", "on_timeout", "branch_id")
            return
        with trio.fail_after(5):
            await poller.wait()
        assert receive.receive_nowait().event == "ok"


urls = st.one_of(
    names,
    odd_text.map(lambda text: "sqlite:" + text),
    odd_text.map(lambda text: "postgresql://127.0.0.1:1/" + text),
    st.sampled_from(["", "sqlite://", "sqlite:///", "mysql://x", "postgres://", "SQLITE"]),
)
options = st.dictionaries(
    st.sampled_from(["synchronous", "clock", "schema", "bogus", "listen"]), names, max_size=2
)


@given(url=urls, opts=options)
@example(url="postgresql://127.0.0.1:1/\ud800", opts={})  # found: UnicodeEncodeError
@example(url="sqlite:///x\ud800", opts={})
async def test_open_store_opens_or_names_the_url_or_option(url, opts, tmp_path_factory):
    if isinstance(url, str) and url.startswith("sqlite:") and len(url) > len("sqlite:///"):
        # A real path, inside this test's directory: never the working directory.
        name = url[len("sqlite:") :].replace("/", "_").replace("\x00", "_")[:100] or "x"
        url = "sqlite:///" + str(tmp_path_factory.mktemp("s")) + "/" + name
    try:
        with trio.fail_after(20):
            async with durable.open_store(url, **opts):
                pass
    except TrexecError as exc:
        assert str(exc)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, "1", None, True])
def test_a_rate_limit_per_that_is_no_duration_is_refused(value):
    with pytest.raises(trexec.InvalidArgument, match="per="):
        durable.RateLimit(1, value)
