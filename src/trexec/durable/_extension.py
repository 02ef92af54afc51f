"""How other layers plug into an engine (spec §5.5.10) without the durable core
knowing them: ``trexec.workflows`` (a ``Workflow`` is both protocols below),
and later schedules, implement these; ``open_engine`` and
``Engine.start_workflow`` only call them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._engine_api import Engine
    from ._insert import InsertSpec
    from ._machine import Machine

__all__ = ["Extension", "RunStarter"]


@runtime_checkable
class Extension(Protocol):
    """Something an engine runs besides its own machines (``open_engine(...,
    workflows=[...])``, ``extensions=[...]``).

    ``engine_machines()`` returns the machine classes it needs the engine to run
    (the same classes every call: the engine registers them by (name, version)).
    ``engine_tasks(engine)`` returns background tasks (async callables with no
    argument) to start in the engine's nursery once it runs; they are cancelled
    when the engine stops, and one that raises fails the engine like its own
    tasks do (spec §5.5.5). Return ``()`` for none.
    """

    def engine_machines(self) -> Sequence[type[Machine]]: ...

    def engine_tasks(self, engine: Engine) -> Sequence[Callable[[], Awaitable[object]]]: ...


@runtime_checkable
class RunStarter(Protocol):
    """What ``Engine.start_workflow(wf, input, ...)`` (and a schedule's tick,
    spec §11) starts: ``wf.run_specs`` returns the instances of one new run, the
    run's own instance first; the engine inserts them in one transaction and
    the run's id is the first one's (spec §5.5.10)."""

    def run_specs(
        self,
        input: Any,
        *,
        schedule_in: float | None = None,
        key: str | None = None,
        priority: int = 0,
        concurrency_key: str | None = None,
    ) -> Sequence[InsertSpec]: ...
