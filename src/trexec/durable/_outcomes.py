"""What a step returns (spec §5.4): ``Next``, ``Retry``, ``Await``,
``ScheduleChildren`` (with ``Child`` specs), ``Done``, ``Stop``.

Each outcome validates its fields when built and raises
:class:`~trexec.InvalidArgument` naming the bad value; built inside a step, that
error is a step error and goes to the machine's ``handle`` (spec §5.4.7).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .. import _validate
from ._limits import check_concurrency_key, check_priority

if TYPE_CHECKING:
    from ._machine import Machine

__all__ = ["Await", "Child", "Done", "Next", "Outcome", "Retry", "ScheduleChildren", "Stop"]


def _step_name(name: str) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if not isinstance(value, str) or not value:
            _validate.fail(name, value, "a non-empty str naming a step")

    return check


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        _validate.fail("names", value, "a signal name or an iterable of signal names")
    names = tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        _validate.fail("names", value, "one or more non-empty str signal names")
    return names


def _seconds(name: str, *, allow_none: bool = False) -> Any:
    def check(_: object, __: object, value: object) -> None:
        _validate.seconds(name, value, allow_none=allow_none)

    return check


class Outcome:
    """Base of every step outcome; ``kind`` names it in telemetry and the store."""

    __slots__ = ()
    kind: ClassVar[str]


@attrs.frozen
class Next(Outcome):
    """Run ``step`` next with ``state`` (progressing: consumes the awaited signals
    the step received). ``rate_limit`` (``"name"`` or ``"name:partition"``) makes
    the claim of ``step`` take ``weight`` tokens from that bucket (spec §5.9)."""

    kind: ClassVar[str] = "next"
    step: str
    state: Any
    rate_limit: str | None = attrs.field(default=None, kw_only=True)
    weight: int = attrs.field(default=1, kw_only=True)

    def __attrs_post_init__(self) -> None:
        step, weight = self.step, self.weight
        # Built by almost every step: the common case in one test.
        plain = type(step) is str and step and self.rate_limit is None
        if plain and type(weight) is int and weight >= 1:
            return
        if not isinstance(step, str) or not step:
            _validate.fail("step", step, "a non-empty str naming a step")
        if self.rate_limit is not None and (
            not isinstance(self.rate_limit, str) or not self.rate_limit.split(":", 1)[0]
        ):
            _validate.fail("rate_limit", self.rate_limit, 'None, "name" or "name:partition"')
        _validate.count("weight", self.weight, minimum=1)


@attrs.frozen
class Retry(Outcome):
    """Run the same step again after ``delay`` seconds with ``state``
    (``attempt`` + 1; consumes nothing)."""

    kind: ClassVar[str] = "retry"
    state: Any
    delay: float = attrs.field(default=0.0, validator=_seconds("delay"))


@attrs.frozen
class Await(Outcome):
    """Park until a signal named in ``names`` arrives (or is already in the inbox),
    then run ``next_step``; after ``timeout`` seconds run ``next_step`` anyway,
    with empty ``ctx.awaited`` (spec §5.6). Consumes nothing."""

    kind: ClassVar[str] = "await"
    names: tuple[str, ...] = attrs.field(converter=_names)
    next_step: str = attrs.field(validator=_step_name("next_step"))
    state: Any
    timeout: float | None = attrs.field(
        default=None, kw_only=True, validator=_seconds("timeout", allow_none=True)
    )


@attrs.frozen
class Child:
    """A child instance for :class:`ScheduleChildren`: ``machine`` (a Machine
    class), its initial ``state``, first ``step``, optional business ``key``,
    ``priority`` (0..1000, higher claimed first) and ``concurrency_key`` (spec §11)."""

    machine: type[Machine]
    state: Any
    step: str = attrs.field(default="start", validator=_step_name("step"))
    key: str | None = attrs.field(default=None, kw_only=True)
    priority: int = attrs.field(default=0, kw_only=True)
    concurrency_key: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        from ._machine import check_machine

        check_machine("machine", self.machine)
        check_priority("priority", self.priority)
        check_concurrency_key("concurrency_key", self.concurrency_key)
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            _validate.fail("key", self.key, "None or a non-empty str")


def _children(value: object) -> tuple[Child, ...]:
    if not isinstance(value, Iterable) or isinstance(value, str | bytes):
        _validate.fail("children", value, "an iterable of durable.Child")
    children = tuple(value)
    for child in children:
        if not isinstance(child, Child):
            _validate.fail("children", child, "a durable.Child")
    return children


@attrs.frozen
class ScheduleChildren(Outcome):
    """Insert ``children`` and park until every one of them is terminal, then run
    ``next_step`` (with ``ctx.children``) and ``state``; with no children, run it at
    once. Progressing: consumes the awaited signals the step received (spec §5.7)."""

    kind: ClassVar[str] = "children"
    next_step: str = attrs.field(validator=_step_name("next_step"))
    children: tuple[Child, ...] = attrs.field(converter=_children)
    state: Any


@attrs.frozen
class Done(Outcome):
    """Finish successfully with ``result`` (stored as JSON; clears the inbox)."""

    kind: ClassVar[str] = "done"
    result: Any = None


@attrs.frozen
class Stop(Outcome):
    """Finish unsuccessfully; ``reason`` (a string, an exception, anything) becomes
    ``Instance.error`` as text (clears the inbox)."""

    kind: ClassVar[str] = "stop"
    reason: Any


def reason_text(reason: object) -> str:
    """How a ``Stop`` reason is stored (spec §5.4.6); a NUL character, which
    PostgreSQL text cannot hold, is written ``\\x00`` (on every store)."""
    if isinstance(reason, str):
        text = reason
    elif isinstance(reason, BaseException):
        text = f"{type(reason).__name__}: {reason}"
    else:
        text = repr(reason)
    return text.replace("\x00", "\\x00")
