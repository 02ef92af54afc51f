"""Every outcome and the step/handle error rules (spec §5.4), on every store."""

from __future__ import annotations

import attrs
import pytest
import trio
from machines import Counter, CountTo3
from stores import FAST

from trexec import durable

#: Also on a SQLite file with inline calls (spec §5.11.6).
INLINE_TOO = True


@attrs.define
class Box:
    value: int = 0


async def test_next_runs_each_step_and_done_stores_the_result(store):
    async with durable.open_engine(store, [CountTo3], **FAST) as engine:
        id_ = await engine.insert(CountTo3, Counter())
        instance = await engine.wait(id_, timeout=10)
    assert instance.status == "done"
    assert instance.result == {"n": 3, "log": ["start", "middle", "finish"]}
    assert instance.state == Counter(2, ["start", "middle"])  # Done keeps the last state
    assert instance.error is None


class Retrying(durable.Machine):
    name = "retrying"
    State = Box

    async def step(self, step, ctx):
        if ctx.attempt < 3:
            return durable.Retry(Box(ctx.state.value + 10), delay=0.01)
        return durable.Done({"attempt": ctx.attempt, "value": ctx.state.value})


async def test_retry_reruns_the_same_step_with_attempt_plus_one_and_new_state(
    store, autojump_clock
):
    async with durable.open_engine(store, [Retrying], **FAST) as engine:
        id_ = await engine.insert(Retrying, Box())
        instance = await engine.wait(id_, timeout=10)
    assert instance.result == {"attempt": 3, "value": 20}


class Stopper(durable.Machine):
    name = "stopper"

    async def step(self, step, ctx):
        return durable.Stop("insufficient funds")


async def test_stop_ends_the_instance_with_the_reason_as_error(store):
    async with durable.open_engine(store, [Stopper], **FAST) as engine:
        id_ = await engine.insert(Stopper, {"any": "json"})
        instance = await engine.wait(id_, timeout=10)
    assert instance.status == "stopped"
    assert instance.error == "insufficient funds"
    assert instance.state == {"any": "json"}


class Raiser(durable.Machine):
    name = "raiser"

    async def step(self, step, ctx):
        raise RuntimeError("card declined")


async def test_a_raising_step_without_handle_stops_with_the_error(store):
    async with durable.open_engine(store, [Raiser], **FAST) as engine:
        instance = await engine.wait(await engine.insert(Raiser, None), timeout=10)
    assert instance.status == "stopped"
    assert instance.error == "RuntimeError: card declined"


class Handled(durable.Machine):
    name = "handled"
    State = Box

    async def step(self, step, ctx):
        if step == "start":
            if ctx.state.value == 0:
                raise ValueError("boom")
            return "not an outcome"
        return durable.Done({"recovered_from": ctx.state.value})

    async def handle(self, error, ctx):
        assert ctx.awaited == () and ctx.all == () and ctx.children == ()
        if isinstance(error, ValueError):
            return durable.Next("start", Box(1))
        assert isinstance(error, TypeError) and "not an outcome" in str(error)
        return durable.Next("recovered", Box(2))


async def test_handle_gets_raised_errors_and_non_outcomes_and_its_outcome_applies(store):
    async with durable.open_engine(store, [Handled], **FAST) as engine:
        instance = await engine.wait(await engine.insert(Handled, Box()), timeout=10)
    assert instance.result == {"recovered_from": 2}


class HandleRaises(durable.Machine):
    name = "handle_raises"

    async def step(self, step, ctx):
        raise ValueError("first")

    async def handle(self, error, ctx):
        raise KeyError("second")


async def test_handle_raising_stops_the_instance_with_handles_error(store):
    async with durable.open_engine(store, [HandleRaises], **FAST) as engine:
        instance = await engine.wait(await engine.insert(HandleRaises, None), timeout=10)
    assert instance.status == "stopped"
    assert instance.error == "KeyError: 'second'"


class Unstorable(durable.Machine):
    name = "unstorable"
    State = Box

    async def step(self, step, ctx):
        if step == "start":
            return durable.Next("again", object())  # not a Box: cannot be stored
        if step == "nan":
            return durable.Done(float("nan"))  # not JSON
        return durable.Done("unreachable")

    async def handle(self, error, ctx):
        if ctx.step == "start":
            return durable.Next("nan", Box(7))
        return durable.Stop(error)


async def test_a_state_or_result_that_cannot_be_stored_is_a_step_error_not_a_crash(store):
    async with durable.open_engine(store, [Unstorable], **FAST) as engine:
        instance = await engine.wait(await engine.insert(Unstorable, Box()), timeout=10)
    assert instance.status == "stopped"
    assert instance.step == "nan"
    assert instance.state == Box(7)
    assert "ValueError" in instance.error


class DatabaseRejects(durable.Machine):
    """Outcomes whose values PostgreSQL cannot hold (a timestamp past 294276 AD, a
    32-bit weight, NUL in text): each commit failed on every retry and stalled
    the completer, so no later outcome committed (spec §5.1.4)."""

    name = "database_rejects"

    async def step(self, step, ctx):
        return {
            "delay": durable.Retry(None, delay=1e20),
            "timeout": durable.Await("go", "next", None, timeout=1e20),
            "weight": durable.Next("next", None, weight=2**40),
            "name": durable.Next("ne\x00xt", None),
            "reason": durable.Stop("bad\x00byte"),
        }[ctx.state]


async def test_an_outcome_the_database_cannot_hold_is_a_step_error_not_a_stall(
    store, autojump_clock
):
    kinds = ["delay", "timeout", "weight", "name", "reason"]
    async with durable.open_engine(store, [DatabaseRejects, CountTo3], **FAST) as engine:
        ids = [await engine.insert(DatabaseRejects, kind) for kind in kinds]
        after = await engine.insert(CountTo3, Counter())
        found = [await engine.wait(id_, timeout=10) for id_ in [*ids, after]]
    assert [i.status for i in found] == ["stopped"] * 5 + ["done"]
    assert all("ValueError" in i.error for i in found[:4]), [i.error for i in found[:4]]
    assert found[4].error == "bad\\x00byte"


class BadOutcomeArgs(durable.Machine):
    name = "bad_outcome_args"

    async def step(self, step, ctx):
        return durable.Retry(None, delay=-1)


async def test_an_invalid_outcome_built_in_a_step_goes_to_handle(store, autojump_clock):
    async with durable.open_engine(store, [BadOutcomeArgs], **FAST) as engine:
        instance = await engine.wait(await engine.insert(BadOutcomeArgs, None), timeout=10)
    assert instance.status == "stopped"
    assert "delay=-1" in instance.error


class Versioned1(durable.Machine):
    name = "versioned"
    version = 1

    async def step(self, step, ctx):
        return durable.Done(f"v1 ran {step}")


class Versioned2(durable.Machine):
    name = "versioned"
    version = 2

    async def step(self, step, ctx):
        return durable.Done(f"v2 ran {step}")


async def test_instances_resume_on_their_version_and_workers_run_only_their_machines(
    store, autojump_clock
):
    async with durable.open_engine(store, workers=0) as producer:
        old = await producer.insert(Versioned1, None)
        new = await producer.insert(Versioned2, None)
    async with durable.open_engine(store, [Versioned2], **FAST) as engine:
        assert (await engine.wait(new, timeout=10)).result == "v2 ran start"
        await trio.sleep(0.05)
        assert (await engine.get(old)).status == "scheduled"  # left for a v1 worker
    async with durable.open_engine(store, [Versioned1], **FAST) as engine:
        assert (await engine.wait(old, timeout=10)).result == "v1 ran start"


async def test_schedule_in_delays_the_first_step(store, autojump_clock):
    async with durable.open_engine(store, [CountTo3], **FAST) as engine:
        id_ = await engine.insert(CountTo3, Counter(), schedule_in=3600)
        await trio.sleep(0.05)
        assert (await engine.get(id_)).status == "scheduled"


async def test_workers_zero_inserts_without_running(store, autojump_clock):
    async with durable.open_engine(store, [CountTo3], workers=0) as engine:
        id_ = await engine.insert(CountTo3, Counter(), key="k-1")
        await trio.sleep(0.05)
        instance = await engine.get("k-1")
    assert instance.id == id_ and instance.status == "scheduled" and instance.attempt == 1


async def test_step_stop_telemetry_names_the_step_and_outcome_kind(store, events):
    async with durable.open_engine(store, [CountTo3], **FAST) as engine:
        id_ = await engine.insert(CountTo3, Counter())
        await engine.wait(id_, timeout=10)
    stops = [
        (meta["step"], meta["kind"]) for name, _, meta in events if name[2:] == ("step", "stop")
    ]
    assert stops == [("start", "next"), ("middle", "next"), ("finish", "done")]
    stop = next(e for e in events if e[0][2:] == ("step", "stop"))
    assert stop[1]["duration"] >= 0 and stop[2]["id"] == id_ and stop[2]["machine"] == "count_to_3"
    assert any(name[2:] == ("pick",) for name, _, _ in events)


@pytest.mark.parametrize("batch_size", [1, 64])
async def test_many_instances_all_complete_with_any_batch_size(store, batch_size):
    async with durable.open_engine(store, [CountTo3], batch_size=batch_size, **FAST) as engine:
        ids = await engine.insert_many(
            [durable.InsertSpec(CountTo3, Counter(i)) for i in range(50)]
        )
        results = [await engine.wait(i, timeout=20) for i in ids]
    assert [r.result["n"] for r in results] == [i + 3 for i in range(50)]


class DriftV1Loose(durable.Machine):
    name = "drift"  # same (name, version) as DriftV1Strict, but no State class

    async def step(self, step, ctx):
        raise AssertionError("never run")


class DriftV1Strict(durable.Machine):
    name = "drift"
    State = Box

    async def step(self, step, ctx):
        raise AssertionError("the state cannot load: step must not run")

    async def handle(self, error, ctx):
        assert ctx.state is None
        return durable.Stop(f"unloadable state: {type(error).__name__}")


async def test_a_stored_state_that_cannot_be_loaded_goes_to_handle(store):
    async with durable.open_engine(store, workers=0) as producer:
        id_ = await producer.insert(DriftV1Loose, {"value": "not an int"})
    async with durable.open_engine(store, [DriftV1Strict], **FAST) as engine:
        instance = await engine.wait(id_, timeout=10)
    assert instance.status == "stopped" and instance.error.startswith("unloadable state")


class Poisoned(durable.Machine):
    """Instance 3's next state is one the database itself refuses (a constraint
    of its own, installed by the test); the others are fine."""

    name = "poisoned"
    State = Counter

    async def step(self, step, ctx):
        if step == "start":
            mark = "poison" if ctx.state.n == 3 else "fine"
            return durable.Next("finish", Counter(ctx.state.n, [mark]))
        return durable.Done({"n": ctx.state.n})


def refuse_poison(store) -> None:
    """A constraint the database enforces on its own: no state may say 'poison'."""
    import psycopg
    from stores import PG_URL, raw_connection

    if getattr(store, "schema", None):
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(
                f'ALTER TABLE "{store.schema}".trexec_instances'
                " ADD CONSTRAINT no_poison CHECK (state NOT LIKE '%poison%')"
            )
        return
    with raw_connection(store) as conn:
        conn.execute(
            "CREATE TRIGGER no_poison BEFORE UPDATE OF state ON instances"
            " WHEN NEW.state LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'no poison'); END"
        )


async def test_an_outcome_the_database_refuses_stops_its_instance_not_the_engine(store, events):
    """spec §5.5.9: the refused batch is committed outcome by outcome; the one the
    database refuses alone stops its instance with the refusal as the error."""
    refuse_poison(store)
    async with durable.open_engine(store, [Poisoned], batch_size=16, **FAST) as engine:
        ids = await engine.insert_many([durable.InsertSpec(Poisoned, Counter(n)) for n in range(8)])
        finished = [await engine.wait(id_, timeout=10) for id_ in ids]
    assert [i.status for i in finished] == ["done"] * 3 + ["stopped"] + ["done"] * 4
    assert [i.result for i in finished if i.status == "done"] == [
        {"n": n} for n in range(8) if n != 3
    ]
    assert "the store refused this next outcome" in finished[3].error
    rejected = [meta for name, _, meta in events if name[2:] == ("outcome", "rejected")]
    assert [(m["id"], m["kind"]) for m in rejected] == [(ids[3], "next")]
