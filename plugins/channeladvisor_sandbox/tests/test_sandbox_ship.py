"""POST /v1/Orders(ID)/Ship: validation, full and partial shipments, fulfillments."""

from __future__ import annotations

from typing import Any

import pytest

from hub_channeladvisor_sandbox import Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi


@pytest.fixture
def order(ca_sandbox: Sandbox) -> dict[str, Any]:
    """An unshipped order: line A x3, line B x1. Returns its admin view."""
    [order_id] = ca_sandbox.seed_orders(
        [{"Items": [{"Sku": "LINE-A", "Quantity": 3}, {"Sku": "LINE-B", "Quantity": 1}]}]
    )
    view = ca_sandbox.get_order(order_id)
    assert view is not None
    return view


def ship_body(**values: Any) -> dict[str, Any]:
    value = {
        "ShippedDateUtc": "2024-05-04T15:02:00Z",
        "TrackingNumber": "1Z999AA10123456784",
        "ShippingCarrier": "UPS",
        "ShippingClass": "Ground",
        "DistributionCenterID": 0,
        "SellerFulfillmentID": "HUB-SHP-000123",
        "DeliveryStatus": "Complete",
    }
    value.update(values)
    return {"Value": {k: v for k, v in value.items() if v is not None}}


def ship(api: SandboxApi, order_id: int, **values: Any) -> Any:
    return api.post(f"Orders({order_id})/Ship", json=ship_body(**values))


def shipped_fulfillments(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in view["Fulfillments"] if f["DeliveryStatus"] == "Complete"]


def test_full_shipment_updates_the_initial_fulfillment(
    ca_sandbox: Sandbox, ca_api: SandboxApi, order: dict[str, Any]
) -> None:
    response = ship(ca_api, order["ID"])
    assert response.status_code == 204 and response.content == b""
    view = ca_sandbox.get_order(order["ID"])
    assert view is not None
    assert view["ShippingStatus"] == "Shipped"
    [fulfillment] = view["Fulfillments"]
    assert fulfillment["ID"] == order["Fulfillments"][0]["ID"]  # updated in place
    assert fulfillment["DeliveryStatus"] == "Complete"
    assert fulfillment["TrackingNumber"] == "1Z999AA10123456784"
    assert fulfillment["SellerFulfillmentID"] == "HUB-SHP-000123"
    assert fulfillment["ShippedDateUtc"] == "2024-05-04T15:02:00Z"
    assert (fulfillment["ShippingCarrier"], fulfillment["ShippingClass"]) == ("UPS", "Ground")
    assert sorted((i["Sku"], i["Quantity"]) for i in fulfillment["Items"]) == [
        ("LINE-A", 3),
        ("LINE-B", 1),
    ]
    # Nothing left: a second full shipment is refused.
    again = ship(ca_api, order["ID"])
    assert again.status_code == 400
    assert "no unshipped quantity" in again.json()["error"]["message"]


def test_partial_shipments_then_the_rest(
    ca_sandbox: Sandbox, ca_api: SandboxApi, order: dict[str, Any]
) -> None:
    line_a, line_b = (i["ID"] for i in order["Items"])
    first = ship(
        ca_api,
        order["ID"],
        SellerFulfillmentID="S1",
        Items=[{"OrderItemID": line_a, "Quantity": 2}],
    )
    assert first.status_code == 204, first.text
    view = ca_sandbox.get_order(order["ID"])
    assert view is not None
    assert view["ShippingStatus"] == "PartiallyShipped"
    [done] = shipped_fulfillments(view)
    assert done["SellerFulfillmentID"] == "S1"
    assert [(i["OrderItemID"], i["Quantity"]) for i in done["Items"]] == [(line_a, 2)]
    [open_one] = [f for f in view["Fulfillments"] if f["DeliveryStatus"] == "NoChange"]
    assert sorted((i["OrderItemID"], i["Quantity"]) for i in open_one["Items"]) == sorted(
        [(line_a, 1), (line_b, 1)]
    )
    # Quantity above what is left on the line is refused.
    too_many = ship(ca_api, order["ID"], Items=[{"OrderItemID": line_a, "Quantity": 2}])
    assert too_many.status_code == 400
    assert "only 1 unshipped" in too_many.json()["error"]["message"]
    # No Items: ship everything remaining.
    assert (
        ship(
            ca_api,
            order["ID"],
            SellerFulfillmentID="S2",
            ShippingCarrier="fedex",
            ShippingClass="2day",
        ).status_code
        == 204
    )
    view = ca_sandbox.get_order(order["ID"])
    assert view is not None
    assert view["ShippingStatus"] == "Shipped"
    shipped = shipped_fulfillments(view)
    # The rest exactly filled the open (initial) fulfillment, which was updated in place.
    assert [f["SellerFulfillmentID"] for f in shipped] == ["S2", "S1"]
    assert shipped[0]["ID"] == order["Fulfillments"][0]["ID"]
    # Carrier/class are stored in the account list's spelling.
    assert (shipped[0]["ShippingCarrier"], shipped[0]["ShippingClass"]) == ("FedEx", "2Day")
    assert not [f for f in view["Fulfillments"] if f["DeliveryStatus"] == "NoChange"]


def test_ship_by_sku_when_no_order_item_id(
    ca_sandbox: Sandbox, ca_api: SandboxApi, order: dict[str, Any]
) -> None:
    assert ship(ca_api, order["ID"], Items=[{"Sku": "line-b", "Quantity": 1}]).status_code == 204
    view = ca_sandbox.get_order(order["ID"])
    assert view is not None
    assert shipped_fulfillments(view)[0]["Items"][0]["Sku"] == "LINE-B"


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"ShippingCarrier": "UPS", "ShippingClass": "Teleport"}, "UPS/Teleport"),
        ({"ShippingCarrier": "Pigeon", "ShippingClass": "Ground"}, "Pigeon/Ground"),
        ({"ShippingCarrier": None}, "ShippingCarrier and ShippingClass are required"),
        ({"DeliveryStatus": None}, "DeliveryStatus is required"),
        ({"DeliveryStatus": "NoChange"}, "does not ship anything"),
        ({"DeliveryStatus": "Teleported"}, "Teleported"),
        ({"ShippedDateUtc": "yesterday"}, "ShippedDateUtc"),
        ({"DistributionCenterID": 2}, "externally managed"),
        ({"DistributionCenterID": 3}, "does not exist"),
        ({"Items": [{"OrderItemID": 1, "Quantity": 1}]}, "does not belong"),
        ({"Items": [{"OrderItemID": "{A}", "Quantity": 4}]}, "only 3 unshipped"),
        (
            {
                "Items": [
                    {"OrderItemID": "{A}", "Quantity": 2},
                    {"OrderItemID": "{A}", "Quantity": 2},
                ]
            },
            "Cannot ship 4",
        ),
        ({"Items": [{"OrderItemID": "{A}", "Quantity": 0}]}, "at least 1"),
        ({"Items": [{"OrderItemID": "{A}"}]}, "Quantity"),
        ({"Items": [{"Sku": "NOPE", "Quantity": 1}]}, "no item with Sku"),
        ({"Carrier": "UPS"}, "Carrier"),
    ],
)
def test_ship_validation(
    ca_sandbox: Sandbox,
    ca_api: SandboxApi,
    order: dict[str, Any],
    values: dict[str, Any],
    needle: str,
) -> None:
    line_a = order["Items"][0]["ID"]
    for item in values.get("Items", []):
        if item.get("OrderItemID") == "{A}":
            item["OrderItemID"] = line_a
    response = ship(ca_api, order["ID"], **values)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]["message"]
    # Nothing was applied.
    view = ca_sandbox.get_order(order["ID"])
    assert view is not None and view["ShippingStatus"] == "Unshipped"
    assert view["Fulfillments"] == order["Fulfillments"]


def test_ship_needs_the_value_wrapper(ca_api: SandboxApi, order: dict[str, Any]) -> None:
    bare = ship_body()["Value"]
    response = ca_api.post(f"Orders({order['ID']})/Ship", json=bare)
    assert response.status_code == 400
    missing = ca_api.post(f"Orders({order['ID']})/Ship", json={})
    assert "Value" in missing.json()["error"]["message"]


def test_ship_missing_and_canceled_orders(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    assert ship(ca_api, 42).status_code == 404
    [canceled] = ca_sandbox.seed_orders([{"ShippingStatus": "Canceled", "Items": [{"Sku": "Z"}]}])
    response = ship(ca_api, canceled)
    assert response.status_code == 400 and "canceled" in response.json()["error"]["message"]


def test_carriers_are_configurable(
    ca_sandbox: Sandbox, ca_api: SandboxApi, order: dict[str, Any]
) -> None:
    ca_sandbox.set_carriers({"Royal Mail": ["Tracked 24"]})
    assert ship(ca_api, order["ID"]).status_code == 400  # UPS is gone
    ok = ship(ca_api, order["ID"], ShippingCarrier="Royal Mail", ShippingClass="Tracked 24")
    assert ok.status_code == 204


def test_find_a_lost_shipment_by_seller_fulfillment_id(
    ca_api: SandboxApi, order: dict[str, Any]
) -> None:
    assert ship(ca_api, order["ID"], SellerFulfillmentID="HUB-9").status_code == 204
    body = ca_api.get(
        "Fulfillments",
        **{"$filter": f"OrderID eq {order['ID']} and SellerFulfillmentID eq 'HUB-9'"},
    ).json()
    assert [f["DeliveryStatus"] for f in body["value"]] == ["Complete"]
