"""Get orders (query, paging, capped items, mapping) and acknowledging them with Export."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import pytest
import time_machine

from hub_channeladvisor import plugin
from hub_channeladvisor.orders import shipping_text
from hub_core.channel import Outcome

NOW = datetime(2024, 5, 10, 12, 0, 0, tzinfo=UTC)

SAMPLE = {
    "ID": 4445862222,
    "ProfileID": 12345678,
    "SiteName": "Amazon Seller Central - US",
    "SiteOrderID": "114-1234567-7654321",
    "Currency": "USD",
    "CreatedDateUtc": "2024-05-03T17:20:11.92Z",
    "CheckoutStatus": "Completed",
    "PaymentStatus": "Cleared",
    "ShippingStatus": "Unshipped",
    "RequestedShippingCarrier": "UPS",
    "RequestedShippingClass": "Ground",
    "TotalPrice": 95.47,
    "TotalTaxPrice": 5.49,
    "TotalShippingPrice": 9.99,
    "TotalShippingTaxPrice": 0.0,
    "BuyerEmailAddress": "abc123@marketplace.example",
    "ShippingFirstName": "Jane",
    "ShippingLastName": "Doe",
    "ShippingAddressLine1": "1 Main St",
    "ShippingCity": "Raleigh",
    "ShippingPostalCode": "27601",
    "ShippingCountry": "US",
    "BillingFirstName": None,
    "Items": [
        {
            "ID": 91234501,
            "Sku": "AL-85590-SHOE",
            "Title": "Trail Shoe",
            "Quantity": 1,
            "UnitPrice": 79.99,
        }
    ],
    "Fulfillments": [
        {
            "ID": 11399141,
            "ShippingCarrier": "UPS",
            "ShippingClass": "2nd Day",
            "SellerFulfillmentID": None,
        }
    ],
}


def test_query_shape(ca, conn, h) -> None:
    ca.get("Orders", {"json": {"value": []}})
    with time_machine.travel(NOW, tick=False):
        list(plugin.hub_get_orders(connection=conn(settings={"order_days": 30}), days=7))
    request, cancellations = ca.sent("GET")
    assert request.url.startswith(
        f"{h.API}/Orders?exported=false&$filter=ProfileID%20eq%2012345678"
    )
    assert h.query(request.url) == {
        "exported": "false",
        "$filter": (
            "ProfileID eq 12345678 and CreatedDateUtc ge 2024-05-03T12:00:00Z"
            " and (CheckoutStatus eq 'Completed' or CheckoutStatus eq 'CompletedAndVisited'"
            " or CheckoutStatus eq 'CompletedOffline')"
            " and (PaymentStatus eq 'Cleared' or PaymentStatus eq 'Submitted'"
            " or PaymentStatus eq 'Deposited')"
            " and (ShippingStatus eq 'Unshipped' or ShippingStatus eq 'PartiallyShipped'"
            " or ShippingStatus eq 'PendingShipment')"
            " and DistributionCenterTypeRollup ne 'ExternallyManaged'"
        ),
        "$expand": "Items,Fulfillments($expand=Items)",
        "$count": "true",
    }
    # The cancellation check: one query of the orders this application exported (the ones
    # the hub holds) whose shipping status became Canceled within the window.
    assert h.query(cancellations.url) == {
        "exported": "true",
        "$filter": (
            "ProfileID eq 12345678 and ShippingStatus eq 'Canceled'"
            " and ShippingDateUtc ge 2024-05-03T12:00:00Z"
        ),
        "$expand": "Items,Fulfillments($expand=Items)",
    }


def test_status_settings_shape_the_filter(ca, conn, h) -> None:
    ca.get("Orders", {"json": {"value": []}})
    settings = {
        "checkout_statuses": "Completed",
        "payment_statuses": "Failed,Cleared",
        "shipping_statuses": "Shipped",
    }
    list(plugin.hub_get_orders(connection=conn(settings=settings), days=2))
    text = h.query(ca.sent("GET")[0].url)["$filter"]
    assert text.endswith(
        "and (CheckoutStatus eq 'Completed') and (PaymentStatus eq 'Failed' or PaymentStatus eq "
        "'Cleared') and (ShippingStatus eq 'Shipped') "
        "and DistributionCenterTypeRollup ne 'ExternallyManaged'"
    )


def test_an_order_is_mapped_with_everything_the_hub_keeps(ca, conn) -> None:
    ca.get("Orders", {"json": {"value": [SAMPLE]}})
    (order,) = plugin.hub_get_orders(connection=conn(), days=7)
    assert order.channel_order_id == "4445862222"
    assert order.shipping_text == "UPS - 2nd Day"
    assert [
        (line.channel_line_id, line.sku, line.quantity, line.unit_price) for line in order.lines
    ] == [("91234501", "AL-85590-SHOE", 1, Decimal("79.99"))]
    assert order.created_at == datetime(2024, 5, 3, 17, 20, 11, 920000, tzinfo=UTC)
    assert (order.marketplace, order.marketplace_order_id, order.currency) == (
        "Amazon Seller Central - US",
        "114-1234567-7654321",
        "USD",
    )
    assert order.totals == {"total": 95.47, "tax": 5.49, "shipping": 9.99, "shipping_tax": 0.0}
    assert order.addresses["shipping"]["City"] == "Raleigh"
    assert order.addresses["billing"] == order.addresses["shipping"]  # empty billing = shipping
    assert order.addresses["buyer_email"] == "abc123@marketplace.example"
    assert order.raw == SAMPLE and not order.cancelled


@pytest.mark.parametrize(
    ("fulfillments", "carrier", "shipping_class", "text"),
    [
        pytest.param(
            [
                {"ID": 2, "ShippingCarrier": "FedEx", "ShippingClass": "Home"},
                {"ID": 1, "ShippingCarrier": "UPS", "ShippingClass": "Ground"},
            ],
            "X",
            "Y",
            "UPS - Ground",
            id="first-fulfillment-by-id",
        ),
        pytest.param([], "USPS", "Priority", "USPS - Priority", id="requested"),
        pytest.param(
            [{"ID": 1, "ShippingCarrier": "", "ShippingClass": None}],
            "USPS",
            "",
            "USPS",
            id="requested-carrier-only",
        ),
        pytest.param(
            [{"ID": 1, "ShippingCarrier": None, "ShippingClass": "Economy"}],
            None,
            None,
            "Economy",
            id="class-only",
        ),
        pytest.param([], None, None, "", id="nothing"),
    ],
)
def test_shipping_text(fulfillments, carrier, shipping_class, text) -> None:
    order = {
        "Fulfillments": fulfillments,
        "RequestedShippingCarrier": carrier,
        "RequestedShippingClass": shipping_class,
    }
    assert shipping_text(order) == text


def test_an_order_with_25_items_is_read_again_by_id(ca, conn, h) -> None:
    items = [{"ID": 500 + i, "Sku": f"S{i}", "Quantity": 1, "UnitPrice": 1} for i in range(25)]
    listed = {**SAMPLE, "ID": 77, "Items": items[:20]}
    small = {**SAMPLE, "ID": 78}
    ca.get("Orders", {"json": {"value": [listed, small]}})
    ca.get("Orders(77)", {"json": {**listed, "Items": items}})
    orders = list(plugin.hub_get_orders(connection=conn(), days=7))
    assert [len(o.lines) for o in orders] == [25, 1]
    refetch = ca.sent("GET", "Orders(77)")[0]
    assert unquote(refetch.url) == f"{h.API}/Orders(77)?$expand=Items,Fulfillments($expand=Items)"
    # The list, the read by id, the cancellation check.
    assert len(ca.sent("GET")) == 3


def test_an_items_next_link_also_means_read_again(ca, conn) -> None:
    listed = {
        **SAMPLE,
        "ID": 79,
        "Items@odata.nextLink": "https://ca.test/v1/Orders(79)/Items?$skip=20",
    }
    ca.get("Orders", {"json": {"value": [listed]}})
    ca.get("Orders(79)", {"json": SAMPLE | {"ID": 79}})
    assert [o.channel_order_id for o in plugin.hub_get_orders(connection=conn(), days=7)] == ["79"]


def test_orders_are_yielded_as_pages_arrive(ca, conn, h) -> None:
    pages = [
        {"json": {"value": [SAMPLE | {"ID": 1}], "@odata.nextLink": f"{h.API}/Orders?$skip=1"}},
        {"json": {"value": [SAMPLE | {"ID": 2}]}},
    ]
    ca.get("Orders", *pages)
    orders = plugin.hub_get_orders(connection=conn(), days=7)
    assert next(iter(orders)).channel_order_id == "1"
    assert len(ca.sent("GET")) == 1


class OrdersServer:
    """Orders with an export flag, paged server-side with $skip (ChannelAdvisor's way)."""

    def __init__(self, ids: list[int], page_size: int, h: Any) -> None:
        self.ids, self.page_size, self.h = ids, page_size, h
        self.exported: list[int] = []

    def list(self, request: Any, context: Any) -> dict[str, Any]:
        skip = int(self.h.query(request.url).get("$skip", 0))
        pending = [i for i in self.ids if i not in self.exported]
        page: dict[str, Any] = {
            "value": [SAMPLE | {"ID": i} for i in pending[skip : skip + self.page_size]]
        }
        page["@odata.count"] = len(pending)
        if skip + self.page_size < len(pending):
            page["@odata.nextLink"] = (
                f"{self.h.API}/Orders?exported=false&$skip={skip + self.page_size}"
            )
        return page

    def export(self, request: Any, context: Any) -> str:
        order_id = int(re.search(r"Orders\((\d+)\)", request.url).group(1))
        if order_id not in self.exported:
            self.exported.append(order_id)
        context.status_code = 204
        return ""


def test_orders_exported_while_paging_are_not_skipped(ca, conn, h) -> None:
    server = OrdersServer(list(range(1, 8)), page_size=2, h=h)
    ca.m.get(f"{h.API}/Orders", json=server.list)
    ca.m.post(re.compile(r".*/Orders\(\d+\)/Export$"), text=server.export)
    connection = conn()
    got = []
    # What the core does: store each order, then acknowledge it, page by page.
    for order in plugin.hub_get_orders(connection=connection, days=7):
        got.append(order.channel_order_id)
        plugin.hub_acknowledge_orders(
            connection=connection, channel_order_ids=[order.channel_order_id]
        )
    assert sorted(got, key=int) == [str(i) for i in range(1, 8)]
    assert len(got) == len(set(got))
    assert sorted(server.exported) == list(range(1, 8))
    # Pass 1 (3 pages) listed 4 of 7, pass 2 (2 pages) 2 of 3, pass 3 (1 page) the last one;
    # then the cancellation check (one page).
    assert len(ca.sent("GET")) == 7


def test_acknowledge_exports_each_order_alone_and_is_idempotent(ca, conn, h) -> None:
    route = ca.m.post(re.compile(r".*/Orders\(\d+\)/Export$"), status_code=204)
    ca.post("Orders(3)/Export", {"status_code": 404, "json": {"error": {"message": "No order"}}})
    connection = conn()
    outcomes = plugin.hub_acknowledge_orders(
        connection=connection, channel_order_ids=["1", "2", "3", "x"]
    )
    assert [(o.ref, o.outcome) for o in outcomes] == [
        ("1", Outcome.OK),
        ("2", Outcome.OK),
        ("3", Outcome.FAILED),
        ("x", Outcome.FAILED),
    ]
    assert outcomes[2].message == "ChannelAdvisor has no order 3 any more."
    sent = sorted(r.url for r in ca.sent("POST"))
    assert sent == [
        f"{h.API}/Orders(1)/Export",
        f"{h.API}/Orders(2)/Export",
        f"{h.API}/Orders(3)/Export",
    ]
    assert all(not r.body for r in ca.sent("POST"))
    assert ca.sent("POST", "$batch") == []
    again = plugin.hub_acknowledge_orders(connection=connection, channel_order_ids=["1"])
    assert again[0].outcome is Outcome.OK and route.call_count == 3


def test_acknowledge_failures_are_per_order(ca, conn, waits) -> None:
    ca.post("Orders(1)/Export", {"status_code": 503})
    ca.post("Orders(2)/Export", {"status_code": 204})
    outcomes = plugin.hub_acknowledge_orders(connection=conn(), channel_order_ids=["1", "2"])
    assert [o.outcome for o in outcomes] == [Outcome.FAILED, Outcome.OK]
    assert "gave up after 5 attempts" in outcomes[0].message


def test_an_order_the_marketplace_fulfills_is_dropped_even_if_listed(ca, conn) -> None:
    fba = SAMPLE | {"ID": 1, "DistributionCenterTypeRollup": "ExternallyManaged"}
    mixed = SAMPLE | {"ID": 2, "DistributionCenterTypeRollup": "Mixed"}
    ca.get("Orders", {"json": {"value": [fba, mixed]}})
    ca.cancellations()
    assert [o.channel_order_id for o in plugin.hub_get_orders(connection=conn(), days=7)] == ["2"]


def test_cancellations_of_exported_orders_follow_the_new_orders(ca, conn) -> None:
    ca.get("Orders", {"json": {"value": [SAMPLE | {"ID": 1}]}})
    cancelled = SAMPLE | {"ID": 9, "ShippingStatus": "Canceled"}
    by_checkout = SAMPLE | {"ID": 10, "CheckoutStatus": "Canceled"}
    # Not cancelled after all (a stale page), and one already yielded: both left out.
    ca.cancellations(cancelled, by_checkout, SAMPLE | {"ID": 11}, SAMPLE | {"ID": 1})
    orders = list(plugin.hub_get_orders(connection=conn(), days=7))
    assert [(o.channel_order_id, o.cancelled) for o in orders] == [
        ("1", False),
        ("9", True),
        ("10", True),
    ]
    assert orders[1].lines[0].sku == "AL-85590-SHOE"  # a whole order: the core may import it
    # Two requests in all: the new orders, one page of cancellations.
    assert len(ca.sent("GET")) == 2
