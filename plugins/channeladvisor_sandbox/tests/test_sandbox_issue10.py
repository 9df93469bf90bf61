"""Real accounts' cases (issue 10): parents and bundles, several distribution centers,
marketplace-fulfilled orders, cancellations after import, CompleteDCList."""

from __future__ import annotations

from typing import Any

import requests

from hub_channeladvisor_sandbox import DEMO_APPLICATION_ID, Sandbox
from hub_channeladvisor_sandbox.testing import SandboxApi


def quantity(api: SandboxApi, product_id: int, dc: int, qty: int, **value: Any) -> Any:
    body = {
        "Value": {
            "UpdateType": "Absolute",
            "Updates": [{"DistributionCenterID": dc, "Quantity": qty}],
            **value,
        }
    }
    return api.post(f"Products({product_id})/UpdateQuantity", json=body)


def available(sandbox: Sandbox, product_id: int) -> dict[int, int]:
    view = sandbox.get_product(product_id)
    assert view is not None
    return {q["DistributionCenterID"]: q["AvailableQuantity"] for q in view["DCQuantities"]}


def test_parents_and_bundles_take_no_quantity(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    parent, bundle, child = ca_sandbox.seed_products(
        [
            {"Sku": "SHIRT", "IsParent": True},
            {"Sku": "KIT", "ProductType": "Bundle"},
            {"Sku": "SHIRT-M", "ProductType": "Child", "ParentSku": "SHIRT"},
        ]
    )
    rows = ca_api.get("Products", **{"$select": "ID,Sku,IsParent,ProductType"}).json()["value"]
    assert {r["Sku"]: (r["IsParent"], r["ProductType"]) for r in rows} == {
        "SHIRT": (True, "Parent"),
        "KIT": (False, "Bundle"),
        "SHIRT-M": (False, "Child"),
    }
    for product_id, kind in ((parent, "a parent"), (bundle, "a bundle")):
        refused = quantity(ca_api, product_id, 0, 5)
        assert refused.status_code == 400
        assert f"is {kind} product" in refused.json()["error"]["message"]
        assert available(ca_sandbox, product_id) == {}
    assert quantity(ca_api, child, 0, 5).status_code == 204


def test_complete_dc_list(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    [product] = ca_sandbox.seed_products(
        [
            {
                "Sku": "TWO-DC",
                "DCQuantities": [
                    {"DistributionCenterID": 0, "AvailableQuantity": 4},
                    {"DistributionCenterID": 1, "AvailableQuantity": 9},
                ],
            }
        ]
    )
    assert quantity(ca_api, product, 0, 5, CompleteDCList=False).status_code == 204
    assert available(ca_sandbox, product) == {0: 5, 1: 9}
    # The reading clients must guard against: an omitted flag means "the list is complete".
    ca_sandbox.configure(omitted_complete_dc_list=True)
    assert quantity(ca_api, product, 0, 6).status_code == 204
    assert available(ca_sandbox, product) == {0: 6, 1: 0}


def test_items_seeded_in_several_distribution_centers(ca_sandbox: Sandbox) -> None:
    [mixed, own, fba] = ca_sandbox.seed_orders(
        [
            {
                "Items": [
                    {"Sku": "A", "DistributionCenterID": 1},
                    {"Sku": "B", "DistributionCenterID": 2},
                    {"Sku": "C"},
                ]
            },
            {"Items": [{"Sku": "A", "DistributionCenterID": 1}, {"Sku": "C"}]},
            {"Items": [{"Sku": "B", "DistributionCenterID": 2}]},
        ]
    )
    view = ca_sandbox.get_order(mixed)
    assert view is not None
    assert view["DistributionCenterTypeRollup"] == "Mixed"
    held = {
        f["DistributionCenterID"]: ([i["Sku"] for i in f["Items"]], f["DeliveryStatus"])
        for f in view["Fulfillments"]
    }
    assert held == {
        0: (["C"], "NoChange"),
        1: (["A"], "NoChange"),
        2: (["B"], "ThirdPartyManaged"),
    }
    rollups = [ca_sandbox.get_order(o)["DistributionCenterTypeRollup"] for o in (own, fba)]
    assert rollups == ["SellerManaged", "ExternallyManaged"]


def ship(api: SandboxApi, order_id: int, items: list[dict[str, int]], **value: Any) -> Any:
    body = {
        "ShippingCarrier": "UPS",
        "ShippingClass": "Ground",
        "DeliveryStatus": "Complete",
        "TrackingNumber": "1Z",
        "Items": items,
        **value,
    }
    return api.post(f"Orders({order_id})/Ship", json={"Value": body})


def test_shipping_from_the_lines_dc_keeps_the_fulfillment_there(
    ca_sandbox: Sandbox, ca_api: SandboxApi
) -> None:
    [order_id, other] = ca_sandbox.seed_orders(
        [{"Items": [{"Sku": "A", "DistributionCenterID": 1}]}] * 2
    )
    item = ca_sandbox.get_order(order_id)["Items"][0]["ID"]
    assert ship(ca_api, order_id, [{"OrderItemID": item, "Quantity": 1}], DistributionCenterID=1)
    [fulfillment] = ca_sandbox.get_order(order_id)["Fulfillments"]
    assert (fulfillment["DeliveryStatus"], fulfillment["DistributionCenterID"]) == ("Complete", 1)
    # Sending another DC (a quantity setting, say) moves the fulfillment there.
    item = ca_sandbox.get_order(other)["Items"][0]["ID"]
    ship(ca_api, other, [{"OrderItemID": item, "Quantity": 1}], DistributionCenterID=0)
    [moved] = ca_sandbox.get_order(other)["Fulfillments"]
    assert moved["DistributionCenterID"] == 0


def test_marketplace_lines_and_orders_cannot_be_shipped(
    ca_sandbox: Sandbox, ca_api: SandboxApi
) -> None:
    [mixed, fba] = ca_sandbox.seed_orders(
        [
            {"Items": [{"Sku": "A"}, {"Sku": "B", "DistributionCenterID": 2}]},
            {"Items": [{"Sku": "B", "DistributionCenterID": 2}]},
        ]
    )
    own, marketplace = (i["ID"] for i in ca_sandbox.get_order(mixed)["Items"])
    refused = ship(ca_api, mixed, [{"OrderItemID": marketplace, "Quantity": 1}])
    assert refused.status_code == 400
    assert (
        "externally managed distribution center 'Amazon FBA US'"
        in (refused.json()["error"]["message"])
    )
    assert ship(ca_api, mixed, [{"OrderItemID": own, "Quantity": 1}]).status_code == 204
    fba_item = ca_sandbox.get_order(fba)["Items"][0]["ID"]
    assert ship(ca_api, fba, [{"OrderItemID": fba_item, "Quantity": 1}]).status_code == 400


def test_the_admin_route_cancels_an_order(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    [order_id, kept] = ca_sandbox.seed_orders(
        [{"Items": [{"Sku": "A"}], "exported_by": [DEMO_APPLICATION_ID]}] * 2
    )
    response = requests.post(f"{ca_sandbox.base_url}/_sandbox/orders/{order_id}/cancel", timeout=5)
    assert response.status_code == 200
    assert response.json()["ShippingStatus"] == "Canceled"
    assert [f["DeliveryStatus"] for f in response.json()["Fulfillments"]] == ["Canceled"]
    # What the hub's cancellation check asks finds it, and only it.
    found = ca_api.get(
        "Orders",
        exported="true",
        **{"$filter": "ShippingStatus eq 'Canceled' and ShippingDateUtc ge 2020-01-01T00:00:00Z"},
    ).json()["value"]
    assert [o["ID"] for o in found] == [order_id]
    refused = ship(ca_api, order_id, [])
    assert refused.status_code == 400 and "canceled" in refused.json()["error"]["message"]
    missing = requests.post(f"{ca_sandbox.base_url}/_sandbox/orders/1/cancel", timeout=5)
    assert missing.status_code == 404
    assert ca_sandbox.get_order(kept)["ShippingStatus"] == "Unshipped"
