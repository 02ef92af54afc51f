"""Cron ticks and Schedule validation (spec §11.3-§11.5): pure, no store."""

from __future__ import annotations

import datetime as dt

import pytest
from machines import CountTo3 as Counter

from trexec import InvalidArgument
from trexec.durable._cron import (
    MAX_TICKS_PER_PASS,
    ON_TIME,
    Schedule,
    due_ticks,
    last_tick,
    next_tick,
    tick_key,
)


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def keys(ticks: list[float]) -> list[str]:
    return [tick_key("s", t) for t in ticks]


def test_tick_key_is_iso_utc() -> None:
    assert tick_key("nightly", ts(2026, 12, 6, 3)) == "schedule:nightly:2026-12-06T03:00:00Z"


def test_next_tick_is_strictly_after() -> None:
    assert next_tick("0 3 * * *", "UTC", ts(2026, 12, 6, 3)) == ts(2026, 12, 7, 3)
    assert next_tick("0 3 * * *", "UTC", ts(2026, 12, 6, 2, 59)) == ts(2026, 12, 6, 3)


def test_last_tick_is_at_or_before() -> None:
    assert last_tick("0 3 * * *", "UTC", ts(2026, 12, 6, 3)) == ts(2026, 12, 6, 3)
    assert last_tick("0 3 * * *", "UTC", ts(2026, 12, 6, 2)) == ts(2026, 12, 5, 3)


def test_catch_up_latest_fires_only_the_newest_missed_tick() -> None:
    due, upcoming = due_ticks(
        "0 * * * *", "UTC", "latest", since=ts(2026, 12, 6, 0), now=ts(2026, 12, 6, 5, 30)
    )
    assert keys(due) == ["schedule:s:2026-12-06T05:00:00Z"]
    assert upcoming == ts(2026, 12, 6, 6)


def test_catch_up_all_fires_every_missed_tick_oldest_first() -> None:
    due, upcoming = due_ticks(
        "0 * * * *", "UTC", "all", since=ts(2026, 12, 6, 0), now=ts(2026, 12, 6, 3, 30)
    )
    assert keys(due) == [
        "schedule:s:2026-12-06T01:00:00Z",
        "schedule:s:2026-12-06T02:00:00Z",
        "schedule:s:2026-12-06T03:00:00Z",
    ]
    assert upcoming == ts(2026, 12, 6, 4)


def test_catch_up_all_is_bounded_per_pass() -> None:
    since = ts(2026, 1, 1)
    due, again = due_ticks("* * * * *", "UTC", "all", since=since, now=since + 86400 * 3)
    assert len(due) == MAX_TICKS_PER_PASS
    assert due[0] == since + 60
    assert again == since + 86400 * 3  # look again at once: more are due


def test_catch_up_none_skips_missed_ticks_but_fires_on_time_ones() -> None:
    now = ts(2026, 12, 6, 5, 0, 30)
    due, _ = due_ticks("0 * * * *", "UTC", "none", since=ts(2026, 12, 6, 0), now=now)
    assert keys(due) == ["schedule:s:2026-12-06T05:00:00Z"]
    due, _ = due_ticks("0 * * * *", "UTC", "none", since=ts(2026, 12, 6, 0), now=now + ON_TIME + 1)
    assert due == []


def test_a_tick_already_fired_never_fires_again() -> None:
    due, _ = due_ticks(
        "0 3 * * *", "UTC", "latest", since=ts(2026, 12, 6, 3), now=ts(2026, 12, 6, 4)
    )
    assert due == []


def test_daylight_saving_follows_croniter_rules() -> None:
    # Europe/Paris springs forward on 2026-03-29 at 02:00: 02:30 does not exist that day.
    due, _ = due_ticks(
        "30 2 * * *", "Europe/Paris", "all", since=ts(2026, 3, 28, 12), now=ts(2026, 3, 30, 12)
    )
    assert len(due) == 2
    assert due[1] == ts(2026, 3, 30, 0, 30)  # 02:30 CEST
    # A time zone's offset applies: 03:00 in Paris in winter is 02:00 UTC.
    assert next_tick("0 3 * * *", "Europe/Paris", ts(2026, 12, 6)) == ts(2026, 12, 6, 2)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"cron": "not a cron"}, "cron='not a cron'"),
        ({"cron": "61 * * * *"}, "cron='61 * * * *'"),
        ({"cron": ""}, "cron=''"),
        ({"tz": "Mars/Olympus"}, "tz='Mars/Olympus'"),
        ({"catch_up": "some"}, "catch_up='some'"),
        ({"name": ""}, "name=''"),
        ({"machine": None}, "machine=None"),
        ({"priority": 1.5}, "priority=1.5"),
        ({"priority": -1}, "priority=-1"),
    ],
)
def test_bad_schedules_raise_naming_the_value(kwargs: dict[str, object], named: str) -> None:
    args: dict[str, object] = {"name": "s", "cron": "* * * * *", "machine": Counter}
    args.update(kwargs)
    with pytest.raises(InvalidArgument, match=named.replace("*", r"\*")):
        Schedule(**args)  # type: ignore[arg-type]


def test_schedule_takes_a_machine_or_a_workflow_not_both() -> None:
    with pytest.raises(InvalidArgument, match="exactly one"):
        Schedule("s", "* * * * *", machine=Counter, workflow=object())
    assert Schedule("s", "* * * * *", machine=Counter).target == Counter.name
