"""Recorders: the ``Recorder`` base class and the built-in ``MemoryRecorder`` and
``JsonlRecorder`` (spec §4.3, §4.6)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import trio

from . import _validate
from ._outcomes import RunOutcome

__all__ = ["JsonlRecorder", "MemoryRecorder", "Recorder"]


class Recorder:
    """Base class of recorders: override the methods you need (each defaults to
    doing nothing).

    For one run, a recorder gets ``start(run_id)``, then ``event(event)`` for each
    emitted event in emission order, then ``finalize(outcome)`` exactly once,
    whatever the outcome (spec §4.4). ``flush()`` is called each time the recorder
    has caught up with the run's events: a recorder that batches its writes does
    them there (and writes what is left in ``finalize``, which gets no flush of
    its own). Every call comes from one task, one at a time.

    * ``start`` raising leaves the recorder out of the run (its error is on
      ``handle.recorder_errors``); with ``required = True`` on the class it refuses
      the run instead (:class:`~trexec.RecorderStartError`).
    * ``event``, ``flush`` and ``finalize`` raising never breaks the run or other
      recorders; the error is kept on ``handle.recorder_errors`` and logged, and
      the recorder keeps getting events.
    * ``finalize`` runs shielded from cancellation, for at most
      ``finalize_timeout`` seconds (then it is cancelled).
    """

    required: ClassVar[bool] = False
    """Set to ``True`` on a subclass whose failure to start must refuse the run."""

    async def start(self, run_id: str | int) -> None:
        """Called once before the run begins; raising leaves this recorder out."""

    async def event(self, event: Any) -> None:
        """Called with each event the run emits, in emission order."""

    async def flush(self) -> None:
        """Called when the recorder has caught up with the emitted events (its buffer
        is empty after one or more events)."""

    async def finalize(self, outcome: RunOutcome) -> None:
        """Called exactly once with how the run ended; write anything still pending."""


class MemoryRecorder(Recorder):
    """Keeps ``run_id``, ``events`` (a list, in emission order) and ``outcome`` in
    memory; handy in tests. ``start`` resets it, so one can record several runs
    one after the other."""

    def __init__(self) -> None:
        self.run_id: str | int | None = None
        self.events: list[Any] = []
        self.outcome: RunOutcome | None = None

    async def start(self, run_id: str | int) -> None:
        self.run_id = run_id
        self.events = []
        self.outcome = None

    async def event(self, event: Any) -> None:
        self.events.append(event)

    async def finalize(self, outcome: RunOutcome) -> None:
        self.outcome = outcome

    def __repr__(self) -> str:
        return f"<trexec.MemoryRecorder run_id={self.run_id!r} events={len(self.events)}>"


# --- JSON lines ----------------------------------------------------------------------

_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _lock_for(path: str) -> threading.Lock:
    key = os.path.abspath(path)
    with _path_locks_guard:
        return _path_locks.setdefault(key, threading.Lock())


def to_json(value: Any) -> Any:
    """The fallback for values ``json`` cannot write (spec §4.6.3): attrs classes and
    dataclasses as dicts, exceptions as ``{"type", "message"}``, sets as lists,
    dates as ISO 8601, paths as strings, anything else as its ``repr``."""
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):
        try:
            message = str(value)
        except Exception:  # spec §4.6.3: a broken __str__ must not fail the recording
            message = _safe_repr(value)
        return {"type": type(value).__qualname__, "message": message}
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, pathlib.PurePath):
        return str(value)
    return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"


class JsonlRecorder(Recorder):
    """Appends the run to ``path`` as JSON lines, one object per line (spec §4.6).

    Lines: ``{"run_id", "seq", "ts", "kind": "started"}``, then one
    ``{..., "kind": "event", "event": ...}`` per event, then
    ``{..., "kind": "outcome", "outcome": {"kind": "completed", "result": ...}}``.
    ``seq`` counts this run's lines from 0; ``ts`` is wall-clock time
    (``time.time()``) when the recorder got the line.

    Values ``json`` cannot write go through ``default(value)`` if given, then the
    fallback: attrs classes and dataclasses become dicts, exceptions
    ``{"type", "message"}``, sets lists, dates ISO strings, anything else its
    ``repr``. An event that still cannot be written is written as its ``repr``:
    recording never fails on an event.

    Writes happen in a worker thread, batched: lines are written each time the
    recorder has caught up with the run, or every ``batch`` lines. ``finalize``
    writes the outcome line, then flushes, fsyncs and closes the file: the record
    is durable once the run's ``wait()`` returns. The file is opened in append
    mode and each batch is one ``write``; writes to one path are serialized within
    the process, so several runs may share one file (their lines interleave,
    never mix). One instance records one run at a time; it may be reused for
    another run once the first has finalized.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        default: Callable[[Any], Any] | None = None,
        batch: int = 256,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not os.fspath(path):
            _validate.fail("path", path, "a file path (str or os.PathLike)")
        if default is not None:
            _validate.callable_("default", default)
        self.path = os.fspath(path)
        self._default = default
        self._encoder = json.JSONEncoder(default=self._encode, allow_nan=False)
        self._batch = _validate.count("batch", batch, minimum=1)
        self._fd: int | None = None
        self._run_id: str | int | None = None
        self._seq = 0
        self._pending: list[bytes] = []

    async def start(self, run_id: str | int) -> None:
        if self._fd is not None:
            raise RuntimeError(
                f"{self!r} is already recording run {self._run_id!r}: "
                "use one JsonlRecorder per run (several may share a path)"
            )
        self._fd = await trio.to_thread.run_sync(_open_append, self.path)
        self._run_id = run_id
        self._seq = 0
        self._pending = []
        self._add({"kind": "started"})

    async def event(self, event: Any) -> None:
        self._add({"kind": "event", "event": event})
        if len(self._pending) >= self._batch:  # spec §4.6.2
            await self.flush()

    async def flush(self) -> None:
        if self._pending and self._fd is not None:
            data, self._pending = b"".join(self._pending), []
            await trio.to_thread.run_sync(_write, self.path, self._fd, data)

    async def finalize(self, outcome: RunOutcome) -> None:
        fields = to_json(outcome) if attrs.has(type(outcome)) else {}
        self._add({"kind": "outcome", "outcome": {"kind": outcome.kind, **fields}})
        data, self._pending = b"".join(self._pending), []
        fd, self._fd = self._fd, None
        if fd is not None:
            await trio.to_thread.run_sync(_write_and_close, self.path, fd, data)

    def _add(self, fields: dict[str, Any]) -> None:
        record = {"run_id": self._run_id, "seq": self._seq, "ts": time.time(), **fields}
        self._seq += 1
        try:
            line = self._encoder.encode(record)
        except Exception:
            # spec §4.6.3: a circular or otherwise unwritable value (or a default
            # hook, __str__ or __repr__ that raised): keep its repr.
            for key in ("event", "outcome"):
                if key in record:
                    record[key] = _safe_repr(record[key])
            line = json.dumps(record, default=_safe_repr)
        self._pending.append(line.encode() + b"\n")

    def _encode(self, value: Any) -> Any:
        if self._default is not None:
            try:
                return self._default(value)
            except TypeError:
                pass
        return to_json(value)

    def __repr__(self) -> str:
        return f"<trexec.JsonlRecorder path={self.path!r}>"


def _open_append(path: str) -> int:
    return os.open(
        path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644
    )


def _write(path: str, fd: int, data: bytes) -> None:
    # spec §4.6.4: one O_APPEND write per batch, one writer per path at a time.
    with _lock_for(path):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def _write_and_close(path: str, fd: int, data: bytes) -> None:
    try:
        if data:
            _write(path, fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
