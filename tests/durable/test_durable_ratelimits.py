"""Rate limits (spec §5.9): token buckets applied when a Next step is claimed."""

from __future__ import annotations

import trio
from stores import FAST

from trexec import durable


class Limited(durable.Machine):
    name = "limited"

    async def step(self, step, ctx):
        if step == "start":
            return durable.Next("call", ctx.state, rate_limit=ctx.state["limit"])
        return durable.Done(ctx.state["i"])


async def test_a_known_limit_throttles_claims_beyond_the_burst(store, events, autojump_clock):
    limits = {"api": durable.RateLimit(2, 60.0)}  # 2 now, then one every 30 s
    async with durable.open_engine(store, [Limited], rate_limits=limits, **FAST) as engine:
        ids = [await engine.insert(Limited, {"i": i, "limit": "api"}) for i in range(4)]
        while len(await engine.list(status="done")) < 2:
            await trio.sleep(0.01)
        await trio.sleep(0.1)
        statuses = sorted([(await engine.get(i)).status for i in ids])
    assert statuses == ["done", "done", "scheduled", "scheduled"]
    throttled = [m for name, m, _ in events if name[2:] == ("rate_limit", "throttled")]
    assert throttled and all(m["wait"] > 0 for m in throttled)


async def test_partitions_have_their_own_buckets(store):
    limits = {"api": durable.RateLimit(1, 3600.0)}
    async with durable.open_engine(store, [Limited], rate_limits=limits, **FAST) as engine:
        ids = [await engine.insert(Limited, {"i": i, "limit": f"api:tenant-{i}"}) for i in range(3)]
        results = [(await engine.wait(i, timeout=10)).result for i in ids]
    assert results == [0, 1, 2]


async def test_an_unknown_limit_name_is_reported_and_does_not_stall(store, events):
    async with durable.open_engine(store, [Limited], **FAST) as engine:
        id_ = await engine.insert(Limited, {"i": 5, "limit": "nope:p1"})
        assert (await engine.wait(id_, timeout=10)).result == 5
    [unknown] = [(m, meta) for name, m, meta in events if name[2:] == ("rate_limit", "unknown")]
    assert unknown[0] == {"count": 1}
    assert unknown[1]["key"] == "nope:p1" and unknown[1]["name"] == "nope"
    assert unknown[1]["id"] == id_ and unknown[1]["step"] == "start"


async def test_a_weight_above_the_burst_runs_when_the_bucket_is_full(store):
    class Heavy(durable.Machine):
        name = "heavy"

        async def step(self, step, ctx):
            if step == "start":
                return durable.Next("call", ctx.state, rate_limit="api", weight=10)
            return durable.Done("ran")

    limits = {"api": durable.RateLimit(2, 0.05)}
    async with durable.open_engine(store, [Heavy], rate_limits=limits, **FAST) as engine:
        assert (await engine.wait(await engine.insert(Heavy, None), timeout=10)).result == "ran"
