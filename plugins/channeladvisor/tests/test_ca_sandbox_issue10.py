"""Issue 10 against the embedded sandbox: parents and bundles, several distribution centers,
marketplace-fulfilled orders, cancellations after import, CompleteDCList, token refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

pytest.importorskip("hub_channeladvisor_sandbox")

from hub_channeladvisor import plugin
from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_REFRESH_TOKEN,
    Sandbox,
)
from hub_channeladvisor_sandbox import testing as sandbox_testing
from hub_core.channel import (
    CatalogItem,
    ListingStatus,
    ListingUpdate,
    Outcome,
    ShipmentLine,
    ShipmentToSend,
)
from hub_core.errors import AuthError, NeedsReauth

from .test_ca_sandbox import connect, counts

ca_sandbox = sandbox_testing.ca_sandbox


def item(sku: str) -> CatalogItem:
    return CatalogItem(sku, sku, 1, Decimal("1"))


def test_parents_and_bundles_are_unsupported_and_get_no_quantity(ca_sandbox: Sandbox) -> None:
    ids = ca_sandbox.seed_products(
        [
            {"Sku": "SHIRT", "IsParent": True},
            {"Sku": "KIT", "ProductType": "Bundle"},
            {"Sku": "SHIRT-M", "ProductType": "Child", "Quantity": 1},
        ]
    )
    connection = connect(ca_sandbox)
    links = plugin.hub_link_listings(
        connection=connection, items=[item("SHIRT"), item("KIT"), item("SHIRT-M")]
    )
    assert [(r.status, r.message) for r in links] == [
        (ListingStatus.UNSUPPORTED, "a parent product: link its children"),
        (
            ListingStatus.UNSUPPORTED,
            "a bundle product: ChannelAdvisor computes its quantity from its components; "
            "link the components",
        ),
        (ListingStatus.LINKED, ""),
    ]
    # The child becomes a bundle in ChannelAdvisor after it was linked: its quantity is
    # refused once, and the listing turns unsupported (the hub stops sending to it).
    api = sandbox_testing.SandboxApi(ca_sandbox)
    assert api.patch(f"Products({ids[2]})", json={"ProductType": "Bundle"}).status_code == 204
    update = ListingUpdate("SHIRT-M", str(ids[2]), {"quantity": 4}, item("SHIRT-M"))
    (outcome,) = plugin.hub_sync_listings(connection=connection, updates=[update])
    assert (outcome.outcome, outcome.status) == (Outcome.FAILED, ListingStatus.UNSUPPORTED)
    assert ca_sandbox.get_product(ids[2])["DCQuantities"][0]["AvailableQuantity"] == 1


def test_quantity_to_one_distribution_center_leaves_the_others(ca_sandbox: Sandbox) -> None:
    # The pessimistic reading of an omitted CompleteDCList: the plugin must say false.
    ca_sandbox.configure(omitted_complete_dc_list=True)
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
    connection = connect(ca_sandbox, quantity_update_type="Absolute")
    update = ListingUpdate("TWO-DC", str(product), {"quantity": 6}, item("TWO-DC"))
    (outcome,) = plugin.hub_sync_listings(connection=connection, updates=[update])
    assert outcome.outcome is Outcome.OK
    quantities = {
        q["DistributionCenterID"]: q["AvailableQuantity"]
        for q in ca_sandbox.get_product(product)["DCQuantities"]
    }
    assert quantities == {0: 6, 1: 9}


def test_invalid_client_is_the_operators_to_fix(ca_sandbox: Sandbox) -> None:
    connection = connect(ca_sandbox)
    connection.config = {**connection.config, "shared_secret": "wrong", "access_token": "stale"}
    with pytest.raises(AuthError) as caught:
        plugin.hub_link_listings(connection=connection, items=[item("A")])
    assert not isinstance(caught.value, NeedsReauth)
    assert "(invalid_client)" in str(caught.value) and "do not re-authorize" in str(caught.value)
    assert connection.health != "needs_reauth"
    assert "wrong" not in str(caught.value) + caught.value.detail


def test_invalid_grant_marks_needs_reauth(ca_sandbox: Sandbox) -> None:
    connection = connect(ca_sandbox)
    connection.config = {**connection.config, "refresh_token": "unknown", "access_token": "x"}
    with pytest.raises(NeedsReauth):
        plugin.hub_link_listings(connection=connection, items=[item("A")])
    assert connection.health == "needs_reauth"


def test_an_unexplained_401_from_the_token_endpoint_is_tried_again_once(
    ca_sandbox: Sandbox,
) -> None:
    """A bare 401 (no OAuth error) is not a refusal of the refresh token: one more try (the
    conftest's ``waits`` keeps the back-off from sleeping)."""
    from hub_channeladvisor.client import auth

    ca_sandbox.seed_products([{"Sku": "A", "Quantity": 1}])
    connection = connect(ca_sandbox)
    connection.config = {**connection.config, "access_token": "stale"}
    ca_sandbox.fail_next("401", pattern="oauth2/token")
    [result] = plugin.hub_link_listings(connection=connection, items=[item("A")])
    assert result.status == ListingStatus.LINKED
    assert connection.health != "needs_reauth"
    tokens = [e for e in ca_sandbox.request_log()["entries"] if e["path"] == "/oauth2/token"]
    assert [e["status"] for e in tokens] == [401, 200]
    # Twice in a row it is a refusal after all.
    auth.reset_token_stores()
    connection = connect(ca_sandbox)
    connection.config = {**connection.config, "access_token": "stale"}
    ca_sandbox.expire_access_tokens()
    ca_sandbox.fail_next("401", 2, pattern="oauth2/token")
    with pytest.raises(NeedsReauth):
        plugin.hub_link_listings(connection=connection, items=[item("A")])
    assert connection.health == "needs_reauth"


def order(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "CreatedDateUtc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Items": list(items),
        **fields,
    }


def test_marketplace_fulfilled_orders_are_not_imported(ca_sandbox: Sandbox) -> None:
    fba, mixed, own = ca_sandbox.seed_orders(
        [
            order({"Sku": "B", "DistributionCenterID": 2}, ShippingStatus="Unshipped"),
            order({"Sku": "A"}, {"Sku": "B", "DistributionCenterID": 2}),
            order({"Sku": "A", "DistributionCenterID": 1}),
        ]
    )
    got = [
        o.channel_order_id for o in plugin.hub_get_orders(connection=connect(ca_sandbox), days=7)
    ]
    assert got == [str(mixed), str(own)]
    lookup = plugin.hub_explain_order(connection=connect(ca_sandbox), ref=str(fba), days=7)
    assert lookup.reasons[0].startswith("It is fulfilled by the marketplace")


def shipment(ref: str, order_id: int | str, *lines: tuple[str, int]) -> ShipmentToSend:
    return ShipmentToSend(
        ref,
        str(order_id),
        "1Z999",
        "UPS",
        "Ground",
        datetime.now(UTC),
        tuple(ShipmentLine(line, "X", qty) for line, qty in lines),
        complete=False,
    )


def test_ship_uses_the_lines_distribution_center_and_refuses_marketplace_lines(
    ca_sandbox: Sandbox,
) -> None:
    [east, mixed] = ca_sandbox.seed_orders(
        [
            order({"Sku": "A", "DistributionCenterID": 1}),
            order({"Sku": "A"}, {"Sku": "B", "DistributionCenterID": 2}),
        ]
    )
    east_line = str(ca_sandbox.get_order(east)["Items"][0]["ID"])
    own, fba = (str(i["ID"]) for i in ca_sandbox.get_order(mixed)["Items"])
    # The quantity setting names DC 0: sending it would move the fulfillment out of DC 1.
    connection = connect(ca_sandbox, distribution_center_id=0)
    outcomes = plugin.hub_sync_orders(
        connection=connection,
        shipments=[
            shipment("hub-1", east, (east_line, 1)),
            shipment("hub-2", mixed, (fba, 1)),
            shipment("hub-3", mixed, (own, 1)),
        ],
    )
    assert [o.outcome for o in outcomes] == [Outcome.OK, Outcome.FAILED, Outcome.OK]
    assert "Amazon FBA US" in outcomes[1].message
    [shipped] = ca_sandbox.get_order(east)["Fulfillments"]
    assert (shipped["DeliveryStatus"], shipped["DistributionCenterID"]) == ("Complete", 1)
    ships = [
        json.loads(e["body"])["Value"] if isinstance(e["body"], str) else e["body"]["Value"]
        for e in ca_sandbox.request_log()["entries"]
        if e["path"].endswith("/Ship")
    ]
    assert [s["DistributionCenterID"] for s in ships] == [1, 0]
    log = counts(ca_sandbox)
    assert log["POST /v1/Orders({id})/Ship"] == 2  # the marketplace's line never sent
    assert log["GET /v1/DistributionCenters"] == 1


def test_a_cancellation_after_import_is_found_and_stops_the_shipment(
    ca_sandbox: Sandbox,
) -> None:
    [kept, cancelled] = ca_sandbox.seed_orders([order({"Sku": "A"}), order({"Sku": "B"})])
    connection = connect(ca_sandbox)
    imported = [o.channel_order_id for o in plugin.hub_get_orders(connection=connection, days=7)]
    assert imported == [str(kept), str(cancelled)]
    plugin.hub_acknowledge_orders(connection=connection, channel_order_ids=imported)
    line = str(ca_sandbox.get_order(cancelled)["Items"][0]["ID"])

    url = f"{ca_sandbox.base_url}/_sandbox/orders/{cancelled}/cancel"
    assert requests.post(url, timeout=5).status_code == 200
    ca_sandbox.reset_log()
    again = list(plugin.hub_get_orders(connection=connection, days=7))
    assert [(o.channel_order_id, o.cancelled) for o in again] == [(str(cancelled), True)]
    # The cost: the new-orders query and one cancellation query, one page each.
    assert counts(ca_sandbox) == {"GET /v1/Orders": 2}

    (outcome,) = plugin.hub_sync_orders(
        connection=connection, shipments=[shipment("hub-9", cancelled, (line, 1))]
    )
    assert (outcome.outcome, outcome.order_status) == (Outcome.SKIPPED, "cancelled")
    assert "Ship" not in json.dumps(counts(ca_sandbox))
    lookup = plugin.hub_explain_order(connection=connection, ref=str(cancelled), days=7)
    assert lookup.reasons[0].startswith("It was cancelled in ChannelAdvisor")
    assert DEMO_APPLICATION_ID in ca_sandbox.get_order(cancelled)["exported_by"]
    assert DEMO_REFRESH_TOKEN not in json.dumps(ca_sandbox.request_log())
