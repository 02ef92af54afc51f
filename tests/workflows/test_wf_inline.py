"""Inline steps: a run runs its ready steps itself (spec §6.6.2, §6.6.4).

``execution="inline"`` is the default; ``tests/workflows`` runs the rest of the
workflow rules on it, and the rules that are about step instances on
``execution="instances"``.
"""

from __future__ import annotations

import pytest
import trio

from trexec import Backoff, durable, telemetry, testing, workflows
from trexec.workflows import InvalidWorkflow, Step, Workflow
from trexec.workflows._run_machine import run_machine

FAST = {"poll_interval": 0.02}


def chain(
    log: list, *, fail: str | None = None, compensate: bool = False, commit_window: float = 0.01
) -> Workflow:
    def step(name: str):
        async def fn(ctx):
            log.append((name, ctx.attempt, sorted(ctx.results)))
            if name == fail:
                raise ValueError(f"{name} broke")
            return name.upper()

        return fn

    def undo(name: str):
        async def fn(ctx):
            log.append((f"undo {name}", str(ctx.error)))

        return fn

    return Workflow(
        "chain",
        [
            Step("a", step("a"), compensate=undo("a") if compensate else None),
            Step("b", step("b"), after=["a"], compensate=undo("b") if compensate else None),
            Step("c", step("c"), after=["b"]),
        ],
        commit_window=commit_window,
    )


def test_execution_is_checked():
    async def noop(ctx):
        return None

    assert Workflow("w", [Step("a", noop)]).execution == "inline"
    assert Workflow("w", [Step("a", noop)], execution="instances").execution == "instances"
    with pytest.raises(InvalidWorkflow, match=r"execution='threads': expected 'inline' or"):
        Workflow("w", [Step("a", noop)], execution="threads")  # type: ignore[arg-type]


async def test_an_inline_run_starts_no_step_instance_and_commits_each_step(store):
    log: list = []
    wf = chain(log, commit_window=0)  # spec §6.6.6: 0 commits after every step
    commits: list = []

    def count(name, measurements, metadata):
        if metadata["machine"] == "workflow:chain" and metadata["commit"] == "applied":
            commits.append((metadata["step"], metadata["kind"]))

    detach = telemetry.attach(count, prefix=("trexec", "durable", "step", "stop"))
    try:
        async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
            run = await engine.wait(await engine.start_workflow(wf, {"n": 1}), timeout=10)
            steps = await engine.list(machine="workflow:chain:step")
    finally:
        detach()
    assert run.status == "done"
    assert run.result == {"a": "A", "b": "B", "c": "C"}
    assert log == [("a", 1, []), ("b", 1, ["a"]), ("c", 1, ["a", "b"])]
    assert steps == []  # spec §6.6.2: no step instance at all
    # One engine step (one commit) per workflow step, the last one ends the run.
    assert commits == [("start", "next"), ("run", "next"), ("run", "done")]
    table = workflows.describe_run(run)["steps"]
    assert [(r["step"], r["status"], r["attempts"]) for r in table] == [
        ("a", "done", 1),
        ("b", "done", 1),
        ("c", "done", 1),
    ]


async def test_ready_steps_run_at_the_same_time_in_the_run(store):
    inside = 0
    most = 0
    all_in = trio.Event()

    async def branch(ctx):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        if inside == 8:
            all_in.set()
        with trio.fail_after(5):
            await all_in.wait()  # every branch is in flight before any ends
        inside -= 1
        return ctx.step

    async def first(ctx):
        return "first"

    async def last(ctx):
        return sorted(ctx.results)

    names = [f"p{i}" for i in range(8)]
    wf = Workflow(
        "fan",
        [
            Step("first", first),
            *[Step(name, branch, after=["first"]) for name in names],
            Step("last", last, after=names),
        ],
    )
    async with durable.open_engine(store, workflows=[wf], workers=1, **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "done"
    assert most == 8  # one worker: the eight branches ran together inside the run
    assert run.result["last"] == sorted(["first", *names])


async def test_a_failed_attempt_with_retries_left_moves_to_a_step_instance(
    store, wf_events, autojump_clock
):
    attempts = []

    async def flaky(ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"try {ctx.attempt}")
        return "ok"

    async def after(ctx):
        return ctx.results["flaky"]

    wf = Workflow(
        "flaky",
        [
            Step("flaky", flaky, retries=2, backoff=Backoff(initial=0.5, factor=2, max=10)),
            Step("after", after, after=["flaky"]),
        ],
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        started = trio.current_time()
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=30)
        elapsed = trio.current_time() - started
        instance = await engine.get(f"{run.state.run_key}/flaky")
    assert run.status == "done"
    assert run.result == {"flaky": "ok", "after": "ok"}
    assert attempts == [1, 2, 3]
    assert elapsed >= 0.5 + 1.0  # spec §6.4: both backoffs were waited (virtual time)
    assert instance.status == "done"  # attempts 2 and 3 ran in the step instance
    retrying = [m for name, _, m in wf_events if name[2:] == ("step", "retrying")]
    assert [(m["step"], m["attempt"], m["data"]["delay"]) for m in retrying] == [
        ("flaky", 1, 0.5),
        ("flaky", 2, 1.0),
    ]
    assert workflows.describe_run(run)["steps"][0]["attempts"] == 3


async def test_a_failed_inline_step_fails_the_run_and_compensates_newest_first(store):
    log: list = []
    wf = chain(log, fail="c", compensate=True)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    assert run.status == "stopped"
    assert run.error == "step 'c' failed: ValueError: c broke"
    failure = "step 'c' failed: ValueError: c broke"
    assert log[3:] == [("undo b", failure), ("undo a", failure)]
    table = {r["step"]: r for r in workflows.describe_run(run)["steps"]}
    assert (table["a"]["compensation"], table["b"]["compensation"]) == ("done", "done")
    assert table["c"]["status"] == "failed"


async def test_cancel_run_during_an_inline_step_compensates_what_completed(store):
    log: list = []
    gate, entered = trio.Event(), trio.Event()

    async def first(ctx):
        return 1

    async def second(ctx):
        entered.set()
        with trio.fail_after(5):
            await gate.wait()
        return 2

    async def third(ctx):
        log.append("third ran")

    async def undo(ctx):
        log.append(f"undo {ctx.step}")

    wf = Workflow(
        "cancel-inline",
        [
            Step("first", first, compensate=undo),
            Step("second", second, after=["first"], compensate=undo),
            Step("third", third, after=["second"]),
        ],
        commit_window=0,  # "first" is committed before "second" starts
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        with trio.fail_after(5):
            await entered.wait()
        await workflows.cancel_run(engine, run_id)
        gate.set()  # "second" completes; the run then sees the cancel before "third"
        run = await engine.wait(run_id, timeout=10)
    assert run.status == "cancelled"
    assert log == ["undo second", "undo first"]  # spec §6.11.1: newest first, no third


async def wait_for_key(engine, key: str):
    """The instance ``key`` names once it exists, waited until it ends."""
    with trio.fail_after(10):
        while True:
            try:
                return await engine.wait(key, timeout=10)
            except durable.NoTarget:
                await trio.sleep(0.01)  # not inserted yet


def cancelled_mid_step(log: list, window: float, *, outlast: float = 0) -> tuple:
    """first -> second (blocks until the gate opens, then ``outlast`` seconds)
    -> third; first and second compensate. Returns (wf, entered, gate)."""
    gate, entered = trio.Event(), trio.Event()

    async def first(ctx):
        return 1

    async def second(ctx):
        entered.set()
        with trio.fail_after(5):
            await gate.wait()
        await trio.sleep(outlast)
        log.append("second ended")

    async def third(ctx):
        log.append("third ran")

    async def undo(ctx):
        log.append(f"undo {ctx.step}")

    wf = Workflow(
        "engine-cancel-inline",
        [
            Step("first", first, compensate=undo),
            Step("second", second, after=["first"], compensate=undo),
            Step("third", third, after=["second"]),
        ],
        commit_window=window,
    )
    return wf, entered, gate


async def cancel_mid_step(engine, wf, entered, gate) -> tuple:
    run_id = await engine.start_workflow(wf, None)
    with trio.fail_after(5):
        await entered.wait()
    await engine.cancel(run_id)
    gate.set()
    run = await engine.wait(run_id, timeout=10)
    compensator = await wait_for_key(engine, f"{run.state.run_key}/cancelled/compensator")
    return run, compensator


async def test_engine_cancel_of_an_inline_run_compensates_what_completed(store):
    """spec §6.11.2, §5.4.11: the run's step outcome is discarded when it returns;
    its machine's cancelled hook gives it a compensator, which compensates the
    steps of the table that engine step reached, newest first."""
    log: list = []
    wf, entered, gate = cancelled_mid_step(log, 0)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run, compensator = await cancel_mid_step(engine, wf, entered, gate)
    assert run.status == "cancelled"
    assert compensator.status == "done" and compensator.result["cancelled_run"] == run.id
    assert log == ["second ended", "undo second", "undo first"]  # no "third"


async def test_engine_cancel_compensates_the_uncommitted_steps_of_a_window(store, autojump_clock):
    """spec §6.6.6, §5.4.11: first ends, second starts in the same engine step (no
    commit between them); the hook sees the discarded outcome's table, so first
    is compensated too. second outlasts the window: third is not started."""
    log: list = []
    wf, entered, gate = cancelled_mid_step(log, 0.5, outlast=1)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run, compensator = await cancel_mid_step(engine, wf, entered, gate)
    assert (run.status, compensator.status) == ("cancelled", "done")
    assert log == ["second ended", "undo second", "undo first"]


async def test_engine_cancel_of_a_parked_inline_run_compensates_its_inline_steps(
    store, autojump_clock
):
    """spec §6.11.2: a run parked on a retry's step instance: engine.cancel calls
    the hook itself; the compensator waits for the retry instance, which starts
    nothing, then compensates the step that completed inline (no instance)."""
    log: list = []

    async def charge(ctx):
        log.append("charge")

    async def ship(ctx):
        log.append(f"ship {ctx.attempt}")
        raise RuntimeError("carrier down")

    async def refund(ctx):
        log.append("refund")

    wf = Workflow(
        "parked-cancel",
        [
            Step("charge", charge, compensate=refund),
            Step("ship", ship, after=["charge"], retries=1, backoff=Backoff(initial=60, max=60)),
        ],
    )
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        with trio.fail_after(30):
            while (await engine.get(run_id)).status != "awaiting":
                await trio.sleep(0.01)
        await engine.cancel(run_id)  # the hook inserted the compensator before this returned
        run = await engine.get(run_id)
        compensator = await engine.wait(f"{run.state.run_key}/cancelled/compensator", timeout=600)
    assert compensator.status == "done"
    assert log == ["charge", "ship 1", "refund"]  # the retry never ran


async def test_a_crash_before_the_commit_reruns_the_inline_step(autojump_clock):
    """spec §6.3.3: at least once: the worker dies after the step ran, before its
    commit; the lease expires and the run's step runs it again."""
    log: list = []
    wf = chain(log, commit_window=0)
    async with testing.open_test_engine(workflows=[wf]) as engine:
        engine.faults.crash_after_step(run_machine(wf), "run")
        run = await engine.wait(await engine.start_workflow(wf, None))
    assert run.status == "done"
    assert [name for name, _, _ in log] == ["a", "b", "b", "c"]  # b ran twice
    assert run.result == {"a": "A", "b": "B", "c": "C"}


async def test_events_of_an_inline_run_are_in_order(store, wf_events):
    log: list = []
    wf = chain(log)
    async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
        run_id = await engine.start_workflow(wf, None)
        await engine.wait(run_id, timeout=10)
    kinds = [(name[2:], meta["step"], meta["attempt"]) for name, _, meta in wf_events]
    assert kinds == [
        (("run", "started"), None, None),
        (("step", "started"), "a", 1),
        (("step", "completed"), "a", 1),
        (("step", "started"), "b", 1),
        (("step", "completed"), "b", 1),
        (("step", "started"), "c", 1),
        (("step", "completed"), "c", 1),
        (("run", "completed"), None, None),
    ]


async def test_a_handler_of_one_kind_of_step_event_still_gets_it(store):
    """Inline steps skip building events nobody can receive (no bus, no handler
    under trexec.workflow); a handler of a narrower prefix is someone."""
    completed: list[str] = []
    detach = telemetry.attach(
        lambda name, m, meta: completed.append(meta["step"]),
        prefix=("trexec", "workflow", "step", "completed"),
    )
    try:
        wf = chain([])
        async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
            await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    finally:
        detach()
    assert completed == ["a", "b", "c"]


def test_listening_below_a_prefix():
    detach = telemetry.attach(lambda *event: None, prefix=("trexec", "workflow", "step"))
    try:
        assert telemetry._listening_below(("trexec", "workflow"))
        assert telemetry._listening_below(("trexec", "workflow", "step", "started"))
        assert not telemetry._listening_below(("trexec", "workflow", "run"))
        assert not telemetry._listening_below(("trexec", "durable"))
    finally:
        detach()
    detach = telemetry.attach(lambda *event: None, prefix=("trexec",))
    try:
        assert telemetry._listening_below(("trexec", "workflow"))
    finally:
        detach()


async def test_runs_ending_in_one_batch_keep_their_final_tables(store):
    """spec §5.11.5, §8.8.5: a run's end (Done with its final state) is batched
    with the other plain commits; each run's final table is stored."""

    async def one(ctx):
        return ctx.input

    wf = Workflow("many-ends", [Step("only", one)])
    async with durable.open_engine(store, workers=0, workflows=[wf]) as producer:
        ids = [await producer.start_workflow(wf, n) for n in range(20)]
    async with durable.open_engine(store, workflows=[wf], workers=20, batch_size=64) as engine:
        runs = [await engine.wait(run_id, timeout=10) for run_id in ids]
    for n, run in enumerate(runs):
        assert (run.status, run.result) == ("done", {"only": n})
        info = workflows.describe_run(run)
        assert (info["phase"], info["steps"][0]["status"]) == ("done", "done")


def applied_commits(machine: str) -> tuple[list, object]:
    """(step, kind) of every applied commit of ``machine``, and the detach call."""
    commits: list = []

    def count(name, measurements, metadata):
        if metadata["machine"] == machine and metadata["commit"] == "applied":
            commits.append((metadata["step"], metadata["kind"]))

    return commits, telemetry.attach(count, prefix=("trexec", "durable", "step", "stop"))


@pytest.mark.parametrize("window", [-1, -0.5, float("nan"), float("inf"), True, "1", None])
def test_commit_window_is_checked(window):
    async def noop(ctx):
        return None

    assert Workflow("w", [Step("a", noop)]).commit_window == 0.01
    assert Workflow("w", [Step("a", noop)], commit_window=0).commit_window == 0
    with pytest.raises(InvalidWorkflow, match=rf"commit_window={window!r}: expected a number"):
        Workflow("w", [Step("a", noop)], commit_window=window)


async def test_a_chain_within_the_commit_window_commits_once(store):
    """spec §6.6.6: steps made ready within the window run before the commit."""
    log: list = []
    wf = chain(log, commit_window=60)  # no-op steps end far within a minute
    commits, detach = applied_commits("workflow:chain")
    try:
        async with durable.open_engine(store, workflows=[wf], **FAST) as engine:
            run = await engine.wait(await engine.start_workflow(wf, None), timeout=10)
    finally:
        detach()
    assert (run.status, run.result) == ("done", {"a": "A", "b": "B", "c": "C"})
    assert log == [("a", 1, []), ("b", 1, ["a"]), ("c", 1, ["a", "b"])]
    assert commits == [("start", "done")]  # three steps, one engine step


async def test_a_step_outlasting_the_window_ends_the_engine_step(autojump_clock):
    """spec §6.6.6: a group that ends after the window commits before its
    successors start; the quick ones after it share the next commit."""

    async def slow(ctx):
        await trio.sleep(1)
        return "slow"

    async def quick(ctx):
        return ctx.step

    wf = Workflow(
        "slow-first",
        [Step("a", slow), Step("b", quick, after=["a"]), Step("c", quick, after=["b"])],
        commit_window=0.5,
    )
    commits, detach = applied_commits("workflow:slow-first")
    try:
        async with testing.open_test_engine(workflows=[wf]) as engine:
            run = await engine.wait(await engine.start_workflow(wf, None))
    finally:
        detach()
    assert run.result == {"a": "slow", "b": "b", "c": "c"}
    assert commits == [("start", "next"), ("run", "done")]


@pytest.mark.parametrize("shape", ["chain", "branches"])
async def test_the_saver_stores_finished_steps_while_a_long_one_runs(autojump_clock, shape):
    """spec §6.6.6: a quick step's outcome is saved within the window while a long
    step of the same engine step runs; a crash then re-runs only the long one."""
    log: list = []
    in_slow = trio.Event()

    async def quick(ctx):
        log.append(ctx.step)
        return ctx.step

    async def slow(ctx):
        log.append(ctx.step)
        in_slow.set()
        await trio.sleep(10)
        return ctx.step

    after = ["quick"] if shape == "chain" else []
    wf = Workflow(
        f"saved-{shape}", [Step("quick", quick), Step("slow", slow, after=after)], commit_window=0.5
    )
    async with testing.open_test_engine(workflows=[wf], lease=30) as engine:
        engine.faults.crash_after_step(run_machine(wf), "start")
        run_id = await engine.start_workflow(wf, None)
        await in_slow.wait()
        await trio.sleep(1)  # past the window: the saver has stored "quick"
        table = {
            r["step"]: r["status"]
            for r in workflows.describe_run(await engine.get(run_id))["steps"]
        }
        assert table == {"quick": "done", "slow": "pending"}
        run = await engine.wait(run_id)
    assert (run.status, run.result) == ("done", {"quick": "quick", "slow": "slow"})
    assert log == ["quick", "slow", "slow"]  # the crash re-ran "slow" only


async def test_the_saver_saves_within_the_last_quarter_of_the_window(autojump_clock):
    """spec §6.6.6: an unsaved outcome is saved once it is commit_window old, up
    to a quarter window sooner (one wake-up of the saver takes every entry due
    that soon), never later."""
    in_slow = trio.Event()

    async def quick(ctx):
        return ctx.step

    async def slow(ctx):
        in_slow.set()
        await trio.sleep(10)
        return ctx.step

    wf = Workflow(
        "saved-late", [Step("quick", quick), Step("slow", slow, after=["quick"])], commit_window=1
    )

    async def quick_status(engine, run_id):
        steps = workflows.describe_run(await engine.get(run_id))["steps"]
        return {r["step"]: r["status"] for r in steps}["quick"]

    async with testing.open_test_engine(workflows=[wf]) as engine:
        run_id = await engine.start_workflow(wf, None)
        await in_slow.wait()
        began = trio.current_time()
        await trio.sleep(0.7)
        assert await quick_status(engine, run_id) == "pending"  # not before 3/4 window
        await trio.sleep(0.31)
        assert trio.current_time() - began < 1.02
        assert await quick_status(engine, run_id) == "done"  # saved by the window
        run = await engine.wait(run_id)
    assert run.status == "done"


async def test_one_wake_up_of_the_saver_saves_the_runs_due_soon_after(autojump_clock):
    """spec §6.6.6: the saver, woken by the first deadline, also saves a run due
    within a quarter window after it (here 0.1 s of a 1 s window early)."""
    slow_started: list[float] = []

    async def quick(ctx):
        return ctx.step

    async def slow(ctx):
        slow_started.append(trio.current_time())
        await trio.sleep(10)
        return ctx.step

    wf = Workflow(
        "saved-together",
        [Step("quick", quick), Step("slow", slow, after=["quick"])],
        commit_window=1,
    )

    async def saved(engine, run_id):
        steps = workflows.describe_run(await engine.get(run_id))["steps"]
        return {r["step"]: r["status"] for r in steps}["quick"] == "done"

    async with testing.open_test_engine(workflows=[wf]) as engine:
        first = await engine.start_workflow(wf, None)
        while not slow_started:
            await trio.sleep(0.01)
        await trio.sleep(0.1)
        second = await engine.start_workflow(wf, None)
        while len(slow_started) < 2:
            await trio.sleep(0.01)
        assert slow_started[1] - slow_started[0] >= 0.1
        await trio.sleep_until(slow_started[0] + 1.01)
        assert await saved(engine, first)
        assert await saved(engine, second)  # due at +1.1, saved with the first
        await engine.wait(second)


async def test_a_window_of_zero_runs_no_saver(autojump_clock):
    async def noop(ctx):
        return None

    wf = Workflow("no-window", [Step("a", noop)], commit_window=0)
    async with testing.open_test_engine(workflows=[wf]) as engine:
        assert wf.engine_tasks(engine) == ()
        run = await engine.wait(await engine.start_workflow(wf, None))
    assert run.status == "done"


@pytest.mark.parametrize("shape", ["chain", "fan-out"])
async def test_an_inline_run_leaves_no_reference_cycle(autojump_clock, shape):
    """What an inline engine step makes is freed when it ends, not by the
    garbage collector (whose passes cost the workflow bench 7% when each run
    left a cycle)."""
    import gc

    async def noop(ctx):
        return None

    steps = [Step("a", noop), Step("b", noop, after=["a"]), Step("c", noop, after=["b"])]
    if shape == "fan-out":
        steps = [Step("a", noop), *[Step(f"p{i}", noop, after=["a"]) for i in range(4)],
                 Step("z", noop, after=[f"p{i}" for i in range(4)])]  # fmt: skip
    wf = Workflow("acyclic", steps)
    async with testing.open_test_engine(workflows=[wf]) as engine:
        await engine.wait(await engine.start_workflow(wf, None), timeout=10)  # warm up
        gc.collect()
        gc.disable()
        try:
            runs = [await engine.start_workflow(wf, None) for _ in range(50)]
            for run in runs:
                assert (await engine.wait(run, timeout=10)).status == "done"
            freed = gc.collect()
        finally:
            gc.enable()
    # A cycle per run (15 objects each) would leave 750; the engine's own churn
    # is a few.
    assert freed < 50


async def test_a_committed_runs_saver_entry_holds_nothing_of_it(autojump_clock):
    """spec §6.6.6: a run that commits before its deadline leaves its entry in
    the saver's heap until then, without its state or context: kept alive that
    long, those outlived the collector's youngest generation and made it run
    full passes (the workflow bench spent 4% of its time in them)."""
    from trexec.workflows._saver import saver_of

    async def noop(ctx):
        return None

    wf = Workflow("chain3", [Step("a", noop), Step("b", noop, after=["a"])], commit_window=60)
    async with testing.open_test_engine(workflows=[wf]) as engine:
        runs = [await engine.start_workflow(wf, None) for _ in range(5)]
        for run in runs:
            assert (await engine.wait(run)).status == "done"
        entries = [entry for _, _, entry, _ in saver_of(engine)._heap]
        assert len(entries) == 5  # one each, due in a minute
        assert all(not e.active and e.ctx is None and e.state is None for e in entries)
