"""What test_schedules_postgres.py's worker processes run:
``trexec worker --import schedule_worker`` (tests/durable on PYTHONPATH) runs
CountTo3 and fires this per-second schedule."""

from __future__ import annotations

from machines import Counter, CountTo3 as CountTo3

from trexec import durable

EVERY_SECOND = durable.Schedule(
    "tick", "* * * * * *", machine=CountTo3, state=Counter(), catch_up="all"
)
