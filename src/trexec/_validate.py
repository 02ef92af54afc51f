"""Argument checks shared by every public entry point (spec §0.3).

Each raises :class:`~trexec.InvalidArgument` whose message names the argument,
the value received and what was expected.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from inspect import CO_COROUTINE
from types import FunctionType
from typing import Any, NoReturn, TypeGuard

from ._exceptions import InvalidArgument


def fail(name: str, value: object, expected: str) -> NoReturn:
    raise InvalidArgument(f"{name}={shown(value)}: expected {expected}")


#: An error message shows at most this much of a bad value's repr.
SHOWN_MAX = 300


def shown(value: object) -> str:
    """``repr(value)`` for an error message: cut after SHOWN_MAX characters, and
    never an error itself (a value nested too deeply, a broken ``__repr__``)."""
    try:
        text = repr(value)
    except Exception:  # RecursionError included
        return f"<a {type(value).__name__} that cannot be shown>"
    if len(text) > SHOWN_MAX:
        return f"{text[:SHOWN_MAX]}... ({len(text)} characters)"
    return text


def storable_text(value: str) -> bool:
    """True if every store can hold ``value`` as text (spec §5.1.4): no NUL
    (PostgreSQL text refuses it) and valid UTF-8 (no lone surrogate)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def is_async_callable(value: object) -> TypeGuard[Callable[..., Awaitable[Any]]]:
    """An ``async def`` (a bound method or ``functools.partial`` of one included), or
    an instance whose class defines ``async def __call__``. A sync function (or an
    async generator) would run, side effects and all, and only then fail at
    ``await``: entry points reject it up front."""
    # The common case first, without inspect's unwrapping (issue #15: per-action cost).
    if type(value) is FunctionType and value.__code__.co_flags & CO_COROUTINE:
        return True
    if inspect.iscoroutinefunction(value):
        return True
    return (
        callable(value)
        and not inspect.isroutine(value)
        and inspect.iscoroutinefunction(type(value).__call__)
    )


def one_of(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return str(value)
