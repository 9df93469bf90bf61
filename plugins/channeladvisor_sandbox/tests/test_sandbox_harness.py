"""The contract harness over the sandbox: its ``error`` failures are the sandbox's 400 fault
(per record, any operation), and it reads back the values the hub really sent."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_channeladvisor_sandbox.testing import SandboxApi
from hub_core.testing import ReceivedUpdate
from hub_core.testing.contract import open_world

SHIP = {
    "Value": {
        "ShippingCarrier": "UPS",
        "ShippingClass": "Ground",
        "DeliveryStatus": "Complete",
        "SellerFulfillmentID": "HUB-1",
    }
}


def qty(*quantities: int) -> dict[str, Any]:
    """An absolute UpdateQuantity body: the n-th quantity for distribution center n."""
    updates = [{"DistributionCenterID": dc, "Quantity": q} for dc, q in enumerate(quantities)]
    return {"Value": {"UpdateType": "Absolute", "Updates": updates}}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ChannelAdvisorHarness]:
    harness = ChannelAdvisorHarness(tmp_path)
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def api(harness: ChannelAdvisorHarness) -> Iterator[SandboxApi]:
    api = SandboxApi(harness.sandbox)
    try:
        yield api
    finally:
        api.close()


def test_error_refuses_one_orders_ship_until_cleared(
    harness: ChannelAdvisorHarness, api: SandboxApi
) -> None:
    refused = harness.add_order([("ERR-1", 1)], harness.shipping_text)
    accepted = harness.add_order([("ERR-2", 1)], harness.shipping_text)
    harness.fail("sync_orders", kind="error", ref=refused, times=None)
    assert harness.armed_failures() == 1
    for _ in range(2):
        response = api.post(f"Orders({refused})/Ship", json=SHIP)
        assert response.status_code == 400
        assert response.json() == {
            "error": {"code": "", "message": f"Order {refused} cannot be shipped."}
        }
    # The order itself is untouched (no status faked in the store).
    order = harness.sandbox.get_order(int(refused))
    assert order is not None and order["ShippingStatus"] == "Unshipped"
    assert api.post(f"Orders({accepted})/Ship", json=SHIP).status_code == 204
    harness.clear_failures()
    assert harness.armed_failures() == 0
    assert api.post(f"Orders({refused})/Ship", json=SHIP).status_code == 204


def test_error_refuses_one_products_batch_parts(
    harness: ChannelAdvisorHarness, api: SandboxApi
) -> None:
    refused = harness.add_product("ERR-A", 1, Decimal("1.00"))
    accepted = harness.add_product("ERR-B", 1, Decimal("1.00"))
    harness.fail("sync_listings", kind="error", ref="ERR-A", times=1)
    parts = [
        ("POST", f"Products({refused})/UpdateQuantity", qty(5)),
        ("POST", f"Products({accepted})/UpdateQuantity", qty(6)),
        ("POST", f"Products({refused})/UpdateQuantity", qty(7)),
    ]
    answers = api.batch(parts).json()["responses"]
    assert [a["status"] for a in answers] == [400, 204, 204]  # times=1: then spent
    assert answers[0]["body"]["error"]["message"] == f"Product {refused} cannot be updated."
    assert harness.armed_failures() == 0
    assert harness.received_updates() == [
        ReceivedUpdate("ERR-B", {"quantity": 6}),
        ReceivedUpdate("ERR-A", {"quantity": 7}),
    ]


def test_error_fails_whole_calls_of_any_operation(
    harness: ChannelAdvisorHarness, api: SandboxApi
) -> None:
    order = harness.add_order([("ERR-1", 1)], harness.shipping_text)
    harness.fail("get_orders", kind="error")
    harness.fail("acknowledge_orders", kind="error", ref=order)
    listed = api.get("Orders")
    assert listed.status_code == 400
    assert listed.json()["error"]["message"] == "The request is invalid."
    assert api.get("Orders").status_code == 200
    exported = api.post(f"Orders({order})/Export")
    assert exported.status_code == 400 and "cannot be marked exported" in exported.text
    with pytest.raises(NotImplementedError):
        harness.fail("link_listings", kind="error", ref="ERR-1")


def test_received_updates_report_the_values_sent(
    harness: ChannelAdvisorHarness, api: SandboxApi
) -> None:
    product = harness.add_product("UPD-1", 0, Decimal("1.00"))
    api.batch(
        [
            ("POST", f"Products({product})/UpdateQuantity", qty(9)),
            ("PATCH", f"Products({product})", {"BuyItNowPrice": 12.75}),
        ]
    )
    api.patch(f"Products({product})", {"BuyItNowPrice": 3, "RetailPrice": 4.5})
    api.post(f"Products({product})/UpdateQuantity", json=qty(2, 3))
    harness.fail("sync_listings", kind="error", ref="UPD-1")
    api.patch(f"Products({product})", {"BuyItNowPrice": 99})  # refused: not received
    assert harness.received_updates() == [
        ReceivedUpdate("UPD-1", {"quantity": 9}),
        ReceivedUpdate("UPD-1", {"price": Decimal("12.75")}),
        # Whatever else a PATCH carries shows under its ChannelAdvisor name.
        ReceivedUpdate("UPD-1", {"price": Decimal("3"), "RetailPrice": 4.5}),
        ReceivedUpdate("UPD-1", {"quantity": {0: 2, 1: 3}}),
    ]


def test_received_updates_refuse_to_guess_without_bodies(
    harness: ChannelAdvisorHarness, api: SandboxApi
) -> None:
    product = harness.add_product("UPD-1", 0, Decimal("1.00"))
    harness.sandbox.configure(max_logged_bodies=0)
    api.patch(f"Products({product})", {"BuyItNowPrice": 2})
    with pytest.raises(AssertionError, match="max_logged_bodies"):
        harness.received_updates()


def test_through_the_hub(tmp_path: Path) -> None:
    """The hub's sync sends the catalog's values, and a refused shipment keeps the message
    ChannelAdvisor gave."""
    with open_world(ChannelAdvisorHarness, tmp_path) as world:
        harness = world.harness
        world.connect()
        harness.add_product("HUB-1", 0, Decimal("1.00"))
        world.catalog([("HUB-1", 5, "10.50")])
        world.link()
        world.sync()
        assert harness.received_updates() == [
            ReceivedUpdate("HUB-1", {"quantity": 5}),
            ReceivedUpdate("HUB-1", {"price": Decimal("10.5")}),
        ]

        refused = harness.add_order([("HUB-1", 1)], harness.shipping_text)
        world.map(harness.shipping_text)
        world.get_orders()
        world.ship(refused, "HUB-TRACK-1")
        harness.fail("sync_orders", kind="error", ref=refused, times=None)
        world.sync_orders(expect=None)
        [shipment] = world.order(refused)["shipments"]
        assert shipment["sync_status"] == "failed"
        assert f"Order {refused} cannot be shipped." in shipment["sync_error"]
