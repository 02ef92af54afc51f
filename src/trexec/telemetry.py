"""Telemetry: attach handlers to named events (spec §5.14), like Erlang's ``:telemetry``.

    detach = trexec.telemetry.attach(handler)
    handler(name: tuple[str, ...], measurements: dict, metadata: dict)

Handlers run synchronously in the task that emits the event: keep them quick.
A handler that raises is logged and detached (it would otherwise fail on every
event); it never breaks the code that emitted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from . import _validate

__all__ = ["Handler", "attach", "execute", "listening"]

Handler = Callable[[tuple[str, ...], dict[str, Any], dict[str, Any]], object]

logger = logging.getLogger("trexec.telemetry")
_handlers: list[tuple[tuple[str, ...], Handler]] = []
# Event name -> the entries of _handlers whose prefix matches it, in attach
# order; rebuilt lazily after every attach or detach. Emitters run for every
# step: matching prefixes once per name, not once per event.
_MAX_NAMES = 1024
_matching: dict[tuple[str, ...], tuple[tuple[tuple[str, ...], Handler], ...]] = {}
# Prefix -> whether some handler may receive an event under it (the few
# families that emitters ask about); cleared with _matching.
_below: dict[tuple[str, ...], bool] = {}


def attach(handler: Handler, *, prefix: tuple[str, ...] = ()) -> Callable[[], None]:
    """Call ``handler(name, measurements, metadata)`` for every event whose name starts
    with ``prefix`` (all events by default). Returns ``detach()``, idempotent.

    Raises :class:`~trexec.InvalidArgument` if ``handler`` is not callable or
    ``prefix`` is not a tuple of strings.
    """
    _validate.callable_("handler", handler)
    if not isinstance(prefix, tuple) or not all(isinstance(p, str) for p in prefix):
        _validate.fail("prefix", prefix, "a tuple of str")
    entry = (prefix, handler)
    _handlers.append(entry)
    _matching.clear()
    _below.clear()

    def detach() -> None:
        _remove(entry)

    return detach


def _remove(entry: tuple[tuple[str, ...], Handler]) -> None:
    if entry in _handlers:
        _handlers.remove(entry)
        _matching.clear()
        _below.clear()


def _entries(name: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], Handler], ...]:
    entries = _matching.get(name)
    if entries is None:
        entries = tuple(e for e in _handlers if name[: len(e[0])] == e[0])
        if len(_matching) >= _MAX_NAMES:  # names made of ids must not grow it forever
            _matching.clear()
        _matching[name] = entries
    return entries


def listening(name: tuple[str, ...] | None = None) -> bool:
    """True when some handler is attached (with ``name``: some handler whose
    prefix matches ``name``): an emitter may skip building an event's
    measurements and metadata when nobody receives it."""
    if name is None or not _handlers:
        return bool(_handlers)
    return bool(_entries(name))


def _listening_below(prefix: tuple[str, ...]) -> bool:
    """True when some handler may receive an event whose name starts with
    ``prefix`` (its own prefix is shorter and matches, or starts with ``prefix``)."""
    below = _below.get(prefix)
    if below is None:
        below = _below[prefix] = any(p[: len(prefix)] == prefix[: len(p)] for p, _ in _handlers)
    return below


def execute(
    name: tuple[str, ...],
    measurements: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> None:
    """Emit one event to every attached handler whose prefix matches ``name``."""
    if not _handlers:
        return
    for entry in _entries(name):
        try:
            entry[1](name, dict(measurements), dict(metadata))
        except Exception:
            logger.exception("telemetry handler %r raised on %r; detached", entry[1], name)
            _remove(entry)
