"""Running one claimed step to the commit it implies (spec §5.4, §5.5), like
GenDurable.Executor: load the state, snapshot the inbox, call ``step``, route an
error to ``handle``, validate and serialize the outcome.

Nothing here touches the store: the engine commits the returned ``Commit``.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, assert_never

import attrs

from .. import _instrument, _validate, telemetry
from ._effects import WithEffects
from ._limits import MAX_DELAY, MAX_WEIGHT
from ._machine import Codec, Context, Instance, Machine, Signal
from ._outcomes import Await, Done, Next, Outcome, Retry, ScheduleChildren, Stop, reason_text
from ._records import (
    AwaitCommit,
    ChildrenCommit,
    Commit,
    DoneCommit,
    Effects,
    InstanceRecord,
    Job,
    NewInstance,
    NextCommit,
    RetryCommit,
    SignalEffect,
    StopCommit,
)

if TYPE_CHECKING:
    from ._engine_api import Engine

logger = logging.getLogger("trexec.durable")


class Missing(enum.Enum):
    """Not looked up by the caller (a ``state_cls`` of None means "no State")."""

    MISSING = enum.auto()


MISSING = Missing.MISSING
#: The outcomes ``StepRunner._encode`` takes as they are (no ``WithEffects``).
_PLAIN = frozenset({Next, Retry, Await, ScheduleChildren, Done, Stop})


def _plain_name(name: str) -> bool:
    # The common case, without the UTF-8 encode of _validate.storable_text.
    return name.isascii() and "\x00" not in name


def _storable(commit: Commit) -> Commit:
    """spec §5.1.4: a value some store cannot hold is a step error on every store,
    never a batch of commits the database rejects on each retry (the completer
    would retry it forever and no outcome after it would commit)."""
    if type(commit) is DoneCommit:
        return commit
    if type(commit) is NextCommit and commit.weight <= MAX_WEIGHT:
        # The path of almost every step: nothing to refuse.
        rate_limit = commit.rate_limit
        if _plain_name(commit.step) and (rate_limit is None or _plain_name(rate_limit)):
            return commit
    names: list[str | None] = []
    delay = 0.0
    match commit:
        case NextCommit():
            names += [commit.step, commit.rate_limit]
            if commit.weight > MAX_WEIGHT:
                raise ValueError(f"weight {commit.weight} is above {MAX_WEIGHT}")
        case RetryCommit():
            delay = commit.delay
        case AwaitCommit():
            names += [commit.step, *commit.awaits]
            delay = commit.timeout or 0.0
        case ChildrenCommit():
            names.append(commit.step)
            names += [text for child in commit.children for text in (child.step, child.key)]
        case DoneCommit() | StopCommit():
            pass
        case _:  # pragma: no cover
            assert_never(commit)
    if any(name is not None and not _validate.storable_text(name) for name in names):
        raise ValueError(
            f"a {commit.kind} outcome names a step, key or signal with a NUL or a lone surrogate"
        )
    if delay > MAX_DELAY:
        raise ValueError(f"a delay or timeout above {MAX_DELAY:g} seconds cannot be stored")
    return commit


class Registry:
    """Machine classes by (name, version) (spec §5.1.3): those this engine runs,
    plus any it has inserted or seen as a child (to decode their states)."""

    def __init__(self) -> None:
        self.classes: dict[tuple[str, int], type[Machine]] = {}

    def add(self, cls: type[Machine]) -> tuple[str, int]:
        key = (cls.name, cls.version)
        known = self.classes.get(key)
        if known is not None and known is not cls:
            _validate.fail(
                "machine",
                cls,
                f"a single class per (name, version); {key!r} is already {known.__qualname__}",
            )
        self.classes[key] = cls
        return key

    def state_class(self, machine: str, version: int) -> type[Any] | None:
        cls = self.classes.get((machine, version))
        return None if cls is None else cls.State


def _as_json(codec: Codec, text: str | None) -> Any:
    # get/wait/ls must show a poisoned row, not fail on it (spec §5.1.5).
    try:
        return codec.loads(text)
    except ValueError:  # JSONDecodeError, or nested too deeply
        return text


def to_instance(codec: Codec, registry: Registry, record: InstanceRecord) -> Instance:
    """The public view of a stored row; a state its class cannot load is left as
    JSON, and a state or result that is not even JSON (poison data) as its text."""
    state_cls = registry.state_class(record.machine, record.version)
    try:
        state = codec.loads(record.state, state_cls)
    except Exception:
        state = _as_json(codec, record.state)
    return Instance(
        id=record.id,
        machine=record.machine,
        version=record.version,
        step=record.step,
        status=record.status,
        state=state,
        result=_as_json(codec, record.result),
        error=record.error,
        attempt=record.attempt,
        key=record.key,
        parent_id=record.parent_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
        priority=record.priority,
        concurrency_key=record.concurrency_key,
    )


class StepRunner:
    """Turns a claimed :class:`Job` into the :class:`Commit` its step's outcome implies."""

    def __init__(
        self,
        engine: Engine,
        machines: Mapping[tuple[str, int], Machine],
        rate_limit_names: frozenset[str],
    ) -> None:
        self.engine = engine
        self.codec = engine._codec
        self.registry = engine._registry
        self.machines = machines
        self.rate_limit_names = rate_limit_names

    @functools.cached_property
    def hooked(self) -> frozenset[tuple[str, int]]:
        """The machines that implement ``Machine.cancelled`` (spec §5.4.11)."""
        return frozenset(
            key for key, m in self.machines.items() if type(m).cancelled is not Machine.cancelled
        )

    async def cancelled(self, id_: int, discarded: Commit | None = None) -> None:
        """Call the ``cancelled`` hook of the cancelled instance ``id_``'s machine,
        if this engine runs it and it has one (spec §5.4.11); ``discarded``: the
        outcome the cancel discarded, whose state is the one the step reached."""
        try:
            record = await self.engine.store.get(id_)
            key = None if record is None else (record.machine, record.version)
            if record is None or key not in self.hooked:
                return
            instance = to_instance(self.codec, self.registry, record)
            text = _state_text(discarded)
            if text is not None:
                state = self.codec.loads(text, self.registry.state_class(*key))
                instance = attrs.evolve(instance, state=state)
            await self.machines[key].cancelled(instance, self.engine)
        except Exception as exc:  # spec §5.4.11: logged, never fatal
            logger.warning("cancelled hook of instance %s failed: %r", id_, exc, exc_info=exc)

    def context(
        self, job: Job, state_cls: type[Any] | Missing | None = MISSING
    ) -> tuple[Context, Exception | None]:
        """The step's ctx; a state that cannot be loaded is returned as the error
        to hand to ``handle`` (the ctx then has ``state=None``). ``state_cls``:
        the machine's State class, if the caller looked it up already."""
        codec = self.codec
        if state_cls is MISSING:
            state_cls = self.registry.state_class(job.machine, job.version)
        signals: tuple[Signal, ...] = ()
        awaited: tuple[Signal, ...] = ()
        children: tuple[Instance, ...] = ()
        error: Exception | None = None
        if job.inbox:
            try:
                signals = tuple(Signal(s.id, s.name, codec.loads(s.payload)) for s in job.inbox)
            except ValueError as exc:
                # Poison data (spec §5.1.5): handle gets it once, never a crashed worker.
                error = ValueError(f"a signal payload in the inbox cannot be decoded: {exc}")
            awaits = job.awaits
            awaited = tuple(s for s in signals if s.name in awaits)
        if job.children:
            children = tuple(to_instance(codec, self.registry, r) for r in job.children)
        try:
            state = codec.loads(job.state, state_cls)
        except Exception as exc:
            state, error = None, error or exc
        # Positional, in Context's field order: this runs for every step.
        ctx = Context(
            job.id, job.machine, job.version, job.step, job.attempt, state, awaited, signals,
            children, job.key, job.parent_id, self.engine, job.lease,
        )  # fmt: skip
        return ctx, error

    def run(self, job: Job) -> Coroutine[Any, Any, tuple[Commit, str]]:
        """Run the job's step (or ``handle``) to a commit; also return the step's
        outcome kind for telemetry. ``trio.Cancelled`` and ``KeyboardInterrupt``
        propagate: they are not step errors (spec §5.4.7). Returns the coroutine
        to await: not instrumented, the step's own, with no frame around it."""
        if _instrument.hooks is None:  # spec §14.1: not instrumented costs this test only
            return self._run(job)
        return self._run_instrumented(job, _instrument.hooks)

    async def _run_instrumented(self, job: Job, hooks: _instrument.Hooks) -> tuple[Commit, str]:
        with hooks.step(
            instance_id=job.id, machine=job.machine, step=job.step, attempt=job.attempt,
            trace=job.trace_context,
        ) as span:  # fmt: skip
            commit, kind = await self._run(job)
            span.outcome(kind)
            return commit, kind

    async def _run(self, job: Job) -> tuple[Commit, str]:
        key = (job.machine, job.version)
        machine = self.machines[key]
        state_cls = machine.State
        ctx, error = self.context(job, state_cls)
        if error is None:
            try:
                outcome = await machine.step(job.step, ctx)
                # spec §5.6: a progressing outcome consumes the awaited ids received.
                consumed = tuple(s.id for s in ctx.awaited) if ctx.awaited else ()
                if type(outcome) in _PLAIN:
                    commit = _storable(self._encode(job, outcome, consumed, state_cls))
                else:
                    commit = self.encode(job, outcome, consumed)
                return commit, commit.kind
            except Exception as exc:  # spec §5.4.7: raised, non-outcome, unstorable
                error = exc
        logger.warning(
            "durable step %s.%s of instance %s failed: %r",
            job.machine,
            job.step,
            job.id,
            error,
            exc_info=error,
        )
        return await self.handle(job, machine, ctx, error)

    async def handle(
        self, job: Job, machine: Machine, ctx: Context, error: Exception
    ) -> tuple[Commit, str]:
        """``handle(error, ctx)`` with an empty inbox view, as the seed does; if it
        raises or its outcome cannot be stored, the instance stops (spec §5.4.7)."""
        handle_ctx = attrs.evolve(ctx, awaited=(), all=(), children=())
        try:
            outcome = await machine.handle(error, handle_ctx)
            return self.encode(job, outcome, ()), outcome.kind
        except Exception as exc:
            logger.warning("durable handle of instance %s raised: %r", job.id, exc)
            return StopCommit(job.lease, reason_text(exc)), "stop"

    def encode(self, job: Job, outcome: Any, consumed: tuple[int, ...]) -> Commit:
        """Validate ``outcome`` and serialize it; raises TypeError/ValueError (a step
        error) for a non-outcome or a value that cannot be stored (spec §5.1.4)."""
        if not isinstance(outcome, WithEffects):
            return _storable(self._encode(job, outcome, consumed))
        # spec §5.4.10: the effects are written by the same commit.
        fallback = None
        if outcome.fallback is not None:
            fallback = _storable(self._encode(job, outcome.fallback, consumed))
        dumps = self.codec.dumps
        signals = tuple(
            SignalEffect(s.target, s.name, dumps(s.payload), s.dedup_key) for s in outcome.signals
        )
        inserts = tuple(self.engine._new(spec) for spec in outcome.inserts)
        if any("\x00" in (text or "") for s in signals for text in (s.name, s.dedup_key)):
            raise ValueError("a signal effect names a signal or dedup key with a NUL")
        state = None
        if outcome.has_state:
            state_cls = self.registry.state_class(job.machine, job.version)
            state = dumps(outcome.state, state_cls)
        effects = Effects(signals, inserts, fallback, state)
        # Built with its effects (no attrs.evolve of a built commit: a run's every
        # step has effects).
        return _storable(
            self._encode(job, outcome.outcome, consumed, effects=effects, consume=outcome.consume)
        )

    def _encode(
        self,
        job: Job,
        outcome: Any,
        consumed: tuple[int, ...],
        state_cls: type[Any] | Missing | None = MISSING,
        *,
        effects: Effects | None = None,
        consume: bool = False,
    ) -> Commit:
        """The commit of a plain outcome, with ``effects``; ``consume``: an
        ``Await`` consumes the awaited signals received (``WithEffects.consume``)."""
        if state_cls is MISSING:
            state_cls = self.registry.state_class(job.machine, job.version)
        dumps = self.codec.dumps
        lease = job.lease
        if isinstance(outcome, Next):  # almost every step: tested first
            if outcome.rate_limit is not None:
                self._check_rate_limit(job, outcome.rate_limit)
            state = dumps(outcome.state, state_cls)
            return NextCommit(
                lease, outcome.step, state, consumed, outcome.rate_limit, outcome.weight,
                effects=effects,
            )  # fmt: skip
        if not isinstance(outcome, Outcome):
            raise TypeError(
                f"step {job.step!r} of {job.machine!r} returned {outcome!r}:"
                " expected a durable outcome (Next, Retry, Await, ScheduleChildren, Done, Stop)"
            )
        if isinstance(outcome, Retry):
            state = dumps(outcome.state, state_cls)
            return RetryCommit(lease, state=state, delay=outcome.delay, effects=effects)
        if isinstance(outcome, Await):
            return AwaitCommit(
                lease,
                step=outcome.next_step,
                state=dumps(outcome.state, state_cls),
                awaits=outcome.names,
                timeout=outcome.timeout,
                consumed=consumed if consume else (),
                effects=effects,
            )
        if isinstance(outcome, ScheduleChildren):
            children = []
            for child in outcome.children:
                self.registry.add(child.machine)
                children.append(
                    NewInstance(
                        machine=child.machine.name,
                        version=child.machine.version,
                        step=child.step,
                        state=dumps(
                            self.codec.as_state(child.state, child.machine.State),
                            child.machine.State,
                        ),
                        key=child.key,
                        priority=child.priority,
                        concurrency_key=child.concurrency_key,
                        concurrency_limit=child.machine.concurrency_limit,
                        trace_context=None
                        if _instrument.hooks is None
                        else _instrument.hooks.carrier(),
                    )
                )
            return ChildrenCommit(
                lease,
                step=outcome.next_step,
                state=dumps(outcome.state, state_cls),
                children=tuple(children),
                consumed=consumed,
                effects=effects,
            )
        if isinstance(outcome, Done):
            return DoneCommit(lease, dumps(outcome.result), effects=effects)
        assert isinstance(outcome, Stop)
        return StopCommit(lease, reason_text(outcome.reason), effects=effects)

    def _check_rate_limit(self, job: Job, rate_limit: str) -> None:
        name = rate_limit.split(":", 1)[0]
        if name not in self.rate_limit_names:
            # spec §5.9: an unknown name is reported, never a silent stall.
            logger.warning(
                "instance %s (%s.%s) names rate limit %r, which has no policy: not limited",
                job.id,
                job.machine,
                job.step,
                rate_limit,
            )
            telemetry.execute(
                ("trexec", "durable", "rate_limit", "unknown"),
                {"count": 1},
                {"key": rate_limit, "name": name, "id": job.id, "machine": job.machine,
                 "step": job.step},
            )  # fmt: skip


def _state_text(commit: Commit | None) -> str | None:
    # The state a discarded outcome carried (spec §5.4.11).
    if commit is None:
        return None
    if isinstance(commit, DoneCommit | StopCommit):
        return None if commit.effects is None else commit.effects.state
    return commit.state
