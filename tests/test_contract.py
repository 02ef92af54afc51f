"""Every public name of the contract's index exists (CONTRACT.md, "Index of public names").

The same check as ../shared/tools/contract_check.py, kept in the suite so that a
rename can never land silently.
"""

from __future__ import annotations

import importlib

import pytest

INDEX = {
    "trexec": """TrexecError Action Backoff run_action start_action ActionHandle
        ActionError ActionTimeout ActionCancelled ActionFailed InvalidParams wait_all
        as_completed start_poller Poller CONTINUE Inject Done Fail InjectedEvent TimeoutInfo
        PollSuccess PollTimeoutIgnored PollError PollStopped PollFnError HandlerError
        OnTimeoutError PollTimeout wait_pollers run_commands run_parallel SequenceReport
        SequenceFailed Recorder start_run RunHandle RunBus RunError RunCompleted RunFailed
        RunCancelled RunCrashed RecorderStartError MemoryRecorder JsonlRecorder telemetry
        durable workflows""",
    "trexec.durable": """Machine Context Signal Outcome Next Retry Await ScheduleChildren
        Child Done Stop open_store open_engine Engine Instance RateLimit DuplicateKey
        NoTarget Schedule ScheduleInfo""",
    "trexec.workflows": """Workflow Step Backoff dispatch_run dispatch_steps
        DispatchMetadata RunDispatched""",
    "trexec.telemetry": "attach",
    "trexec.testing": "open_test_engine open_test_store TestEngine Faults",
}

NAMES = [(module, name) for module, names in INDEX.items() for name in names.split()]


@pytest.mark.parametrize(("module", "name"), NAMES, ids=[f"{m}.{n}" for m, n in NAMES])
def test_contract_name_exists(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{module}.{name} is missing"


@pytest.mark.parametrize("module", ["trexec.durable", "trexec.workflows", "trexec.testing"])
def test_subpackage_names_are_in_all(module: str) -> None:
    mod = importlib.import_module(module)
    wanted = INDEX[module].split()
    assert set(wanted) <= set(mod.__all__)
