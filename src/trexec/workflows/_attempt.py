"""One attempt of a step function, wherever it runs (spec §6.3, §6.4): inline in
its run (``_inline.py``) or in a step instance (``_step_machine.py``).

The user's ``Exception`` becomes a retry (with the step's backoff) or a final
failure; a result that cannot be stored as JSON fails at once, without retrying
(spec §6.3.2). ``trio.Cancelled`` and other ``BaseException``\\ s propagate.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import attrs

from .. import _instrument
from ._definition import StepContext, StepFn, Workflow
from ._exceptions import StepResultError

#: Results that are JSON as they are (no float: NaN is not).
_PLAIN = frozenset({type(None), bool, int, str})


@attrs.frozen
class Attempted:
    """How one attempt ended: ``done`` with ``result``; ``retry`` after ``delay``
    seconds (``error`` is the exception's repr); ``failed`` for good."""

    outcome: Literal["done", "retry", "failed"]
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    delay: float = 0.0


async def call_step(wf: Workflow, fn: StepFn, ctx: StepContext) -> Attempted:
    """Run ``fn(ctx)`` once (``ctx.step`` names the step of ``wf`` whose retry
    policy applies, also to its compensation, spec §6.4.3)."""
    spec = wf.step(ctx.step)
    retryable = True
    try:
        hooks = _instrument.hooks
        if hooks is None:  # spec §14.1
            result = await fn(ctx)
        else:
            with hooks.workflow_step(
                workflow=wf.name, step=ctx.step, run_id=ctx.run_id, attempt=ctx.attempt
            ):
                result = await fn(ctx)
        try:
            # NaN/Infinity are not JSON: the store would refuse them (spec §5.1.4).
            if type(result) not in _PLAIN:
                json.dumps(result, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:  # spec §6.3.2
            retryable = False
            raise StepResultError(
                f"step {ctx.step!r} returned {result!r}: expected a JSON-serializable value ({exc})"
            ) from None
    except Exception as exc:
        if retryable and ctx.attempt < spec.attempts:
            # spec §6.4: retry n waits backoff.delay(n).
            return Attempted("retry", error=repr(exc), delay=spec.backoff.delay(ctx.attempt))
        return Attempted("failed", error_type=type(exc).__name__, error=str(exc))
    return Attempted("done", result)
