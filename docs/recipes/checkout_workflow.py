"""Recipe: a durable checkout saga, reserve → charge → (email ‖ ship).

Four steps run on the durable engine: ``reserve`` stock, ``charge`` the card,
then ``email`` the receipt and ``ship`` the parcel at the same time. ``reserve``
is retried with backoff (the stock service is flaky); ``reserve``, ``charge``
and ``ship`` have compensations. If shipping fails, the run compensates what
completed, newest first: the charge is refunded, then the stock released (the
receipt e-mail has nothing to undo, and the failed ``ship`` is not compensated).

A ``trexec.MemoryRecorder`` follows the run through a ``trexec.RunBus``, exactly
as it would follow an in-process ``trexec.start_run``: it sees every step event
and is finalized once, with ``RunCompleted`` or ``RunFailed``.

Run it: ``python checkout_workflow.py [--fail-ship] [sqlite:///checkout.db]``.
"""

from __future__ import annotations

import sys

import attrs
import trio

import trexec
from trexec import durable, workflows


@attrs.define
class Shop:
    """Stand-ins for the services a checkout talks to, with a log of every call."""

    fail_ship: bool = False
    stock_glitches: int = 1  # the stock service fails this many times first
    log: list[str] = attrs.field(factory=list)

    async def reserve(self, ctx: workflows.StepContext) -> dict[str, object]:
        if self.stock_glitches > 0:
            self.stock_glitches -= 1
            raise ConnectionError("stock service unavailable")
        self.log.append(f"reserved {ctx.input['sku']} (attempt {ctx.attempt})")
        return {"reservation": f"R-{ctx.run_id}"}

    async def release(self, ctx: workflows.StepContext) -> None:
        self.log.append(f"released {ctx.results['reserve']['reservation']} ({ctx.error})")

    async def charge(self, ctx: workflows.StepContext) -> dict[str, object]:
        self.log.append(f"charged {ctx.input['amount']}")
        return {"payment": f"P-{ctx.run_id}", "amount": ctx.input["amount"]}

    async def refund(self, ctx: workflows.StepContext) -> None:
        self.log.append(f"refunded {ctx.results['charge']['payment']}")

    async def email(self, ctx: workflows.StepContext) -> str:
        self.log.append("receipt e-mailed")
        return "sent"

    async def ship(self, ctx: workflows.StepContext) -> dict[str, object]:
        if self.fail_ship:
            raise RuntimeError("carrier rejected the parcel")
        self.log.append("shipped")
        return {"tracking": f"T-{ctx.run_id}"}

    async def recall(self, ctx: workflows.StepContext) -> None:
        self.log.append("parcel recalled")


def checkout_workflow(shop: Shop) -> workflows.Workflow:
    """The checkout graph: email and ship both run after charge, side by side."""
    Step = workflows.Step
    return workflows.Workflow(
        "checkout",
        [
            Step(
                "reserve",
                shop.reserve,
                retries=3,
                backoff=trexec.Backoff(initial=0.05, max=1.0),
                compensate=shop.release,
            ),
            Step("charge", shop.charge, after=["reserve"], compensate=shop.refund),
            Step("email", shop.email, after=["charge"]),
            Step("ship", shop.ship, after=["charge"], compensate=shop.recall),
        ],
    )


async def checkout(
    store: durable.Store, shop: Shop, order: dict[str, object]
) -> tuple[durable.Instance, trexec.MemoryRecorder]:
    """Run one checkout to its end; return the run instance and what the recorder saw."""
    wf = checkout_workflow(shop)
    bus = trexec.RunBus()
    recorder = trexec.MemoryRecorder()
    async with trio.open_nursery() as nursery:
        # A producer (workers=0) starts the run; the recorder subscribes to its
        # topic before any worker can run it, so it misses nothing.
        async with durable.open_engine(store, workflows=[wf], workers=0) as producer:
            run_id = await producer.start_workflow(wf, order)
        following = await trexec.follow_run(nursery, bus, run_id, [recorder])
        async with durable.open_engine(
            store, workflows=[wf], bus=bus, poll_interval=0.05
        ) as engine:
            run = await engine.wait(run_id, timeout=30)
        with trio.fail_after(10):
            await following.wait()
    return run, recorder


async def main(url: str, fail_ship: bool) -> durable.Instance:
    shop = Shop(fail_ship=fail_ship)
    async with durable.open_store(url) as store:
        run, recorder = await checkout(store, shop, {"sku": "BOOK-1", "amount": 42})
    print(f"run {run.id}: {run.status}", run.result if run.status == "done" else run.error)
    for line in shop.log:
        print("  ", line)
    print("recorder outcome:", recorder.outcome)
    return run


if __name__ == "__main__":
    args = sys.argv[1:]
    fail = "--fail-ship" in args
    urls = [a for a in args if a != "--fail-ship"]
    trio.run(main, urls[0] if urls else "sqlite:///checkout.db", fail)
