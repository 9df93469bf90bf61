"""Failure switches: a whole call raises ChannelError, a record comes back failed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from hub_core.channel import (
    CatalogItem,
    ChannelConnection,
    ListingStatus,
    ListingUpdate,
    Outcome,
    ShipmentToSend,
)
from hub_core.errors import AuthError, ChannelError
from hub_fake_channel import plugin
from hub_fake_channel.store import OPERATIONS, FakeStore


def item(sku: str) -> CatalogItem:
    return CatalogItem(sku=sku, title=sku, quantity=1, price=Decimal("1"))


def update(sku: str, product_id: str, quantity: int = 5) -> ListingUpdate:
    return ListingUpdate(sku, product_id, {"quantity": quantity}, item(sku))


def shipment(shipment_id: str, order_id: str) -> ShipmentToSend:
    return ShipmentToSend(
        shipment_id=shipment_id,
        channel_order_id=order_id,
        tracking="T1",
        carrier="UPS",
        shipping_class="Ground",
        shipped_at=datetime.now(UTC),
        lines=(),
        complete=True,
    )


@pytest.fixture
def seeded(store: FakeStore) -> FakeStore:
    """Products P-0001 (A-1) and P-0002 (B-2); open orders O-0001 and O-0002."""
    store.add_product("A-1")
    store.add_product("B-2")
    store.add_order([("A-1", 1)])
    store.add_order([("B-2", 1)])
    return store


def _call(operation: str, connection: ChannelConnection) -> Any:
    """Call ``operation`` for both records of ``seeded`` (consuming get orders' generator)."""
    calls: dict[str, Callable[[], Any]] = {
        "test_connection": lambda: plugin.hub_test_connection(connection=connection),
        "link_listings": lambda: plugin.hub_link_listings(
            connection=connection, items=[item("A-1"), item("B-2")]
        ),
        "sync_listings": lambda: plugin.hub_sync_listings(
            connection=connection, updates=[update("A-1", "P-0001"), update("B-2", "P-0002")]
        ),
        "publish_listings": lambda: plugin.hub_publish_listings(
            connection=connection, items=[item("NEW-1"), item("NEW-2")]
        ),
        "get_orders": lambda: list(plugin.hub_get_orders(connection=connection, days=7)),
        "acknowledge_orders": lambda: plugin.hub_acknowledge_orders(
            connection=connection, channel_order_ids=["O-0001", "O-0002"]
        ),
        "sync_orders": lambda: plugin.hub_sync_orders(
            connection=connection, shipments=[shipment("S1", "O-0001"), shipment("S2", "O-0002")]
        ),
        "explain_order": lambda: plugin.hub_explain_order(
            connection=connection, ref="O-0001", days=7
        ),
    }
    return calls[operation]()


def _channel_data(store: FakeStore) -> dict[str, Any]:
    state = store.snapshot()
    return {k: state[k] for k in ("products", "orders", "shipments", "updates")}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_whole_call_failure_raises_and_changes_nothing(
    seeded: FakeStore, conn: ChannelConnection, operation: str
) -> None:
    before = _channel_data(seeded)
    seeded.fail(operation)
    for _ in range(2):  # without ``times`` it keeps failing
        with pytest.raises(ChannelError, match=f"refused {operation} \\(failure switch\\)"):
            _call(operation, conn)
    assert _channel_data(seeded) == before
    assert seeded.calls() == {operation: 2}
    seeded.clear_failures()
    _call(operation, conn)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_transient_failure_fails_once_then_succeeds(
    seeded: FakeStore, conn: ChannelConnection, operation: str
) -> None:
    seeded.fail(operation, kind="transient")
    with pytest.raises(ChannelError, match="temporarily unavailable"):
        _call(operation, conn)
    _call(operation, conn)
    assert seeded.failures() == []
    assert seeded.calls() == {operation: 2}


def test_times_limits_how_many_calls_fail(seeded: FakeStore, conn: ChannelConnection) -> None:
    seeded.fail("link_listings", times=2)
    for _ in range(2):
        with pytest.raises(ChannelError):
            _call("link_listings", conn)
    assert all(r.status is ListingStatus.LINKED for r in _call("link_listings", conn))


def test_credentials_are_checked_before_failure_switches(seeded: FakeStore, connect: Any) -> None:
    seeded.fail("get_orders", times=1)
    with pytest.raises(AuthError):
        plugin.hub_get_orders(connection=connect(api_key="bad"), days=7)
    assert len(seeded.failures()) == 1  # the switch is still armed


def test_a_record_failure_in_link(seeded: FakeStore, conn: ChannelConnection) -> None:
    seeded.fail("link_listings", ref="a-1")
    first, second = _call("link_listings", conn)
    assert (first.status, first.channel_product_id) == (ListingStatus.UNLINKED, None)
    assert "refused A-1 in link_listings" in first.message
    assert second.status is ListingStatus.LINKED


def test_a_record_failure_in_sync_listings(seeded: FakeStore, conn: ChannelConnection) -> None:
    seeded.fail("sync_listings", ref="A-1", kind="transient")
    first, second = _call("sync_listings", conn)
    assert (first.outcome, first.status) == (Outcome.FAILED, None)
    assert "temporarily unavailable" in first.message
    assert second.outcome is Outcome.OK
    assert [u["sku"] for u in seeded.updates_received()] == ["B-2"]
    retry = plugin.hub_sync_listings(connection=conn, updates=[update("A-1", "P-0001")])
    assert retry[0].outcome is Outcome.OK


def test_a_lost_answer_in_sync_listings_applies_the_change(
    seeded: FakeStore, conn: ChannelConnection
) -> None:
    seeded.fail("sync_listings", ref="A-1", kind="lost", times=1)
    first, _ = _call("sync_listings", conn)
    assert first.outcome is Outcome.FAILED and "answer was lost" in first.message
    assert seeded.product("P-0001")["quantity"] == 5  # type: ignore[index]


def test_a_record_failure_in_publish(seeded: FakeStore, conn: ChannelConnection) -> None:
    seeded.fail("publish_listings", ref="NEW-1")
    first, second = _call("publish_listings", conn)
    assert first.status is ListingStatus.UNLINKED
    assert second.status is ListingStatus.LINKED
    assert seeded.product_by_sku("NEW-1") is None


def test_a_lost_publish_is_linked_not_duplicated_on_retry(
    seeded: FakeStore, conn: ChannelConnection
) -> None:
    seeded.fail("publish_listings", ref="NEW-1", kind="lost", times=1)
    first, _ = _call("publish_listings", conn)
    assert first.status is ListingStatus.UNLINKED
    created = seeded.product_by_sku("NEW-1")
    assert created is not None
    [retry] = plugin.hub_publish_listings(connection=conn, items=[item("NEW-1")])
    assert (retry.status, retry.channel_product_id) == (ListingStatus.LINKED, created["id"])
    assert len(seeded.products_by_sku("NEW-1")) == 1


def test_a_record_failure_in_get_orders_breaks_off_after_earlier_orders(
    seeded: FakeStore, conn: ChannelConnection
) -> None:
    seeded.fail("get_orders", ref="O-0002", times=1)
    got = []
    with pytest.raises(ChannelError, match="O-0002 in get_orders"):
        for order in plugin.hub_get_orders(connection=conn, days=7):
            got.append(order.channel_order_id)
    assert got == ["O-0001"]
    assert len(list(plugin.hub_get_orders(connection=conn, days=7))) == 2


def test_a_record_failure_in_acknowledge(seeded: FakeStore, conn: ChannelConnection) -> None:
    seeded.fail("acknowledge_orders", ref="O-0001")
    first, second = _call("acknowledge_orders", conn)
    assert (first.outcome, second.outcome) == (Outcome.FAILED, Outcome.OK)
    assert [o["acknowledged"] for o in seeded.orders()] == [False, True]


def test_a_lost_acknowledgement_is_applied(seeded: FakeStore, conn: ChannelConnection) -> None:
    seeded.fail("acknowledge_orders", ref="O-0001", kind="lost")
    first, _ = _call("acknowledge_orders", conn)
    assert first.outcome is Outcome.FAILED
    assert [o["acknowledged"] for o in seeded.orders()] == [True, True]


@pytest.mark.parametrize("ref", ["S1", "O-0001"], ids=["by-shipment-id", "by-order-id"])
def test_a_record_failure_in_sync_orders(
    seeded: FakeStore, conn: ChannelConnection, ref: str
) -> None:
    seeded.fail("sync_orders", ref=ref)
    first, second = _call("sync_orders", conn)
    assert (first.ref, first.outcome) == ("S1", Outcome.FAILED)
    assert second.outcome is Outcome.OK
    assert [s["shipment_id"] for s in seeded.shipments_received()] == ["S2"]


def test_a_lost_shipment_answer_is_never_recorded_twice(
    seeded: FakeStore, conn: ChannelConnection
) -> None:
    seeded.fail("sync_orders", ref="S1", kind="lost", times=1)
    first, _ = _call("sync_orders", conn)
    assert first.outcome is Outcome.FAILED
    [retry] = plugin.hub_sync_orders(connection=conn, shipments=[shipment("S1", "O-0001")])
    assert retry.outcome is Outcome.OK
    received = {s["shipment_id"]: s["received"] for s in seeded.shipments_received()}
    assert received == {"S1": 2, "S2": 1}
    assert seeded.order("O-0001")["lines"][0]["shipped"] == 1  # type: ignore[index]


def test_a_lost_whole_call_applies_everything_then_raises(
    seeded: FakeStore, conn: ChannelConnection
) -> None:
    seeded.fail("sync_orders", kind="lost", times=1)
    with pytest.raises(ChannelError, match="answer was lost"):
        _call("sync_orders", conn)
    assert [s["shipment_id"] for s in seeded.shipments_received()] == ["S1", "S2"]
    assert all(r.outcome is Outcome.OK for r in _call("sync_orders", conn))
    assert [s["received"] for s in seeded.shipments_received()] == [2, 2]


def test_a_record_failure_in_explain_fails_the_call(
    seeded: FakeStore, conn: ChannelConnection
) -> None:
    seeded.fail("explain_order", ref="O-0001", times=1)
    with pytest.raises(ChannelError, match="O-0001 in explain_order"):
        _call("explain_order", conn)
    assert seeded.failures() == []  # spent, and the call counted
    assert seeded.calls() == {"explain_order": 1}
    assert _call("explain_order", conn).order is not None
