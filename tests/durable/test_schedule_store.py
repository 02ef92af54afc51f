"""The schedules table on every store (spec §11.4): registration, the
compare-and-set that fires a tick once, pause and resume."""

from __future__ import annotations

import pytest
import trio

from trexec import durable
from trexec.durable import DuplicateKey, NoTarget
from trexec.durable._records import NewInstance


def row(key: str) -> NewInstance:
    return NewInstance(machine="m", version=1, step="start", state="{}", scheduled_in=0.0, key=key)


async def test_register_starts_the_cursor_now_and_keeps_it_on_a_cron_change(
    store: durable.Store,
) -> None:
    await store.register_schedules([("a", "0 * * * *", "UTC")])
    now, (first,) = await store.schedule_rows()
    assert first.name == "a" and not first.paused and first.last_fired_at is None
    assert first.cursor <= now
    await store.register_schedules([("a", "*/5 * * * *", "Europe/Paris")])
    _, (changed,) = await store.schedule_rows()
    assert (changed.cron, changed.tz, changed.cursor) == (
        "*/5 * * * *",
        "Europe/Paris",
        first.cursor,
    )


async def test_fire_is_a_compare_and_set_with_the_inserts(store: durable.Store) -> None:
    await store.register_schedules([("a", "0 * * * *", "UTC")])
    _, (before,) = await store.schedule_rows()
    tick = before.cursor + 3600
    assert await store.fire_schedule("a", before.cursor, tick, [row("schedule:a:1")])
    # A racing engine that read the old cursor changes nothing, not even its insert.
    assert not await store.fire_schedule("a", before.cursor, tick, [row("schedule:a:other")])
    assert [r.key for r in await store.list()] == ["schedule:a:1"]
    _, (after,) = await store.schedule_rows()
    assert after.cursor == tick and after.last_fired_at is not None


async def test_a_clashing_key_fires_nothing(store: durable.Store) -> None:
    await store.register_schedules([("a", "0 * * * *", "UTC")])
    await store.insert([row("taken")])
    _, (before,) = await store.schedule_rows()
    with pytest.raises(DuplicateKey):
        await store.fire_schedule("a", before.cursor, before.cursor + 60, [row("taken")])
    _, (after,) = await store.schedule_rows()
    assert after.cursor == before.cursor


async def test_concurrent_fires_of_one_tick_insert_it_once(store: durable.Store) -> None:
    await store.register_schedules([("a", "* * * * *", "UTC")])
    _, (before,) = await store.schedule_rows()
    results: list[bool] = []

    async def fire(n: int) -> None:
        items = [row(f"k{n}")]
        results.append(await store.fire_schedule("a", before.cursor, before.cursor + 60, items))

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(fire, n)
    assert sorted(results) == [False] * 7 + [True]
    assert len(await store.list()) == 1


async def test_pause_blocks_firing_and_resume_skips_the_paused_ticks(
    store: durable.Store,
) -> None:
    await store.register_schedules([("a", "* * * * *", "UTC")])
    _, (before,) = await store.schedule_rows()
    paused = await store.set_schedule_paused("a", True)
    assert paused.paused and paused.cursor == before.cursor
    assert not await store.fire_schedule("a", before.cursor, before.cursor + 60, [row("k")])
    resumed = await store.set_schedule_paused("a", False)
    assert not resumed.paused and resumed.cursor >= before.cursor
    again = await store.set_schedule_paused("a", False)  # resuming a running one: no change
    assert again.cursor == resumed.cursor
    with pytest.raises(NoTarget, match="'b'"):
        await store.set_schedule_paused("b", True)
