"""Operator workflows through the ``hub`` CLI against the sandbox, as a new user meets them
(issue 10): a shipment ChannelAdvisor refuses is corrected and sent once; a cancelled one is
never sent; an excluded SKU is never looked up; SKUs missing from ChannelAdvisor do not fail
``hub run``. Counts come from the sandbox's request log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from click.testing import CliRunner, Result

from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    Sandbox,
)
from hub_core.cli import cli

SHIP = "POST /v1/Orders({id})/Ship"


class Hub:
    """``hub --database-url URL ...`` in process; asserts the exit code."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--database-url", self.url, *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)


def _order(site_order_id: str, items: list[tuple[str, int]]) -> dict[str, Any]:
    created = datetime.now(UTC) - timedelta(days=1)
    return {
        "SiteName": "Amazon Seller Central - US",
        "SiteOrderID": site_order_id,
        "CreatedDateUtc": created.isoformat(),
        "CheckoutStatus": "Completed",
        "PaymentStatus": "Cleared",
        "ShippingStatus": "Unshipped",
        "RequestedShippingCarrier": "UPS",
        "RequestedShippingClass": "Ground",
        "Items": [{"Sku": sku, "Quantity": qty, "UnitPrice": 10.0} for sku, qty in items],
    }


@pytest.fixture
def shop(ca_sandbox: Sandbox, tmp_path: Path) -> tuple[Hub, list[int]]:
    """A connection ``shop`` to the sandbox with two orders imported; returns their IDs."""
    ca_sandbox.seed_products(
        [{"Sku": sku, "Title": sku, "Quantity": 5} for sku in ("MUG-1", "CAP-1", "HAT-1")]
    )
    orders = ca_sandbox.seed_orders(
        [_order("114-1", [("MUG-1", 2)]), _order("114-2", [("CAP-1", 1)])]
    )
    hub = Hub(f"sqlite:///{tmp_path / 'hub.db'}")
    hub(
        "connections", "add", "shop", "--channel", "channeladvisor",
        "--set", "access_token=expired-at-start",
        "--set", f"refresh_token={DEMO_REFRESH_TOKEN}",
        "--set", f"profile_id={DEMO_PROFILE_ID}",
        "--set", f"application_id={DEMO_APPLICATION_ID}",
        "--set", f"shared_secret={DEMO_SHARED_SECRET}",
        "--set", f"base_url={ca_sandbox.base_url}",
    )  # fmt: skip
    hub("shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "std")
    hub("orders", "get", "shop")
    return hub, orders


def _ships(sandbox: Sandbox, order_id: int) -> list[dict[str, Any]]:
    """Every Ship request the sandbox received for ``order_id``: status and body."""
    return [
        {"status": e["status"], **(e["body"] or {}).get("Value", {})}
        for e in sandbox.request_log()["entries"]
        if e["endpoint"] == SHIP and e["path"].endswith(f"Orders({order_id})/Ship")
    ]


def test_a_refused_carrier_is_corrected_and_the_shipment_sent_once(
    ca_sandbox: Sandbox, shop: tuple[Hub, list[int]]
) -> None:
    hub, (first, _second) = shop
    recorded = hub.json(
        "orders", "ship", "shop", str(first),
        "--tracking", "1Z999", "--carrier", "United Parcel", "--class", "Ground",
    )  # fmt: skip
    shipment = recorded["shipment_id"]
    refused = hub.json("orders", "sync", "shop", code=4)
    assert "United Parcel/Ground is not valid" in refused["records"][0]["message"]
    assert [s["status"] for s in _ships(ca_sandbox, first)] == [400]
    [failed] = hub.json("shipments", "list", "shop", "--status", "failed")
    assert failed["shipment_id"] == shipment and "not valid" in failed["sync_error"]

    hub("shipments", "edit", "shop", shipment, "--carrier", "UPS")
    hub("orders", "sync", "shop")
    hub("orders", "sync", "shop")
    ships = _ships(ca_sandbox, first)
    assert len(ships) == 2, ships  # the refused one, then the corrected one, once
    assert ships[1]["status"] < 300
    assert (ships[1]["ShippingCarrier"], ships[1]["SellerFulfillmentID"]) == ("UPS", shipment)
    order = ca_sandbox.get_order(first)
    assert order is not None and order["ShippingStatus"] == "Shipped"
    refusal = hub("shipments", "cancel", "shop", shipment, code=2)
    assert "was sent to ChannelAdvisor" in refusal.output


def test_a_cancelled_shipment_is_never_sent_and_its_items_ship_again(
    ca_sandbox: Sandbox, shop: tuple[Hub, list[int]]
) -> None:
    hub, (_first, second) = shop
    ship = ("orders", "ship", "shop", str(second), "--carrier", "UPS", "--class", "Ground")
    mistake = hub.json(*ship, "--tracking", "WRONG")["shipment_id"]
    hub("shipments", "cancel", "shop", mistake)
    assert hub.json("orders", "sync", "shop")["records"] == []
    assert _ships(ca_sandbox, second) == []
    right = hub.json(*ship, "--tracking", "RIGHT")["shipment_id"]
    hub("orders", "sync", "shop")
    ships = _ships(ca_sandbox, second)
    assert [(s["SellerFulfillmentID"], s["TrackingNumber"]) for s in ships] == [(right, "RIGHT")]


def test_run_with_a_sku_missing_in_channeladvisor_exits_0_and_excluded_skus_are_not_looked_up(
    ca_sandbox: Sandbox, shop: tuple[Hub, list[int]], tmp_path: Path
) -> None:
    hub, _ = shop
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "sku,title,quantity,price\nMUG-1,Mug,3,9.99\nGIFT-CARD,Gift card,99,25\nHAT-1,Hat,4,5\n"
    )
    hub("catalog", "import", str(catalog))
    run = hub.json("run", "shop")
    assert run["status"] == "ok"
    link = run["operations"][0]
    assert (link["counts"]["linked"], link["counts"]["not_found"]) == (2, 1)

    synced_hat = ca_sandbox.find_products("HAT-1")[0]["TotalQuantity"]
    hub("listings", "exclude", "shop", "--sku", "GIFT-CARD", "--sku", "HAT-1")
    mark = ca_sandbox.request_log(entries=False)["last_seq"]
    hub("listings", "link", "shop", "--sku", "GIFT-CARD")
    hub("catalog", "set", "HAT-1", "--quantity", "40")
    hub("run", "shop")
    queries = [unquote(e["query"]) for e in ca_sandbox.request_log(since=mark)["entries"]]
    assert not [q for q in queries if "GIFT-CARD" in q or "HAT-1" in q], queries
    # Synced once before it was excluded, never since.
    assert ca_sandbox.find_products("HAT-1")[0]["TotalQuantity"] == synced_hat
    assert synced_hat != 40
