"""What one insert names (spec §5.3): :class:`InsertSpec` and the checks of
the arguments ``Engine``'s methods share (keys, targets, step names, the delay)."""

from __future__ import annotations

import warnings
from typing import Any

import attrs

from .. import _validate
from ._limits import MAX_DELAY, MAX_PRIORITY, check_concurrency_key, check_priority
from ._machine import Machine, check_machine

__all__ = [
    "MAX_PRIORITY",
    "InsertSpec",
    "check_concurrency_key",
    "check_key",
    "check_priority",
    "check_target",
    "schedule_in_of",
]


def check_key(name: str, value: object) -> str | None:
    if value is not None and (
        not isinstance(value, str) or not value or not _validate.storable_text(value)
    ):
        _validate.fail(name, value, "None or a non-empty str without NUL or lone surrogates")
    return value


def check_target(value: object) -> int | str:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or value in ("", 0)
        or (isinstance(value, str) and not _validate.storable_text(value))
    ):
        _validate.fail("id_or_key", value, "an instance id (int > 0) or a business key (str)")
    if isinstance(value, int) and value < 0:
        _validate.fail("id_or_key", value, "an instance id (int > 0) or a business key (str)")
    return value


def _step(name: str, value: object) -> str:
    # spec §5.1.4: a NUL cannot be stored by every store (PostgreSQL text).
    if not isinstance(value, str) or not value or not _validate.storable_text(value):
        _validate.fail(name, value, "a non-empty str naming a step (no NUL or lone surrogates)")
    return value


def schedule_in_of(schedule_in: float, scheduled_in: float | None) -> float:
    """The delay from ``schedule_in``, or from the deprecated ``scheduled_in``."""
    if scheduled_in is None:
        return schedule_in
    warnings.warn(
        "scheduled_in= is deprecated: use schedule_in= (the name start_workflow uses)",
        DeprecationWarning,
        stacklevel=3,
    )
    if schedule_in:
        _validate.fail("scheduled_in", scheduled_in, "not given together with schedule_in")
    return scheduled_in


@attrs.frozen(init=False)
class InsertSpec:
    """One instance for :meth:`Engine.insert_many`: ``machine`` (a Machine class),
    its ``state`` (a ``State`` object, or a dict cattrs structures into one),
    first ``step``, delay ``schedule_in`` (seconds), business ``key`` and
    ``parent_id`` (makes it a child of that instance, spec §5.7), ``priority``
    (0..1000, higher claimed first, spec §11.1) and ``concurrency_key`` (at most
    ``machine.concurrency_limit`` instances sharing it run at once, spec §11.2).

    ``scheduled_in`` is the deprecated name of ``schedule_in``."""

    machine: type[Machine]
    state: Any
    step: str = "start"
    schedule_in: float = 0.0
    key: str | None = None
    parent_id: int | None = None
    priority: int = 0
    concurrency_key: str | None = None

    def __init__(
        self,
        machine: type[Machine],
        state: Any,
        step: str = "start",
        schedule_in: float = 0.0,
        key: str | None = None,
        parent_id: int | None = None,
        *,
        priority: int = 0,
        concurrency_key: str | None = None,
        scheduled_in: float | None = None,
    ) -> None:
        delay = schedule_in_of(schedule_in, scheduled_in)
        self.__attrs_init__(machine, state, step, delay, key, parent_id, priority, concurrency_key)

    def __attrs_post_init__(self) -> None:
        check_machine("machine", self.machine)
        _step("step", self.step)
        _validate.seconds("schedule_in", self.schedule_in)
        if self.schedule_in > MAX_DELAY:  # spec §5.1.4: past every store's timestamps
            _validate.fail("schedule_in", self.schedule_in, f"seconds <= {MAX_DELAY:g}")
        check_key("key", self.key)
        if self.parent_id is not None:
            _validate.count("parent_id", self.parent_id, minimum=1)
        check_priority("priority", self.priority)
        check_concurrency_key("concurrency_key", self.concurrency_key)

    @property
    def scheduled_in(self) -> float:
        """Deprecated alias of :attr:`schedule_in`."""
        return self.schedule_in
