"""The fake channel's hooks, called directly with a ChannelConnection (no CLI, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from marshmallow import ValidationError

from hub_core.channel import (
    OPERATIONS,
    CatalogItem,
    ChannelConnection,
    ListingStatus,
    ListingUpdate,
    Outcome,
    ShipmentLine,
    ShipmentToSend,
)
from hub_core.errors import AuthError, ChannelError
from hub_fake_channel import plugin
from hub_fake_channel.plugin import FakeConnectionSchema, FakeSettingsSchema
from hub_fake_channel.store import FakeStore

NOW = datetime.now(UTC)


def item(sku: str, quantity: int = 1, price: str = "1.00", title: str = "") -> CatalogItem:
    return CatalogItem(sku=sku, title=title or sku, quantity=quantity, price=Decimal(price))


def update(sku: str, product_id: str, **changes: Any) -> ListingUpdate:
    return ListingUpdate(sku=sku, channel_product_id=product_id, changes=changes, item=item(sku))


def shipment(
    shipment_id: str,
    order_id: str,
    lines: tuple[ShipmentLine, ...] = (),
    complete: bool = False,
    carrier: str = "UPS",
    shipping_class: str = "Ground",
) -> ShipmentToSend:
    return ShipmentToSend(
        shipment_id=shipment_id,
        channel_order_id=order_id,
        tracking="1Z999",
        carrier=carrier,
        shipping_class=shipping_class,
        shipped_at=NOW,
        lines=lines,
        complete=complete,
    )


# -- declarations and schemas ---------------------------------------------------------------


def test_declarations() -> None:
    description = plugin.hub_channel()
    assert (description.name, description.title) == ("fake", "Fake channel")
    assert set(description.supports) == set(OPERATIONS)
    assert list(description.requires) == []
    assert description.connection_schema is FakeConnectionSchema
    assert description.settings_schema is FakeSettingsSchema
    assert "hub connections configure {name} --set api_key=" in description.reauth_advice


def test_a_relative_store_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = FakeConnectionSchema().load({"store": "shops/a.json"})
    assert loaded == {"store": str(tmp_path / "shops" / "a.json")}
    assert FakeConnectionSchema().load(loaded) == loaded  # loading again changes nothing


def test_connection_schema_requires_store_and_hides_api_key() -> None:
    with pytest.raises(ValidationError) as error:
        FakeConnectionSchema().load({"api_key": "k", "colour": "red"})
    assert set(error.value.messages) == {"store", "colour"}
    with pytest.raises(ValidationError):
        FakeConnectionSchema().load({"store": "  "})
    assert FakeConnectionSchema.Meta.secret_fields == ("api_key",)
    assert FakeConnectionSchema._declared_fields["api_key"].load_only
    assert FakeConnectionSchema().dump({"store": "/s.json", "api_key": "k"}) == {"store": "/s.json"}


def test_settings_have_defaults_and_are_validated() -> None:
    assert FakeSettingsSchema().load({}) == {"order_days": 7, "statuses": "open"}
    assert FakeSettingsSchema().load({"statuses": " open, pending ,", "order_days": "3"}) == {
        "order_days": 3,
        "statuses": "open,pending",
    }
    with pytest.raises(ValidationError) as error:
        FakeSettingsSchema().load({"statuses": " , ", "order_days": "0"})
    assert set(error.value.messages) == {"statuses", "order_days"}


# -- test connection ------------------------------------------------------------------------


def test_test_connection_passes(store: FakeStore, conn: ChannelConnection) -> None:
    store.add_product("A-1")
    checks = plugin.hub_test_connection(connection=conn)
    assert [(c.name, c.ok) for c in checks] == [("credentials", True), ("store", True)]
    assert "1 products, 0 orders" in checks[1].message
    assert store.calls() == {"test_connection": 1}


def test_test_connection_refuses_the_bad_api_key(store: FakeStore, connect: Any) -> None:
    checks = plugin.hub_test_connection(connection=connect(api_key="bad"))
    assert [(c.name, c.ok) for c in checks] == [("credentials", False)]
    assert "refused the API key" in checks[0].message
    assert "bad" not in checks[0].message  # the secret is not repeated
    assert store.calls() == {}


def test_test_connection_names_a_missing_or_broken_store(
    tmp_path: Path, store: FakeStore, conn: ChannelConnection
) -> None:
    store.path.write_text("garbage")
    checks = plugin.hub_test_connection(connection=conn)
    assert not checks[1].ok and "invalid JSON" in checks[1].message
    store.path.unlink()
    checks = plugin.hub_test_connection(connection=conn)
    assert not checks[1].ok and f"hub fake seed {store.path}" in checks[1].message


# -- bad credentials: every operation refused, nothing changed ------------------------------


def _every_operation(connection: ChannelConnection) -> list[Any]:
    return [
        lambda: plugin.hub_link_listings(connection=connection, items=[item("A-1")]),
        lambda: plugin.hub_sync_listings(
            connection=connection, updates=[update("A-1", "P-0001", quantity=9)]
        ),
        lambda: plugin.hub_publish_listings(connection=connection, items=[item("NEW")]),
        lambda: plugin.hub_get_orders(connection=connection, days=7),
        lambda: plugin.hub_acknowledge_orders(connection=connection, channel_order_ids=["O-0001"]),
        lambda: plugin.hub_sync_orders(connection=connection, shipments=[shipment("S1", "O-0001")]),
        lambda: plugin.hub_explain_order(connection=connection, ref="O-0001", days=7),
    ]


def test_bad_credentials_change_nothing(store: FakeStore, connect: Any) -> None:
    store.add_product("A-1")
    store.add_order()
    before = store.path.read_bytes()
    for call in _every_operation(connect(api_key="bad")):
        with pytest.raises(AuthError, match="refused the API key of connection 'shop'"):
            call()
    assert store.path.read_bytes() == before


def test_a_missing_store_is_a_channel_error(store: FakeStore, conn: ChannelConnection) -> None:
    store.path.unlink()
    for call in _every_operation(conn):
        with pytest.raises(ChannelError, match="does not exist"):
            call()
    assert not store.exists()


def test_a_good_api_key_is_accepted(store: FakeStore, connect: Any) -> None:
    store.add_product("A-1")
    connection = connect(api_key="s3cret-key")
    assert connection.secrets == ["s3cret-key"]
    [result] = plugin.hub_link_listings(connection=connection, items=[item("A-1")])
    assert result.status is ListingStatus.LINKED


# -- link -----------------------------------------------------------------------------------


def test_link_exact_then_case_insensitive_then_ambiguous(
    store: FakeStore, conn: ChannelConnection
) -> None:
    exact = store.add_product("abc")
    store.add_product("ABC")
    only = store.add_product("Mixed-Case")
    store.add_product("dup")
    store.add_product("DUP")
    results = plugin.hub_link_listings(
        connection=conn,
        items=[item("abc"), item("mixed-case"), item("Dup"), item("none")],
    )
    by_sku = {r.sku: r for r in results}
    assert (by_sku["abc"].status, by_sku["abc"].channel_product_id) == (ListingStatus.LINKED, exact)
    assert (by_sku["mixed-case"].status, by_sku["mixed-case"].channel_product_id) == (
        ListingStatus.LINKED,
        only,
    )
    assert "ignoring case" in by_sku["mixed-case"].message
    assert by_sku["Dup"].status is ListingStatus.AMBIGUOUS
    assert by_sku["Dup"].channel_product_id is None
    assert "P-0004, P-0005" in by_sku["Dup"].message
    assert by_sku["none"].status is ListingStatus.NOT_FOUND
    assert store.calls() == {"link_listings": 1}


# -- sync listings --------------------------------------------------------------------------


def test_sync_applies_changes_and_records_them(store: FakeStore, conn: ChannelConnection) -> None:
    pid = store.add_product("A-1", quantity=1, price="1.00")
    [outcome] = plugin.hub_sync_listings(
        connection=conn, updates=[update("A-1", pid, quantity=7, price=Decimal("12.50"))]
    )
    assert outcome.outcome is Outcome.OK
    assert outcome.status is None
    product = store.product(pid)
    assert product is not None
    assert (product["quantity"], product["price"]) == (7, "12.50")
    assert store.updates_received() == [
        {"sku": "A-1", "product_id": pid, "fields": {"quantity": 7, "price": "12.50"}}
    ]


def test_sync_refuses_unknown_fields_and_negative_quantities(
    store: FakeStore, conn: ChannelConnection
) -> None:
    pid = store.add_product("A-1")
    results = plugin.hub_sync_listings(
        connection=conn,
        updates=[update("A-1", pid, colour="red"), update("A-1", pid, quantity=-1)],
    )
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert "cannot change colour" in results[0].message
    assert "0 or more" in results[1].message
    assert store.updates_received() == []


def test_a_deleted_product_is_broken(store: FakeStore, conn: ChannelConnection) -> None:
    pid = store.add_product("A-1")
    store.delete_product(pid)
    [outcome] = plugin.hub_sync_listings(connection=conn, updates=[update("A-1", pid, quantity=3)])
    assert (outcome.outcome, outcome.status) == (Outcome.FAILED, ListingStatus.BROKEN)
    assert f"Product {pid} was deleted" in outcome.message
    assert "hub listings relink shop --sku A-1" in outcome.message
    assert store.updates_received() == []


def test_a_product_recreated_under_another_id_is_broken_naming_it(
    store: FakeStore, conn: ChannelConnection
) -> None:
    old = store.add_product("A-1")
    store.delete_product(old)
    new = store.add_product("a-1")
    [outcome] = plugin.hub_sync_listings(connection=conn, updates=[update("A-1", old, quantity=3)])
    assert outcome.status is ListingStatus.BROKEN
    assert f"now exists as {new}" in outcome.message
    assert outcome.channel_product_id is None  # relinking is the merchant's decision


# -- publish --------------------------------------------------------------------------------


def test_publish_creates_products(store: FakeStore, conn: ChannelConnection) -> None:
    store.add_product("OLD")
    results = plugin.hub_publish_listings(
        connection=conn, items=[item("NEW-1", 4, "5.25", "New one"), item("NEW-2")]
    )
    assert [(r.status, r.channel_product_id) for r in results] == [
        (ListingStatus.LINKED, "P-0002"),
        (ListingStatus.LINKED, "P-0003"),
    ]
    assert store.product("P-0002") == {
        "id": "P-0002",
        "sku": "NEW-1",
        "title": "New one",
        "quantity": 4,
        "price": "5.25",
    }


def test_publish_links_an_existing_sku_instead_of_duplicating(
    store: FakeStore, conn: ChannelConnection
) -> None:
    pid = store.add_product("HERE")
    store.add_product("TWICE")
    store.add_product("TWICE")
    results = plugin.hub_publish_listings(connection=conn, items=[item("here"), item("TWICE")])
    assert (results[0].status, results[0].channel_product_id) == (ListingStatus.LINKED, pid)
    assert "instead of publishing a duplicate" in results[0].message
    assert results[1].status is ListingStatus.AMBIGUOUS
    assert len(store.products()) == 3


# -- get orders -----------------------------------------------------------------------------


def test_get_orders_returns_eligible_orders_oldest_first_without_acknowledging(
    store: FakeStore, conn: ChannelConnection
) -> None:
    store.add_product("A-1", price="2.00")
    newer = store.add_order([("A-1", 2)], created_at=NOW - timedelta(hours=1))
    older = store.add_order(
        [("A-1", 1, "3.00")], created_at=NOW - timedelta(days=6), shipping_text="USPS - Priority"
    )
    store.add_order(acknowledged=True)
    store.add_order(status="pending")
    store.add_order(created_at=NOW - timedelta(days=8))
    orders = list(plugin.hub_get_orders(connection=conn, days=7))
    assert [o.channel_order_id for o in orders] == [older, newer]
    first = orders[0]
    assert first.shipping_text == "USPS - Priority"
    assert first.marketplace_order_id == "M-0002"
    assert first.marketplace == "FakeMarket"
    assert first.currency == "USD"
    assert first.created_at == NOW - timedelta(days=6)
    assert first.cancelled is False
    assert first.totals == {"subtotal": "3.00"}
    assert first.raw["id"] == older
    [line] = first.lines
    assert (line.channel_line_id, line.sku, line.quantity, line.unit_price) == (
        f"{older}-L1",
        "A-1",
        1,
        Decimal("3.00"),
    )
    assert not any(o["acknowledged"] for o in store.orders() if o["id"] in (older, newer))
    # Asked again, the channel returns the same orders: only acknowledging takes them.
    assert len(list(plugin.hub_get_orders(connection=conn, days=7))) == 2
    assert store.calls() == {"get_orders": 2}


def test_get_orders_honours_the_statuses_setting_and_days(store: FakeStore, connect: Any) -> None:
    open_old = store.add_order(created_at=NOW - timedelta(days=9))
    pending = store.add_order(status="Pending")
    store.add_order(status="closed")
    connection = connect(settings={"statuses": "open,pending"})
    found = {o.channel_order_id for o in plugin.hub_get_orders(connection=connection, days=10)}
    assert found == {open_old, pending}


def test_a_cancelled_order_comes_flagged(store: FakeStore, conn: ChannelConnection) -> None:
    order_id = store.add_order()
    store.cancel_order(order_id)
    [order] = plugin.hub_get_orders(connection=conn, days=7)
    assert order.cancelled is True


def test_an_order_cancelled_after_acknowledgement_comes_again_flagged(
    store: FakeStore, conn: ChannelConnection
) -> None:
    order_id = store.add_order()
    store.add_order(acknowledged=True)  # acknowledged, not cancelled: never again
    plugin.hub_acknowledge_orders(connection=conn, channel_order_ids=[order_id])
    assert list(plugin.hub_get_orders(connection=conn, days=7)) == []
    store.cancel_order(order_id)
    [order] = plugin.hub_get_orders(connection=conn, days=7)
    assert (order.channel_order_id, order.cancelled) == (order_id, True)


# -- acknowledge ----------------------------------------------------------------------------


def test_acknowledge_is_idempotent_and_stops_get_orders(
    store: FakeStore, conn: ChannelConnection
) -> None:
    first = store.add_order()
    second = store.add_order()
    outcomes = plugin.hub_acknowledge_orders(connection=conn, channel_order_ids=[first, "O-9999"])
    assert [(o.ref, o.outcome) for o in outcomes] == [
        (first, Outcome.OK),
        ("O-9999", Outcome.FAILED),
    ]
    again = plugin.hub_acknowledge_orders(connection=conn, channel_order_ids=[first])
    assert (again[0].outcome, again[0].message) == (Outcome.OK, "already acknowledged")
    assert [o.channel_order_id for o in plugin.hub_get_orders(connection=conn, days=7)] == [second]


# -- sync orders ----------------------------------------------------------------------------


def test_a_complete_shipment_without_lines_ships_everything(
    store: FakeStore, conn: ChannelConnection
) -> None:
    order_id = store.add_order([("A-1", 2), ("B-2", 1)])
    [outcome] = plugin.hub_sync_orders(
        connection=conn, shipments=[shipment("S1", order_id, complete=True)]
    )
    assert outcome.ref == "S1"
    assert outcome.outcome is Outcome.OK
    [received] = store.shipments_received()
    assert received["shipment_id"] == "S1"
    assert (received["carrier"], received["shipping_class"], received["tracking"]) == (
        "UPS",
        "Ground",
        "1Z999",
    )
    assert received["shipped_at"] == NOW.isoformat()
    assert received["received"] == 1
    assert [(ln["sku"], ln["quantity"]) for ln in received["lines"]] == [("A-1", 2), ("B-2", 1)]
    order = store.order(order_id)
    assert order is not None and order["shipping_status"] == "Shipped"


def test_partial_shipments_and_quantity_beyond_the_line(
    store: FakeStore, conn: ChannelConnection
) -> None:
    order_id = store.add_order([("A-1", 3)])
    line = f"{order_id}-L1"
    results = plugin.hub_sync_orders(
        connection=conn,
        shipments=[
            shipment("S1", order_id, (ShipmentLine(line, "A-1", 2),)),
            shipment("S2", order_id, (ShipmentLine(line, "A-1", 2),)),
            shipment("S3", order_id, (ShipmentLine("", "a-1", 1),)),  # by SKU
        ],
    )
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.FAILED, Outcome.OK]
    assert "has 1 unshipped of 3" in results[1].message
    assert [s["shipment_id"] for s in store.shipments_received()] == ["S1", "S3"]
    order = store.order(order_id)
    assert order is not None
    assert order["lines"][0]["shipped"] == 3
    assert order["shipping_status"] == "Shipped"


def test_a_partial_shipment_marks_the_order_partially_shipped(
    store: FakeStore, conn: ChannelConnection
) -> None:
    order_id = store.add_order([("A-1", 1), ("B-2", 1)])
    plugin.hub_sync_orders(
        connection=conn,
        shipments=[shipment("S1", order_id, (ShipmentLine(f"{order_id}-L2", "B-2", 1),))],
    )
    order = store.order(order_id)
    assert order is not None and order["shipping_status"] == "PartiallyShipped"


@pytest.mark.parametrize(
    ("lines", "kwargs", "message"),
    [
        pytest.param((ShipmentLine("O-0001-L9", "A-1", 1),), {}, "is not on order", id="line"),
        pytest.param((ShipmentLine("", "ZZZ", 1),), {}, "is not on order", id="sku"),
        pytest.param((ShipmentLine("O-0001-L1", "A-1", 0),), {}, "not positive", id="zero"),
        pytest.param((), {"carrier": ""}, "needs a shipping carrier", id="carrier"),
        pytest.param((), {"shipping_class": ""}, "needs a shipping class", id="class"),
    ],
)
def test_shipments_the_channel_refuses(
    store: FakeStore,
    conn: ChannelConnection,
    lines: tuple[ShipmentLine, ...],
    kwargs: dict[str, str],
    message: str,
) -> None:
    order_id = store.add_order([("A-1", 1)])
    [outcome] = plugin.hub_sync_orders(
        connection=conn, shipments=[shipment("S1", order_id, lines, **kwargs)]
    )
    assert outcome.outcome is Outcome.FAILED
    assert message in outcome.message
    assert store.shipments_received() == []


def test_shipments_for_unknown_or_shipped_orders_fail_and_cancelled_ones_are_skipped(
    store: FakeStore, conn: ChannelConnection
) -> None:
    cancelled = store.add_order()
    store.cancel_order(cancelled)
    done = store.add_order()
    plugin.hub_sync_orders(connection=conn, shipments=[shipment("S0", done)])
    results = plugin.hub_sync_orders(
        connection=conn,
        shipments=[shipment("S1", "O-9999"), shipment("S2", cancelled), shipment("S3", done)],
    )
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.SKIPPED, Outcome.FAILED]
    assert "No order 'O-9999'" in results[0].message
    assert "was cancelled" in results[1].message
    assert [r.order_status for r in results] == [None, "cancelled", None]
    assert "nothing left to ship" in results[2].message
    assert [s["shipment_id"] for s in store.shipments_received()] == ["S0"]


def test_a_shipment_id_received_twice_is_ok_but_recorded_once(
    store: FakeStore, conn: ChannelConnection
) -> None:
    order_id = store.add_order([("A-1", 2)])
    line = (ShipmentLine(f"{order_id}-L1", "A-1", 1),)
    first = plugin.hub_sync_orders(connection=conn, shipments=[shipment("S1", order_id, line)])
    again = plugin.hub_sync_orders(connection=conn, shipments=[shipment("S1", order_id, line)])
    assert first[0].outcome is again[0].outcome is Outcome.OK
    assert "not recorded again" in again[0].message
    [received] = store.shipments_received()
    assert received["received"] == 2  # the double send is visible
    order = store.order(order_id)
    assert order is not None and order["lines"][0]["shipped"] == 1
    assert store.calls() == {"sync_orders": 2}


# -- explain --------------------------------------------------------------------------------


def test_explain_an_eligible_order_by_either_id(store: FakeStore, conn: ChannelConnection) -> None:
    order_id = store.add_order(marketplace_order_id="AMZ-1")
    for ref in (order_id, "AMZ-1", "amz-1"):
        lookup = plugin.hub_explain_order(connection=conn, ref=ref, days=7)
        assert lookup.order is not None and lookup.order.channel_order_id == order_id
        assert lookup.reasons == []
    assert lookup.facts["status"] == "open"
    assert lookup.facts["statuses_setting"] == "open"
    assert lookup.facts["days"] == 7


def test_explain_an_unknown_order(store: FakeStore, conn: ChannelConnection) -> None:
    lookup = plugin.hub_explain_order(connection=conn, ref="nope", days=7)
    assert lookup.order is None
    assert lookup.reasons == []


def test_explain_gives_every_reason(store: FakeStore, connect: Any) -> None:
    order_id = store.add_order(
        status="pending", acknowledged=True, created_at=NOW - timedelta(days=9, hours=12)
    )
    connection = connect(settings={"statuses": "open,paid"})
    lookup = plugin.hub_explain_order(connection=connection, ref=order_id, days=7)
    assert len(lookup.reasons) == 3
    acknowledged, status, age = lookup.reasons
    assert "acknowledged already" in acknowledged
    assert "status 'pending' is not in the setting statuses (open,paid)" in status
    assert "--set statuses=open,paid,pending" in status
    assert "9.5 days ago" in age
    assert "outside the last 7 days" in age
    assert "--days 10" in age and "order_days=10" in age
