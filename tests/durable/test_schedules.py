"""Cron schedules on an engine, in virtual time on the test store (spec §11.3-§11.7)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import trio
import trio.testing
from machines import Counter, CountTo3

from trexec import InvalidArgument, durable, testing
from trexec.durable import NoTarget, Schedule

HOUR = 3600.0


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def hourly(name: str = "hourly", **options: object) -> Schedule:
    return Schedule(name, "0 * * * *", machine=CountTo3, state=Counter(), **options)  # type: ignore[arg-type]


async def keys(engine: durable.Engine) -> list[str]:
    rows = await engine.list(limit=100_000)
    return [r.key for r in rows if r.key is not None]


def iso(*args: int) -> str:
    return dt.datetime(*args, tzinfo=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_week_of_an_hourly_schedule_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.jump(ts(2026, 12, 6, 0, 30))
    async with testing.open_test_engine([CountTo3], schedules=[hourly()]) as engine:
        await trio.sleep(7 * 24 * HOUR)
        found = await keys(engine)
        assert len(found) == 7 * 24
        assert len(set(found)) == len(found)
        assert found[0] == f"schedule:hourly:{iso(2026, 12, 6, 1)}"
        assert found[-1] == f"schedule:hourly:{iso(2026, 12, 13, 0)}"
        done = await engine.list(status="done", limit=1000)
        assert len(done) == 7 * 24  # each tick's instance ran to the end
        (info,) = await engine.schedules()
        assert info.name == "hourly" and not info.paused
        assert info.last_fired_at == dt.datetime(2026, 12, 13, 0, tzinfo=dt.UTC)
        assert info.next_fire_at == dt.datetime(2026, 12, 13, 1, tzinfo=dt.UTC)


async def test_a_schedule_starts_at_registration_and_never_fires_earlier_ticks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.jump(ts(2026, 12, 6, 3, 59, 59))
    async with testing.open_test_engine([CountTo3], schedules=[hourly()]) as engine:
        await trio.sleep(0.5)
        assert await keys(engine) == []
        await trio.sleep(1)
        assert await keys(engine) == [f"schedule:hourly:{iso(2026, 12, 6, 4)}"]


async def _downtime(
    clock: trio.testing.MockClock, catch_up: str, *, off: float = 5.5 * HOUR
) -> list[str]:
    """Run an hourly schedule from 00:30 to 01:45, stop every engine for ``off``
    seconds, run it again for 10 minutes; return the hours fired."""
    clock.jump(ts(2026, 12, 6, 0, 30))
    async with testing.open_test_store() as store:
        schedule = hourly(catch_up=catch_up)
        async with testing.open_test_engine([CountTo3], schedules=[schedule], store=store):
            await trio.sleep(1.25 * HOUR)  # fires 01:00
        await trio.sleep(off)
        async with testing.open_test_engine(
            [CountTo3], schedules=[schedule], store=store
        ) as engine:
            await trio.sleep(600)
            return [k[-20:-7] for k in await keys(engine)]


def _hours(*hours: int) -> list[str]:
    return [iso(2026, 12, 6, h)[:-7] for h in hours]


async def test_catch_up_latest_fires_only_the_newest_missed_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # off from 01:45 to 07:15: ticks 02..07 missed; 07:00 fires.
    assert await _downtime(autojump_clock, "latest") == _hours(1, 7)


async def test_catch_up_all_fires_every_missed_tick_oldest_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await _downtime(autojump_clock, "all") == _hours(1, 2, 3, 4, 5, 6, 7)


async def test_catch_up_none_fires_no_missed_tick(autojump_clock: trio.testing.MockClock) -> None:
    assert await _downtime(autojump_clock, "none") == _hours(1)


async def test_pause_and_resume(autojump_clock: trio.testing.MockClock) -> None:
    autojump_clock.jump(ts(2026, 12, 6, 0, 30))
    async with testing.open_test_engine([CountTo3], schedules=[hourly()]) as engine:
        await trio.sleep(HOUR)  # 01:30, fired 01:00
        await engine.pause_schedule("hourly")
        (info,) = await engine.schedules()
        assert info.paused and info.next_fire_at is None
        await trio.sleep(3 * HOUR)  # 04:30: 02, 03, 04 never fire
        await engine.resume_schedule("hourly")
        await engine.resume_schedule("hourly")  # resuming a running schedule: no change
        await trio.sleep(HOUR)  # 05:30: fires 05:00
        assert [k[-20:-7] for k in await keys(engine)] == _hours(1, 5)


async def test_pause_unknown_schedule(autojump_clock: trio.testing.MockClock) -> None:
    async with testing.open_test_engine([CountTo3]) as engine:
        with pytest.raises(NoTarget, match="nope"):
            await engine.pause_schedule("nope")
        with pytest.raises(NoTarget, match="nope"):
            await engine.resume_schedule("nope")
        with pytest.raises(InvalidArgument, match="name"):
            await engine.pause_schedule(3)  # type: ignore[arg-type]
        assert await engine.schedules() == []


async def test_dst_zone_follows_local_wall_clock(autojump_clock: trio.testing.MockClock) -> None:
    # Europe/Paris leaves summer time on 2026-10-25 (03:00 CEST -> 02:00 CET).
    autojump_clock.jump(ts(2026, 10, 23, 12))
    daily = Schedule("daily", "30 9 * * *", machine=CountTo3, state=Counter(), tz="Europe/Paris")
    # 02:30 local happens twice on 2026-10-25: croniter's rule fires both.
    night = Schedule("night", "30 2 * * *", machine=CountTo3, state=Counter(), tz="Europe/Paris")
    async with testing.open_test_engine([CountTo3], schedules=[daily, night]) as engine:
        await trio.sleep(4 * 24 * HOUR)
        found = sorted(await keys(engine))
    assert [k for k in found if ":daily:" in k] == [
        f"schedule:daily:{iso(2026, 10, 24, 7, 30)}",  # 09:30 CEST = 07:30 UTC
        f"schedule:daily:{iso(2026, 10, 25, 8, 30)}",  # 09:30 CET = 08:30 UTC
        f"schedule:daily:{iso(2026, 10, 26, 8, 30)}",
        f"schedule:daily:{iso(2026, 10, 27, 8, 30)}",
    ]
    assert [k for k in found if ":night:" in k] == [
        f"schedule:night:{iso(2026, 10, 24, 0, 30)}",
        f"schedule:night:{iso(2026, 10, 25, 0, 30)}",  # 02:30 CEST
        f"schedule:night:{iso(2026, 10, 25, 1, 30)}",  # 02:30 CET, the repeated hour
        f"schedule:night:{iso(2026, 10, 26, 1, 30)}",
        f"schedule:night:{iso(2026, 10, 27, 1, 30)}",
    ]


async def test_dst_gap_fires_at_the_first_valid_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Europe/Paris skips 02:00-03:00 on 2026-03-29: a 02:30 schedule fires at 03:00 CEST.
    autojump_clock.jump(ts(2026, 3, 28, 12))
    night = Schedule("night", "30 2 * * *", machine=CountTo3, state=Counter(), tz="Europe/Paris")
    async with testing.open_test_engine([CountTo3], schedules=[night]) as engine:
        await trio.sleep(2 * 24 * HOUR)
        assert await keys(engine) == [
            f"schedule:night:{iso(2026, 3, 29, 1)}",
            f"schedule:night:{iso(2026, 3, 30, 0, 30)}",
        ]


async def test_two_engines_on_one_store_fire_each_tick_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    autojump_clock.jump(ts(2026, 12, 6, 0, 0, 30))
    every_minute = Schedule("minutely", "* * * * *", machine=CountTo3, state=Counter())
    async with (
        testing.open_test_store() as store,
        testing.open_test_engine([CountTo3], schedules=[every_minute], store=store) as a,
        testing.open_test_engine([CountTo3], schedules=[every_minute], store=store),
        testing.open_test_engine([CountTo3], schedules=[every_minute], store=store),
    ):
        await trio.sleep(3 * HOUR)
        found = await keys(a)
    assert len(found) == 180
    assert len(set(found)) == 180


async def test_a_fast_instance_frees_its_key_yet_the_tick_fires_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The business key alone would not do: CountTo3 finishes at once, so the key
    # is free again when a late engine looks at the same tick (spec §11.4).
    autojump_clock.jump(ts(2026, 12, 6, 0, 0, 30))
    schedule = Schedule("m", "* * * * *", machine=CountTo3, state=Counter(), catch_up="all")
    async with testing.open_test_store() as store:
        async with testing.open_test_engine([CountTo3], schedules=[schedule], store=store):
            await trio.sleep(140)  # to 00:02:50
        async with testing.open_test_engine(
            [CountTo3], schedules=[schedule], store=store
        ) as engine:
            await trio.sleep(1)
            found = await keys(engine)
    assert found == [f"schedule:m:{iso(2026, 12, 6, 0, 1)}", f"schedule:m:{iso(2026, 12, 6, 0, 2)}"]


async def test_workflow_schedule_starts_one_run_per_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from trexec import workflows

    async def greet(ctx: workflows.StepContext) -> str:
        return f"hello {ctx.input['who']}"

    wf = workflows.Workflow("greeter", [workflows.Step("greet", greet)])
    autojump_clock.jump(ts(2026, 12, 6, 2, 30))
    schedule = Schedule("greet", "0 3 * * *", workflow=wf, input={"who": "night"})
    async with testing.open_test_engine(workflows=[wf], schedules=[schedule]) as engine:
        await trio.sleep(2 * 24 * HOUR)
        runs = [r for r in await engine.list(limit=1000) if r.key and "/" not in r.key]
        assert [r.key for r in runs] == [
            f"schedule:greet:{iso(2026, 12, 6, 3)}",
            f"schedule:greet:{iso(2026, 12, 7, 3)}",
        ]
        assert all(r.status == "done" for r in runs)


async def test_a_changed_cron_keeps_the_cursor(autojump_clock: trio.testing.MockClock) -> None:
    autojump_clock.jump(ts(2026, 12, 6, 0, 30))
    async with testing.open_test_store() as store:
        async with testing.open_test_engine([CountTo3], schedules=[hourly()], store=store):
            await trio.sleep(HOUR)  # fires 01:00
        every_2h = Schedule("hourly", "0 */2 * * *", machine=CountTo3, state=Counter())
        async with testing.open_test_engine(
            [CountTo3], schedules=[every_2h], store=store
        ) as engine:
            await trio.sleep(3 * HOUR)  # 01:30 -> 04:30: 02:00, 04:00
            (info,) = await engine.schedules()
            assert info.cron == "0 */2 * * *"
            assert [k[-20:-7] for k in await keys(engine)] == _hours(1, 2, 4)


async def test_a_schedule_no_engine_runs_is_reported_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trexec.durable"):
        async with testing.open_test_engine(schedules=[hourly()]) as engine:
            await trio.sleep(3.5 * HOUR)
            assert len(await keys(engine)) == 3  # inserted, waiting for an engine
    warnings = [r for r in caplog.records if "does not run" in r.getMessage()]
    assert len(warnings) == 1
    assert "'hourly'" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("schedules", "match"),
    [
        ([hourly(), hourly()], "hourly"),
        ("hourly", "schedules"),
        ([object()], "Schedule"),
    ],
)
async def test_bad_schedules_argument(schedules: object, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        async with testing.open_test_engine([CountTo3], schedules=schedules):
            pass  # pragma: no cover


async def test_a_state_that_cannot_be_stored_fails_at_open() -> None:
    bad = Schedule("bad", "0 * * * *", machine=CountTo3, state={"n": "x"})
    with pytest.raises(InvalidArgument, match="state"):
        async with testing.open_test_engine([CountTo3], schedules=[bad]):
            pass  # pragma: no cover


def test_cli_schedules_lists_them(tmp_path: object) -> None:
    from click.testing import CliRunner

    from trexec._cli import cli

    url = f"sqlite:///{tmp_path}/cli.db"

    async def seed() -> None:
        nightly = Schedule(
            "nightly", "0 3 * * *", machine=CountTo3, state=Counter(), tz="Europe/Paris"
        )
        async with (
            durable.open_store(url) as store,
            durable.open_engine(store, workers=0, schedules=[nightly]) as engine,
        ):
            while not await engine.schedules():  # the scheduler registers it at once
                await trio.sleep(0.01)
            await engine.pause_schedule("nightly")

    env = {"TREXEC_STORE": url, "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["migrate"], env=env)
    assert result.exit_code == 0
    result = CliRunner().invoke(cli, ["schedules"], env=env)
    assert result.exit_code == 0 and "no schedules" in result.output
    trio.run(seed)
    result = CliRunner().invoke(cli, ["schedules"], env=env)
    assert result.exit_code == 0, result.output
    for text in ("nightly", "0 3 * * *", "Europe/Paris", "yes", "next fire", "last fired"):
        assert text in result.output


async def test_a_tick_whose_key_a_live_instance_holds_is_skipped_not_wedged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    autojump_clock.jump(ts(2026, 12, 6, 0, 30))
    schedule = hourly(catch_up="all")
    async with testing.open_test_store() as store:
        async with testing.open_test_engine([CountTo3], schedules=[schedule], store=store):
            pass  # registers the schedule at 00:30
        async with testing.open_test_engine([CountTo3], workers=0, store=store) as engine:
            # A live instance (no engine runs it) holds 02:00's key.
            await engine.insert(CountTo3, Counter(), key=f"schedule:hourly:{iso(2026, 12, 6, 2)}")
        await trio.sleep(3 * HOUR)  # 03:30: 01, 02, 03 are due together
        with caplog.at_level(logging.WARNING, logger="trexec.durable"):
            async with testing.open_test_engine(
                [CountTo3], schedules=[schedule], store=store
            ) as engine:
                await trio.sleep(HOUR)
                done = await engine.list(status="done", limit=100)
    # 02:00 is the hand-made instance; the other ticks fired once each.
    assert sorted(r.key[-20:-7] for r in done if r.key) == _hours(1, 2, 3, 4)
    assert any("tick skipped" in r.getMessage() for r in caplog.records)


async def test_a_workflow_that_is_not_a_run_starter_is_refused() -> None:
    bad = Schedule("bad", "0 * * * *", workflow=object())
    with pytest.raises(InvalidArgument, match="workflow"):
        async with testing.open_test_engine([CountTo3], schedules=[bad]):
            pass  # pragma: no cover
