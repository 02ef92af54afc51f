"""docs/recipes/checkout_workflow.py runs, succeeds, and compensates (spec §6)."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import trexec
from trexec import workflows

RECIPE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "recipes" / "checkout_workflow.py"


def load_recipe():
    spec = importlib.util.spec_from_file_location("checkout_workflow", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_checkout_completes_and_the_recorder_sees_it(store):
    recipe = load_recipe()
    shop = recipe.Shop()
    run, recorder = await recipe.checkout(store, shop, {"sku": "BOOK-1", "amount": 42})
    assert run.status == "done"
    assert set(run.result) == {"reserve", "charge", "email", "ship"}
    assert shop.log[:2] == ["reserved BOOK-1 (attempt 2)", "charged 42"]
    assert sorted(shop.log[2:]) == ["receipt e-mailed", "shipped"]
    assert recorder.outcome == trexec.RunCompleted(run.result)
    kinds = [e.kind for e in recorder.events if isinstance(e, workflows.WorkflowEvent)]
    assert kinds[0] == "run_started"
    assert kinds.count("step_retrying") == 1
    assert kinds[-1] == "run_completed"


async def test_checkout_whose_shipping_fails_refunds_then_releases(store, autojump_clock):
    recipe = load_recipe()
    shop = recipe.Shop(fail_ship=True)
    run, recorder = await recipe.checkout(store, shop, {"sku": "BOOK-1", "amount": 42})
    assert run.status == "stopped"
    assert run.error == "step 'ship' failed: RuntimeError: carrier rejected the parcel"
    assert shop.log[-2:] == [
        f"refunded P-{run.id}",
        f"released R-{run.id} (step 'ship' failed: RuntimeError: carrier rejected the parcel)",
    ]
    assert "parcel recalled" not in shop.log
    assert isinstance(recorder.outcome, trexec.RunFailed)


def test_the_recipe_runs_as_a_script(tmp_path):
    done = subprocess.run(
        [sys.executable, str(RECIPE), "--fail-ship", f"sqlite:///{tmp_path}/checkout.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ": stopped step 'ship' failed" in done.stdout
    assert "refunded" in done.stdout
