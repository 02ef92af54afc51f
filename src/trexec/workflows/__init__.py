"""Workflows and dispatch (spec §6): declarative step graphs that run on the durable
engine, with parallel branches, joins, retries with backoff and compensations.

    wf = workflows.Workflow("checkout", [
        workflows.Step("reserve", reserve, retries=3, compensate=release),
        workflows.Step("charge", charge, after=["reserve"], compensate=refund),
        workflows.Step("email", email, after=["charge"]),
        workflows.Step("ship", ship, after=["charge"]),   # runs beside email
    ])
    async with durable.open_engine(store, workflows=[wf]) as engine:
        run_id = await engine.start_workflow(wf, {"order": 42})
        run = await engine.wait(run_id)          # done: run.result = step results

Layout: ``_definition`` (Workflow, Step, Backoff, the step ``ctx``), ``_state``
(a run's step table and its pure transition rules), ``_dispatch`` (dispatch_run,
dispatch_steps), ``_run_machine`` / ``_step_machine`` (the durable machines a run
is made of), ``_events`` (run events to telemetry and a RunBus), ``_engine_hooks``
(what the durable engine calls), ``_describe`` (a run as a table, for the CLI).
"""

from __future__ import annotations

from .._public import fix_modules as _fix_modules
from ._definition import (
    Backoff as Backoff,
    Step as Step,
    StepContext as StepContext,
    StepFailure as StepFailure,
    Workflow as Workflow,
)
from ._describe import (
    describe_run as describe_run,
    explain_run as explain_run,
    is_run as is_run,
    render_run as render_run,
)
from ._dispatch import (
    DispatchMetadata as DispatchMetadata,
    RunDispatched as RunDispatched,
    dispatch_run as dispatch_run,
    dispatch_steps as dispatch_steps,
)
from ._engine_hooks import cancel_run as cancel_run
from ._events import WorkflowEvent as WorkflowEvent
from ._exceptions import (
    DispatchError as DispatchError,
    InvalidWorkflow as InvalidWorkflow,
    StepResultError as StepResultError,
)

__all__ = [
    # definitions
    "Workflow", "Step", "Backoff", "StepContext", "StepFailure",
    # dispatch and control
    "dispatch_run", "dispatch_steps", "DispatchMetadata", "RunDispatched", "cancel_run",
    # observing runs
    "WorkflowEvent", "describe_run", "render_run", "is_run", "explain_run",
    # errors
    "InvalidWorkflow", "DispatchError", "StepResultError",
]  # fmt: skip


_fix_modules(globals(), __all__, "trexec.workflows")
del _fix_modules
