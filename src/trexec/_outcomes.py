"""How a run ends: ``RunCompleted``, ``RunFailed``, ``RunCancelled``, ``RunCrashed``
(spec §4.2). Re-exported by ``_runs``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs
import trio

from . import _validate
from ._exceptions import ActionCancelled


class RunOutcome:
    """Base of the four run outcomes; ``kind`` names which one it is.

    Published as the last message on a run's topic, it ends the run for
    :func:`~trexec.follow_run`.
    """

    __slots__ = ()
    kind: ClassVar[str] = ""


@attrs.frozen
class RunCompleted(RunOutcome):
    """``run_fn`` returned ``result``."""

    kind: ClassVar[str] = "completed"
    result: Any = None


def _errors(value: object) -> list[Any]:
    # A str is an iterable too: RunFailed("declined") must not become its letters.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        _validate.fail("errors", value, "a list of errors")
    return list(value)


@attrs.frozen
class RunFailed(RunOutcome):
    """``run_fn`` raised :class:`~trexec.RunError` or called ``run.fail(errors)``."""

    kind: ClassVar[str] = "failed"
    errors: list[Any] = attrs.field(factory=list, converter=_errors)


@attrs.frozen
class RunCancelled(RunOutcome):
    """The run was cancelled: ``handle.cancel()``, its nursery cancelled, or a failure
    whose errors are all cancellations."""

    kind: ClassVar[str] = "cancelled"


@attrs.frozen
class RunCrashed(RunOutcome):
    """``run_fn`` raised something other than ``RunError`` (``exception`` keeps its
    traceback), or the run task died without an outcome."""

    kind: ClassVar[str] = "crashed"
    exception: BaseException


def is_cancellation(error: object) -> bool:
    """True for an error that means "cancelled" (spec §4.2.4): a ``trio.Cancelled``,
    an :class:`~trexec.ActionCancelled`, a :class:`RunCancelled`, or anything marked
    ``kind == "cancelled"`` (an attribute, or a mapping key as in the seed)."""
    if isinstance(error, trio.Cancelled | ActionCancelled | RunCancelled):
        return True
    if isinstance(error, Mapping):
        return error.get("kind") == "cancelled"
    return getattr(error, "kind", None) == "cancelled"
