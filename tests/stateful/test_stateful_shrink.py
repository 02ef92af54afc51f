"""A planted bug that needs a particular order of five rules while a poller is
active is found, and shrunk to that minimal sequence, the same way every run
(spec §3.1.8, §3.1.10)."""

from __future__ import annotations

import ast
import re

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, Phase, reproduce_failure, settings
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.stateful import initialize, rule, run_state_machine_as_test
from warehouse import Warehouse

import trexec
from trexec.stateful import PollerFailed, TrioStateMachine


class WarehouseMachine(TrioStateMachine):
    clock = trio.testing.MockClock(autojump_threshold=0)

    @initialize()
    async def open_warehouse(self) -> None:
        self.warehouse = Warehouse(stock=1)
        self.nursery.start_soon(self.warehouse.serve)

    # Each client call then waits a second (virtual) for its confirmation: any
    # watcher polls meanwhile.
    @rule()
    async def reserve(self) -> None:
        await self.warehouse.reserve()
        await trio.sleep(1.0)

    @rule()
    async def release(self) -> None:
        await self.warehouse.release()
        await trio.sleep(1.0)

    @rule()
    def watch(self) -> None:  # a sync rule: it runs on the loop too
        async def poll():
            return await self.warehouse.snapshot(watcher=True)

        def check(snapshot):
            if snapshot.reserved > snapshot.stock:
                return trexec.Fail(f"oversold: {snapshot}")
            return trexec.CONTINUE

        self.start_poller(
            poll_fn=poll, handler=check, interval=1.0, timeout=5.0, on_timeout="ignore"
        )


# No explain phase: it traces every line and is the slow part (spec §3.1.10).
SETTINGS = settings(
    max_examples=500,
    stateful_step_count=12,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
MINIMAL = ["open_warehouse", "reserve", "watch", "release", "reserve", "reserve"]


@attrs.frozen
class Found:
    error: PollerFailed
    steps: list[str]  # from trexec's report note
    printed: list[str]  # Hypothesis' own notes: the steps it prints, the blob


def search(machine: type = WarehouseMachine, **overrides: object) -> Found:
    with pytest.raises(PollerFailed) as info:
        run_state_machine_as_test(machine, settings=settings(SETTINGS, **overrides))
    notes = info.value.__notes__
    report = next(n for n in notes if n.startswith("trexec.stateful report"))
    steps = re.findall(r"^    \d+: (\w+)\(\)$", report, flags=re.MULTILINE)
    return Found(info.value, steps, [n for n in notes if n is not report])


@pytest.fixture(scope="module")
def found() -> tuple[Found, InMemoryExampleDatabase]:
    database = InMemoryExampleDatabase()
    return search(database=database), database


def test_planted_bug_is_found_and_shrunk_to_its_minimal_sequence(found):
    first, _ = found
    assert first.steps == MINIMAL
    assert first.error.rule_index == 2  # the watcher the third step started saw it
    assert "oversold" in str(first.error.reason)
    # Hypothesis prints the same sequence (as calls on `state`).
    assert [n.removeprefix("state.") for n in first.printed if n.startswith("state.")] == [
        *(f"{name}()" for name in MINIMAL),
        "teardown()",
    ]


def test_the_search_is_deterministic_under_a_fixed_seed(found):
    again = search()
    assert again.steps == found[0].steps
    assert again.printed == found[0].printed  # the same reproduce_failure blob included
    assert str(again.error.reason) == str(found[0].error.reason)


def test_the_failure_replays_from_the_example_database(found):
    _, database = found
    replayed = search(database=database, phases=[Phase.reuse])  # no new search
    assert replayed.steps == MINIMAL


def test_reproduce_failure_replays_the_printed_blob(found):
    blob_note = next(n for n in found[0].printed if "@reproduce_failure" in n)
    match = re.search(r"@reproduce_failure\('([^']+)', (b'[^']*')\)", blob_note)
    assert match is not None, blob_note
    version, blob = match[1], ast.literal_eval(match[2])
    # reproduce_failure marks the class it decorates: decorate a subclass.
    replay = reproduce_failure(version, blob)(type("Replay", (WarehouseMachine,), {}))
    replayed = search(replay, phases=[Phase.explicit])
    assert replayed.steps == MINIMAL
