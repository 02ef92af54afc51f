"""The errors of ``trexec.stateful`` (spec §3.1.9), each a :class:`trexec.TrexecError`."""

from __future__ import annotations

from typing import Any

from .._exceptions import TrexecError


class StatefulError(TrexecError):
    """Base of the errors ``trexec.stateful`` raises itself (besides ``InvalidArgument``)."""


class NotInExample(StatefulError, RuntimeError):
    """``self.nursery`` or ``self.start_poller`` was used outside a step of a running
    example: before the first step, after teardown, or from a sync precondition."""


class PollerFailed(StatefulError):
    """A poller started by ``self.start_poller`` ended with :class:`trexec.PollError`:
    the example fails, as it would for a failed invariant (spec §3.1.6).

    ``poller_id``, ``rule_index`` (the step that started it) and ``reason`` (the
    ``PollError``'s reason, as is; an exception reason is also ``__cause__``).
    """

    def __init__(self, message: str, *, poller_id: int, rule_index: int, reason: Any) -> None:
        super().__init__(message)
        self.poller_id = poller_id
        self.rule_index = rule_index
        self.reason = reason
