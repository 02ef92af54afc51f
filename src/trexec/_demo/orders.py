"""The demo's orders and the faults planned for them (spec §9.3).

Everything is drawn from ``random.Random(f"{seed}:{order}:...")``, so one seed
always tells the same story, whatever the interleaving and across restarts.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

SKUS = ("kettle", "teapot", "mug", "grinder", "scale", "filter", "beans", "tray")
CUSTOMERS = ("ada", "alan", "barbara", "edsger", "grace", "ken", "margaret", "tony")


@attrs.frozen
class Order:
    """One order to check out. ``flaky`` names the steps whose first attempt fails."""

    id: str
    customer: str
    sku: str
    quantity: int
    amount_cents: int
    flaky: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The order as a workflow input (plain JSON)."""
        return {
            "id": self.id,
            "customer": self.customer,
            "sku": self.sku,
            "quantity": self.quantity,
            "amount_cents": self.amount_cents,
            "flaky": list(self.flaky),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Order:
        """Inverse of :meth:`to_json`."""
        return cls(
            id=str(data["id"]),
            customer=str(data["customer"]),
            sku=str(data["sku"]),
            quantity=int(data["quantity"]),
            amount_cents=int(data["amount_cents"]),
            flaky=tuple(data.get("flaky", ())),
        )


def order_id(number: int) -> str:
    """``order-0007`` for 7: ids sort in order."""
    return f"order-{number:04d}"


def make_orders(count: int, seed: int, *, flaky_rate: float = 0.1) -> list[Order]:
    """``count`` orders numbered from 1; each of reserve and email fails its first
    attempt for about ``flaky_rate`` of the orders (capture faults come from the gateway)."""
    orders = []
    for number in range(1, count + 1):
        oid = order_id(number)
        rng = random.Random(f"{seed}:{oid}:order")
        quantity = rng.randint(1, 3)
        flaky = tuple(step for step in ("reserve", "email") if rng.random() < flaky_rate)
        orders.append(
            Order(
                id=oid,
                customer=rng.choice(CUSTOMERS),
                sku=rng.choice(SKUS),
                quantity=quantity,
                amount_cents=quantity * rng.randrange(500, 9000, 50),
                flaky=flaky,
            )
        )
    return orders
