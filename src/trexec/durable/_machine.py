"""Machines, the context a step sees, and the values the engine hands out
(spec §5.1, §5.5): ``Machine``, ``Context``, ``Signal``, ``Instance``.

A machine is a row, not a process: the class only says how to run one step of
an instance; the instance itself (step, state, inbox) lives in the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import cattrs

from .. import _validate
from . import _json
from ._exceptions import DurableError
from ._outcomes import Outcome, Stop

if TYPE_CHECKING:
    from ._engine_api import Engine
    from ._records import Lease

__all__ = ["Context", "Instance", "Machine", "Signal"]


class Machine:
    """Base class of a durable machine.

    Subclasses set ``name`` (str) and ``version`` (int >= 1; default 1), optionally
    ``State`` (an attrs class: states are stored as JSON via cattrs; without it a
    state is any JSON-serializable value), and implement ``step``.

    The engine makes one object of the class per engine and calls ``step`` for
    every instance: keep per-instance data in the state, never on ``self``.
    Machines are registered by (name, version); an instance always resumes on the
    version it started with (spec §5.1.3).
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    State: ClassVar[type[Any] | None] = None
    #: How many instances sharing a ``concurrency_key`` may run at once, across
    #: every worker and process (spec §11.2; an int >= 1).
    concurrency_limit: ClassVar[int] = 1

    async def step(self, step: str, ctx: Context) -> Outcome:
        """Run ``step`` of the instance described by ``ctx``; return an Outcome.

        Runs at least once per committed outcome: a crash before the commit
        re-runs it (spec §5.1.2), so external side effects should be idempotent.
        Raising (any ``Exception``) or returning a non-outcome calls ``handle``.
        """
        raise NotImplementedError(f"{type(self).__name__}.step is not implemented")

    async def handle(self, error: Exception, ctx: Context) -> Outcome:
        """Called when ``step`` raised ``error`` (or returned a non-outcome, or a
        state that cannot be stored); ``ctx.awaited``/``all``/``children`` are
        empty. Default: ``Stop(error)``. If ``handle`` raises, the instance stops
        with that error (spec §5.4.7)."""
        return Stop(error)

    async def cancelled(self, instance: Instance, engine: Engine) -> None:
        """Called after an instance of this machine is cancelled (spec §5.4.11):
        by the engine whose step of it was running (once the step returns and its
        outcome is discarded), or, when no step of it ran, by the engine whose
        ``cancel`` did it. ``instance`` is the cancelled instance; its ``state`` is
        the state its last step reached (the discarded outcome's, if it had one).

        Best effort, for clean-up that tolerates being skipped or repeated: it is
        not called when that engine's process dies first, nor for a cancel made
        where this machine does not run (the dashboard, ``trexec cancel``) of an
        instance no step of which was running. An exception is logged. The
        default does nothing."""
        return None


def check_machine(name: str, value: object) -> type[Machine]:
    """A Machine subclass with a valid ``name`` and ``version`` (spec §5.1.3)."""
    if not isinstance(value, type) or not issubclass(value, Machine):
        _validate.fail(name, value, "a durable.Machine subclass")
    machine_name = getattr(value, "name", None)
    if not isinstance(machine_name, str) or not machine_name:
        _validate.fail(f"{value.__name__}.name", machine_name, "a non-empty str")
    version = value.version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        _validate.fail(f"{value.__name__}.version", version, "an int >= 1")
    state_cls = value.State
    if state_cls is not None and not attrs.has(state_cls):
        _validate.fail(f"{value.__name__}.State", state_cls, "an attrs class or None")
    limit = value.concurrency_limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        _validate.fail(f"{value.__name__}.concurrency_limit", limit, "an int >= 1")
    return value


@attrs.frozen
class Signal:
    """A signal in an instance's inbox: its ``id``, ``name`` and decoded ``payload``."""

    id: int
    name: str
    payload: Any = None


@attrs.frozen
class Instance:
    """A durable instance as stored (spec §5.1). ``state`` is the machine's State
    object when the engine knows the machine, else the decoded JSON; ``result``
    is set once ``done``, ``error`` once ``stopped``. While parked (``awaiting``,
    ``waiting_children``) ``step`` is the step it will run next."""

    id: int
    machine: str
    version: int
    step: str
    status: str
    state: Any
    result: Any
    error: str | None
    attempt: int
    key: str | None = None
    parent_id: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Claim order among runnable instances, higher first (spec §11.1).
    priority: int = 0
    #: At most the machine's ``concurrency_limit`` instances sharing it run at once (§11.2).
    concurrency_key: str | None = None


# Frozen, with a __dict__ instead of slots: a frozen slotted class sets each of
# its 13 fields through object.__setattr__; this __init__ writes the dict
# directly (0.7 against 1.2 us, and one is built for every step: -16% of the
# time of a no-op step from job to commit, measured).
@attrs.frozen(slots=False)
class Context:
    """What a step sees (spec §5.5).

    ``awaited``: the inbox signals whose name is among those the instance awaited
    (empty after an await timeout); ``all``: the whole inbox; ``children``: one
    :class:`Instance` per child of this instance. ``engine`` lets a step signal or
    insert other instances: such side effects are at least once (the step may run
    again), so give signals a ``dedup_key``.
    """

    id: int
    machine: str
    version: int
    step: str
    attempt: int
    state: Any
    awaited: tuple[Signal, ...] = ()
    all: tuple[Signal, ...] = ()
    children: tuple[Instance, ...] = ()
    key: str | None = None
    parent_id: int | None = None
    engine: Engine | None = attrs.field(default=None, repr=False, eq=False)
    _lease: Lease | None = attrs.field(default=None, repr=False, eq=False)

    async def save(self, state: Any) -> bool:
        """Store ``state`` as the instance's state now, while the step goes on (a
        checkpoint, spec §5.5.12). If the step's outcome is never committed (a
        crash, a lost lease), the step runs again from ``state``; its outcome, once
        committed, replaces it. Durable when it returns True; returns False, storing
        nothing, when the lease is lost (the step's outcome will be discarded).

        Raises :class:`~trexec.InvalidArgument` for a state the machine cannot
        store, and :class:`~trexec.durable.DurableError` outside a running step.
        """
        if self.engine is None or self._lease is None:
            raise DurableError("ctx.save: expected the context of a running step")
        return await self.engine._save_state(self.machine, self.version, self._lease, state)


def _converts_itself(cls: Any) -> bool:
    return isinstance(cls, type) and hasattr(cls, "__trexec_from_json__")


#: Values ``Codec.dumps`` hands to ``json`` directly (cattrs would return them as they are).
_JSON_TYPES = frozenset({dict, list, str, int, float, bool})


class Codec:
    """States, results and payloads to and from JSON text, via cattrs (spec §5.1.4)."""

    def __init__(self) -> None:
        self.converter = cattrs.Converter()
        # spec §5.1.4: a State class may convert itself (a fast path for big states).
        self.converter.register_structure_hook_func(
            _converts_itself, lambda data, cls: cls.__trexec_from_json__(data)
        )
        self.converter.register_unstructure_hook_func(
            _converts_itself, lambda value: value.__trexec_to_json__()
        )
        self._encode = _json.dumps

    def dumps(self, value: Any, expected: type[Any] | None = None) -> str:
        """JSON text of ``value``; raises TypeError/ValueError if it cannot be stored."""
        if expected is not None and not isinstance(value, expected):
            raise TypeError(f"state={value!r}: expected an instance of {expected.__qualname__}")
        if value is None:
            return "null"
        try:
            if expected is None and type(value) in _JSON_TYPES:
                # Plain JSON needs no cattrs pass; anything json cannot take
                # (a set, an attrs object inside) goes through cattrs as before.
                try:
                    return self._encode(value)
                except TypeError:
                    pass
            if _converts_itself(type(value)):  # the hook below, without cattrs' dispatch
                return self._encode(value.__trexec_to_json__())
            return self._encode(self.converter.unstructure(value))
        except RecursionError:
            # Not a crash: a value nested too deeply is one that cannot be stored.
            raise ValueError("the value is nested too deeply to store as JSON") from None

    def as_state(self, value: Any, expected: type[Any] | None) -> Any:
        """A dict structured into ``expected`` (an attrs ``State``) through cattrs,
        as action params are (spec §5.3.1); anything else unchanged. Raises
        cattrs' ``BaseValidationError`` (or the class's own TypeError/ValueError)."""
        if expected is None or isinstance(value, expected) or not isinstance(value, Mapping):
            return value
        return self.converter.structure(value, expected)

    def loads(self, text: str | None, expected: type[Any] | None = None) -> Any:
        if text is None:
            return None
        try:
            data = None if text == "null" else _json.loads(text)
            if expected is None:
                return data
            if _converts_itself(expected):  # the hook below, without cattrs' dispatch
                return expected.__trexec_from_json__(data)
            return self.converter.structure(data, expected)
        except RecursionError:
            raise ValueError("the stored JSON is nested too deeply to load") from None
