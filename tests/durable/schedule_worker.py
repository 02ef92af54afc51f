"""A process running a per-second schedule on PostgreSQL, for
test_schedules_postgres.py: ``python schedule_worker.py URL``. It runs until
terminated (or killed)."""

from __future__ import annotations

import sys

import trio
from machines import Counter, CountTo3

from trexec import durable

EVERY_SECOND = durable.Schedule(
    "tick", "* * * * * *", machine=CountTo3, state=Counter(), catch_up="all"
)


async def main(url: str) -> None:
    async with (
        durable.open_store(url) as store,
        durable.open_engine(
            store, [CountTo3], schedules=[EVERY_SECOND], workers=2, poll_interval=0.2
        ),
    ):
        print("ready", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
