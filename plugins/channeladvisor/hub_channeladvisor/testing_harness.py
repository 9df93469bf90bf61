"""The ChannelAdvisor harness for the hub's channel contract suite (:mod:`hub_core.testing`).

The channel double is the embedded sandbox (:class:`~hub_channeladvisor.sandbox.Sandbox`),
started in-process on a free port for each test. The harness seeds it through its Python admin
API, arms its fault switches, and reads back what the hub sent from its state and its request
log. Adopting the contract is then::

    from hub_channeladvisor.testing_harness import ChannelAdvisorHarness
    from hub_core.testing import ChannelContract


    class TestChannelAdvisorContract(ChannelContract):
        harness_class = ChannelAdvisorHarness
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hub_channeladvisor.sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    Sandbox,
)
from hub_channeladvisor.sandbox.constants import SHIPPING_DELIVERY_STATUSES
from hub_core.testing import (
    ChannelHarness,
    ChannelProduct,
    FailureKind,
    ReceivedShipment,
    ReceivedUpdate,
)

#: The checkout status the default ``checkout_statuses`` setting leaves out.
EXCLUDED_CHECKOUT_STATUS = "NotVisited"
DEFAULT_CHECKOUT_STATUSES = "Completed,CompletedAndVisited,CompletedOffline"
#: Sandbox fault kinds for the harness's transient kinds.
_FAULT_KIND = {"transient": "503", "rate_limited": "429"}
_PRODUCT_ID = re.compile(r"/Products\((\d+)\)")
_ORDER_ID = re.compile(r"/Orders\((\d+)\)")


def _ok(entry: Any) -> bool:
    return 200 <= entry.status < 300 and entry.applied and not entry.fault


class ChannelAdvisorHarness(ChannelHarness):
    """An in-process ChannelAdvisor sandbox with the demo application and profile.

    The plugin retries 5xx and 429 inside the call (honouring ``Retry-After``), so each
    transient failure costs one backoff wait of about a second.
    """

    channel = "channeladvisor"
    retries_in_call = True
    shipping_text = "UPS - Ground"
    other_shipping_text = "FedEx - Home Delivery"
    carrier = "UPS"
    shipping_class = "Ground"

    sandbox: Sandbox

    def start(self) -> None:
        """Start a sandbox on a free port, with one access token issued for the hub."""
        self.sandbox = Sandbox(seed=0)
        self.sandbox.start()
        self.access_token = self.sandbox.issue_access_token(DEMO_REFRESH_TOKEN)
        self.skus: dict[int, str] = {}
        self.order_ids: list[int] = []
        #: Orders made to refuse shipments: order id -> the ShippingStatus to restore.
        self.refusing: dict[int, str] = {}

    def stop(self) -> None:
        """Stop the sandbox."""
        self.sandbox.stop()

    # -- connections ------------------------------------------------------------------------

    def connection_values(self) -> dict[str, str]:
        """The demo tokens, profile and application, and the sandbox's URL."""
        return {
            "access_token": self.access_token,
            "refresh_token": DEMO_REFRESH_TOKEN,
            "profile_id": str(DEMO_PROFILE_ID),
            "application_id": DEMO_APPLICATION_ID,
            "shared_secret": DEMO_SHARED_SECRET,
            "base_url": self.sandbox.base_url,
        }

    def bad_credentials(self) -> dict[str, str]:
        """Tokens the sandbox never issued: the access token and its refresh are refused."""
        return {
            "access_token": "contract-revoked-access-token",
            "refresh_token": "contract-revoked-refresh-token",
        }

    def settings_accepting_ineligible_status(self) -> dict[str, str]:
        """Accept orders whose checkout was not visited too."""
        return {"checkout_statuses": f"{DEFAULT_CHECKOUT_STATUSES},{EXCLUDED_CHECKOUT_STATUS}"}

    # -- seeding ----------------------------------------------------------------------------

    def add_product(self, sku: str, quantity: int, price: Decimal) -> str:
        """A product of the demo profile, its quantity available in distribution center 0."""
        product_id = self.sandbox.create_product(
            {
                "Sku": sku,
                "Title": f"Product {sku}",
                "Quantity": quantity,
                "BuyItNowPrice": float(price),
            }
        )
        self.skus[product_id] = sku
        return str(product_id)

    def _products(self, sku: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.sandbox.find_products(sku)
            if p["Sku"] == sku and p["ProfileID"] == DEMO_PROFILE_ID
        ]

    def delete_product(self, sku: str) -> None:
        """Delete it as a merchant would in ChannelAdvisor's UI."""
        [product] = self._products(sku)
        self.sandbox.delete_product(product["ID"])

    def add_order(
        self,
        lines: Sequence[tuple[str, int]],
        shipping_text: str,
        *,
        status_eligible: bool = True,
        age_days: int = 0,
    ) -> str:
        """An unshipped, paid order whose requested carrier and class make the text."""
        carrier, _, shipping_class = shipping_text.partition(" - ")
        created = datetime.now(UTC) - timedelta(days=age_days, minutes=1)
        [order_id] = self.sandbox.seed_orders(
            [
                {
                    "Items": [
                        {"Sku": sku, "Quantity": quantity, "UnitPrice": 1.0}
                        for sku, quantity in lines
                    ],
                    "RequestedShippingCarrier": carrier,
                    "RequestedShippingClass": shipping_class,
                    "CheckoutStatus": "Completed" if status_eligible else EXCLUDED_CHECKOUT_STATUS,
                    "CreatedDateUtc": created.isoformat(),
                }
            ]
        )
        self.order_ids.append(order_id)
        return str(order_id)

    # -- failures ---------------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        *,
        kind: FailureKind = "transient",
        ref: str | None = None,
        times: int | None = 1,
    ) -> None:
        """A sandbox fault rule on the requests of ``operation`` (and ``ref``).

        ``error`` is supported for ``sync_orders`` of one order: the order is made one that
        ChannelAdvisor refuses to ship (400) until :meth:`clear_failures`.
        """
        if kind == "error":
            if operation != "sync_orders" or ref is None:
                raise NotImplementedError(
                    "the sandbox has no permanent-error fault; only one order's shipments "
                    "can be refused (fail('sync_orders', kind='error', ref=ORDER_ID))"
                )
            self._refuse_shipments(int(ref))
            return
        pattern, method, scope = self._target(operation, ref)
        self.sandbox.add_fault(
            _FAULT_KIND[kind], pattern=pattern, method=method, count=times, scope=scope
        )

    def _target(self, operation: str, ref: str | None) -> tuple[str, str | None, str]:
        """(path pattern, method, scope) of the requests an operation makes."""
        if operation == "link_listings":
            if ref is not None:
                raise NotImplementedError("link lookups cannot be failed for one SKU")
            return "/v1/Products", "GET", "any"
        if operation == "sync_listings":
            if ref is None:
                return "/v1/$batch", "POST", "top"
            [product] = self._products(ref)
            return f"/v1/Products({product['ID']})", None, "any"
        if operation == "get_orders":
            return "/v1/Orders", "GET", "any"
        if operation == "acknowledge_orders":
            return (f"/v1/Orders({ref})/Export" if ref else "/Export"), "POST", "any"
        if operation == "sync_orders":
            return (f"/v1/Orders({ref})/Ship" if ref else "/Ship"), "POST", "any"
        if operation == "test_connection":
            return "/v1/Profiles", "GET", "any"
        raise NotImplementedError(f"ChannelAdvisor has no requests for {operation}")

    def _refuse_shipments(self, order_id: int) -> None:
        store = self.sandbox.store
        with store.lock:
            row = store.orders.rows[order_id]
            self.refusing.setdefault(order_id, row["ShippingStatus"])
            store.orders.set_value(row, "ShippingStatus", "Canceled")
            store.orders.version += 1

    def clear_failures(self) -> None:
        """Remove every fault rule; orders made to refuse shipments take them again."""
        self.sandbox.clear_faults()
        store = self.sandbox.store
        with store.lock:
            for order_id, status in self.refusing.items():
                row = store.orders.rows[order_id]
                store.orders.set_value(row, "ShippingStatus", status)
                store.orders.version += 1
        self.refusing.clear()

    def armed_failures(self) -> int:
        """Fault rules with requests left to fail (an unlimited one counts), and refusing
        orders."""
        rules = self.sandbox.faults.rules
        armed = sum(1 for rule in rules if rule.count is None or rule.count > 0)
        return armed + len(self.refusing)

    # -- reading back -----------------------------------------------------------------------

    def product(self, sku: str) -> ChannelProduct | None:
        """Quantity available (all distribution centers) and the ``BuyItNowPrice``."""
        found = self._products(sku)
        assert len(found) <= 1, f"several products with SKU {sku!r} in the sandbox"
        if not found:
            return None
        product = found[0]
        quantity = sum(dc["AvailableQuantity"] for dc in product["DCQuantities"])
        return ChannelProduct(sku, quantity, Decimal(str(product["BuyItNowPrice"])))

    def received_updates(self) -> list[ReceivedUpdate]:
        """Applied ``UpdateQuantity`` (quantity) and ``PATCH Products`` (price) requests, batch
        parts included, from the request log."""
        updates = []
        for entry in self.sandbox.log.entries():
            match = _PRODUCT_ID.search(entry.path)
            if match is None or not _ok(entry):
                continue
            sku = self.skus.get(int(match.group(1)), match.group(1))
            if entry.method == "POST" and entry.path.endswith("/UpdateQuantity"):
                updates.append(ReceivedUpdate(sku, {"quantity": None}))
            elif entry.method == "PATCH":
                updates.append(ReceivedUpdate(sku, {"price": None}))
        return updates

    def received_shipments(self) -> list[ReceivedShipment]:
        """Shipped fulfillments of the harness's orders, in the order they were shipped; an
        order that accepted more ``Ship`` requests than it has shipments repeats its last."""
        ships: dict[int, int] = {}
        for entry in self.sandbox.log.entries():
            match = _ORDER_ID.search(entry.path)
            if match and entry.method == "POST" and entry.path.endswith("/Ship") and _ok(entry):
                ships[int(match.group(1))] = ships.get(int(match.group(1)), 0) + 1
        found: list[tuple[str, int, ReceivedShipment]] = []
        for order_id in self.order_ids:
            order = self.sandbox.get_order(order_id)
            if order is None:
                continue
            mine = []
            for fulfillment in order["Fulfillments"]:
                if fulfillment["DeliveryStatus"] not in SHIPPING_DELIVERY_STATUSES:
                    continue
                lines: dict[str, int] = {}
                for item in fulfillment["Items"]:
                    lines[item["Sku"]] = lines.get(item["Sku"], 0) + int(item["Quantity"])
                key = (str(fulfillment["UpdatedDateUtc"]), int(fulfillment["ID"]))
                shipment = ReceivedShipment(
                    str(order_id), str(fulfillment["TrackingNumber"]), lines
                )
                mine.append((*key, shipment))
            mine.sort(key=lambda m: (m[0], m[1]))
            extra = ships.get(order_id, 0) - len(mine)
            if mine and extra > 0:
                mine += [mine[-1]] * extra
            found += mine
        found.sort(key=lambda m: (m[0], m[1]))
        return [shipment for *_, shipment in found]

    def acknowledged_orders(self) -> set[str]:
        """Orders the demo application marked exported."""
        acknowledged = set()
        for order_id in self.order_ids:
            order = self.sandbox.get_order(order_id)
            if order is not None and DEMO_APPLICATION_ID in order["exported_by"]:
                acknowledged.add(str(order_id))
        return acknowledged
