"""Every error trexec.workflows raises, in one place. All derive from
:class:`trexec.TrexecError`; a message names what was wrong, the value received
and what was expected."""

from __future__ import annotations

from .._exceptions import InvalidArgument, TrexecError


class InvalidWorkflow(InvalidArgument):
    """A :class:`Workflow` or :class:`Step` definition is invalid: a bad type, a
    duplicate step name, an ``after`` naming an unknown step, or a dependency cycle.
    Raised when the definition is built, never when a run starts."""


class DispatchError(TrexecError):
    """Steps of a run could not be dispatched (unknown run, unknown step, a run that is
    not a workflow run or no longer live). Nothing of the batch was dispatched."""


class StepResultError(TrexecError):
    """A step function returned a value that cannot be stored as JSON. The step fails
    at once (a retry would return the same value); the message names the step and
    the value."""
