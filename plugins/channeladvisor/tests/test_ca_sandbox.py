"""The plugin against the embedded ChannelAdvisor sandbox (a real HTTP server, in process).

The waits the client chooses are recorded, never slept (the ``waits`` fixture).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("hub_channeladvisor_sandbox")

from hub_channeladvisor import plugin
from hub_channeladvisor.schemas import SettingsSchema
from hub_channeladvisor_sandbox import (
    DEMO_APPLICATION_ID,
    DEMO_PROFILE_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    Sandbox,
)
from hub_channeladvisor_sandbox import testing as sandbox_testing
from hub_core.channel import (
    CatalogItem,
    ChannelConnection,
    ListingStatus,
    ListingUpdate,
    Outcome,
    ShipmentLine,
    ShipmentToSend,
)
from hub_core.errors import NeedsReauth

#: The sandbox's own fixture: a fresh sandbox on a free port, stopped after the test.
ca_sandbox = sandbox_testing.ca_sandbox


def connect(sandbox: Sandbox, **settings: Any) -> ChannelConnection:
    return ChannelConnection(
        name="demo",
        channel="channeladvisor",
        config={
            "access_token": sandbox.issue_access_token(),
            "refresh_token": DEMO_REFRESH_TOKEN,
            "profile_id": DEMO_PROFILE_ID,
            "application_id": DEMO_APPLICATION_ID,
            "shared_secret": DEMO_SHARED_SECRET,
            "base_url": sandbox.base_url,
        },
        settings=SettingsSchema().load(settings),
        secret_keys=("access_token", "refresh_token", "shared_secret"),
    )


def counts(sandbox: Sandbox) -> dict[str, int]:
    return sandbox.request_log(entries=False)["counts"]


def item(sku: str) -> CatalogItem:
    return CatalogItem(sku, sku, 1, Decimal("1"))


def store_and_export(
    connection: ChannelConnection, stored: set[str], lock: threading.Lock
) -> list[str]:
    """What the core does: store each new order once, then export what it stored."""
    mine = []
    for order in plugin.hub_get_orders(connection=connection, days=7):
        with lock:
            if order.channel_order_id in stored:
                continue
            stored.add(order.channel_order_id)
        mine.append(order.channel_order_id)
        outcome = plugin.hub_acknowledge_orders(
            connection=connection, channel_order_ids=[order.channel_order_id]
        )
        assert outcome[0].outcome is Outcome.OK
    return mine


def test_connection_link_sync_and_a_deleted_product(ca_sandbox: Sandbox) -> None:
    ca_sandbox.seed_products(count=5)
    ca_sandbox.seed_products([{"Sku": "O'Brien", "Quantity": 1, "BuyItNowPrice": 4}])
    connection = connect(ca_sandbox, quantity_update_type="Absolute")
    assert all(c.ok for c in plugin.hub_test_connection(connection=connection))

    links = plugin.hub_link_listings(
        connection=connection, items=[item("SKU-000001"), item("O'Brien"), item("nope")]
    )
    assert [r.status for r in links] == [
        ListingStatus.LINKED,
        ListingStatus.LINKED,
        ListingStatus.NOT_FOUND,
    ]
    obrien = links[1].channel_product_id
    assert obrien is not None

    updates = [
        ListingUpdate(
            r.sku, r.channel_product_id, {"quantity": 9, "price": Decimal("12.34")}, item(r.sku)
        )
        for r in links[:2]
        if r.channel_product_id
    ]
    assert [
        o.outcome for o in plugin.hub_sync_listings(connection=connection, updates=updates)
    ] == [
        Outcome.OK,
        Outcome.OK,
    ]
    product = ca_sandbox.get_product(int(obrien))
    assert product is not None and product["BuyItNowPrice"] == pytest.approx(12.34)
    assert counts(ca_sandbox)["POST /v1/$batch"] == 2  # one lookup batch, one update batch

    ca_sandbox.delete_product(int(obrien))
    outcomes = plugin.hub_sync_listings(connection=connection, updates=updates)
    assert outcomes[0].outcome is Outcome.OK
    assert outcomes[1].status is ListingStatus.BROKEN
    assert outcomes[1].message.endswith("hub listings relink demo --sku 'O'\"'\"'Brien'")


def test_get_orders_twice_exports_each_order_once(ca_sandbox: Sandbox) -> None:
    ids = ca_sandbox.seed_orders(count=45, days=3)
    connection = connect(ca_sandbox, order_days=7)
    stored: set[str] = set()
    lock = threading.Lock()
    first = store_and_export(connection, stored, lock)
    second = store_and_export(connection, stored, lock)
    assert second == []
    assert len(first) == len(set(first)) > 20  # more than one page of 20
    exports = counts(ca_sandbox)["POST /v1/Orders({id})/Export"]
    assert exports == len(first)
    exported = {
        str(i) for i in ids if DEMO_APPLICATION_ID in ca_sandbox.get_order(i)["exported_by"]
    }
    assert exported == set(first)


def test_two_concurrent_get_orders_runs_store_each_order_once(ca_sandbox: Sandbox) -> None:
    ca_sandbox.seed_orders(count=60, days=3)
    stored: set[str] = set()
    lock = threading.Lock()
    got: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            got[n] = store_and_export(connect(ca_sandbox), stored, lock)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    both = got[1] + got[2]
    assert len(both) == len(set(both)) == len(stored)
    # A third run finds nothing left: nothing was skipped while the two exported.
    assert store_and_export(connect(ca_sandbox), stored, lock) == []
    log = ca_sandbox.request_log(entries=False)
    assert log["counts"]["POST /v1/Orders({id})/Export"] == len(stored)
    assert log["max_in_flight_by_application"][DEMO_APPLICATION_ID] <= 5


def test_an_order_with_25_items(ca_sandbox: Sandbox) -> None:
    ca_sandbox.seed_products(count=30)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    (order_id,) = ca_sandbox.seed_orders(
        [
            {
                "CreatedDateUtc": now,
                "CheckoutStatus": "Completed",
                "PaymentStatus": "Cleared",
                "ShippingStatus": "Unshipped",
                "RequestedShippingCarrier": "UPS",
                "RequestedShippingClass": "Ground",
                "Items": [
                    {"Sku": f"SKU-{n:06d}", "Quantity": 1, "UnitPrice": 2.5} for n in range(1, 26)
                ],
            }
        ]
    )
    (order,) = plugin.hub_get_orders(connection=connect(ca_sandbox), days=7)
    assert order.channel_order_id == str(order_id)
    assert len(order.lines) == 25 and order.shipping_text == "UPS - Ground"
    assert counts(ca_sandbox)["GET /v1/Orders({id})"] == 1


def test_a_lost_ship_response_is_not_sent_twice(ca_sandbox: Sandbox) -> None:
    ca_sandbox.seed_orders(count=3, days=1)
    connection = connect(ca_sandbox, shipping_statuses="Unshipped")
    order = next(iter(plugin.hub_get_orders(connection=connection, days=7)))
    carrier, shipping_class = order.shipping_text.split(" - ")
    line = order.lines[0]
    shipment = ShipmentToSend(
        "HUB-SHP-1",
        order.channel_order_id,
        "1Z999",
        carrier,
        shipping_class,
        datetime.now(UTC),
        (ShipmentLine(line.channel_line_id, line.sku, 1),),
        complete=False,
    )
    ca_sandbox.fail_next("lost_response", pattern="Ship", method="POST")
    (outcome,) = plugin.hub_sync_orders(connection=connection, shipments=[shipment])
    assert outcome.outcome is Outcome.OK
    assert "answer was lost" in outcome.message
    assert counts(ca_sandbox)["POST /v1/Orders({id})/Ship"] == 1
    fulfillments = ca_sandbox.get_order(int(order.channel_order_id))["Fulfillments"]
    assert [f["SellerFulfillmentID"] for f in fulfillments].count("HUB-SHP-1") == 1


def test_batch_parts_failing_in_the_sandbox_are_resent(ca_sandbox: Sandbox, waits) -> None:
    ids = ca_sandbox.seed_products(count=4)
    ca_sandbox.fail_next("503", 2, pattern="UpdateQuantity", scope="batch")
    connection = connect(ca_sandbox, quantity_update_type="Absolute")
    updates = [
        ListingUpdate(f"SKU-{n:06d}", str(pid), {"quantity": 3}, item("x"))
        for n, pid in enumerate(ids, 1)
    ]
    outcomes = plugin.hub_sync_listings(connection=connection, updates=updates)
    assert [o.outcome for o in outcomes] == [Outcome.OK] * 4
    log = ca_sandbox.request_log(entries=False)
    assert log["batches"] == 2 and log["batch_parts"] == 6
    assert len(waits) == 1


def test_a_revoked_refresh_token_needs_reauth_and_sends_nothing_after(ca_sandbox: Sandbox) -> None:
    connection = connect(ca_sandbox)
    ca_sandbox.revoke_refresh_token(DEMO_REFRESH_TOKEN)
    with pytest.raises(NeedsReauth):
        plugin.hub_link_listings(connection=connection, items=[item("A")])
    assert connection.health == "needs_reauth"
    before = ca_sandbox.request_log(entries=False)["total"]
    with pytest.raises(NeedsReauth):
        list(plugin.hub_get_orders(connection=connection, days=7))
    assert ca_sandbox.request_log(entries=False)["total"] == before
