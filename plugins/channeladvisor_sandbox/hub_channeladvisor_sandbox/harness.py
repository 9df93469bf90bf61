"""The ChannelAdvisor harness for the hub's channel contract suite (:mod:`hub_core.testing`).

The channel double is the embedded sandbox (:class:`~hub_channeladvisor_sandbox.Sandbox`),
started in-process on a free port for each test. The harness seeds it through its Python admin
API, arms its fault switches (``error`` is the sandbox's ``400`` fault, carrying a
ChannelAdvisor-style message), and reads back what the hub sent from its state and its request
log (the JSON bodies the hub sent, so updates report real values). Adopting the contract is
then::

    from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
    from hub_core.testing import ChannelContract


    class TestChannelAdvisorContract(ChannelContract):
        harness_class = ChannelAdvisorHarness
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    Sandbox,
)
from hub_channeladvisor_sandbox.constants import SHIPPING_DELIVERY_STATUSES
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
#: Sandbox fault kinds for the harness's failure kinds.
_FAULT_KIND = {"transient": "503", "rate_limited": "429", "error": "400"}
#: The text of a whole call ChannelAdvisor refuses (ASP.NET's answer to a bad request).
_INVALID_REQUEST = "The request is invalid."
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
    #: The product field the hub syncs prices into (the connection's default ``price_field``).
    price_field: ClassVar[str] = "BuyItNowPrice"

    sandbox: Sandbox

    def start(self) -> None:
        """Start a sandbox on a free port, with one access token issued for the hub."""
        self.sandbox = Sandbox(seed=0)
        self.sandbox.start()
        self.access_token = self.sandbox.issue_access_token(DEMO_REFRESH_TOKEN)
        self.skus: dict[int, str] = {}
        self.order_ids: list[int] = []

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
                self.price_field: float(price),
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

        ``transient`` answers 503, ``rate_limited`` 429 and ``error`` 400 with an OData error
        whose message names the refused record; nothing of a failed request is applied. A
        ``ref`` targets that record's requests only (a product's by its ID, batch parts
        included; an order's Ship or Export).
        """
        pattern, method, scope = self._target(operation, ref)
        message = self._error_message(operation, ref) if kind == "error" else None
        self.sandbox.add_fault(
            _FAULT_KIND[kind],
            pattern=pattern,
            method=method,
            count=times,
            scope=scope,
            message=message,
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

    def _error_message(self, operation: str, ref: str | None) -> str:
        """What ChannelAdvisor says when it refuses the record (or the call)."""
        if ref is None:
            return _INVALID_REQUEST
        if operation == "sync_orders":
            return f"Order {ref} cannot be shipped."
        if operation == "acknowledge_orders":
            return f"Order {ref} cannot be marked exported."
        if operation == "sync_listings":
            [product] = self._products(ref)
            return f"Product {product['ID']} cannot be updated."
        return _INVALID_REQUEST

    def clear_failures(self) -> None:
        """Remove every fault rule."""
        self.sandbox.clear_faults()

    def armed_failures(self) -> int:
        """Fault rules with requests left to fail (an unlimited one counts)."""
        rules = self.sandbox.faults.rules
        return sum(1 for rule in rules if rule.count is None or rule.count > 0)

    # -- reading back -----------------------------------------------------------------------

    def product(self, sku: str) -> ChannelProduct | None:
        """Quantity available (all distribution centers) and the ``BuyItNowPrice``."""
        found = self._products(sku)
        assert len(found) <= 1, f"several products with SKU {sku!r} in the sandbox"
        if not found:
            return None
        product = found[0]
        quantity = sum(dc["AvailableQuantity"] for dc in product["DCQuantities"])
        return ChannelProduct(sku, quantity, Decimal(str(product[self.price_field])))

    def received_updates(self) -> list[ReceivedUpdate]:
        """Applied ``UpdateQuantity`` and ``PATCH Products`` requests, batch parts included,
        with the values their bodies carried (from the request log).

        ``UpdateQuantity`` reports ``quantity``: the ``Quantity`` of its one update (a dict of
        distribution center ID -> ``Quantity`` if it carried several). A ``PATCH`` reports
        each field it carried: :attr:`price_field` as ``price`` (a Decimal), any other field
        under its ChannelAdvisor name, so a PATCH that sends more than the price shows it.
        """
        updates = []
        for entry in self.sandbox.log.entries():
            match = _PRODUCT_ID.search(entry.path)
            if match is None or not _ok(entry):
                continue
            sku = self.skus.get(int(match.group(1)), match.group(1))
            if entry.method == "POST" and entry.path.endswith("/UpdateQuantity"):
                value = self._body_of(entry)["Value"]
                quantities = {u["DistributionCenterID"]: u["Quantity"] for u in value["Updates"]}
                quantity = next(iter(quantities.values())) if len(quantities) == 1 else quantities
                updates.append(ReceivedUpdate(sku, {"quantity": quantity}))
            elif entry.method == "PATCH":
                fields: dict[str, Any] = {}
                for name, value in self._body_of(entry).items():
                    if name == self.price_field:
                        fields["price"] = Decimal(str(value))
                    else:
                        fields[name] = value
                updates.append(ReceivedUpdate(sku, fields))
        return updates

    @staticmethod
    def _body_of(entry: Any) -> dict[str, Any]:
        """The JSON object an applied request sent (the sandbox accepted it, so it is one)."""
        if not isinstance(entry.body, dict):
            raise AssertionError(
                f"the sandbox's log kept no body for {entry.method} {entry.path} "
                f"(seq {entry.seq}, {entry.body_size} bytes): raise Sandbox.max_logged_bodies"
            )
        return entry.body

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

    def cancel_order(self, channel_order_id: str) -> None:
        """Cancel it in the sandbox (ShippingStatus Canceled), as the marketplace would."""
        self.sandbox.cancel_order(int(channel_order_id))

    def acknowledged_orders(self) -> set[str]:
        """Orders the demo application marked exported."""
        acknowledged = set()
        for order_id in self.order_ids:
            order = self.sandbox.get_order(order_id)
            if order is not None and DEMO_APPLICATION_ID in order["exported_by"]:
                acknowledged.add(str(order_id))
        return acknowledged
