"""The values of a command sequence (spec §3): the adapter protocol, the context
an adapter receives, and the report with its events and failures."""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

import attrs

from ._poller_values import OnTimeout, PollResult

if TYPE_CHECKING:
    from ._poller import Poller

# Public through trexec._sequence's __all__.
__all__: list[str] = []

AssertionMode: TypeAlias = Literal["halt", "log", "record"]


@attrs.frozen
class CommandContext:
    """What ``adapter.execute(command, ctx)`` receives (spec §3.1).

    ``command_index`` and ``branch_id`` say which command this is;
    :meth:`start_poller` starts a poller whose events join the sequence's report.
    """

    command_index: int
    branch_id: int | None
    _start: Callable[..., Poller] = attrs.field(repr=False, alias="start")

    def start_poller(
        self,
        *,
        poll_fn: Callable[[], Awaitable[Any]],
        handler: Callable[[Any], Any],
        interval: float,
        timeout: float,
        on_timeout: OnTimeout = "fail",
    ) -> Poller:
        """Start a poller in the sequence's nursery, as :func:`trexec.start_poller` does,
        with the events channel, ``command_index`` and ``branch_id`` filled in.

        The sequence awaits it before it ends; its :class:`~trexec.PollError`
        is a failure of this command. Raises :class:`~trexec.InvalidArgument`
        for a bad argument, ``RuntimeError`` once the sequence has ended.
        """
        return self._start(
            self.command_index,
            self.branch_id,
            poll_fn=poll_fn,
            handler=handler,
            interval=interval,
            timeout=timeout,
            on_timeout=on_timeout,
        )


class Adapter(Protocol):
    """What :func:`trexec.run_commands` drives: ``async execute(command, ctx) -> list``."""

    async def execute(self, command: Any, ctx: CommandContext) -> Sequence[Any]:
        """Run ``command``; return the events it produced (a list, maybe empty)."""
        ...


@attrs.frozen
class RecordedEvent:
    """One event in a :class:`SequenceReport`.

    ``source`` is ``"command"`` (returned by ``adapter.execute``) or
    ``"poller"`` (sent by the poller ``poller_id``, else ``None``).
    """

    event: Any
    command_index: int
    branch_id: int | None
    source: Literal["command", "poller"]
    poller_id: int | None = None


@attrs.frozen
class Failure:
    """One failure of a sequence: an adapter that raised, or a poller's ``PollError``.

    ``reason`` is the exception or ``Fail`` reason as is; ``traceback`` is its
    formatted traceback (``__cause__`` chain included) when it is an exception.
    """

    command_index: int
    branch_id: int | None
    poller_id: int | None
    reason: Any
    traceback: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def of(
        cls,
        reason: Any,
        *,
        command_index: int,
        branch_id: int | None,
        poller_id: int | None = None,
    ) -> Failure:
        """The failure for ``reason``, with its traceback text if it is an exception."""
        text = None
        if isinstance(reason, BaseException):
            text = "".join(traceback.format_exception(reason))
        return cls(command_index, branch_id, poller_id, reason, text)

    @property
    def message(self) -> str:
        """An exception by its message (its class name if it has none), else ``str(reason)``."""
        try:
            text = str(self.reason)
        except Exception:  # a broken __str__ must not break the sequence
            text = ""
        if isinstance(self.reason, BaseException):
            return text or type(self.reason).__name__
        return text or f"<unprintable {type(self.reason).__name__}>"

    def describe(self) -> str:
        """One line: where it failed and why."""
        where = f"command {self.command_index}"
        if self.branch_id is not None:
            where += f" (branch {self.branch_id})"
        if self.poller_id is not None:
            where += f", poller {self.poller_id},"
        return f"{where} failed: {self.message}"


@attrs.frozen
class SequenceReport:
    """What a command sequence did (spec §3.3).

    ``events``: every :class:`RecordedEvent` in arrival order; ``poller_results``:
    every poller's result in the order the pollers started; ``failures``: every
    :class:`Failure` in the order they happened.
    """

    events: tuple[RecordedEvent, ...] = ()
    poller_results: tuple[PollResult, ...] = ()
    failures: tuple[Failure, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures
