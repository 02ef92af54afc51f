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
  as durable instances.
* This file re-exports the public API; everything not listed in ``__all__`` is
  private. ``docs/spec.md`` numbers every rule; code cites it as ``# spec §N``.
"""

from __future__ import annotations

# Each area module lists its public names in its own ``__all__``.
from . import (
    _action_class,  # §1 actions
    _action_handle,  # §1 actions
    _actions,  # §1 actions
    _backoff,  # §1 actions
    _bus,  # §4 pub/sub
    _poller,  # §2 resource pollers
    _recorders,  # §4 built-in recorders
    _runs,  # §4 runs
    _sequence,  # §3 command sequences
    durable as durable,  # §5
    telemetry as telemetry,
    workflows as workflows,  # §6
)
from ._action_class import *  # noqa: F403
from ._action_handle import *  # noqa: F403
from ._actions import *  # noqa: F403
from ._backoff import *  # noqa: F403
from ._bus import *  # noqa: F403

# --- errors (spec §0) --------------------------------------------------------
from ._exceptions import (
    ActionCancelled as ActionCancelled,
    ActionError as ActionError,
    ActionFailed as ActionFailed,
    ActionTimeout as ActionTimeout,
    HandlerError as HandlerError,
    InvalidArgument as InvalidArgument,
    InvalidParams as InvalidParams,
    OnTimeoutError as OnTimeoutError,
    PollerError as PollerError,
    PollFnError as PollFnError,
    PollTimeout as PollTimeout,
    RecorderStartError as RecorderStartError,
    RunError as RunError,
    SequenceFailed as SequenceFailed,
    TrexecError as TrexecError,
)
from ._poller import *  # noqa: F403
from ._public import fix_modules as _fix_modules
from ._recorders import *  # noqa: F403
from ._runs import *  # noqa: F403
from ._sequence import *  # noqa: F403

# --- waiting on handles (spec §1.4) ------------------------------------------
from ._waiting import as_completed as as_completed, wait_all as wait_all

__version__ = "0.1.0"

__all__ = [
    # errors
    "TrexecError", "InvalidArgument", "ActionError", "ActionTimeout", "ActionCancelled",
    "ActionFailed", "InvalidParams", "PollerError", "PollFnError", "HandlerError",
    "OnTimeoutError", "PollTimeout", "SequenceFailed", "RunError", "RecorderStartError",
    # waiting
    "wait_all", "as_completed",
    # modules
    "telemetry", "durable", "workflows",
]  # fmt: skip
for _module in (
    _action_class,
    _action_handle,
    _actions,
    _backoff,
    _poller,
    _sequence,
    _bus,
    _runs,
    _recorders,
):
    __all__ += _module.__all__
del _module


_fix_modules(globals(), __all__, "trexec")
del _fix_modules
