"""trexec: a Trio structured-concurrency execution toolkit.

General layout
--------------
trexec is built in layers; each layer uses only the ones above it here:

* ``_exceptions``, ``_validate``, ``telemetry``: every error class, the argument
  checks every public call makes, and the telemetry hub.
* ``_waiting``: the ``Completion`` base every handle shares, with ``wait_all``
  and ``as_completed`` (no task per handle).
* In-process tools, each a small private module: ``_actions`` (run/start/cancel
  an action with timeout, retries, compensation), ``_poller`` (resource
  pollers), ``_sequence`` (command sequences), ``_bus``/``_runs``/``_recorders``
  (runs and recorders over pub/sub).
* ``durable`` (subpackage): database-backed machines (steps, signals, children,
  leases, rate limits) over a store interface with SQLite and PostgreSQL
  implementations. ``workflows`` (subpackage): declarative step graphs that run
  as durable instances. ``stateful`` (subpackage, extra ``trexec[hypothesis]``,
  not imported here): Hypothesis state machines whose steps run on Trio.
* This file re-exports the public API; everything not listed in ``__all__`` is
  private. ``docs/spec.md`` numbers every rule; code cites it as ``# spec §N``.
"""

from __future__ import annotations

from . import durable as durable, telemetry as telemetry, workflows as workflows  # §5, §6

# --- §1 actions (_action_class) ---
from ._action_class import (
    Action as Action,
)

# --- §1 actions (_action_handle) ---
from ._action_handle import (
    ActionHandle as ActionHandle,
)

# --- §1 actions (_actions) ---
from ._actions import (
    run_action as run_action,
    start_action as start_action,
)

# --- §1 actions (_backoff) ---
from ._backoff import (
    Backoff as Backoff,
)

# --- §4 pub/sub (_bus) ---
from ._bus import (
    RunBus as RunBus,
    run_topic as run_topic,
)

# --- errors (spec §0) --------------------------------------------------------
from ._exceptions import (
    ActionCancelled as ActionCancelled,
    ActionError as ActionError,
    ActionFailed as ActionFailed,
    ActionTimeout as ActionTimeout,
    HandlerError as HandlerError,
    InvalidArgument as InvalidArgument,
    InvalidParams as InvalidParams,
    MissingExtra as MissingExtra,
    OnTimeoutError as OnTimeoutError,
    PollerError as PollerError,
    PollFnError as PollFnError,
    PollTimeout as PollTimeout,
    RecorderStartError as RecorderStartError,
    RunError as RunError,
    SequenceFailed as SequenceFailed,
    TrexecError as TrexecError,
)

# --- §2 resource pollers (_poller) ---
from ._poller import (
    CONTINUE as CONTINUE,
    Done as Done,
    Fail as Fail,
    Inject as Inject,
    InjectedEvent as InjectedEvent,
    Poller as Poller,
    PollError as PollError,
    PollStopped as PollStopped,
    PollSuccess as PollSuccess,
    PollTimeoutIgnored as PollTimeoutIgnored,
    TimeoutInfo as TimeoutInfo,
    start_poller as start_poller,
    wait_pollers as wait_pollers,
)
from ._public import fix_modules as _fix_modules

# --- §4 built-in recorders (_recorders) ---
from ._recorders import (
    JsonlRecorder as JsonlRecorder,
    MemoryRecorder as MemoryRecorder,
    Recorder as Recorder,
)

# --- §4 runs (_runs) ---
from ._runs import (
    RecorderFailure as RecorderFailure,
    Run as Run,
    RunCancelled as RunCancelled,
    RunCompleted as RunCompleted,
    RunCrashed as RunCrashed,
    RunFailed as RunFailed,
    RunHandle as RunHandle,
    RunOutcome as RunOutcome,
    follow_run as follow_run,
    start_run as start_run,
)

# --- §3 command sequences (_sequence) ---
from ._sequence import (
    Adapter as Adapter,
    CommandContext as CommandContext,
    Failure as Failure,
    RecordedEvent as RecordedEvent,
    SequenceReport as SequenceReport,
    run_commands as run_commands,
    run_parallel as run_parallel,
)

# --- waiting on handles (spec §1.4) ------------------------------------------
from ._waiting import as_completed as as_completed, wait_all as wait_all

__version__ = "0.1.0"

__all__ = [
    # errors
    "TrexecError", "InvalidArgument", "ActionError", "ActionTimeout", "ActionCancelled",
    "ActionFailed", "InvalidParams", "PollerError", "PollFnError", "HandlerError",
    "OnTimeoutError", "PollTimeout", "SequenceFailed", "RunError", "RecorderStartError",
    "MissingExtra",
    # waiting
    "wait_all", "as_completed",
    # modules
    "telemetry", "durable", "workflows",
    # _action_class
    "Action",
    # _action_handle
    "ActionHandle",
    # _actions
    "run_action", "start_action",
    # _backoff
    "Backoff",
    # _poller
    "CONTINUE", "Done", "Fail", "Inject", "InjectedEvent", "PollError", "PollStopped",
    "PollSuccess", "PollTimeoutIgnored", "Poller", "TimeoutInfo", "start_poller",
    "wait_pollers",
    # _sequence
    "Adapter", "CommandContext", "Failure", "RecordedEvent", "SequenceReport", "run_commands",
    "run_parallel",
    # _bus
    "RunBus", "run_topic",
    # _runs
    "Run", "RunCancelled", "RunCompleted", "RunCrashed", "RunFailed", "RunHandle", "RunOutcome",
    "RecorderFailure", "follow_run", "start_run",
    # _recorders
    "JsonlRecorder", "MemoryRecorder", "Recorder",
]  # fmt: skip


_fix_modules(globals(), __all__, "trexec")
del _fix_modules
