"""GET /v1/Orders (export flags, filters, expand cap, paging), Orders(ID), Export."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    OTHER_PROFILE_ID,
    Sandbox,
)
from hub_channeladvisor_sandbox.testing import SandboxApi

P = DEMO_PROFILE_ID


@pytest.fixture
def orders(ca_sandbox: Sandbox) -> dict[str, int]:
    """Named orders: ready, unpaid, shipped, big (25 lines), other-profile, old."""
    ca_sandbox.seed_products(count=30)
    ready = {
        "SiteOrderID": "114-1",
        "CreatedDateUtc": "2024-05-03T17:20:11Z",
        "ImportDateUtc": "2024-05-03T17:34:52.113Z",
        "Items": [{"Sku": "SKU-000001", "Quantity": 2}, {"Sku": "SKU-000002"}],
    }
    unpaid = {
        "SiteOrderID": "114-2",
        "CreatedDateUtc": "2024-05-04T10:00:00Z",
        "CheckoutStatus": "NotVisited",
        "PaymentStatus": "NotYetSubmitted",
        "Items": [{"Sku": "SKU-000003"}],
    }
    shipped = {
        "SiteOrderID": "114-3",
        "CreatedDateUtc": "2024-05-05T10:00:00Z",
        "ShippingStatus": "Shipped",
        "Items": [{"Sku": "SKU-000004"}],
    }
    big = {
        "SiteOrderID": "114-4",
        "CreatedDateUtc": "2024-05-06T10:00:00Z",
        "Items": [{"Sku": f"SKU-{n:06d}"} for n in range(1, 26)],
    }
    other = {
        "SiteOrderID": "114-5",
        "ProfileID": OTHER_PROFILE_ID,
        "CreatedDateUtc": "2024-05-07T10:00:00Z",
        "Items": [{"Sku": "X"}],
    }
    old = {
        "SiteOrderID": "114-6",
        "CreatedDateUtc": "2023-01-01T00:00:00Z",
        "Items": [{"Sku": "SKU-000005"}],
        "exported_by": [DEMO_APPLICATION_ID],
    }
    ids = ca_sandbox.seed_orders([ready, unpaid, shipped, big, other, old])
    return dict(zip(["ready", "unpaid", "shipped", "big", "other", "old"], ids, strict=True))


def ids_of(response: requests.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [o["ID"] for o in response.json()["value"]]


def test_order_shape(ca_api: SandboxApi, orders: dict[str, int]) -> None:
    body = ca_api.get(f"Orders({orders['ready']})", **{"$expand": "Items,Fulfillments"}).json()
    assert body["ProfileID"] == P and body["SiteOrderID"] == "114-1"
    assert body["CreatedDateUtc"] == "2024-05-03T17:20:11Z"
    assert body["ImportDateUtc"] == "2024-05-03T17:34:52.113Z"
    assert (body["CheckoutStatus"], body["PaymentStatus"], body["ShippingStatus"]) == (
        "Completed",
        "Cleared",
        "Unshipped",
    )
    assert (body["RequestedShippingCarrier"], body["RequestedShippingClass"]) == ("UPS", "Ground")
    assert [(i["Sku"], i["Quantity"]) for i in body["Items"]] == [
        ("SKU-000001", 2),
        ("SKU-000002", 1),
    ]
    assert all(i["OrderID"] == body["ID"] and i["ProductID"] for i in body["Items"])
    [fulfillment] = body["Fulfillments"]
    assert fulfillment["DeliveryStatus"] == "NoChange"
    assert (fulfillment["ShippingCarrier"], fulfillment["ShippingClass"]) == ("UPS", "Ground")
    assert "Items" not in fulfillment  # only with Fulfillments($expand=Items)
    nested = ca_api.get(
        f"Orders({orders['ready']})", **{"$expand": "Fulfillments($expand=Items)"}
    ).json()
    assert sum(i["Quantity"] for i in nested["Fulfillments"][0]["Items"]) == 3


def test_exported_flag_is_per_application(
    ca_sandbox: Sandbox, ca_api: SandboxApi, orders: dict[str, int]
) -> None:
    not_exported = ids_of(
        ca_api.get("Orders", exported="false", **{"$filter": f"ProfileID eq {P}"})
    )
    assert orders["old"] not in not_exported and orders["ready"] in not_exported
    assert ids_of(ca_api.get("Orders", exported="true")) == [orders["old"]]
    assert ca_api.post(f"Orders({orders['ready']})/Export").status_code == 204
    assert orders["ready"] not in ids_of(ca_api.get("Orders", exported="false"))
    # A second application has its own flags: it sees every order as not exported.
    ca_sandbox.add_application("second-app", "s2")
    ca_sandbox.add_refresh_token("second-refresh", "second-app", [P, OTHER_PROFILE_ID])
    second = SandboxApi(ca_sandbox, refresh_token="second-refresh")
    assert len(ids_of(second.get("Orders", exported="false"))) == 6
    # DELETE unmarks.
    assert ca_api.delete(f"Orders({orders['ready']})/Export").status_code == 204
    assert orders["ready"] in ids_of(ca_api.get("Orders", exported="false"))
    assert ca_sandbox.get_order(orders["old"])["exported_by"] == [DEMO_APPLICATION_ID]  # type: ignore[index]
    assert ca_api.get("Orders", exported="maybe").status_code == 400
    # Orders(ID) ignores the flag.
    assert ca_api.get(f"Orders({orders['old']})").status_code == 200


def test_an_export_keeps_the_cached_order_list_and_changes_the_next_page(
    ca_sandbox: Sandbox, ca_api: SandboxApi, orders: dict[str, int]
) -> None:
    query = {"$filter": f"ProfileID eq {P}"}
    before = ids_of(ca_api.get("Orders", exported="false", **query))
    version = ca_sandbox.store.orders.version
    cached = dict(ca_sandbox.store._cache)
    assert ca_api.post(f"Orders({orders['ready']})/Export").status_code == 204
    # The Export changed one flag, not the orders: the filter's cached work stays valid...
    assert ca_sandbox.store.orders.version == version
    assert dict(ca_sandbox.store._cache) == cached
    # ...and the flag is applied on the next page all the same.
    after = ids_of(ca_api.get("Orders", exported="false", **query))
    assert after == [i for i in before if i != orders["ready"]]
    assert orders["ready"] in ids_of(ca_api.get("Orders", exported="true", **query))


def test_export_of_a_missing_order_is_404(ca_api: SandboxApi) -> None:
    assert ca_api.post("Orders(1)/Export").status_code == 404


@pytest.mark.parametrize(
    ("flt", "names"),
    [
        (f"ProfileID eq {P} and CreatedDateUtc ge 2024-05-04", ["unpaid", "shipped", "big"]),
        (
            "CreatedDateUtc ge 2024-05-04T00:00:00Z and CreatedDateUtc lt 2024-05-06",
            ["unpaid", "shipped"],
        ),
        (
            "ImportDateUtc gt 2024-05-03T17:34:52Z and ImportDateUtc lt 2024-05-03T17:35:00Z",
            ["ready"],
        ),
        (
            "CheckoutStatus eq 'Completed' and (PaymentStatus eq 'Cleared' or PaymentStatus eq "
            "'Submitted') and ShippingStatus eq 'Unshipped' and ProfileID eq 12345678",
            ["ready", "big", "old"],
        ),
        ("ShippingStatus eq 'Shipped'", ["shipped"]),
        ("ShippingStatus ne 'Unshipped'", ["shipped"]),
        ("SiteOrderID eq '114-2'", ["unpaid"]),
        ("ProfileID eq 87654321", ["other"]),
    ],
)
def test_order_filters(
    ca_api: SandboxApi, orders: dict[str, int], flt: str, names: list[str]
) -> None:
    assert ids_of(ca_api.get("Orders", **{"$filter": flt})) == sorted(orders[n] for n in names)


def test_filter_by_id_list(ca_api: SandboxApi, orders: dict[str, int]) -> None:
    flt = f"ID eq {orders['ready']} or ID eq {orders['big']}"
    assert ids_of(ca_api.get("Orders", **{"$filter": flt})) == [orders["ready"], orders["big"]]


def test_bad_enum_value_in_an_order_filter(ca_api: SandboxApi) -> None:
    response = ca_api.get("Orders", **{"$filter": "ShippingStatus eq 'Shiped'"})
    assert response.status_code == 400
    assert "Shiped" in response.json()["error"]["message"]


def test_orderby_created_desc(ca_api: SandboxApi, orders: dict[str, int]) -> None:
    response = ca_api.get(
        "Orders", **{"$filter": f"ProfileID eq {P}", "$orderby": "CreatedDateUtc desc"}
    )
    assert ids_of(response) == [orders[n] for n in ("big", "shipped", "unpaid", "ready", "old")]


def test_expanded_items_are_capped_at_20_in_lists(
    ca_api: SandboxApi, orders: dict[str, int]
) -> None:
    body = ca_api.get(
        "Orders",
        **{"$filter": f"ID eq {orders['big']}", "$expand": "Items,Fulfillments($expand=Items)"},
    ).json()
    [order] = body["value"]
    assert len(order["Items"]) == 20
    link = order["Items@odata.nextLink"]
    assert link == f"{ca_api.base_url}/v1/Orders({orders['big']})/Items?$skip=20"
    rest = ca_api.session.get(link, timeout=5).json()
    assert len(rest["value"]) == 5 and "@odata.nextLink" not in rest
    # Nested collections are capped too, with their own link.
    [fulfillment] = order["Fulfillments"]
    assert len(fulfillment["Items"]) == 20
    assert fulfillment["Items@odata.nextLink"].endswith(
        f"/v1/Fulfillments({fulfillment['ID']})/Items?$skip=20"
    )
    # The single-order GET returns every line.
    full = ca_api.get(f"Orders({orders['big']})", **{"$expand": "Items"}).json()
    assert len(full["Items"]) == 25 and "Items@odata.nextLink" not in full
    assert [i["Sku"] for i in order["Items"] + rest["value"]] == [i["Sku"] for i in full["Items"]]


def test_orders_page_size_is_20_with_next_links(ca_sandbox: Sandbox, ca_api: SandboxApi) -> None:
    ca_sandbox.seed_orders(count=45)
    seen: list[int] = []
    response = ca_api.get("Orders", exported="false", **{"$expand": "Items,Fulfillments"})
    pages = 0
    while True:
        body: dict[str, Any] = response.json()
        pages += 1
        assert len(body["value"]) <= 20
        seen += [o["ID"] for o in body["value"]]
        if "@odata.nextLink" not in body:
            break
        assert "exported=false" in body["@odata.nextLink"]
        response = ca_api.session.get(body["@odata.nextLink"], timeout=5)
    assert pages == 3 and len(seen) == 45 == len(set(seen))


def test_generated_orders_are_deterministic() -> None:
    def make() -> list[tuple[Any, ...]]:
        sandbox = Sandbox(seed=7)
        ids = sandbox.seed_orders(count=30, big_orders=2)
        result = []
        for order_id in ids:
            order = sandbox.get_order(order_id)
            assert order is not None
            result.append(
                (
                    order["SiteOrderID"],
                    order["ShippingStatus"],
                    order["RequestedShippingCarrier"],
                    order["RequestedShippingClass"],
                    tuple((i["Sku"], i["Quantity"]) for i in order["Items"]),
                )
            )
        return result

    first, second = make(), make()
    assert first == second
    assert len(first[0][4]) > 20 and len(first[1][4]) > 20
    assert {row[1] for row in first} >= {"Unshipped"}


def test_order_404(ca_api: SandboxApi) -> None:
    response = ca_api.get("Orders(99)")
    assert response.status_code == 404
    assert "No order with ID 99" in response.json()["error"]["message"]


def test_fulfillments_entity_set(ca_api: SandboxApi, orders: dict[str, int]) -> None:
    body = ca_api.get(
        "Fulfillments", **{"$filter": f"OrderID eq {orders['shipped']}", "$expand": "Items"}
    ).json()
    [fulfillment] = body["value"]
    assert fulfillment["DeliveryStatus"] == "Complete" and fulfillment["TrackingNumber"]
    assert fulfillment["Items"][0]["Sku"] == "SKU-000004"
    one = ca_api.get(f"Fulfillments({fulfillment['ID']})").json()
    assert one["OrderID"] == orders["shipped"]
    via_order = ca_api.get(f"Orders({orders['shipped']})/Fulfillments").json()
    assert [f["ID"] for f in via_order["value"]] == [fulfillment["ID"]]
