"""Workflow definitions: :class:`Workflow`, :class:`Step`, the ``ctx`` a step
function receives (spec §6.1-§6.3), and the deprecated ``Backoff(min, max)``.

A definition is checked completely when it is built: a workflow that constructs
is one the engine can run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .. import _validate
from .._backoff import Backoff as ActionBackoff
from ._exceptions import InvalidWorkflow

if TYPE_CHECKING:
    from ..durable import Engine, InsertSpec, Machine

__all__ = ["Backoff", "Step", "StepContext", "StepFailure", "Workflow"]

StepFn = Callable[["StepContext"], Awaitable[Any]]
#: Where a workflow's first attempts run (spec §6.6).
EXECUTIONS = ("inline", "instances")


def _fail(name: str, value: object, expected: str) -> None:
    raise InvalidWorkflow(f"{name}={value!r}: expected {expected}")


def Backoff(min: float = 1.0, max: float = 60.0) -> ActionBackoff:
    """Deprecated: use :class:`trexec.Backoff` (one backoff type for actions and
    steps). ``workflows.Backoff(min, max)`` returns ``trexec.Backoff(initial=min,
    factor=2.0, max=max)``: the ``n``-th retry waits ``min * 2**(n-1)`` seconds,
    capped at ``max`` (spec §6.4), and warns with a :class:`DeprecationWarning`.

    Raises :class:`InvalidWorkflow` unless ``0 <= min <= max`` (finite seconds).
    """
    warnings.warn(
        "workflows.Backoff(min, max) is deprecated: use trexec.Backoff(initial=min, max=max)",
        DeprecationWarning,
        stacklevel=2,
    )
    for name, value in (("min", min), ("max", max)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(f"Backoff.{name}", value, "a number of seconds >= 0")
        if math.isnan(value) or math.isinf(value) or value < 0:
            _fail(f"Backoff.{name}", value, "a finite number of seconds >= 0")
    if max < min:
        _fail("Backoff.max", max, f"seconds >= min ({min!r})")
    return ActionBackoff(initial=float(min), factor=2.0, max=float(max))


_DEFAULT_BACKOFF = ActionBackoff(initial=1.0, factor=2.0, max=60.0)  # spec §6.4


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(what, value, "a non-empty str")
    assert isinstance(value, str)
    if "/" in value:
        # Names make up business keys ("<run>/<step>"); spec §6.1.
        _fail(what, value, "a name without '/'")
    return value


@attrs.frozen(eq=False)
class Step:
    """One step of a :class:`Workflow`.

    ``fn`` is ``async def fn(ctx) -> result`` (``ctx`` a :class:`StepContext`); the
    result must be JSON-serializable. ``after`` names the steps that must finish
    first (the step is a join when it names several). A failed attempt is retried
    up to ``retries`` times, waiting ``backoff.delay(n)`` before retry ``n``
    (``backoff`` is a :class:`trexec.Backoff`; the default waits 1 s, doubling up
    to 60 s).
    ``compensate`` (``async def compensate(ctx)``, ``ctx.error`` set) undoes the
    step when a later step fails or the run is cancelled; it follows the same
    retry policy.

    Raises :class:`InvalidWorkflow` naming the bad field.
    """

    name: str
    fn: StepFn
    after: Sequence[str] = ()
    retries: int = 0
    backoff: ActionBackoff = _DEFAULT_BACKOFF
    compensate: StepFn | None = None

    def __attrs_post_init__(self) -> None:
        _check_name("Step.name", self.name)
        # spec §6.1: a sync fn would run, side effects and all, then fail at `await`.
        if not _validate.is_async_callable(self.fn):
            _fail(f"Step({self.name!r}).fn", self.fn, "an async callable fn(ctx)")
        after = self.after
        if isinstance(after, str) or not isinstance(after, Iterable):
            _fail(f"Step({self.name!r}).after", after, "a list of step names")
        after = tuple(after)
        for dep in after:
            _check_name(f"Step({self.name!r}).after item", dep)
        if len(set(after)) != len(after):
            _fail(f"Step({self.name!r}).after", list(after), "step names without duplicates")
        if self.name in after:
            _fail(f"Step({self.name!r}).after", list(after), "steps other than the step itself")
        object.__setattr__(self, "after", after)
        retries = self.retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            _fail(f"Step({self.name!r}).retries", retries, "an int >= 0")
        if not isinstance(self.backoff, ActionBackoff):
            expected = "a trexec.Backoff"
            _fail(f"Step({self.name!r}).backoff", self.backoff, expected)
        if self.compensate is not None and not _validate.is_async_callable(self.compensate):
            _fail(f"Step({self.name!r}).compensate", self.compensate, "an async callable or None")

    @property
    def attempts(self) -> int:
        """The most attempts the step makes: ``retries + 1``."""
        return self.retries + 1


@attrs.frozen(eq=False)
class Workflow:
    """A named graph of :class:`Step`\\ s, run on the durable engine (spec §6).

    Steps whose dependencies are all done run at the same time; a step runs as soon
    as *its* dependencies are done. ``version`` is the durable machine version of
    its runs (bump it when the graph changes while runs are in flight).

    ``execution`` says where first attempts run (spec §6.6): ``"inline"`` (the
    default) in the run's own instance, the steps that became ready together
    running at the same time in the worker that holds the run, each one's result
    committed with the run's step table before a successor starts (but see
    ``commit_window``); or ``"instances"``: one step instance per step, claimed
    by any worker of any process (spread a fan-out of heavy steps over many
    machines). Retries and compensations always run in step instances.

    ``commit_window`` (seconds, default 0.01; inline runs only, spec §6.6.6): when
    the steps of an inline run finish within that long of its engine step's
    start, the steps they made ready run in the same engine step, before the
    commit: a chain of quick steps costs one commit, not one per step. A crash
    re-runs what that commit would have saved (at least once, as always), so the
    window bounds the work a crash can repeat. ``0`` commits after every group.

    Raises :class:`InvalidWorkflow` for a bad name, no steps, duplicate step names,
    an ``after`` naming an unknown step, a cycle (naming the steps in it), an
    ``execution`` that is not one of the two, or a ``commit_window`` that is not
    a finite number of seconds >= 0.
    """

    name: str
    steps: Sequence[Step]
    version: int = 1
    execution: Literal["inline", "instances"] = attrs.field(default="inline", kw_only=True)
    commit_window: float = attrs.field(default=0.01, kw_only=True)
    _by_name: dict[str, Step] = attrs.field(init=False, repr=False)
    _order: tuple[str, ...] = attrs.field(init=False, repr=False)
    _after: tuple[tuple[str, tuple[str, ...]], ...] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_name("Workflow.name", self.name)
        if ":" in self.name:
            # Machine names are "workflow:<name>" and "workflow:<name>:step": a ':'
            # would let one workflow's run machine be another's step machine (§6.1).
            _fail("Workflow.name", self.name, "a name without ':'")
        steps = self.steps
        if isinstance(steps, str | Step) or not isinstance(steps, Iterable):
            _fail(f"Workflow({self.name!r}).steps", steps, "a list of workflows.Step")
        steps = tuple(steps)
        if not steps:
            _fail(f"Workflow({self.name!r}).steps", list(steps), "at least one Step")
        by_name: dict[str, Step] = {}
        for step in steps:
            if not isinstance(step, Step):
                _fail(f"Workflow({self.name!r}).steps item", step, "a workflows.Step")
            if step.name in by_name:  # spec §6.1
                raise InvalidWorkflow(
                    f"Workflow({self.name!r}): duplicate step name {step.name!r}: "
                    "expected unique step names"
                )
            by_name[step.name] = step
        for step in steps:
            unknown = [dep for dep in step.after if dep not in by_name]
            if unknown:  # spec §6.1
                raise InvalidWorkflow(
                    f"Workflow({self.name!r}): step {step.name!r} runs after unknown "
                    f"step(s) {unknown!r}: expected names among {sorted(by_name)!r}"
                )
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            _fail(f"Workflow({self.name!r}).version", self.version, "an int >= 1")
        if self.version < 1:
            _fail(f"Workflow({self.name!r}).version", self.version, "an int >= 1")
        if self.execution not in EXECUTIONS:  # spec §6.6
            _fail(f"Workflow({self.name!r}).execution", self.execution, "'inline' or 'instances'")
        window = self.commit_window
        if (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not math.isfinite(window)
            or window < 0
        ):  # spec §6.6.6
            _fail(f"Workflow({self.name!r}).commit_window", window, "a number of seconds >= 0")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "_by_name", by_name)
        order = _topological_order(self.name, steps)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_after", tuple((n, tuple(by_name[n].after)) for n in order))

    def step(self, name: str) -> Step:
        """The step called ``name``; raises :class:`InvalidWorkflow` if there is none."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise InvalidWorkflow(
                f"step={name!r}: expected a step of workflow {self.name!r}, "
                f"one of {sorted(self._by_name)!r}"
            ) from None

    # --- durable.Extension and durable.RunStarter (spec §5.5.10, §6.2) ---------

    def engine_machines(self) -> list[type[Machine]]:
        """The durable machines that run this workflow (its run and step
        machines, the same classes every call); ``open_engine(workflows=[wf])``
        runs them."""
        from ._engine_hooks import machines_for

        return machines_for([self])

    def engine_tasks(self, engine: Engine) -> tuple[Callable[[], Awaitable[object]], ...]:
        """The engine's saver of inline outcomes (spec §6.6.6), one per engine."""
        if self.execution != "inline" or self.commit_window == 0:
            return ()
        from ._saver import saver_tasks

        return saver_tasks(engine)

    def explain_instance(self, instance: Any) -> str | None:
        """``Engine.explain``'s hook (spec §5.16): what a run of this workflow
        waits for (:func:`~trexec.workflows.explain_run`), else None."""
        from ._describe import explain_run

        if instance.machine != f"workflow:{self.name}":
            return None
        return explain_run(instance)

    def run_specs(
        self,
        input: Any,
        *,
        schedule_in: float | None = None,
        key: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
    ) -> list[InsertSpec]:
        """The instances that start a run of this workflow with ``input``, the
        run first (the ``durable.RunStarter`` protocol, spec §5.5.10): what
        ``engine.start_workflow`` inserts, in one transaction (spec §6.7.4)."""
        from ._engine_hooks import run_specs

        return run_specs(
            self,
            input,
            schedule_in=schedule_in,
            key=key,
            priority=priority,
            concurrency_key=concurrency_key,
        )

    @property
    def step_names(self) -> tuple[str, ...]:
        """Step names in a dependency order (each after the steps it runs after)."""
        return self._order

    @property
    def dependencies(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``(step, the steps it runs after)`` for every step, in :attr:`step_names`
        order (what the run plans with at every step)."""
        return self._after

    @property
    def entry_steps(self) -> tuple[str, ...]:
        """The steps with no dependency: what a new run starts with."""
        return tuple(s.name for s in self.steps if not s.after)


def _topological_order(workflow: str, steps: tuple[Step, ...]) -> tuple[str, ...]:
    # spec §6.1: Kahn's algorithm; what is left over lies on or behind a cycle.
    indegree = {s.name: len(s.after) for s in steps}
    dependents: dict[str, list[str]] = {s.name: [] for s in steps}
    for s in steps:
        for dep in s.after:
            dependents[dep].append(s.name)
    ready = [s.name for s in steps if not s.after]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for nxt in dependents[name]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if len(order) != len(steps):
        cycle = _find_cycle({s.name: s.after for s in steps if s.name not in order})
        raise InvalidWorkflow(
            f"Workflow({workflow!r}): dependency cycle {' -> '.join(cycle)}: "
            "expected `after` to form an acyclic graph"
        )
    return tuple(order)


def _find_cycle(after: Mapping[str, Sequence[str]]) -> list[str]:
    # Every node left here has a dependency left here, so walking back always loops.
    node = next(iter(after))
    seen: list[str] = []
    while node not in seen:
        seen.append(node)
        node = next(dep for dep in after[node] if dep in after)
    cycle = [*seen[seen.index(node) :], node]
    cycle.reverse()  # print in execution order: a -> b means b runs after a
    return cycle


@attrs.frozen
class StepFailure:
    """Why a run is being compensated: the step that failed (``None`` when the run
    was cancelled), the error's type name and message. It is what a compensation
    sees as ``ctx.error`` (the original exception does not survive a restart)."""

    step: str | None
    type: str
    message: str

    def __str__(self) -> str:
        where = f"step {self.step!r}" if self.step is not None else "run"
        return f"{where} failed: {self.type}: {self.message}"


@attrs.frozen
class StepContext:
    """What a step function (or a compensation) receives as ``ctx``.

    ``run_id``: the run's durable id; ``step``: this step's name; ``attempt``: 1 on
    the first attempt; ``input``: the run's input; ``results``: name -> return value
    of every step finished when this one was dispatched (all of its dependencies
    included); ``error``: a :class:`StepFailure` for a compensation, else ``None``;
    ``engine``: the durable engine running the step (signal other instances from
    here; such side effects are at least once: use ``dedup_key``).
    """

    run_id: Any
    step: str
    attempt: int
    input: Any
    results: Mapping[str, Any]
    error: StepFailure | None = None
    engine: Any = attrs.field(default=None, repr=False)

    @property
    def compensating(self) -> bool:
        """True when this ``ctx`` is given to a compensation."""
        return self.error is not None
