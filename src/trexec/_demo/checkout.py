"""The checkout: reserve -> authorize (poll the gateway) -> capture -> email || ship (spec §9.3).

Each step is an ``async def step(services, ctx)``; ``ctx`` is the workflow's
:class:`trexec.workflows.StepContext`. :func:`build_workflow` binds the steps
to the services of this process; the binding is rebuilt on every start, which
is what lets a resumed run talk to a gateway on a new port.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import httpx
import trio

import trexec
from trexec import workflows

from .orders import Order

WORKFLOW_NAME = "trexec-demo-checkout"
AUTHORIZE_TIMEOUT = 15.0
POLL_INTERVAL = 0.1


StepContext = workflows.StepContext


class TransientFault(Exception):
    """A fault the demo injects; the step's retry clears it."""


class PaymentDeclined(Exception):
    """The gateway declined the authorization: the run fails and is compensated."""


class GatewayError(Exception):
    """The gateway answered something the checkout does not expect."""


Emit = Callable[..., None]


@attrs.define
class Services:
    """What the steps of this process share: the gateway client and the journal.

    ``emit(kind, order_id, **fields)`` records one event (see ``journal.py``).
    ``demo`` is the id of the demo this session runs: runs of another demo left
    in the store (the engine runs them too) are not journaled.
    ``failed_once`` remembers the planned faults already raised in this process.
    """

    client: httpx.AsyncClient
    emit: Emit
    demo: str = ""
    latency: float = 0.1
    failed_once: set[tuple[str, str]] = attrs.field(factory=set)

    async def work(self) -> None:
        """Simulated work of an internal service (inventory, mail, shipping)."""
        await trio.sleep(random.uniform(0.5, 1.5) * self.latency)

    def note(self, ctx: StepContext, kind: str, **fields: Any) -> None:
        """Journal ``kind`` for the order of ``ctx``, unless its run belongs to
        another demo (a leftover the engine runs all the same)."""
        if ctx.input.get("demo") == self.demo:  # spec §9.7
            self.emit(kind, ctx.input["id"], **fields)

    def fault(self, order: Order, step: str) -> None:
        """Raise the planned transient fault of ``step`` once per process."""
        if step in order.flaky and (order.id, step) not in self.failed_once:  # spec §9.3
            self.failed_once.add((order.id, step))
            raise TransientFault(f"{_SERVICES[step]} busy, try again")


_SERVICES = {"reserve": "inventory service", "email": "mail server"}


def _order(ctx: StepContext) -> Order:
    return Order.from_json(ctx.input)


async def reserve(svc: Services, ctx: StepContext) -> dict[str, Any]:
    order = _order(ctx)
    await svc.work()
    svc.fault(order, "reserve")
    return {"reservation": f"rsv-{order.id}", "sku": order.sku, "quantity": order.quantity}


async def release(svc: Services, ctx: StepContext) -> dict[str, Any]:
    order = _order(ctx)
    await svc.work()
    svc.note(ctx, "compensated", step="reserve")
    return {"released": f"rsv-{order.id}"}


def _authorization_status(response: httpx.Response) -> object:
    """Poller handler: keep polling while processing, stop on a decision."""
    if response.status_code != 200:
        return trexec.Fail(GatewayError(f"GET authorization: HTTP {response.status_code}"))
    body = response.json()
    if body["status"] == "processing":
        return trexec.CONTINUE
    return trexec.Done(body)


async def _await_decision(svc: Services, auth_id: str) -> dict[str, Any]:
    """Poll the authorization with a :func:`trexec.start_poller` until decided."""
    poll_fn = partial(svc.client.get, f"/authorizations/{auth_id}")
    send, receive = trio.open_memory_channel[Any](math.inf)
    async with trio.open_nursery() as nursery:
        poller = trexec.start_poller(
            nursery,
            poll_fn=poll_fn,
            handler=_authorization_status,
            interval=POLL_INTERVAL,
            timeout=AUTHORIZE_TIMEOUT,
            events=send,
        )
        result = await poller.wait()
    if not isinstance(result, trexec.PollSuccess):
        reason = getattr(result, "reason", result)
        raise GatewayError(f"authorization {auth_id} not decided: {reason!r}")
    return dict(receive.receive_nowait().event)


async def authorize(svc: Services, ctx: StepContext) -> dict[str, Any]:
    order = _order(ctx)
    response = await svc.client.post(
        "/authorizations", json={"order": order.id, "amount_cents": order.amount_cents}
    )
    if response.status_code not in (200, 201):
        raise GatewayError(f"POST /authorizations: HTTP {response.status_code}")
    auth_id = response.json()["id"]
    decision = await _await_decision(svc, auth_id)
    svc.note(ctx, "authorization", status=decision["status"], authorization=auth_id)
    if decision["status"] != "approved":
        raise PaymentDeclined(f"payment {decision['status']} ({auth_id})")
    return {"authorization": auth_id}


async def capture(svc: Services, ctx: StepContext) -> dict[str, Any]:
    auth_id = ctx.results["authorize"]["authorization"]
    response = await svc.client.post(f"/authorizations/{auth_id}/capture")
    if response.status_code == 503:
        raise TransientFault(f"gateway busy (HTTP 503 for {auth_id}), try again")
    if response.status_code != 200:
        raise GatewayError(f"capture {auth_id}: HTTP {response.status_code}")
    return {"captured": auth_id}


async def refund(svc: Services, ctx: StepContext) -> dict[str, Any]:
    auth_id = ctx.results["authorize"]["authorization"]
    await svc.client.post(f"/authorizations/{auth_id}/refund")
    svc.note(ctx, "compensated", step="capture")
    return {"refunded": auth_id}


async def email(svc: Services, ctx: StepContext) -> dict[str, Any]:
    order = _order(ctx)
    await svc.work()
    svc.fault(order, "email")
    return {"email": f"{order.customer}@example.com"}


async def ship(svc: Services, ctx: StepContext) -> dict[str, Any]:
    order = _order(ctx)
    await svc.work()
    return {"tracking": f"TRK{abs(hash(order.id)) % 10**8:08d}"}


StepFn = Callable[[Services, StepContext], Awaitable[Any]]


async def run_step(svc: Services, fn: StepFn, step: str, ctx: StepContext) -> Any:
    """Run one step (or compensation) ``fn``, journaling its start and its end."""
    svc.note(ctx, "step_started", step=step)
    try:
        result = await fn(svc, ctx)
    except TransientFault as exc:
        svc.note(ctx, "step_retry", step=step, error=str(exc))
        raise
    except Exception as exc:
        svc.note(ctx, "step_failed", step=step, error=str(exc))
        raise
    svc.note(ctx, "step_completed", step=step)
    return result


BACKOFF = trexec.Backoff(initial=0.05, max=0.5)  # seconds: a retry comes quickly in a demo


def build_workflow(svc: Services) -> workflows.Workflow:
    """The checkout as one workflow whose steps use ``svc`` (spec §9.3).

    ``authorize`` is not retried: a decline is final, and the run is compensated.
    """

    def bound(fn: StepFn, name: str) -> Callable[[Any], Awaitable[Any]]:
        return partial(run_step, svc, fn, name)

    return workflows.Workflow(
        WORKFLOW_NAME,
        [
            workflows.Step(
                "reserve",
                bound(reserve, "reserve"),
                retries=3,
                backoff=BACKOFF,
                compensate=bound(release, "compensate:reserve"),
            ),
            # spec §9.3: no retries, a decline is final
            workflows.Step("authorize", bound(authorize, "authorize"), after=["reserve"]),
            workflows.Step(
                "capture",
                bound(capture, "capture"),
                after=["authorize"],
                retries=3,
                backoff=BACKOFF,
                compensate=bound(refund, "compensate:capture"),
            ),
            workflows.Step(
                "email", bound(email, "email"), after=["capture"], retries=3, backoff=BACKOFF
            ),
            workflows.Step(
                "ship", bound(ship, "ship"), after=["capture"], retries=3, backoff=BACKOFF
            ),
        ],
    )
