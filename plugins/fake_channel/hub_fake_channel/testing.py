"""The fake channel's harness for the hub's channel contract suite (:mod:`hub_core.testing`).

The channel double is a :class:`~hub_fake_channel.store.FakeStore` file in the test's
directory; the harness seeds it, arms its failure switches and reads back what the hub sent.
Adopting the contract is then::

    from hub_core.testing import ChannelContract
    from hub_fake_channel.testing import FakeHarness


    class TestFakeContract(ChannelContract):
        harness_class = FakeHarness
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hub_core.testing import (
    ChannelHarness,
    ChannelProduct,
    FailureKind,
    ReceivedShipment,
    ReceivedUpdate,
)
from hub_fake_channel.plugin import NAME, REFUSED_API_KEY
from hub_fake_channel.store import FakeStore

#: The order status the default ``statuses`` setting (``open``) leaves out.
EXCLUDED_STATUS = "pending"


class FakeHarness(ChannelHarness):
    """A fake channel store in the test's directory.

    The fake plugin does not retry: a failed call fails the operation (exit 1) or its records
    (exit 4), and the hub's next run sends what is still pending. 5xx and 429 are both the
    store's ``transient`` failure switch.
    """

    channel = NAME
    retries_in_call = False
    shipping_text = "UPS - Ground"
    other_shipping_text = "USPS - Priority"

    store: FakeStore

    def start(self) -> None:
        """Create an empty store file."""
        self.store = FakeStore(self.workdir / "fake.json")
        self.store.create()

    def connection_values(self) -> dict[str, str]:
        """The store's path and an API key the fake accepts."""
        return {"store": str(self.store.path), "api_key": "contract-api-key"}

    def bad_credentials(self) -> dict[str, str]:
        """The one API key the fake refuses."""
        return {"api_key": REFUSED_API_KEY}

    def settings_accepting_ineligible_status(self) -> dict[str, str]:
        """Import ``pending`` orders too."""
        return {"statuses": f"open,{EXCLUDED_STATUS}"}

    def add_product(self, sku: str, quantity: int, price: Decimal) -> str:
        """Add a product; the store gives it a new id."""
        return self.store.add_product(sku, f"Product {sku}", quantity, price)

    def delete_product(self, sku: str) -> None:
        """Delete the product whose SKU is exactly ``sku``."""
        for product in self.store.products():
            if product["sku"] == sku:
                self.store.delete_product(product["id"])
                return
        raise LookupError(f"no product {sku!r} on the fake channel")

    def add_order(
        self,
        lines: Sequence[tuple[str, int]],
        shipping_text: str,
        *,
        status_eligible: bool = True,
        age_days: int = 0,
    ) -> str:
        """Add an order ``open`` (or ``pending``), created ``age_days`` ago."""
        return self.store.add_order(
            [(sku, quantity, "1.00") for sku, quantity in lines],
            shipping_text=shipping_text,
            status="open" if status_eligible else EXCLUDED_STATUS,
            created_at=datetime.now(UTC) - timedelta(days=age_days, minutes=1),
        )

    def fail(
        self,
        operation: str,
        *,
        kind: FailureKind = "transient",
        ref: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Arm the store's switch: ``error``, or ``transient`` for 5xx and 429 alike."""
        self.store.fail(
            operation, ref=ref, times=times, kind="error" if kind == "error" else "transient"
        )

    def clear_failures(self) -> None:
        """Disarm every switch."""
        self.store.clear_failures()

    def armed_failures(self) -> int:
        """Switches not spent yet."""
        return len(self.store.failures())

    def product(self, sku: str) -> ChannelProduct | None:
        """The product whose SKU is exactly ``sku``."""
        found = [p for p in self.store.products() if p["sku"] == sku]
        assert len(found) <= 1, f"several products with SKU {sku!r} on the fake channel"
        if not found:
            return None
        return ChannelProduct(sku, int(found[0]["quantity"]), Decimal(found[0]["price"]))

    def received_updates(self) -> list[ReceivedUpdate]:
        """The store's log of applied listing updates."""
        return [ReceivedUpdate(u["sku"], dict(u["fields"])) for u in self.store.updates_received()]

    def received_shipments(self) -> list[ReceivedShipment]:
        """Each recorded shipment, repeated as often as the hub sent it."""
        received = []
        for shipment in self.store.shipments_received():
            lines: dict[str, int] = {}
            for line in shipment["lines"]:
                lines[line["sku"]] = lines.get(line["sku"], 0) + int(line["quantity"])
            one = ReceivedShipment(shipment["channel_order_id"], shipment["tracking"], lines)
            received += [one] * int(shipment["received"])
        return received

    def cancel_order(self, channel_order_id: str) -> None:
        """Cancel it in the store (the marketplace did)."""
        self.store.cancel_order(channel_order_id)

    def acknowledged_orders(self) -> set[str]:
        """Orders the hub acknowledged."""
        return {order["id"] for order in self.store.orders() if order["acknowledged"]}
