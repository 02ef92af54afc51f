"""Every exception trexec raises, in one place (durable and workflow errors live in
their subpackages' ``_exceptions`` modules and derive from :class:`TrexecError`).

A message always names what was wrong, the value received, and what was expected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._poller_values import TimeoutInfo


class TrexecError(Exception):
    """Base class of every error trexec raises."""


class InvalidArgument(TrexecError, TypeError, ValueError):
    """A public call received an argument it cannot accept (bad type or value)."""


# --- actions (spec §1) -------------------------------------------------------


class ActionError(TrexecError):
    """An action did not produce a result. ``attempts`` counts the runs made;
    ``compensation`` holds the ``outcome.Outcome`` of ``compensate`` when it ran."""

    attempts: int = 0
    compensation: Any = None


class ActionTimeout(ActionError):
    """The action's ``timeout`` passed before it returned (its scope was cancelled)."""


class ActionCancelled(ActionError):
    """The action was cancelled with ``ActionHandle.cancel()``."""


class InvalidParams(ActionError):
    """The params did not validate against the action's ``Params``; it never ran."""


class ActionFailed(ActionError):
    """The action raised; the original exception is ``__cause__``."""


# --- pollers (spec §2) -------------------------------------------------------


class PollerError(TrexecError):
    """Base of the error reasons a poller makes itself."""


class PollFnError(PollerError):
    """``poll_fn`` raised; the original exception is ``__cause__``."""


class HandlerError(PollerError):
    """The handler raised (``__cause__``) or returned something that is not a handler result."""


class OnTimeoutError(PollerError):
    """The ``on_timeout`` callable raised (``__cause__``) or returned an invalid value."""


class PollTimeout(PollerError):
    """The poller reached its timeout with ``on_timeout="fail"``; ``info`` says what happened."""

    def __init__(self, info: TimeoutInfo) -> None:
        super().__init__(
            f"poller timed out after {info.elapsed:.3f}s "
            f"({info.poll_count} polls, last result {info.last_poll_result!r})"
        )
        self.info = info


# --- command sequences (spec §3) ---------------------------------------------


class SequenceFailed(TrexecError):
    """A command sequence run with ``assertion_mode="halt"`` failed; ``report`` holds
    everything that happened up to the failure."""

    def __init__(self, report: Any) -> None:
        failures = getattr(report, "failures", [])
        first = failures[0] if failures else None
        super().__init__(f"command sequence failed: {first!r}")
        self.report = report


# --- runs and recorders (spec §4) --------------------------------------------


class RunError(TrexecError):
    """Raised by a ``run_fn`` to end its run as ``RunFailed(errors)``."""

    def __init__(self, errors: Any = (), message: str | None = None) -> None:
        if not isinstance(errors, list | tuple):
            errors = [errors]
        self.errors = list(errors)
        super().__init__(message or f"run failed: {self.errors!r}")


class RecorderStartError(TrexecError):
    """A recorder whose class sets ``required = True`` raised in ``start``; the run
    never ran. The recorder's exception is ``__cause__``."""


class MissingExtra(TrexecError, ImportError):
    """A feature needs an optional extra that is not installed. The message is one
    line naming the extra and the command that installs it, e.g. ``trexec demo
    needs the demo extra: pip install 'trexec[demo]'``."""
