"""Workflow definitions (spec §6.1-§6.4): validation at definition and backoff."""

from __future__ import annotations

import pytest

from trexec import InvalidArgument, TrexecError, workflows
from trexec.workflows import Backoff, InvalidWorkflow, Step, Workflow


async def noop(ctx):
    return None


def sync_fn(ctx):
    return None


async def async_gen(ctx):
    yield None


def test_workflow_keeps_steps_in_dependency_order():
    wf = Workflow(
        "w",
        [
            Step("c", noop, after=["a", "b"]),
            Step("b", noop, after=["a"]),
            Step("a", noop),
        ],
    )
    assert wf.step_names == ("a", "b", "c")
    assert wf.entry_steps == ("a",)
    assert wf.step("c").after == ("b", "a") or wf.step("c").after == ("a", "b")


def test_duplicate_step_names_are_named():
    with pytest.raises(InvalidWorkflow, match="duplicate step name 'a'"):
        Workflow("w", [Step("a", noop), Step("a", noop)])


def test_unknown_after_names_are_named():
    with pytest.raises(InvalidWorkflow, match=r"unknown step\(s\) \['nope'\]"):
        Workflow("w", [Step("a", noop), Step("b", noop, after=["a", "nope"])])


def test_cycles_are_named_in_order():
    with pytest.raises(InvalidWorkflow, match="cycle") as info:
        Workflow(
            "w",
            [
                Step("a", noop),
                Step("b", noop, after=["a", "d"]),
                Step("c", noop, after=["b"]),
                Step("d", noop, after=["c"]),
            ],
        )
    message = str(info.value)
    assert (
        "b -> c -> d -> b" in message
        or "c -> d -> b -> c" in message
        or ("d -> b -> c -> d" in message)
    )


def test_self_dependency_is_rejected():
    with pytest.raises(InvalidWorkflow, match="other than the step itself"):
        Step("a", noop, after=["a"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "Step.name=''"),
        ({"name": 3}, "Step.name=3"),
        ({"name": "a/b"}, "without '/'"),
        ({"fn": 42}, "fn=42"),
        ({"fn": sync_fn}, "fn=<function sync_fn"),
        ({"fn": async_gen}, "fn=<function async_gen"),
        ({"compensate": sync_fn}, "compensate=<function sync_fn"),
        ({"after": "a"}, "after='a'"),
        ({"after": ["x", "x"]}, "without duplicates"),
        ({"retries": -1}, "retries=-1"),
        ({"retries": True}, "retries=True"),
        ({"backoff": (1, 2)}, "backoff=\\(1, 2\\)"),
        ({"compensate": "undo"}, "compensate='undo'"),
    ],
)
def test_bad_step_fields_are_named(kwargs, match):
    args = {"name": "s", "fn": noop, **kwargs}
    with pytest.raises(InvalidWorkflow, match=match):
        Step(**args)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", []), "Workflow.name=''"),
        (("x:step", [Step("s", noop)]), "Workflow.name='x:step'.*without ':'"),
        (("x/y", [Step("s", noop)]), "without '/'"),
        (("w", []), "at least one Step"),
        (("w", "abc"), "a list of workflows.Step"),
        (("w", [noop]), "steps item"),
    ],
)
def test_bad_workflow_fields_are_named(args, match):
    with pytest.raises(InvalidWorkflow, match=match):
        Workflow(*args)


def test_bad_version_is_named():
    with pytest.raises(InvalidWorkflow, match="version=0"):
        Workflow("w", [Step("a", noop)], version=0)


def test_invalid_workflow_is_a_trexec_invalid_argument():
    assert issubclass(InvalidWorkflow, InvalidArgument)
    assert issubclass(InvalidWorkflow, TrexecError)
    assert issubclass(workflows.DispatchError, TrexecError)


def test_old_backoff_is_deprecated_and_returns_the_one_backoff_type():
    import trexec

    with pytest.warns(DeprecationWarning, match=r"trexec\.Backoff\(initial=min, max=max\)"):
        b = Backoff(0.5, 3.0)
    assert b == trexec.Backoff(initial=0.5, factor=2.0, max=3.0)
    assert [b.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_backoff_min_zero_stays_zero_and_tiny_min_is_not_capped_early():
    assert Backoff(1.0, 10.0).delay(1000) == 10.0
    assert Backoff(0, 5.0).delay(100) == 0.0
    assert Backoff(1e-30, 5.0).delay(70) == 1e-30 * 2**69
    assert Backoff(1e-30, 5.0).delay(10**6) == 5.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    ("args", "match"),
    [((-1, 2), "min=-1"), ((2, 1), "max=1"), ((float("nan"), 1), "min=nan"), (("1", 2), "min")],
)
def test_bad_backoff_is_named(args, match):
    with pytest.raises(InvalidWorkflow, match=match):
        Backoff(*args)


def test_step_default_backoff_is_the_one_backoff_type():
    import trexec

    step = Step("s", noop, retries=2)
    assert step.backoff == trexec.Backoff(initial=1.0, factor=2.0, max=60.0)
    with pytest.raises(InvalidArgument, match="retry=0"):
        step.backoff.delay(0)
    with pytest.raises(InvalidWorkflow, match=r"expected a trexec\.Backoff"):
        Step("s", noop, backoff=(1, 2))  # type: ignore[arg-type]


def test_a_step_accepts_the_actions_backoff_too():
    import trexec

    step = Step("s", noop, retries=2, backoff=trexec.Backoff(initial=0.5, factor=3.0, max=4.0))
    assert [step.backoff.delay(n) for n in (1, 2, 3)] == [0.5, 1.5, 4.0]
