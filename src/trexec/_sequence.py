"""Command sequences (spec §3): run commands through an adapter, with its pollers.

    report = await trexec.run_commands(adapter, commands, assertion_mode="record")

``adapter.execute(command, ctx)`` returns the command's events and may start
pollers with ``ctx.start_poller(...)``; their events join the report. The
values (report, failure, recorded event, context) live in ``_sequence_values``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from . import _validate
from ._exceptions import InvalidArgument, SequenceFailed
from ._poller import Poller, start_poller
from ._poller_values import InjectedEvent, OnTimeout, PollError
from ._public import leaves
from ._sequence_values import (
    Adapter,
    AssertionMode,
    CommandContext,
    Failure,
    RecordedEvent,
    SequenceReport,
)

__all__ = [
    "Adapter",
    "CommandContext",
    "Failure",
    "RecordedEvent",
    "SequenceReport",
    "run_commands",
    "run_parallel",
]

logger = logging.getLogger("trexec.sequence")

_MODES = ("halt", "log", "record")


class _ReportSink(trio.abc.SendChannel[InjectedEvent]):
    """The ``events`` channel of a sequence's pollers: records each event at once.

    Its ``send`` is cancel-atomic like a memory channel's (the event is recorded
    or not at all), so ``Poller.stop()`` keeps its guarantee; it never blocks.
    """

    def __init__(self, record: Callable[[InjectedEvent], None]) -> None:
        self._record = record
        self._closed = False

    async def send(self, value: InjectedEvent) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("the command sequence has ended")
        self._record(value)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def aclose(self) -> None:
        self._closed = True
        await trio.lowlevel.checkpoint()


class _SequenceRun:
    """The shared state of one ``run_commands`` / ``run_parallel`` call."""

    def __init__(self, adapter: Adapter, mode: str) -> None:
        self.adapter = adapter
        self.mode = mode
        self.events: list[RecordedEvent] = []
        self.failures: list[Failure] = []
        self.pollers: list[Poller] = []
        self.halted = False
        self.scope = trio.CancelScope()  # cancelled on halt
        self.sink = _ReportSink(self._record_injected)
        self.nursery: trio.Nursery | None = None
        # Poller events held back while their command runs (spec §3.3), by
        # (branch_id, command_index).
        self._held: dict[tuple[int | None, int], list[RecordedEvent]] = {}

    # --- running ------------------------------------------------------------------

    async def run(self, body: Callable[[], Any]) -> SequenceReport:
        """Run ``body`` with the poller nursery open, await every poller, build the report."""
        with _single_exception():
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                with self.scope:
                    await body()
                    await self.await_pollers()
                await self.sink.aclose()
        report = self.report()
        if self.halted:
            raise SequenceFailed(report)  # spec §3.5
        return report

    async def run_branch(self, commands: list[Any], branch_id: int | None, first: int) -> None:
        for offset, command in enumerate(commands):
            if self.halted:
                return
            await self._run_command(command, first + offset, branch_id)

    async def _run_command(self, command: Any, index: int, branch_id: int | None) -> None:
        key = (branch_id, index)
        self._held[key] = []
        ctx = CommandContext(index, branch_id, self._start_poller)
        try:
            events = await self.adapter.execute(command, ctx)
            if not isinstance(events, list | tuple):
                raise InvalidArgument(  # noqa: TRY301 - reported like any adapter failure
                    f"adapter.execute({command!r}, ctx) returned {events!r}: "
                    "expected a list of events"
                )
        except Exception as exc:
            # spec §3.4: an adapter that raises is a failure of that command.
            self.events.extend(self._held.pop(key))
            self._fail(Failure.of(exc, command_index=index, branch_id=branch_id))
            return
        except BaseException:
            # Cancelled (a halt, or the caller): keep what its pollers already sent.
            self.events.extend(self._held.pop(key, ()))
            raise
        # spec §3.3: the command's own events first, then what its pollers sent meanwhile.
        self.events.extend(RecordedEvent(e, index, branch_id, "command") for e in events)
        self.events.extend(self._held.pop(key))

    async def await_pollers(self) -> None:
        # spec §3.2: every poller started so far is awaited (pollers may start more).
        position = 0
        while position < len(self.pollers):
            await self.pollers[position]._wait_finished()
            position += 1

    # --- pollers ------------------------------------------------------------------

    def _start_poller(
        self,
        command_index: int,
        branch_id: int | None,
        *,
        poll_fn: Any,
        handler: Any,
        interval: float,
        timeout: float,
        on_timeout: OnTimeout = "fail",
    ) -> Poller:
        if self.nursery is None or self.sink._closed:
            raise RuntimeError("ctx.start_poller called after its command sequence ended")
        poller = start_poller(
            self.nursery,
            poll_fn=poll_fn,
            handler=handler,
            interval=interval,
            timeout=timeout,
            events=self.sink,
            command_index=command_index,
            on_timeout=on_timeout,
            branch_id=branch_id,
        )
        self.pollers.append(poller)
        poller._add_done_callback(self._poller_finished)
        if self.halted:
            poller.stop()
        return poller

    def _record_injected(self, injected: InjectedEvent) -> None:
        record = RecordedEvent(
            injected.event,
            injected.command_index,
            injected.branch_id,
            "poller",
            injected.poller_id,
        )
        held = self._held.get((injected.branch_id, injected.command_index))
        (self.events if held is None else held).append(record)

    def _poller_finished(self, poller: Poller) -> None:
        # Runs synchronously when the poller's result is set (no task per poller).
        result = poller.check()
        if isinstance(result, PollError):
            self._fail(
                Failure.of(
                    result.reason,
                    command_index=poller.command_index,
                    branch_id=poller.branch_id,
                    poller_id=poller.id,
                )
            )

    # --- failures -----------------------------------------------------------------

    def _fail(self, failure: Failure) -> None:
        if self.halted:
            return
        self.failures.append(failure)
        if self.mode == "log":
            # spec §3.5: "log" logs each failure by its message and goes on.
            logger.error("%s", failure.describe())
        elif self.mode == "halt":
            # spec §3.5: "halt" stops at the first failure: the running commands
            # and every poller (their results become PollStopped).
            self.halted = True
            for poller in self.pollers:
                poller.stop()
            self.scope.cancel()

    def report(self) -> SequenceReport:
        results = [r for p in self.pollers if (r := p.check()) is not None]
        return SequenceReport(tuple(self.events), tuple(results), tuple(self.failures))


@contextmanager
def _single_exception() -> Iterator[None]:
    """Let a lone exception out of the nurseries' groups as itself (spec §0.4, §3.7).

    Only a ``KeyboardInterrupt``, a cancellation from outside or a bug can get
    here: commands and pollers turn every ``Exception`` into a failure. The
    groups may be nested (``run_parallel``'s branch nursery) and hold one
    ``trio.Cancelled`` per task cancelled alongside: one cancellation is raised
    as a ``trio.Cancelled`` for the caller's cancel scope, and a lone other
    exception wins over the cancellations it caused.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        found = leaves(group)
        chosen = [e for e in found if not isinstance(e, trio.Cancelled)] or found[:1]
        if len(chosen) != 1:
            raise
        exc = chosen[0]
        context = exc.__context__
        try:
            raise exc
        finally:
            exc.__context__ = context
            del exc, group


# --- validation and entry points ------------------------------------------------------


def _check_adapter(adapter: object) -> Adapter:
    if not _validate.is_async_callable(getattr(adapter, "execute", None)):
        _validate.fail("adapter", adapter, "an object with an async execute(command, ctx) method")
    return adapter  # type: ignore[return-value]


def _command_list(name: str, commands: object) -> list[Any]:
    if isinstance(commands, str | bytes | dict) or not isinstance(commands, Iterable):
        _validate.fail(name, commands, "a list of commands")
    return list(commands)


async def run_commands(
    adapter: Adapter,
    commands: Iterable[Any],
    *,
    assertion_mode: AssertionMode = "halt",
    branch_id: int | None = None,
) -> SequenceReport:
    """Run ``commands`` in order through ``adapter.execute(command, ctx)``; return the report.

    Each command's events are recorded, then the events its pollers sent
    (``ctx.start_poller``) as they arrive. When the last command returns, every
    poller still running is awaited. A failure is an adapter that raises (or
    returns something other than a list) or a poller ending with
    :class:`~trexec.PollError`. ``assertion_mode``:

    * ``"halt"`` (default): at the first failure, cancel the running command,
      stop every poller and raise :class:`~trexec.SequenceFailed` (``.report``).
    * ``"log"``: log each failure (an exception by its message) on the
      ``trexec.sequence`` logger and go on.
    * ``"record"``: go on silently.

    Every mode keeps each failure, traceback text included, in
    ``report.failures``. Cancelling the call cancels the running command and
    every poller. Raises :class:`~trexec.InvalidArgument` for a bad argument.
    """
    adapter = _check_adapter(adapter)
    items = _command_list("commands", commands)
    mode = _validate.one_of("assertion_mode", assertion_mode, _MODES)
    if branch_id is not None:
        branch_id = _validate.count("branch_id", branch_id)
    run = _SequenceRun(adapter, mode)
    return await run.run(lambda: run.run_branch(items, branch_id, 0))


async def run_parallel(
    adapter: Adapter,
    prefix: Iterable[Any],
    branches: Iterable[Iterable[Any]],
    *,
    assertion_mode: AssertionMode = "halt",
) -> SequenceReport:
    """Run ``prefix``, then every branch concurrently; return one merged report.

    The prefix runs as :func:`run_commands` would (``branch_id=None``, its
    pollers awaited) so branches start from a settled state. Branch ``n`` runs
    with ``branch_id=n``; its commands are numbered after the prefix, so
    ``(prefix + branches[n])[command_index]`` is the command. The report holds
    every event in arrival order (each tagged with its ``branch_id``), every
    poller result in start order, and every failure in the order they happened.
    ``"halt"`` stops all branches at the first failure anywhere and raises
    :class:`~trexec.SequenceFailed`, never an ``ExceptionGroup``.
    """
    adapter = _check_adapter(adapter)
    first = _command_list("prefix", prefix)
    if isinstance(branches, str | bytes) or not isinstance(branches, Iterable):
        _validate.fail("branches", branches, "a list of lists of commands")
    lists = [_command_list("branches", branch) for branch in branches]
    mode = _validate.one_of("assertion_mode", assertion_mode, _MODES)
    run = _SequenceRun(adapter, mode)

    async def body() -> None:
        await run.run_branch(first, None, 0)
        await run.await_pollers()  # spec §3.6: the prefix settles first
        async with trio.open_nursery() as nursery:
            for number, commands in enumerate(lists):
                nursery.start_soon(run.run_branch, commands, number, len(first))

    return await run.run(body)
