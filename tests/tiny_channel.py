"""Tiny Shop: a third channel, written from the README's "Writing a channel plugin" alone.

It proves the guide is enough: ``tests/test_contract_tiny_channel.py`` registers this module by a
fixture (no entry point) and runs the whole contract suite against it.

The channel's service is in memory: :data:`SHOPS` holds each shop (its products, orders,
shipments and the token it accepts) by id, as a remote API would hold accounts, and
:class:`TinyShop` is its API. Every request may fail on purpose (:meth:`TinyShop.fail`); the
plugin retries 5xx and 429 inside the call, like a real client would (without sleeping: the
service is in memory). Publishing is not supported and shipping mappings are required, the
opposite of the fake channel, so the suite's both branches run in this repository.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from marshmallow import Schema, fields, validate

from hub_core import hookimpl
from hub_core.channel import (
    CatalogItem,
    ChannelConnection,
    ChannelDescription,
    ChannelOrder,
    ChannelOrderLine,
    ConnectionCheck,
    LinkResult,
    ListingOutcome,
    ListingStatus,
    ListingUpdate,
    OrderLookup,
    Outcome,
    RecordOutcome,
    ShipmentToSend,
)
from hub_core.errors import AuthError, ChannelError

NAME = "tiny"
#: Attempts at one request when the service answers 5xx or 429.
MAX_ATTEMPTS = 4
RETRIED = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")


# -------------------------------------------------------------------------------------------
# The channel's service (the "remote API"), in memory
# -------------------------------------------------------------------------------------------


class TinyApiError(Exception):
    """An HTTP-like error answer of the service."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status


class TinyShop:
    """One shop of the service: its data, the token it accepts, and fault switches.

    ``received_updates`` and ``received_shipments`` log what clients sent, for tests.
    """

    def __init__(self, shop_id: str, token: str) -> None:
        self.shop_id = shop_id
        self.token = token
        self.products: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.shipments: dict[str, dict[str, Any]] = {}
        self.received_updates: list[tuple[str, dict[str, Any]]] = []
        self.received_shipments: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)

    # -- test switches ----------------------------------------------------------------------

    def fail(self, operation: str, status: int, ref: str | None, times: int | None) -> None:
        """Answer ``status`` to the next ``times`` requests of ``operation`` (on ``ref``)."""
        with self.lock:
            self.faults.append(
                {"operation": operation, "status": status, "ref": ref, "times": times}
            )

    def request(self, token: str, operation: str, ref: str | None = None) -> None:
        """Check the token and the fault switches for one request; raise its error answer."""
        with self.lock:
            if token != self.token:
                raise TinyApiError(401, "invalid token")
            for fault in self.faults:
                if fault["operation"] == operation and fault["ref"] in (None, ref):
                    if fault["times"] is not None:
                        fault["times"] -= 1
                        if fault["times"] <= 0:
                            self.faults.remove(fault)
                    raise TinyApiError(fault["status"], f"injected failure of {operation}")

    # -- the API ----------------------------------------------------------------------------

    def new_id(self) -> str:
        """A fresh id."""
        return str(next(self._ids))

    def search(self, sku: str) -> list[dict[str, Any]]:
        """Products with exactly this SKU, else those matching it ignoring case."""
        with self.lock:
            exact = [p for p in self.products.values() if p["sku"] == sku]
            if exact:
                return [dict(p) for p in exact]
            return [dict(p) for p in self.products.values() if p["sku"].lower() == sku.lower()]

    def update(self, product_id: str, values: dict[str, Any]) -> None:
        """Change a product's quantity and/or price."""
        with self.lock:
            product = self.products.get(product_id)
            if product is None:
                raise TinyApiError(404, f"no product {product_id}")
            product.update(values)
            self.received_updates.append((product["sku"], dict(values)))

    def open_orders(self, statuses: set[str], since: datetime) -> list[dict[str, Any]]:
        """Orders not acknowledged, with one of ``statuses``, created since ``since``."""
        with self.lock:
            return [
                dict(o)
                for o in self.orders.values()
                if not o["acknowledged"] and o["status"] in statuses and o["created_at"] >= since
            ]

    def cancelled_orders(self) -> list[dict[str, Any]]:
        """Orders acknowledged and cancelled since: the client must hear of them."""
        with self.lock:
            return [
                dict(o)
                for o in self.orders.values()
                if o["acknowledged"] and o["status"] == "cancelled"
            ]

    def cancel(self, order_id: str) -> None:
        """The marketplace cancelled an order."""
        with self.lock:
            self.orders[order_id]["status"] = "cancelled"

    def acknowledge(self, order_id: str) -> None:
        """Mark an order taken."""
        with self.lock:
            if order_id not in self.orders:
                raise TinyApiError(404, f"no order {order_id}")
            self.orders[order_id]["acknowledged"] = True

    def shipment(self, shipment_id: str) -> dict[str, Any] | None:
        """A shipment recorded under the client's id, or None."""
        with self.lock:
            return self.shipments.get(shipment_id)

    def ship(self, order_id: str, shipment: dict[str, Any]) -> None:
        """Record a shipment of some lines (``{line_id: quantity}``) of an order."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise TinyApiError(404, f"no order {order_id}")
            if order["status"] == "cancelled":
                raise TinyApiError(409, f"order {order_id} is cancelled")
            lines = {line["id"]: line for line in order["lines"]}
            for line_id, quantity in shipment["lines"].items():
                line = lines.get(line_id)
                if line is None or quantity > line["quantity"] - line["shipped"]:
                    raise TinyApiError(400, f"cannot ship {quantity} of line {line_id}")
            for line_id, quantity in shipment["lines"].items():
                lines[line_id]["shipped"] += quantity
            self.shipments[shipment["id"]] = shipment
            self.received_shipments.append(shipment)


#: The service's shops by id.
SHOPS: dict[str, TinyShop] = {}


# -------------------------------------------------------------------------------------------
# Declaring the channel
# -------------------------------------------------------------------------------------------


class TinyConnectionSchema(Schema):
    """``--set shop=ID --set token=TOKEN``."""

    class Meta:
        secret_fields = ("token",)

    shop = fields.String(required=True, validate=validate.Length(min=1))
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1))


class TinySettingsSchema(Schema):
    """Which orders get orders imports."""

    order_days = fields.Integer(load_default=7, validate=validate.Range(min=1))
    order_statuses = fields.String(load_default="paid")


@hookimpl
def hub_channel() -> ChannelDescription:
    """Everything but publishing; orders need shipping mappings first."""
    return ChannelDescription(
        name=NAME,
        title="Tiny Shop",
        connection_schema=TinyConnectionSchema,
        settings_schema=TinySettingsSchema,
        supports=("link_listings", "sync_listings", "get_orders", "sync_orders"),
        requires=("shipping_mappings",),
        reauth_advice="Set a valid token: 'hub connections configure {name} --set token=...'.",
    )


# -------------------------------------------------------------------------------------------
# Operations
# -------------------------------------------------------------------------------------------


def _shop(connection: ChannelConnection) -> TinyShop:
    shop = SHOPS.get(connection.config["shop"])
    if shop is None:
        raise ChannelError(
            f"Tiny Shop has no shop {connection.config['shop']!r}. Check it with "
            f"'hub connections configure {connection.name} --set shop=ID'."
        )
    return shop


def _call(
    connection: ChannelConnection, operation: str, work: Callable[[TinyShop], T], ref: str | None
) -> T:
    """One request: retried on 5xx and 429; 401 is refused credentials."""
    shop = _shop(connection)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            shop.request(connection.config["token"], operation, ref)
            return work(shop)
        except TinyApiError as exc:
            if exc.status in RETRIED and attempt < MAX_ATTEMPTS:
                continue
            if exc.status == 401:
                raise AuthError(
                    f"Tiny Shop refused the token of connection {connection.name!r}. Set a "
                    f"valid one with 'hub connections configure {connection.name} "
                    "--set token=...'."
                ) from None
            raise
    raise AssertionError("unreachable")


def _whole(
    connection: ChannelConnection, operation: str, work: Callable[[TinyShop], T], ref: str | None
) -> T:
    """A request whose failure fails the whole call."""
    try:
        return _call(connection, operation, work, ref)
    except TinyApiError as exc:
        raise ChannelError(f"Tiny Shop failed {operation.replace('_', ' ')}: {exc}") from None


@hookimpl
def hub_test_connection(connection: ChannelConnection) -> list[ConnectionCheck]:
    """Is the token accepted?"""
    try:
        _call(connection, "test_connection", lambda shop: None, None)
    except AuthError as exc:
        return [ConnectionCheck("token", False, exc.message)]
    except TinyApiError as exc:
        return [ConnectionCheck("token", False, f"Tiny Shop answered {exc}; try again.")]
    return [ConnectionCheck("token", True, "accepted")]


@hookimpl
def hub_link_listings(
    connection: ChannelConnection, items: Sequence[CatalogItem]
) -> list[LinkResult]:
    """Search each SKU: one match links, none is not found, several are ambiguous."""
    results = []
    for item in items:
        found = _whole(connection, "link_listings", lambda s, i=item: s.search(i.sku), item.sku)
        if not found:
            results.append(
                LinkResult(item.sku, ListingStatus.NOT_FOUND, message="no such SKU on Tiny Shop")
            )
        elif len(found) > 1:
            ids = ", ".join(p["id"] for p in found)
            results.append(
                LinkResult(item.sku, ListingStatus.AMBIGUOUS, message=f"several products: {ids}")
            )
        else:
            results.append(LinkResult(item.sku, ListingStatus.LINKED, found[0]["id"], "linked"))
    return results


@hookimpl
def hub_sync_listings(
    connection: ChannelConnection, updates: Sequence[ListingUpdate]
) -> list[ListingOutcome]:
    """Send exactly the changed fields; a product gone is ``broken``."""
    outcomes = []
    for update in updates:
        values = {key: value for key, value in update.changes.items()}

        def send(shop: TinyShop, pid: str = update.channel_product_id, v: dict = values) -> None:
            shop.update(pid, v)

        try:
            _call(connection, "sync_listings", send, update.sku)
        except TinyApiError as exc:
            if exc.status == 404:
                outcomes.append(
                    ListingOutcome(
                        update.sku,
                        Outcome.FAILED,
                        f"product {update.channel_product_id} was deleted on Tiny Shop; fix "
                        f"with 'hub listings relink {connection.name} --sku {update.sku}'",
                        status=ListingStatus.BROKEN,
                    )
                )
            else:
                outcomes.append(ListingOutcome(update.sku, Outcome.FAILED, str(exc)))
            continue
        outcomes.append(ListingOutcome(update.sku, Outcome.OK, "sent"))
    return outcomes


def _statuses(connection: ChannelConnection) -> set[str]:
    return {s.strip() for s in connection.settings["order_statuses"].split(",") if s.strip()}


def _to_order(raw: dict[str, Any]) -> ChannelOrder:
    return ChannelOrder(
        channel_order_id=raw["id"],
        shipping_text=raw["shipping_text"],
        lines=[
            ChannelOrderLine(line["id"], line["sku"], line["quantity"]) for line in raw["lines"]
        ],
        created_at=raw["created_at"],
        cancelled=raw["status"] == "cancelled",
        raw={"status": raw["status"]},
    )


@hookimpl
def hub_get_orders(connection: ChannelConnection, days: int) -> list[ChannelOrder]:
    """Orders not acknowledged, with an accepted status, created in the last ``days`` days;
    then those acknowledged and cancelled since (flagged ``cancelled``)."""
    since = datetime.now(UTC) - timedelta(days=days)
    statuses = _statuses(connection)
    found = _whole(
        connection,
        "get_orders",
        lambda s: s.open_orders(statuses, since) + s.cancelled_orders(),
        None,
    )
    return [_to_order(raw) for raw in found]


@hookimpl
def hub_acknowledge_orders(
    connection: ChannelConnection, channel_order_ids: Sequence[str]
) -> list[RecordOutcome]:
    """Mark each order taken (idempotent)."""
    outcomes = []
    for order_id in channel_order_ids:
        try:
            _call(
                connection, "acknowledge_orders", lambda s, o=order_id: s.acknowledge(o), order_id
            )
        except TinyApiError as exc:
            outcomes.append(RecordOutcome(order_id, Outcome.FAILED, str(exc)))
            continue
        outcomes.append(RecordOutcome(order_id, Outcome.OK))
    return outcomes


@hookimpl
def hub_sync_orders(
    connection: ChannelConnection, shipments: Sequence[ShipmentToSend]
) -> list[RecordOutcome]:
    """Send each shipment once: one the shop already has (by the hub's id) is not resent."""
    outcomes = []
    for shipment in shipments:
        payload = {
            "id": shipment.shipment_id,
            "order_id": shipment.channel_order_id,
            "tracking": shipment.tracking,
            "carrier": shipment.carrier,
            "class": shipment.shipping_class,
            "lines": {line.channel_line_id: line.quantity for line in shipment.lines},
        }

        def send(shop: TinyShop, p: dict = payload) -> None:
            if shop.shipment(p["id"]) is None:
                shop.ship(p["order_id"], p)

        try:
            _call(connection, "sync_orders", send, shipment.channel_order_id)
        except TinyApiError as exc:
            if exc.status == 409:
                # Cancelled by the marketplace: the hub cancels the order and its shipments.
                outcomes.append(
                    RecordOutcome(
                        shipment.shipment_id, Outcome.SKIPPED, str(exc), order_status="cancelled"
                    )
                )
                continue
            outcomes.append(RecordOutcome(shipment.shipment_id, Outcome.FAILED, str(exc)))
            continue
        outcomes.append(RecordOutcome(shipment.shipment_id, Outcome.OK, "sent"))
    return outcomes


@hookimpl
def hub_explain_order(connection: ChannelConnection, ref: str, days: int) -> OrderLookup:
    """Why get orders would, or would not, return an order."""
    shop = _shop(connection)
    raw = shop.orders.get(ref)
    if raw is None:
        return OrderLookup(order=None)
    reasons = []
    if raw["acknowledged"]:
        reasons.append("already acknowledged")
    if raw["status"] not in _statuses(connection):
        reasons.append(f"status {raw['status']!r} is not in the setting order_statuses")
    if raw["created_at"] < datetime.now(UTC) - timedelta(days=days):
        reasons.append(f"created more than {days} days ago")
    return OrderLookup(order=_to_order(raw), reasons=reasons)
