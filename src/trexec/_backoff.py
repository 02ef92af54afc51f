"""Retry delays for actions: :class:`Backoff` (spec §1.3)."""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

from . import _validate

__all__ = ["Backoff"]


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _validate.seconds(attribute.name, value)


def _factor(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 1
    ):
        _validate.fail("factor", value, "a finite number >= 1")


def _jitter(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        _validate.fail("jitter", value, "a number between 0 and 1")


@attrs.frozen
class Backoff:
    """How long to sleep before each retry of an action.

    The delay before retry ``n`` (``n = 1`` for the second attempt) is::

        base  = min(max, initial * factor ** (n - 1))
        delay = base * (1 - jitter * random.random())

    so delays grow geometrically from ``initial`` up to ``max``, and ``jitter``
    (0 to 1) takes a random fraction of up to ``jitter`` off each one: a delay is
    never longer than ``max``. With ``jitter=0`` (the default) delays are exact.

    All fields are seconds except ``factor`` (>= 1) and ``jitter`` (0..1); a bad
    field raises :class:`~trexec.InvalidArgument` naming it.
    """

    initial: float = attrs.field(default=0.1, validator=_non_negative)
    factor: float = attrs.field(default=2.0, validator=_factor)
    max: float = attrs.field(default=10.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_jitter)

    def __attrs_post_init__(self) -> None:
        if self.max < self.initial:
            _validate.fail("max", self.max, f"a number of seconds >= initial ({self.initial!r})")

    def delay(self, retry: int) -> float:
        """The delay in seconds before retry number ``retry`` (1 for the first retry).

        Raises :class:`~trexec.InvalidArgument` if ``retry`` is not an int >= 1.
        """
        _validate.count("retry", retry, minimum=1)
        try:
            base = min(self.max, self.initial * self.factor ** (retry - 1))
        except OverflowError:  # factor ** n past the float range: long since capped
            base = self.max if self.initial else 0.0  # spec §1.3: min(max, 0 * ...) is 0
        if self.jitter:
            base *= 1 - self.jitter * random.random()
        return float(base)
