"""Shipments that can be repaired: ``hub shipments list``, ``edit`` and ``cancel`` (issue 10,
deliverable 8), through the CLI against the fake channel, plus the reusable cancel functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hub_core import hookimpl
from hub_core.channel import ChannelConnection, ChannelOrder, ChannelOrderLine, ShipmentToSend
from hub_core.errors import InvalidInput
from hub_core.models import Order
from hub_core.services import Hub
from hub_core.services.connections import add_connection
from hub_core.services.orders import get_orders, show_order
from hub_core.services.shipments import (
    cancel_shipment,
    cancel_unsent_shipments,
    edit_shipment,
    get_shipment,
    list_shipments,
    ship_order,
    sync_orders,
)
from hub_core.services.shipping import add_mapping
from hub_fake_channel.store import FakeStore

#: The contract's row of ``hub shipments list`` (design §5).
ROW_KEYS = {
    "shipment_id",
    "channel_order_id",
    "tracking",
    "carrier",
    "class",
    "shipped_at",
    "lines",
    "sync_status",
    "sync_error",
}
UPS = ("--carrier", "UPS", "--class", "Ground")


@pytest.fixture
def orders(cli_shop: Any, store: FakeStore) -> Any:
    """``shop`` with two orders imported: O-0001 (SKU-1 x2, SKU-2 x1) and O-0002 (SKU-1 x1)."""
    store.add_order([("SKU-1", 2), ("SKU-2", 1)], order_id="O-0001")
    store.add_order([("SKU-1", 1)], order_id="O-0002")
    cli_shop(
        "shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "std"
    )
    cli_shop("orders", "get", "shop")
    return cli_shop


def _ship(cli: Any, order: str, tracking: str, *items: str) -> str:
    """Record a shipment through the CLI; return its id."""
    flags = [arg for item in items for arg in ("--item", item)]
    data = cli.json("orders", "ship", "shop", order, "--tracking", tracking, *UPS, *flags)
    return str(data["shipment_id"])


def _rows(cli: Any, *args: str) -> dict[str, dict[str, Any]]:
    return {r["shipment_id"]: r for r in cli.json("shipments", "list", "shop", *args)}


def _shipped(cli: Any, order: str) -> list[int]:
    return [ln["shipped_quantity"] for ln in cli.json("orders", "show", "shop", order)["lines"]]


# --- the bug as a merchant meets it, and the repair -------------------------------------------


def test_a_refused_shipment_is_corrected_and_sent_once(orders: Any, store: FakeStore) -> None:
    shipment = _ship(orders, "O-0002", "1Z-TYPO")
    store.fail("sync_orders", ref=shipment, kind="error")  # refused until corrected
    for _ in range(2):  # without a repair, every sync fails on it again
        refused = orders.json("orders", "sync", "shop", code=4)
        assert [(r["ref"], r["outcome"]) for r in refused["records"]] == [(shipment, "failed")]
    failed = orders.json("shipments", "list", "shop", "--status", "failed")
    assert [r["shipment_id"] for r in failed] == [shipment]
    assert set(failed[0]) >= ROW_KEYS
    assert failed[0]["sync_error"] == refused["records"][0]["message"]
    assert store.shipments_received() == []

    store.clear_failures()
    edited = orders.json(
        "shipments", "edit", "shop", shipment,
        "--tracking", "1Z999", "--carrier", "FedEx", "--class", "Home Delivery",
        "--shipped-at", "2026-11-30T10:00:00Z",
    )  # fmt: skip
    assert (edited["tracking"], edited["carrier"], edited["class"]) == (
        "1Z999",
        "FedEx",
        "Home Delivery",
    )
    assert edited["shipped_at"].startswith("2026-11-30T10:00:00")
    assert (edited["sync_status"], edited["sync_error"]) == ("pending", None)
    assert _rows(orders, "--status", "pending")[shipment]["carrier"] == "FedEx"

    sent = orders.json("orders", "sync", "shop")
    assert [(r["ref"], r["outcome"]) for r in sent["records"]] == [(shipment, "ok")]
    assert orders.json("orders", "sync", "shop")["records"] == []
    [received] = store.shipments_received()
    assert (received["shipment_id"], received["received"]) == (shipment, 1)
    assert (received["tracking"], received["carrier"], received["shipping_class"]) == (
        "1Z999",
        "FedEx",
        "Home Delivery",
    )
    assert received["shipped_at"].startswith("2026-11-30T10:00:00")
    assert _rows(orders, "--status", "sent")[shipment]["sync_error"] is None


def test_edit_changes_only_the_fields_given(orders: Any) -> None:
    shipment = _ship(orders, "O-0002", "T-1")
    edited = orders.json("shipments", "edit", "shop", shipment, "--class", "Next Day Air")
    assert (edited["tracking"], edited["carrier"], edited["class"]) == (
        "T-1",
        "UPS",
        "Next Day Air",
    )
    text = orders("shipments", "edit", "shop", shipment, "--tracking", "T-2").stdout
    assert f"Corrected {shipment}" in text and "hub orders sync shop" in text


def test_cancel_makes_the_quantities_shippable_again(orders: Any, store: FakeStore) -> None:
    wrong = _ship(orders, "O-0001", "T-WRONG", "SKU-1=2")
    assert _shipped(orders, "O-0001") == [2, 0]
    cancelled = orders.json("shipments", "cancel", "shop", wrong)
    assert cancelled["sync_status"] == "cancelled" and cancelled["order_status"] == "imported"
    assert "hub shipments cancel" in cancelled["sync_error"]
    assert _shipped(orders, "O-0001") == [0, 0]
    assert orders.json("orders", "list", "--status", "imported")[0]["channel_order_id"] == "O-0001"
    assert [r["shipment_id"] for r in orders.json("shipments", "list", "shop")] == [wrong]
    assert _rows(orders, "--status", "cancelled").keys() == {wrong}
    assert orders.json("orders", "sync", "shop")["records"] == []  # a cancelled one is never sent

    whole = _ship(orders, "O-0001", "T-RIGHT")  # everything, SKU-1 x2 included, again
    assert _shipped(orders, "O-0001") == [2, 1]
    assert orders.json("orders", "show", "shop", "O-0001")["status"] == "shipped"
    sent = orders.json("orders", "sync", "shop")
    assert [r["ref"] for r in sent["records"]] == [whole]
    assert [s["shipment_id"] for s in store.shipments_received()] == [whole]
    assert store.order("O-0001")["shipping_status"] == "Shipped"


def test_cancel_a_failed_shipment_and_the_rest_stays_right(orders: Any, store: FakeStore) -> None:
    first = _ship(orders, "O-0001", "T-1", "SKU-1=1")
    rest = _ship(orders, "O-0001", "T-2")  # the rest: SKU-1 x1 and SKU-2 x1
    assert _rows(orders)[rest]["complete"] is True
    store.fail("sync_orders", ref=first, times=1)
    store.fail("sync_orders", ref=rest, times=1)
    orders("orders", "sync", "shop", code=4)
    text = orders("shipments", "cancel", "shop", first).stdout
    assert f"Cancelled {first}" in text and "partially_shipped" in text
    # What is left no longer ships everything unshipped: the first SKU-1 is open again.
    assert _rows(orders)[rest]["complete"] is False
    assert _shipped(orders, "O-0001") == [1, 1]
    orders("orders", "sync", "shop")
    [received] = store.shipments_received()
    assert received["shipment_id"] == rest
    assert {(ln["sku"], ln["quantity"]) for ln in received["lines"]} == {("SKU-1", 1), ("SKU-2", 1)}
    assert store.order("O-0001")["shipping_status"] == "PartiallyShipped"


# --- refusals ---------------------------------------------------------------------------------


def test_a_sent_shipment_is_neither_edited_nor_cancelled(
    orders: Any, store: FakeStore, db_snapshot: Callable
) -> None:
    shipment = _ship(orders, "O-0002", "T-1")
    orders("orders", "sync", "shop")
    before = db_snapshot(orders.url)
    for args in (("edit", "shop", shipment, "--tracking", "T-2"), ("cancel", "shop", shipment)):
        refused = orders("shipments", *args, code=2)
        assert f"{shipment}: it was sent to Fake channel" in refused.stderr
        assert "neither edited nor cancelled" in refused.stderr
    assert db_snapshot(orders.url) == before
    assert len(store.shipments_received()) == 1


def test_bad_ids_connections_dates_and_values_change_nothing(
    orders: Any, store: FakeStore, db_snapshot: Callable
) -> None:
    shipment = _ship(orders, "O-0002", "T-1")
    store.add_order([("SKU-1", 1)], order_id="O-0003")
    other = orders(
        "connections", "add", "other", "--channel", "fake", "--set", f"store={store.path}"
    )
    assert other.exit_code == 0
    orders("shipping-mappings", "add", "other", "--channel-text", "UPS - Ground", "--policy", "s")
    orders("orders", "get", "other")
    foreign = orders.json("orders", "ship", "other", "O-0003", "--tracking", "T", *UPS)[
        "shipment_id"
    ]
    cancelled = _ship(orders, "O-0001", "T-C", "SKU-2=1")
    orders("shipments", "cancel", "shop", cancelled)
    before = db_snapshot(orders.url)
    edit = ("shipments", "edit", "shop")
    cases: list[tuple[tuple[str, ...], list[str]]] = [
        ((*edit, "7", "--tracking", "X"), ["Invalid shipment id '7'", "hub-12"]),
        ((*edit, "hub-0", "--tracking", "X"), ["Invalid shipment id 'hub-0'"]),
        ((*edit, "hub-x", "--tracking", "X"), ["'hub-x'", "hub shipments list shop"]),
        ((*edit, "hub-999", "--tracking", "X"), ["No shipment 'hub-999' on 'shop'"]),
        ((*edit, foreign, "--tracking", "X"), [f"No shipment '{foreign}' on 'shop'"]),
        ((*edit, cancelled, "--tracking", "X"), [f"{cancelled}: it is cancelled", "orders ship"]),
        ((*edit, shipment), ["Nothing to change", "--tracking, --carrier, --class"]),
        ((*edit, shipment, "--shipped-at", "yesterday"), ["'yesterday'", "ISO 8601"]),
        ((*edit, shipment, "--shipped-at", " "), ["--shipped-at must not be empty"]),
        ((*edit, shipment, "--carrier", " ", "--class", ""), ["--carrier", "--class"]),
        (
            ("shipments", "edit", "nope", shipment, "--tracking", "X"),
            ["No connection named 'nope'"],
        ),
        (("shipments", "cancel", "shop", "hub-999"), ["No shipment 'hub-999'"]),
        (("shipments", "cancel", "shop", cancelled), ["it is cancelled"]),
        (("shipments", "cancel", "nope", shipment), ["'nope'"]),
        (("shipments", "list", "nope"), ["'nope'"]),
        (("shipments", "list", "shop", "--status", "lost"), ["'lost'", "pending, sent, failed"]),
    ]
    for args, words in cases:
        result = orders(*args, code=2)
        for word in words:
            assert word in result.stderr, (args, result.stderr)
    assert db_snapshot(orders.url) == before


def test_shipment_ids_are_read_in_either_case(orders: Any) -> None:
    shipment = _ship(orders, "O-0002", "T-1")
    edited = orders.json("shipments", "edit", "shop", shipment.upper(), "--tracking", "T-2")
    assert edited["shipment_id"] == shipment and edited["tracking"] == "T-2"


def test_list_text_and_empty(orders: Any) -> None:
    assert orders.json("shipments", "list", "shop") == []
    assert "No shipments on 'shop'" in orders("shipments", "list", "shop").stderr
    shipment = _ship(orders, "O-0001", "1Z1", "SKU-1=1")
    line = orders("shipments", "list", "shop").stdout
    assert line.startswith(f"{shipment}\tO-0001\tpending\tUPS - Ground\t1Z1\t")
    assert "SKU-1 x1" in line
    assert orders("shipments", "list", "shop", "--status", "sent").stdout == ""


# --- services: the reusable cancel, and an edit racing a sync (SQLite and PostgreSQL) ----------


ORDER = ChannelOrder(
    channel_order_id="C-1",
    shipping_text="UPS - Ground",
    lines=[ChannelOrderLine("C-1-L1", "SKU-1", 3)],
)


class EditingChannel:
    """A channel that, while it sends shipments, lets ``during_send`` change them in the hub."""

    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.sent: list[ShipmentToSend] = []
        self.during_send: Callable[[], None] = lambda: None

    @hookimpl
    def hub_sync_orders(
        self, connection: ChannelConnection, shipments: Sequence[ShipmentToSend]
    ) -> list[Any]:
        from hub_core.channel import Outcome, RecordOutcome

        self.sent.extend(shipments)
        self.during_send()
        outcome = Outcome.OK if self.accept else Outcome.FAILED
        return [
            RecordOutcome(s.shipment_id, outcome, "refused" * (not self.accept)) for s in shipments
        ]


@pytest.fixture
def stub_hub(hub: Hub, make_stub: Callable, make_registry: Callable) -> Callable[..., Hub]:
    """A hub whose ``stub`` channel has order C-1 (SKU-1 x3) and sends shipments through
    ``channel`` (an :class:`EditingChannel`); the order is imported."""

    def make(channel: EditingChannel) -> Hub:
        stub = make_stub(orders=[ORDER])
        stub.hub_sync_orders = channel.hub_sync_orders  # type: ignore[method-assign]
        with_stub = Hub(db=hub.db, registry=make_registry((stub, "stub")))
        add_connection(with_stub, "s", "stub", {"account": "a", "token": "t"})
        add_mapping(with_stub, "s", "UPS - Ground", "standard")
        get_orders(with_stub, "s")
        return with_stub

    return make


def _ship_c1(hub: Hub, tracking: str, quantity: int | None = None) -> str:
    """Record a shipment of order C-1 (all of it, or ``quantity`` of SKU-1); return its id."""
    items = {"SKU-1": quantity} if quantity else None
    data = ship_order(
        hub, "s", "C-1", tracking=tracking, carrier="UPS", shipping_class="Ground", items=items
    )
    return str(data["shipment_id"])


def test_cancel_unsent_shipments_of_an_order(stub_hub: Callable[..., Hub]) -> None:
    hub = stub_hub(EditingChannel(accept=True))
    sent = _ship_c1(hub, "T1", 1)
    sync_orders(hub, "s")
    pending = [_ship_c1(hub, "T2", 1), _ship_c1(hub, "T3", 1)]
    with hub.db.session() as session:
        order = session.query(Order).filter_by(channel_order_id="C-1").one()
        order.status = "cancelled"  # as an order cancelled on the channel would be
    with pytest.raises(InvalidInput, match="order C-1 is cancelled, so it must never be sent"):
        edit_shipment(hub, "s", pending[0], tracking="X")
    with hub.db.session() as session:
        order = session.query(Order).filter_by(channel_order_id="C-1").one()
        assert cancel_unsent_shipments(order, reason="order cancelled on the channel") == pending
        assert cancel_unsent_shipments(order, reason="again") == []
    shown = show_order(hub, "s", "C-1")
    assert shown["status"] == "cancelled"
    assert [(s["shipment_id"], s["sync_status"]) for s in shown["shipments"]] == [
        (sent, "sent"),
        (pending[0], "cancelled"),
        (pending[1], "cancelled"),
    ]
    assert shown["shipments"][1]["sync_error"] == "order cancelled on the channel"
    assert [ln["shipped_quantity"] for ln in shown["lines"]] == [1]
    with pytest.raises(InvalidInput, match="it is cancelled"):
        edit_shipment(hub, "s", pending[0], tracking="X")
    with hub.db.session() as session:
        from hub_core.services.connections import get_connection

        connection = get_connection(session, "s")
        with pytest.raises(InvalidInput, match="was sent to"):
            cancel_shipment(get_shipment(session, connection, sent), reason="x")


@pytest.mark.parametrize("accept", [True, False], ids=["accepted", "refused"])
def test_an_edit_made_while_the_shipment_is_sent_is_never_lost_or_misreported(
    stub_hub: Callable[..., Hub], accept: bool
) -> None:
    channel = EditingChannel(accept=accept)
    hub = stub_hub(channel)
    shipment = _ship_c1(hub, "OLD")

    def edit_now() -> None:
        edit_shipment(hub, "s", shipment, tracking="NEW")

    channel.during_send = edit_now
    result = sync_orders(hub, "s")
    [row] = list_shipments(hub, "s")
    if accept:
        # The channel holds what was sent: the hub says so, and keeps the values sent.
        assert (row["sync_status"], row["tracking"]) == ("sent", "OLD")
        assert "change was not applied" in result.records[0].message
    else:
        # The refusal was about the old values; the corrected one goes out next time, once.
        assert (row["sync_status"], row["tracking"], row["sync_error"]) == ("pending", "NEW", None)
        assert result.records[0].outcome == "skipped"
        channel.accept, channel.during_send = True, lambda: None
        sync_orders(hub, "s")
        assert [s.tracking for s in channel.sent] == ["OLD", "NEW"]
        assert list_shipments(hub, "s", "sent")[0]["tracking"] == "NEW"
    assert sync_orders(hub, "s").records == []
