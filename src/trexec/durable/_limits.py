"""The bounds every store can hold, and the checks of the scheduling arguments
that outcomes, inserts and schedules share (spec §5.1.4, §11.1, §11.2). Imports
nothing of ``durable``: every layer of it may use these."""

from __future__ import annotations

from .. import _validate

__all__ = [
    "MAX_DELAY",
    "MAX_PRIORITY",
    "MAX_WEIGHT",
    "check_concurrency_key",
    "check_priority",
]

#: The longest delay or timeout every store can hold (PostgreSQL's timestamps end
#: in 294276 AD), and the largest weight (a 32-bit integer column).
MAX_DELAY = 1e11  # about 3,000 years
MAX_WEIGHT = 2**31 - 1

#: The highest ``priority`` (spec §11.1): priorities are ints from 0 (the
#: default, the lowest) to this; a bounded range keeps the claim's scan over
#: distinct priorities short.
MAX_PRIORITY = 1000


def check_priority(name: str, value: object) -> int:
    """An int in ``0..MAX_PRIORITY`` (spec §11.1); bool, float and str are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        _validate.fail(name, value, f"an int from 0 to {MAX_PRIORITY} (higher runs first)")
    return value


def check_concurrency_key(name: str, value: object) -> str | None:
    """None or a non-empty str without NUL characters of at most 512 characters (§11.2)."""
    if value is not None and (
        not isinstance(value, str) or not value or "\x00" in value or len(value) > 512
    ):
        _validate.fail(name, value, "None or a non-empty str (no NUL, at most 512 characters)")
    return value
