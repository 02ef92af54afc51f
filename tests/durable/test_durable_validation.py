"""Bad arguments to every public entry point raise InvalidArgument naming the value
(spec §0.3, §5.10)."""

from __future__ import annotations

import attrs
import pytest
from machines import Counter, CountTo3
from stores import FAST, REAL_STORE_KINDS, open_test_store

from trexec import InvalidArgument, durable


class NoName(durable.Machine):
    async def step(self, step, ctx):
        return durable.Done()


class BadVersion(durable.Machine):
    name = "bad_version"
    version = 0


class Clash(durable.Machine):
    name = "count_to_3"  # same (name, version) as CountTo3


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: durable.Next("", None), "step=''"),
        (lambda: durable.Next("x", None, weight=0), "weight=0"),
        (lambda: durable.Next("x", None, rate_limit=":p"), "rate_limit=':p'"),
        (lambda: durable.Retry(None, delay=float("nan")), "delay=nan"),
        (lambda: durable.Await([], "x", None), "names=\\[\\]"),
        (lambda: durable.Await(["a", 3], "x", None), "names="),
        (lambda: durable.Await("a", "x", None, timeout=-1), "timeout=-1"),
        (lambda: durable.ScheduleChildren("x", "nope", None), "children='nope'"),
        (lambda: durable.ScheduleChildren("x", [object()], None), "children=<object"),
        (lambda: durable.Child(int, None), "machine=<class 'int'>"),
        (lambda: durable.Child(NoName, None), "NoName.name=None"),
        (lambda: durable.Child(BadVersion, None), "BadVersion.version=0"),
        (lambda: durable.RateLimit(0, 1.0), "count=0"),
        (lambda: durable.RateLimit(1, 0), "per=0"),
        (lambda: durable.RateLimit(1, 1.0, burst=0), "burst=0"),
        (lambda: durable.InsertSpec(CountTo3, None, schedule_in=-1), "schedule_in=-1"),
        (lambda: durable.InsertSpec(CountTo3, None, key=""), "key=''"),
        (lambda: durable.InsertSpec(CountTo3, None, parent_id=0), "parent_id=0"),
    ],
)
def test_values_validate_when_built(build, match):
    with pytest.raises(InvalidArgument, match=match):
        build()


async def test_open_store_rejects_unknown_urls():
    for url in ["mysql://x", "sqlite://", 42, "sqlite:///x.db?mode=ro"]:
        with pytest.raises(InvalidArgument, match="url="):
            async with durable.open_store(url):
                pass
    with pytest.raises(InvalidArgument, match="synchronous='SOMETIMES'"):
        async with durable.open_store("sqlite:///x.db?synchronous=sometimes"):
            pass


@pytest.mark.parametrize("kind", REAL_STORE_KINDS)
async def test_open_store_rejects_unknown_options(kind, tmp_path):
    with pytest.raises(InvalidArgument, match="frobnicate=1"):
        async with open_test_store(kind, tmp_path, frobnicate=1):
            pass
    with pytest.raises(InvalidArgument, match="clock=5"):
        async with open_test_store(kind, tmp_path, clock=5):
            pass


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"machines": [int]}, "machines=<class 'int'>"),
        ({"machines": "count_to_3"}, "machines='count_to_3'"),
        ({"machines": [CountTo3, Clash]}, "already"),
        ({"workers": -1}, "workers=-1"),
        ({"lease": 0}, "lease=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"poll_interval": 0}, "poll_interval=0"),
        ({"rate_limits": {"a:b": durable.RateLimit(1, 1.0)}}, "rate_limits='a:b'"),
        ({"rate_limits": {"a": 5}}, "rate_limits\\['a'\\]=5"),
        ({"heartbeat_interval": -1}, "heartbeat_interval=-1"),
        ({"rate_limits": [("a", 1)]}, "rate_limits=\\[\\('a', 1\\)\\]"),
        ({"rate_limits": "api"}, "rate_limits='api'"),
        ({"workflows": 5}, "workflows=5"),
        ({"bus": 5}, "bus=5"),
    ],
)
async def test_open_engine_rejects_bad_arguments(store, kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        async with durable.open_engine(store, **kwargs):
            pass


async def test_open_engine_rejects_a_non_store():
    with pytest.raises(InvalidArgument, match=r"store='sqlite:///x\.db'"):
        async with durable.open_engine("sqlite:///x.db"):
            pass


@attrs.define
class Other:
    x: int = 0


async def test_engine_methods_reject_bad_arguments(store):
    async with durable.open_engine(store, [CountTo3], workers=0, **FAST) as engine:
        cases = [
            (engine.insert(int, None), "machine=<class 'int'>"),
            (engine.insert(CountTo3, Other()), "state=Other"),
            (engine.insert(CountTo3, Counter(), step=""), "step=''"),
            (engine.insert(CountTo3, Counter(), key=5), "key=5"),
            (engine.insert(CountTo3, Counter(), schedule_in=-2), "schedule_in=-2"),
            # spec §5.1.4: values PostgreSQL cannot hold are refused on every store.
            (engine.insert(CountTo3, Counter(), schedule_in=1e20), "schedule_in=1e\\+20"),
            (engine.insert(CountTo3, Counter(), key="a\x00b"), "key='a\\\\x00b'"),
            (engine.insert(CountTo3, Counter(), step="s\x00"), "step='s"),
            (engine.signal(1, "go\x00"), "name='go"),
            (engine.signal(1, "go", dedup_key="d\x00"), "dedup_key='d"),
            (engine.get("k\x00"), "id_or_key='k"),
            (engine.insert_many([1]), "items=1"),
            (engine.insert_many(None), "items=None"),
            (engine.signal(True, "go"), "id_or_key=True"),
            (engine.signal(1, ""), "name=''"),
            (engine.signal(1, "go", object()), "payload=<object"),
            (engine.signal(1, "go", dedup_key=""), "dedup_key=''"),
            (engine.get(2.5), "id_or_key=2.5"),
            (engine.wait(1, timeout=-1), "timeout=-1"),
            (engine.cancel(None), "id_or_key=None"),
            (engine.list(status="lost"), "status='lost'"),
            (engine.list(limit=0), "limit=0"),
        ]
        for call, match in cases:
            with pytest.raises(InvalidArgument, match=match):
                await call


async def test_the_engine_is_unusable_after_its_block(store):
    async with durable.open_engine(store, workers=0) as engine:
        pass
    with pytest.raises(durable.DurableError, match="closed"):
        await engine.insert(CountTo3, Counter())


async def test_wait_times_out_with_too_slow_error(store, autojump_clock):
    import trio

    async with durable.open_engine(store, [CountTo3], workers=0, **FAST) as engine:
        id_ = await engine.insert(CountTo3, Counter())
        with pytest.raises(trio.TooSlowError):
            await engine.wait(id_, timeout=0.05)
