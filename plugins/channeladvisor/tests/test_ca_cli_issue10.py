"""The README's promises of "What real ChannelAdvisor accounts hold", through the `hub`
commands a merchant types, against the embedded sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

pytest.importorskip("hub_channeladvisor_sandbox")

from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.testing.contract import World, open_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(ChannelAdvisorHarness, tmp_path) as opened:
        opened.connect()
        yield opened


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_parents_and_bundles_are_listed_unsupported_and_never_get_quantities(
    world: World,
) -> None:
    sandbox = world.harness.sandbox  # type: ignore[attr-defined]
    *_, child = sandbox.seed_products(
        [
            {"Sku": "SHIRT", "IsParent": True},
            {"Sku": "KIT", "ProductType": "Bundle"},
            {"Sku": "SHIRT-M", "ProductType": "Child"},
        ]
    )
    world.catalog([("SHIRT", 5, "10.00"), ("KIT", 5, "30.00"), ("SHIRT-M", 5, "10.00")])
    world.link(expect=None)
    unsupported = world.json("listings", "list", "shop", "--status", "unsupported")
    assert [(r["sku"], r["channel_product_id"], r["message"]) for r in unsupported] == [
        (
            "KIT",
            None,
            "a bundle product: ChannelAdvisor computes its quantity from its components; "
            "link the components",
        ),
        ("SHIRT", None, "a parent product: link its children"),
    ]
    world.sync()
    # The harness names products by id: only the child's quantity and price arrived.
    assert {u.sku for u in world.harness.received_updates()} == {str(child)}

    # orders explain names an order's unsupported products.
    [order] = sandbox.seed_orders(
        [{"CreatedDateUtc": now(), "Items": [{"Sku": "SHIRT-M"}, {"Sku": "KIT", "IsBundle": True}]}]
    )
    world.map("UPS - Ground")
    explained = world.json("orders", "explain", "shop", str(order))
    assert explained["would_import"] is True
    assert explained["notes"] == [
        "Bundle line(s) KIT: ChannelAdvisor computes a bundle's quantity from its components, "
        "so the hub never links or syncs a bundle product (listing status unsupported).",
        "line KIT: its channel product is unsupported (a bundle product: ChannelAdvisor "
        "computes its quantity from its components; link the components); the hub never syncs "
        "its quantity",
    ]
    text = world("orders", "explain", "shop", str(order)).stdout
    assert "  note: line KIT: its channel product is unsupported" in text


def test_cancelled_and_marketplace_orders_through_the_cli(world: World) -> None:
    sandbox = world.harness.sandbox  # type: ignore[attr-defined]
    kept, cancelled, fba, mixed = sandbox.seed_orders(
        [
            {"CreatedDateUtc": now(), "Items": [{"Sku": "A"}]},
            {"CreatedDateUtc": now(), "Items": [{"Sku": "B"}]},
            {"CreatedDateUtc": now(), "Items": [{"Sku": "C", "DistributionCenterID": 2}]},
            {
                "CreatedDateUtc": now(),
                "Items": [{"Sku": "D"}, {"Sku": "E", "DistributionCenterID": 2}],
            },
        ]
    )
    world.map("UPS - Ground")
    world.get_orders()
    assert sorted(world.orders()) == sorted([str(kept), str(cancelled), str(mixed)])

    explained = world.json("orders", "explain", "shop", str(fba), expect=None)
    assert explained["imported"] is False and explained["would_import"] is False
    assert explained["reasons"][0].startswith("It is fulfilled by the marketplace")
    out = world("orders", "explain", "shop", str(fba), expect=None).stdout
    assert "fulfilled by the marketplace" in out

    base = sandbox.base_url
    assert requests.post(f"{base}/_sandbox/orders/{cancelled}/cancel", timeout=5).ok
    world.get_orders()
    listed = world.json("orders", "list", "--connection", "shop", "--status", "cancelled")
    assert [o["channel_order_id"] for o in listed] == [str(cancelled)]
    text = world("orders", "explain", "shop", str(cancelled)).stdout
    assert "status cancelled" in text and "the channel cancelled it" in text

    # The marketplace's line of the Mixed order is refused with the reason; D ships.
    world.ship(str(mixed), "1Z-E", {"E": 1})
    world.ship(str(mixed), "1Z-D", {"D": 1})
    result = world.sync_orders(expect=4)
    assert [r["outcome"] for r in result["records"]] == ["failed", "ok"]
    refused = world.order(str(mixed))["shipments"][0]
    assert "Amazon FBA US" in refused["sync_error"]
    tracking = [f["TrackingNumber"] for f in sandbox.get_order(mixed)["Fulfillments"]]
    assert [t for t in tracking if t] == ["1Z-D"]


def test_invalid_client_is_told_apart_from_a_refused_refresh_token(world: World) -> None:
    world.configure({"shared_secret": "not-the-secret"})
    checked = world("connections", "test", "shop", expect=1)
    text = checked.stdout + checked.stderr
    assert "(invalid_client)" in text and "do not re-authorize" in text
    assert "not-the-secret" not in text
    shown = world.json("connections", "show", "shop")
    assert shown.get("health") != "needs_reauth"
