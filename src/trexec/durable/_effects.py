"""Outcomes with effects: a step's outcome plus the signals and inserts its
commit writes in the same transaction (spec §5.4.10).

This is the engine's building block for extensions that coordinate several
instances (workflows: a step's result and its report to the run in one commit;
a run's re-plan, its dispatches and its parking in one commit). It is not part
of the public outcome set: :class:`WithEffects` wraps one public outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ._outcomes import Await, Done, Outcome, Stop

if TYPE_CHECKING:
    from ._insert import InsertSpec


def _tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(items)


@attrs.frozen
class SignalSpec:
    """A signal to the live instance ``target`` (an id or a business key; spec
    §5.6 rules: its name in the target's awaits wakes it; ``dedup_key`` drops a
    repeat)."""

    target: int | str
    name: str
    payload: Any = None
    dedup_key: str | None = None


@attrs.frozen
class WithEffects(Outcome):
    """``outcome``, committed together with ``signals`` and ``inserts``.

    ``consume`` (an :class:`Await` only) deletes the awaited signals the step
    received before parking, as a ``Next`` would (spec §5.6): a step can re-park
    in one commit. ``fallback`` is committed instead (without effects) if a
    signal's target is no longer live; an insert whose key a live instance holds
    is skipped. With ``has_state``, ``state`` (a ``Done`` or ``Stop`` only) is
    stored as the instance's final state, so a finished instance shows it
    without a last ``Next``; otherwise the last committed state stays.
    """

    kind: ClassVar[str] = "effects"
    outcome: Outcome
    signals: tuple[SignalSpec, ...] = attrs.field(default=(), converter=_tuple)
    inserts: tuple[InsertSpec, ...] = attrs.field(default=(), converter=_tuple)
    consume: bool = False
    fallback: Outcome | None = None
    state: Any = attrs.field(default=None, kw_only=True)
    has_state: bool = attrs.field(default=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.outcome, WithEffects) or isinstance(self.fallback, WithEffects):
            raise TypeError("WithEffects wraps a plain outcome")
        if self.consume and not isinstance(self.outcome, Await):
            raise TypeError("WithEffects(consume=True) wraps an Await")
        if self.has_state and not isinstance(self.outcome, Done | Stop):
            raise TypeError("WithEffects(state=...) wraps a Done or a Stop")
