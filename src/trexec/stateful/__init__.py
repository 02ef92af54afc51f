"""Property-based command sequences on Trio (spec §3.1): Hypothesis' rule-based
state machines with ``async def`` steps, one Trio run per example, pollers.

    from hypothesis.stateful import initialize, invariant, rule
    from trexec.stateful import TrioStateMachine

    class CartMachine(TrioStateMachine):
        @initialize()
        async def start(self): ...
    TestCart = CartMachine.TestCase

Needs the ``hypothesis`` extra: ``pip install 'trexec[hypothesis]'``.

Layout: ``_machine`` (the class, bridging Hypothesis' rules to the loop),
``_example`` (one example: its run, steps, pollers, teardown), ``_loop`` (the
Trio guest run driven from Hypothesis' thread), ``_report`` (the failure note),
``_exceptions``.
"""

from __future__ import annotations

from ._exceptions import (
    NotInExample as NotInExample,
    PollerFailed as PollerFailed,
    StatefulError as StatefulError,
)

try:
    from ._machine import TrioStateMachine as TrioStateMachine
except ModuleNotFoundError as exc:  # the extra is missing: one line, no traceback chain
    if exc.name is None or exc.name.partition(".")[0] != "hypothesis":
        raise
    raise ImportError(
        "trexec.stateful needs Hypothesis: pip install 'trexec[hypothesis]'"
    ) from None

__all__ = ["TrioStateMachine", "StatefulError", "NotInExample", "PollerFailed"]

for _name in __all__:
    globals()[_name].__module__ = "trexec.stateful"
del _name
