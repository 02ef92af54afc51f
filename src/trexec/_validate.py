"""Argument checks shared by every public entry point (spec §0.3).

Each raises :class:`~trexec.InvalidArgument` whose message names the argument,
the value received and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

from ._exceptions import InvalidArgument


def fail(name: str, value: object, expected: str) -> NoReturn:
    raise InvalidArgument(f"{name}={value!r}: expected {expected}")


def seconds(name: str, value: object, *, allow_none: bool = False, allow_zero: bool = True) -> Any:
    """A duration in seconds: a finite real number >= 0 (> 0 unless ``allow_zero``)."""
    if value is None and allow_none:
        return None
    expected = "a number of seconds " + (">= 0" if allow_zero else "> 0")
    if allow_none:
        expected += " or None"
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(name, value, expected)
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        fail(name, value, expected)
    return float(value)


def count(name: str, value: object, *, minimum: int = 0) -> int:
    """A whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(name, value, f"an int >= {minimum}")
    return value


def callable_(name: str, value: object) -> Callable[..., Any]:
    if not callable(value):
        fail(name, value, "a callable")
    return value


def one_of(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return str(value)
