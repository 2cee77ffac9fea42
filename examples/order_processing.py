"""Order processing: validate, inventory and shipping in parallel, an approval,
payment, fulfil.

::

    validate -+-> reserve_inventory -+-> charge_payment --> fulfil
              +-> quote_shipping ----+          |
              +-> approval (wait_for) -+        |
                  reserve_inventory ------------+--> release_inventory (run_if all_done,
                                                     when the payment failed)

``approval`` runs no JS: it waits for an ``order.approved`` event whose ``id`` is
the order's (``wait_for`` with ``match``), for up to 60 s, holding no sandbox
worker meanwhile. A back-office task here sees each ``step.waiting`` event and
publishes the approval; ``charge_payment`` waits for it.

The payment gateway is flaky: its first call for each order times out (a counter,
so it is deterministic). ``charge_payment`` has ``Retry(attempts=3, delay=0.05,
backoff=2)`` and an idempotency key, so the second attempt charges exactly once.
A second, invalid order fails at ``validate`` with a ``NonRetryableError``: it is
not retried and every later step is skipped. A third order's card is declined:
the payment fails for good, and ``release_inventory``, a compensation step that
runs once its upstream steps ended (``run_if="all_done"``) and only when the
payment failed (``when``), gives the reserved items back.

Run it: ``python examples/order_processing.py``.
"""

from __future__ import annotations

import logging
import sys
import zlib
from collections import Counter
from typing import Any

import anyio
import structlog

from actors import Engine, Retry, StepRetrying, StepWaiting, Workflow

# -- fake services ----------------------------------------------------------------------

PRICES = {"kbd-mech": 89.00, "mouse-pro": 49.50, "usb-c-cable": 9.90}
WEIGHTS_KG = {"kbd-mech": 1.1, "mouse-pro": 0.2, "usb-c-cable": 0.1}


class GatewayTimeout(Exception):
    pass


class CardDeclined(Exception):
    pass


class Shop:
    """Inventory, carrier, payment gateway, warehouse and mailer of a small web shop."""

    def __init__(self) -> None:
        self.stock = {"kbd-mech": 5, "mouse-pro": 12, "usb-c-cable": 40}
        self.reservations: dict[str, list[dict[str, Any]]] = {}
        self.payment_calls: Counter[str] = Counter()
        self.charges: dict[str, dict[str, Any]] = {}
        self.emails: list[dict[str, Any]] = []

    def api(self) -> dict[str, Any]:
        return {
            "catalog_lookup": self.catalog_lookup,
            "inventory_reserve": self.inventory_reserve,
            "inventory_release": self.inventory_release,
            "shipping_quote": self.shipping_quote,
            "payment_charge": self.payment_charge,
            "warehouse_dispatch": self.warehouse_dispatch,
            "send_email": self.send_email,
        }

    async def catalog_lookup(self, skus: list[str]) -> dict[str, Any]:
        await anyio.sleep(0.02)
        return {s: {"price": PRICES[s], "weight_kg": WEIGHTS_KG[s]} for s in skus if s in PRICES}

    async def inventory_reserve(self, order_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        await anyio.sleep(0.06)
        short = [i["sku"] for i in items if self.stock[i["sku"]] < i["qty"]]
        if short:
            raise ValueError(f"out of stock: {', '.join(short)}")
        for item in items:
            self.stock[item["sku"]] -= item["qty"]
        self.reservations[f"res-{order_id}"] = items
        return {"reservation_id": f"res-{order_id}", "expires_in": 900}

    async def inventory_release(self, reservation_id: str) -> dict[str, Any]:
        await anyio.sleep(0.02)
        for item in self.reservations.pop(reservation_id, []):
            self.stock[item["sku"]] += item["qty"]
        return {"released": reservation_id}

    async def shipping_quote(self, address: dict[str, Any], weight_kg: float) -> dict[str, Any]:
        await anyio.sleep(0.08)
        domestic = address["country"] == "DE"
        price = (4.90 if domestic else 12.90) + 1.5 * max(0.0, weight_kg - 1.0)
        return {"carrier": "DHL", "price": round(price, 2), "eta_days": 2 if domestic else 5}

    async def payment_charge(self, request: dict[str, Any]) -> dict[str, Any]:
        """Charge a card; the first call per idempotency key times out (flaky gateway)."""
        key = request["idempotency_key"]
        self.payment_calls[key] += 1
        await anyio.sleep(0.05)
        if self.payment_calls[key] == 1:
            raise GatewayTimeout("payment gateway timed out (504)")
        if request["card_token"] == "tok_declined":
            raise CardDeclined("card declined")
        if key not in self.charges:  # idempotent: a retry never charges twice
            charge_id = f"ch_{len(self.charges) + 1:04d}"
            self.charges[key] = {"charge_id": charge_id, "amount": request["amount"]}
        return {**self.charges[key], "status": "succeeded", "currency": request["currency"]}

    async def warehouse_dispatch(self, order_id: str, carrier: str) -> dict[str, Any]:
        await anyio.sleep(0.04)
        return {"tracking": f"{carrier}-{zlib.crc32(order_id.encode()) % 10**8:08d}"}

    async def send_email(self, to: str, template: str, data: dict[str, Any]) -> None:
        await anyio.sleep(0.01)
        self.emails.append({"to": to, "template": template, "data": data})


# -- the workflow ---------------------------------------------------------------------

wf = Workflow("process_order")


@wf.step()
def validate() -> None:
    """
    const fail = (message) => {
      const error = new Error(message);
      error.name = "NonRetryableError"; // bad input: retrying cannot help
      throw error;
    };
    const order = ctx.event;
    if (!order.items?.length) fail("the order has no items");
    if (!order.address?.country) fail("the order has no shipping address");
    const catalog = await catalog_lookup(order.items.map(i => i.sku));
    order.items.forEach((item, n) => {
      if (!catalog[item.sku]) fail(`line ${n + 1}: unknown product ${item.sku}`);
      if (!Number.isInteger(item.qty) || item.qty < 1) {
        fail(`line ${n + 1}: quantity must be a positive integer, got ${item.qty}`);
      }
    });
    const lines = order.items.map(i => ({ ...i, ...catalog[i.sku] }));
    return {
      lines,
      subtotal: lines.reduce((sum, l) => sum + l.qty * l.price, 0),
      weight_kg: lines.reduce((sum, l) => sum + l.qty * l.weight_kg, 0),
    };
    """


@wf.step(after=[validate])
def reserve_inventory() -> None:
    """
    const items = deps.validate.lines.map(({ sku, qty }) => ({ sku, qty }));
    return await inventory_reserve(ctx.event.id, items);
    """


@wf.step(after=[validate])
def quote_shipping() -> None:
    """return await shipping_quote(ctx.event.address, deps.validate.weight_kg);"""


# No JS: wait for the back office's order.approved event for this order (payload.id
# equal to ctx.event.id); past 60 s the step fails with WaitTimedOut.
approval = wf.add_step(
    "approval",
    after=[validate],
    wait_for={"topic": "order.approved", "match": "id", "timeout": 60},
)


@wf.step(
    after=[validate, reserve_inventory, quote_shipping, approval],
    retry=Retry(attempts=3, delay=0.05, backoff=2.0),
)
def charge_payment() -> None:
    """
    const amount = Math.round((deps.validate.subtotal + deps.quote_shipping.price) * 100) / 100;
    return await payment_charge({
      amount, currency: "EUR", card_token: ctx.event.card_token,
      idempotency_key: `order-${ctx.event.id}`, // the same on every attempt
    });
    """


@wf.step(after=[charge_payment, quote_shipping])
def fulfil() -> None:
    """
    const { tracking } = await warehouse_dispatch(ctx.event.id, deps.quote_shipping.carrier);
    await send_email(ctx.event.email, "order_shipped", { order: ctx.event.id, tracking });
    return {
      order: ctx.event.id, status: "fulfilled", tracking,
      charged: deps.charge_payment.amount, charge_id: deps.charge_payment.charge_id,
    };
    """


@wf.step(
    after=[reserve_inventory, charge_payment],
    run_if="all_done",  # a compensation step: it runs whatever happened upstream ...
    when="ctx.upstream.charge_payment.status === 'failed' && deps.reserve_inventory",
)  # ... but only when there is a reservation to give back
def release_inventory() -> None:
    """return await inventory_release(deps.reserve_inventory.reservation_id);"""


ORDERS = [
    {
        "id": "A-1001",
        "email": "ada@example.com",
        "card_token": "tok_visa_4242",
        "address": {"street": "Hauptstr. 1", "city": "Berlin", "country": "DE"},
        "items": [{"sku": "kbd-mech", "qty": 1}, {"sku": "usb-c-cable", "qty": 2}],
    },
    {
        "id": "A-1002",
        "email": "bob@example.com",
        "card_token": "tok_visa_4242",
        "address": {"street": "1 Main St", "city": "Boston", "country": "US"},
        "items": [{"sku": "mouse-pro", "qty": 0}],
    },
    {
        "id": "A-1003",
        "email": "cy@example.com",
        "card_token": "tok_declined",
        "address": {"street": "Rue 2", "city": "Lyon", "country": "FR"},
        "items": [{"sku": "kbd-mech", "qty": 2}],
    },
]


async def main() -> int:
    shop = Shop()
    async with (
        Engine(api=shop.api()) as engine,
        engine.bus.subscribe("step.retrying") as retries,
        engine.bus.subscribe("step.waiting") as waiting,
        anyio.create_task_group() as tg,
    ):

        async def back_office() -> None:
            async for event in waiting:  # the approval step is registered by now
                assert isinstance(event, StepWaiting)
                print(f"  {event.value} waits for approval: approved by ops")
                await engine.bus.publish("order.approved", {"id": event.value, "by": "ops"})

        async def show_retries() -> None:
            async for event in retries:
                assert isinstance(event, StepRetrying) and event.error is not None
                failed = f"{event.step} attempt {event.attempt} failed: {event.error.message}"
                print(f"  {failed}; retrying in {event.delay:.2f} s")

        tg.start_soon(show_retries)
        tg.start_soon(back_office)
        for order in ORDERS:
            print(f"order {order['id']}:")
            result = await engine.run(wf, event=order)
            await anyio.wait_all_tasks_blocked()  # let the retry lines print first
            report(result)
        tg.cancel_scope.cancel()
    charged = shop.charges.get("order-A-1001")
    print(f"stock after all orders: {shop.stock}")
    return 0 if charged and shop.payment_calls["order-A-1001"] == 2 else 1


def report(result: Any) -> None:
    if result.status == "completed":
        out = result.steps["fulfil"].result
        attempts = result.steps["charge_payment"].attempts
        print(f"  {out['status']}: charged EUR {out['charged']:.2f} ({out['charge_id']},", end="")
        print(f" {attempts} payment attempts), tracking {out['tracking']}")
        return
    for name in result.failed_steps:
        error = result.steps[name].error
        print(f"  {result.status} at {name}: {error.name}: {error.message}")
    skipped = [name for name, step in result.steps.items() if step.status == "skipped"]
    print(f"  skipped: {', '.join(skipped)}")
    released = result.steps["release_inventory"]
    if released.status == "completed":
        print(f"  compensated: released {released.result['released']}")


if __name__ == "__main__":
    # Library logs (worker start-up, ...) go to stderr, warnings and up only.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    sys.exit(anyio.run(main))
