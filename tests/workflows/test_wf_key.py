"""``engine.start_workflow(..., key=)``: a run's business key (spec §6.2.3)."""

from __future__ import annotations

import pytest

import trexec
from trexec import durable
from trexec.workflows import Step, Workflow

FAST = {"poll_interval": 0.02}


async def ok(ctx):
    return ctx.input


WF = Workflow("keyed", [Step("a", ok), Step("b", ok, after=["a"])], execution="instances")


async def test_a_run_is_found_by_its_key_and_a_live_key_is_refused(store):
    async with durable.open_engine(store, workflows=[WF], workers=0, **FAST) as producer:
        run_id = await producer.start_workflow(WF, 1, key="order-0001")
        assert (await producer.get("order-0001")).id == run_id
        assert (await producer.get("order-0001/a")).status == "scheduled"  # its entry step
        with pytest.raises(durable.DuplicateKey):
            await producer.start_workflow(WF, 2, key="order-0001")  # spec §6.2.3: live
    async with durable.open_engine(store, workflows=[WF], **FAST) as engine:
        run = await engine.wait("order-0001", timeout=10)
        assert run.status == "done" and run.result == {"a": 1, "b": 1}
        # Unique among live instances only: once the run ended, the key is free again.
        again = await engine.start_workflow(WF, 3, key="order-0001")
        assert (await engine.wait(again, timeout=10)).result == {"a": 3, "b": 3}


@pytest.mark.parametrize("key", ["", "  ", "a/b", 7, "nul\x00"])
async def test_a_bad_key_is_named(store, key):
    async with durable.open_engine(store, workflows=[WF], workers=0) as engine:
        with pytest.raises(trexec.InvalidArgument, match=r"key=.*expected None or a non-empty"):
            await engine.start_workflow(WF, None, key=key)
        assert await store.list() == []


def test_uuid7_is_a_version_7_uuid_of_the_time_now():
    import time
    import uuid

    from trexec.workflows._uuid7 import uuid7

    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert all(before <= u.int >> 80 <= after for u in ids)  # its first 48 bits: ms now
    assert len(set(ids)) == len(ids)  # 74 random bits apart within a millisecond


async def test_default_run_keys_sort_in_the_order_the_runs_started(store, autojump_clock):
    async with durable.open_engine(store, workflows=[WF], workers=0) as producer:
        ids = [await producer.start_workflow(WF, 1) for _ in range(20)]
        keys = [(await producer.get(i)).key for i in ids]
    assert all(k.startswith("run:keyed:") and len(k) == len("run:keyed:") + 32 for k in keys)
    # The uuid's first 12 hex digits are the time in ms: never smaller for a later run
    # (within one millisecond the random rest orders them).
    stamps = [k.removeprefix("run:keyed:")[:12] for k in keys]
    assert stamps == sorted(stamps) and len(set(keys)) == len(keys)
