"""The run state and its pure transitions (spec §6.5-§6.9), without an engine."""

from __future__ import annotations

from trexec.workflows import Step, Workflow
from trexec.workflows._state import (
    StepReport,
    apply_report,
    end,
    final_error,
    finish_compensation,
    mark_dispatched,
    new_run_state,
    plan,
    ready_steps,
    request_cancel,
    start_compensation,
)


async def noop(ctx):
    return None


def checkout() -> Workflow:
    return Workflow(
        "checkout",
        [
            Step("reserve", noop, compensate=noop),
            Step("charge", noop, after=["reserve"], compensate=noop),
            Step("email", noop, after=["charge"]),
            Step("ship", noop, after=["charge"], compensate=noop),
            Step("close", noop, after=["email", "ship"]),
        ],
    )


def done(step: str, result: object = None) -> StepReport:
    return StepReport(step, "done", result=result)


def test_a_new_run_dispatches_its_entry_steps():
    wf = checkout()
    state = new_run_state(wf, "k", {"order": 1})
    assert plan(wf, state).kind == "dispatch"
    assert plan(wf, state).steps == ("reserve",)


def test_branches_become_ready_together_and_a_join_waits_for_all():
    wf = checkout()
    state = new_run_state(wf, "k", None)
    mark_dispatched(state, ["reserve"])
    assert plan(wf, state).kind == "wait"
    apply_report(state, done("reserve"))
    mark_dispatched(state, ["charge"])
    apply_report(state, done("charge"))
    assert ready_steps(wf, state) == ["email", "ship"]
    mark_dispatched(state, ["email", "ship"])
    apply_report(state, done("email"))
    assert ready_steps(wf, state) == []  # close still waits for ship
    apply_report(state, done("ship"))
    assert ready_steps(wf, state) == ["close"]


def test_a_step_is_ready_as_soon_as_its_own_dependencies_are_done():
    wf = Workflow("w", [Step("a", noop), Step("slow", noop), Step("b", noop, after=["a"])])
    state = new_run_state(wf, "k", None)
    mark_dispatched(state, ["a", "slow"])
    apply_report(state, done("a"))
    assert plan(wf, state).steps == ("b",)  # no wave: "slow" is still running


def test_complete_when_every_step_is_done_with_results_in_completion_order():
    wf = Workflow("w", [Step("a", noop), Step("b", noop)])
    state = new_run_state(wf, "k", None)
    mark_dispatched(state, ["a", "b"])
    apply_report(state, done("b", 2))
    apply_report(state, done("a", 1))
    assert plan(wf, state).kind == "complete"
    assert list(state.results.items()) == [("b", 2), ("a", 1)]


def test_duplicate_reports_are_ignored():
    wf = Workflow("w", [Step("a", noop)])
    state = new_run_state(wf, "k", None)
    mark_dispatched(state, ["a"])
    assert apply_report(state, done("a", 1))
    assert not apply_report(state, done("a", 2))
    assert state.results == {"a": 1}
    assert not apply_report(state, done("unknown"))


def test_failure_waits_for_running_steps_then_compensates_newest_first():
    wf = checkout()
    state = new_run_state(wf, "k", None)
    for step in ("reserve", "charge"):
        mark_dispatched(state, [step])
        apply_report(state, done(step))
    mark_dispatched(state, ["email", "ship"])
    apply_report(state, StepReport("email", "failed", 3, error_type="SMTPError", error="down"))
    assert state.phase == "failing"
    assert state.failure is not None and state.failure.step == "email"
    assert plan(wf, state).kind == "wait"  # ship is still running
    apply_report(state, done("ship"))
    step_plan = plan(wf, state)
    assert step_plan.kind == "compensate"
    # ship completed last; email failed (not compensated); charge, reserve before.
    assert state.to_compensate == ["ship", "charge", "reserve"]
    for step in ("ship", "charge", "reserve"):
        assert plan(wf, state).steps == (step,)
        start_compensation(state, step)
        finish_compensation(state, step, None)
    assert plan(wf, state).kind == "finish"
    assert end(state) == "failed"
    assert final_error(state) == "step 'email' failed: SMTPError: down"
    assert state.steps["email"].attempts == 3


def test_a_failed_run_dispatches_nothing_new():
    wf = Workflow("w", [Step("a", noop), Step("b", noop), Step("c", noop, after=["a"])])
    state = new_run_state(wf, "k", None)
    mark_dispatched(state, ["a", "b"])
    apply_report(state, StepReport("b", "failed", error_type="E", error="x"))
    apply_report(state, done("a"))
    assert ready_steps(wf, state) == []
    assert plan(wf, state).kind == "finish"  # a has no compensation


def test_compensation_failure_is_kept_in_the_final_error():
    wf = checkout()
    state = new_run_state(wf, "k", None)
    mark_dispatched(state, ["reserve"])
    apply_report(state, done("reserve"))
    mark_dispatched(state, ["charge"])
    apply_report(state, StepReport("charge", "failed", error_type="Declined", error="no"))
    assert plan(wf, state).steps == ("reserve",)
    finish_compensation(state, "reserve", "RuntimeError: stock service down")
    assert plan(wf, state).kind == "finish"
    assert state.steps["reserve"].compensation == "failed"
    assert final_error(state) == (
        "step 'charge' failed: Declined: no; "
        "compensation of step 'reserve' failed: RuntimeError: stock service down"
    )


def test_cancel_stops_dispatching_and_compensates_completed_steps():
    wf = checkout()
    state = new_run_state(wf, "k", None)
    mark_dispatched(state, ["reserve"])
    apply_report(state, done("reserve"))
    mark_dispatched(state, ["charge"])
    assert request_cancel(state)
    assert not request_cancel(state)
    assert plan(wf, state).kind == "wait"
    apply_report(state, StepReport("charge", "skipped"))
    assert plan(wf, state).steps == ("reserve",)
    finish_compensation(state, "reserve", None)
    assert plan(wf, state).kind == "finish"
    assert end(state) == "cancelled"
    assert final_error(state) == "run failed: Cancelled: the run was cancelled"
