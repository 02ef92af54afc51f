"""The failure report of a ``TrioStateMachine`` example (spec §3.1.8).

Hypothesis prints the shrunk rule sequence itself; trexec adds one note to the
exception: each step with its rule index, every event the pollers injected
(tagged with the index of the rule that started the poller) and every poller's
result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._poller import Poller
    from .._poller_values import InjectedEvent


class Example(Protocol):
    """What a report reads of an example (``_example.Example``)."""

    machine_name: str
    steps: list[str]
    log: list[InjectedEvent]
    pollers: list[Poller]


_MARK = "trexec.stateful report"
_MAX_EVENTS = 50  # the first and the last ones are kept, the middle is counted


def describe(example: Example) -> str:
    """The report of ``example`` so far, as a few indented lines."""
    lines = [f"{_MARK} ({example.machine_name}):", "  steps (rule index: call):"]
    lines += [f"    {index}: {step}" for index, step in enumerate(example.steps)] or ["    none"]
    events = example.log
    lines.append(f"  poller events ({len(events)}; [rule index] poller id: event):")
    shown: list[InjectedEvent | None] = list(events)
    if len(shown) > _MAX_EVENTS:
        half = _MAX_EVENTS // 2
        shown = [*events[:half], None, *events[-half:]]
    for event in shown:
        if event is None:
            lines.append(f"    ... {len(events) - _MAX_EVENTS} more ...")
        else:
            lines.append(f"    [{event.command_index}] poller {event.poller_id}: {event.event!r}")
    if not events:
        lines.append("    none")
    lines.append("  pollers ([rule index] poller id: result):")
    for poller in example.pollers:
        result = poller.check()
        text = "still running" if result is None else repr(result)
        lines.append(f"    [{poller.command_index}] poller {poller.id}: {text}")
    if not example.pollers:
        lines.append("    none")
    return "\n".join(lines)


def annotate(error: BaseException, example: Example) -> None:
    """Add the report to ``error`` as a note, once."""
    notes = getattr(error, "__notes__", ())
    if not any(isinstance(n, str) and n.startswith(_MARK) for n in notes):
        error.add_note(describe(example))
