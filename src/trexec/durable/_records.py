"""Records the engine and a store exchange (spec §5.2).

These are the store interface's vocabulary, not the user's: states, results and
payloads are JSON *text* (the engine serializes with cattrs before calling the
store, so an unserializable state is a step error, never a store error), and
times are durations in seconds (the store reads "now" from its own clock).
"""

from __future__ import annotations

from typing import ClassVar, Literal, NamedTuple

import attrs

#: Every status an instance can have (spec §5.1).
Status = Literal[
    "scheduled", "running", "awaiting", "waiting_children", "done", "stopped", "cancelled"
]
STATUSES: tuple[str, ...] = (
    "scheduled",
    "running",
    "awaiting",
    "waiting_children",
    "done",
    "stopped",
    "cancelled",
)
#: Statuses an instance never leaves (spec §5.1).
TERMINAL: frozenset[str] = frozenset({"done", "stopped", "cancelled"})

#: What a step's outcome asks the store to do (spec §5.4).
OutcomeKind = Literal["next", "retry", "await", "children", "done", "stop"]

#: What ``Store.complete`` did with one outcome (spec §5.8).
#: ``applied``: committed; ``stale``: the lease was lost (another claim holds or
#: finished the row), nothing changed; ``cancelled``: the instance was
#: cancelled while the step ran, the outcome is discarded; ``duplicate_key``: a
#: child's business key is taken by a live instance, nothing of this outcome was
#: stored (the engine routes it to ``handle``).
CommitStatus = Literal["applied", "stale", "cancelled", "duplicate_key"]


@attrs.frozen
class NewInstance:
    """One instance to insert (spec §5.3). ``state`` is JSON text."""

    machine: str
    version: int
    step: str
    state: str
    scheduled_in: float = 0.0
    key: str | None = None
    parent_id: int | None = None
    #: Claim order, higher first (spec §11.1).
    priority: int = 0
    #: At most ``concurrency_limit`` instances sharing the key run at once (spec §11.2).
    concurrency_key: str | None = None
    concurrency_limit: int = 1
    #: The trace context active at insert (spec §14.2), as the tracer wrote it.
    trace_context: str | None = None


@attrs.frozen
class SignalRecord:
    """One signal in an instance's inbox; ``payload`` is JSON text."""

    id: int
    name: str
    payload: str
    dedup_key: str | None = None
    created_at: float = 0.0


@attrs.frozen
class InstanceRecord:
    """A stored instance, as the store reads it. ``state``/``result`` are JSON text
    (``result`` is None until ``done``); ``awaits`` are the signal names it parked
    on; ``run_at`` is when it becomes runnable (``scheduled``) or when its await
    times out (``awaiting``), as a timestamp of the store's clock, else None."""

    id: int
    machine: str
    version: int
    step: str
    status: str
    state: str
    result: str | None
    error: str | None
    attempt: int
    key: str | None
    parent_id: int | None
    awaits: tuple[str, ...]
    pending_children: int
    run_at: float | None
    created_at: float
    updated_at: float
    priority: int = 0
    concurrency_key: str | None = None


class Lease(NamedTuple):
    """A claim the engine holds on an instance: ``token`` fences its outcome.

    A named tuple, as :class:`Job` is: a key of the engine's held dict, hashed
    and compared several times per step, in C."""

    id: int
    token: int


class Job(NamedTuple):
    """One claimed instance, with everything its step needs (spec §5.5).

    ``awaits`` is empty when the instance was woken by its await timeout (the claim
    cleared it, spec §5.6). ``inbox`` is the whole signal inbox at claim time, oldest
    first; ``children`` every instance whose parent this is, oldest first.

    A named tuple, not a frozen attrs class: one is built for every step, and
    ``Job._make`` of a tuple costs a third of a frozen class's ``__init__``
    (which sets each field through ``object.__setattr__``). Stores build it
    with ``_store_rules.job``, or ``_make`` on their hot path.
    """

    id: int
    token: int
    machine: str
    version: int
    step: str
    attempt: int
    state: str
    key: str | None
    parent_id: int | None
    awaits: tuple[str, ...]
    inbox: tuple[SignalRecord, ...]
    children: tuple[InstanceRecord, ...]
    #: The trace context stored with the instance (spec §14.2), or None.
    trace_context: str | None
    #: ``Lease(id, token)``.
    lease: Lease


@attrs.frozen
class Throttled:
    """A runnable instance a claim skipped because its rate-limit bucket was empty;
    the store postponed it by ``wait`` seconds (spec §5.9)."""

    id: int
    rate_limit: str
    wait: float


@attrs.frozen
class Claim:
    """What ``Store.claim`` returns: the claimed jobs and the throttled skips."""

    jobs: tuple[Job, ...]
    throttled: tuple[Throttled, ...] = ()


@attrs.frozen
class RateLimitPolicy:
    """A token bucket as the store applies it: ``rate`` tokens per second, holding
    at most ``burst`` (spec §5.9)."""

    rate: float
    burst: float


@attrs.frozen
class SignalEffect:
    """A signal a commit delivers in its own transaction (spec §5.4.10): as
    ``Store.deliver_signal`` would, to the live instance ``target`` (an id or a
    business key)."""

    target: int | str
    name: str
    payload: str
    dedup_key: str | None = None


@attrs.frozen
class Effects:
    """What a commit also writes, in the same transaction, when it applies
    (spec §5.4.10): ``signals`` delivered to other live instances, ``inserts``
    (keyed instances; one whose key a live instance holds is skipped, never an
    error). If a signal's target is no longer live, ``fallback`` (a commit of
    the same lease, without effects) applies instead and nothing else does;
    without a fallback that signal is dropped. ``state``: see below."""

    signals: tuple[SignalEffect, ...] = ()
    inserts: tuple[NewInstance, ...] = ()
    fallback: Commit | None = None
    #: The instance's own state, written with a ``done``/``stop`` commit (which
    #: otherwise keeps the last committed state).
    state: str | None = None

    @property
    def only_state(self) -> bool:
        """True when the commit writes nothing but its final ``state`` (a
        workflow run's end, spec §6.6.5): the stores batch it with plain ones."""
        return (
            self.state is not None
            and not self.signals
            and not self.inserts
            and self.fallback is None
        )


# --- commits: one class per outcome kind (spec §5.4) -------------------------------
#
# A tagged union: a store applies a commit with ``match commit: case NextCommit():``,
# so a field that does not belong to a kind cannot be set and mypy checks that
# every kind is handled (see ``_store_rules.assert_never``). Each is fenced by
# ``lease``; states, results and errors are JSON/text as above.


@attrs.frozen
class NextCommit:
    """``Next``: ``scheduled`` at ``step`` now; ``consumed`` signal ids deleted;
    ``rate_limit``/``weight`` stored for the claim of that step."""

    kind: ClassVar[OutcomeKind] = "next"
    lease: Lease
    step: str
    state: str
    consumed: tuple[int, ...] = ()
    rate_limit: str | None = None
    weight: int = 1
    effects: Effects | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class RetryCommit:
    """``Retry``: the same step again in ``delay`` seconds, ``attempt + 1``."""

    kind: ClassVar[OutcomeKind] = "retry"
    lease: Lease
    state: str
    delay: float = 0.0
    effects: Effects | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class AwaitCommit:
    """``Await``: parked on the signal names ``awaits`` until ``timeout`` (None:
    forever); resumes at ``step``."""

    kind: ClassVar[OutcomeKind] = "await"
    lease: Lease
    step: str
    state: str
    awaits: tuple[str, ...]
    timeout: float | None = None
    #: Awaited signal ids deleted first (spec §5.4.10: parking again after a wake).
    consumed: tuple[int, ...] = ()
    effects: Effects | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class ChildrenCommit:
    """``ScheduleChildren``: ``children`` inserted under this instance, which
    resumes at ``step`` once they are all terminal."""

    kind: ClassVar[OutcomeKind] = "children"
    lease: Lease
    step: str
    state: str
    children: tuple[NewInstance, ...] = ()
    consumed: tuple[int, ...] = ()
    effects: Effects | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class DoneCommit:
    """``Done``: terminal with ``result``."""

    kind: ClassVar[OutcomeKind] = "done"
    lease: Lease
    result: str
    effects: Effects | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class StopCommit:
    """``Stop`` (or a failing ``handle``): terminal with ``error``."""

    kind: ClassVar[OutcomeKind] = "stop"
    lease: Lease
    error: str
    effects: Effects | None = attrs.field(default=None, kw_only=True)


#: One step outcome to commit (spec §5.4).
Commit = NextCommit | RetryCommit | AwaitCommit | ChildrenCommit | DoneCommit | StopCommit
#: The kinds that end an instance.
FinishCommit = DoneCommit | StopCommit


@attrs.frozen
class Release:
    """A held instance to hand back unfinished (spec §5.5.4, §5.8): ``attempted`` says its
    step started (then ``attempt`` grows by one, as when the reaper reclaims it)."""

    lease: Lease
    attempted: bool


@attrs.frozen
class Delivery:
    """What ``Store.deliver_signal`` did: the signal's id, its target's id, and
    whether an earlier signal with the same ``dedup_key`` made this a duplicate."""

    signal_id: int
    instance_id: int
    duplicate: bool


@attrs.frozen
class Reclaimed:
    """An instance the reaper returned to ``scheduled`` after its lease expired."""

    id: int
    machine: str
    step: str
    attempt: int


@attrs.frozen
class EngineRecord:
    """A live engine's announcement (spec §5.16): who it is, which machines
    (``name@version``) it runs, which instance ids it held at its last
    heartbeat; times are the store's clock."""

    id: str
    host: str
    pid: int
    machines: tuple[str, ...]
    holding: tuple[int, ...]
    started_at: float
    heartbeat_at: float
    expires_at: float
