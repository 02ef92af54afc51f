"""Where tracing and metrics plug in (spec §14.1): one module-level slot.

The hot paths (an action run, a durable step, a workflow step, an insert) read
``hooks`` once; while it is ``None`` (nothing instrumented) they do nothing
else. ``trexec.otel.instrument`` fills it with an OpenTelemetry implementation;
no module below ``trexec.otel`` imports OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol

__all__ = ["Hooks", "StepSpan", "hooks", "install"]


class StepSpan(Protocol):
    """The span of one action run or durable step; ``outcome`` is set before it
    ends (an action's ``error`` when it failed)."""

    def outcome(self, kind: str, error: BaseException | None = None) -> None: ...


class Hooks(Protocol):
    """What the instrumented layers call (spec §14.1)."""

    def action(self, name: str) -> AbstractContextManager[StepSpan]:
        """Around one ``run_action``/``start_action`` run (all attempts)."""

    def step(
        self, *, instance_id: int, machine: str, step: str, attempt: int, trace: str | None
    ) -> AbstractContextManager[StepSpan]:
        """Around one durable step; ``trace`` is the context stored with the instance."""

    def workflow_step(
        self, *, workflow: str, step: str, run_id: int, attempt: int
    ) -> AbstractContextManager[object]:
        """Around one call of a workflow step's function."""

    def carrier(self) -> str | None:
        """The active trace context as text to store with an instance, or None."""

    def backlog(self, engine: str, counts: Mapping[str, int]) -> None:
        """Runnable instances per machine, as one engine last counted them."""

    def engine_stopped(self, engine: str) -> None:
        """The engine stopped: forget its backlog."""


#: The installed hooks, or None (not instrumented: spec §14.1, no cost).
hooks: Hooks | None = None


def install(new: Hooks | None) -> Hooks | None:
    """Install ``new`` (None uninstalls); return what was installed before."""
    global hooks
    old, hooks = hooks, new
    return old
