"""The fake channel: a complete hub channel plugin, backed by a local JSON file.

A channel plugin is one module named by an entry point of the group ``hub``
(``fake = "hub_fake_channel.plugin"`` in its ``pyproject.toml``) and made of plain functions
marked ``@hookimpl``, each named after a hook of :mod:`hub_core.hookspecs`:

1. Declare the channel with one hook, ``hub_channel``: a name, the operations it supports,
   its requirements (``shipping_mappings``), a marshmallow schema for the connection's values
   (``--set KEY=VALUE``; secrets listed in ``Meta.secret_fields``), one for its settings, and
   the command that reconnects a connection whose credentials it refused.
2. Implement each supported operation: it receives a :class:`~hub_core.channel.ChannelConnection`
   (validated config and settings) plus records, and returns outcomes, one per record.
3. Raise :mod:`hub_core.errors` for a whole call (``AuthError``, ``ChannelError``); report one
   record's failure as a ``failed`` outcome. Never touch the hub's database: the core stores.
4. Optionally add CLI commands (``hub fake seed``) with ``hub_register_commands``.

Everything channel-side lives in :class:`~hub_fake_channel.store.FakeStore`, so separate ``hub``
invocations see the same channel, and tests can arm failure switches (``store.fail(...)``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import click
from marshmallow import Schema, ValidationError, fields, validate

from hub_core import hookimpl
from hub_core.channel import (
    CANCELLED,
    OPERATIONS,
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
from hub_core.values import MAX_DAYS
from hub_fake_channel.commands import fake as fake_commands
from hub_fake_channel.store import (
    FakeStore,
    FakeStoreError,
    count_call,
    insert_product,
    match_sku,
    money,
    parse_time,
    take_failure,
)

NAME = "fake"
TITLE = "Fake channel"
#: The API key the fake channel refuses, to test how the hub handles refused credentials.
REFUSED_API_KEY = "bad"
#: Listing fields sync listings may change.
SYNCED_FIELDS = ("quantity", "price", "title")

T = TypeVar("T")


# -------------------------------------------------------------------------------------------
# Schemas
# -------------------------------------------------------------------------------------------


class StorePath(fields.String):
    """A path to the store file; a relative one is made absolute against the current directory.

    Resolving at load time means ``hub connections add`` stores an absolute path, so the
    connection works from any directory afterwards.
    """

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            raise ValidationError("give the path of the fake channel's JSON file")
        return os.path.abspath(os.path.expanduser(text))


class CommaList(fields.String):
    """A comma-separated list kept as a normalized string (``"open,pending"``)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        text = super()._deserialize(value, attr, data, **kwargs)
        items = [part.strip() for part in text.split(",") if part.strip()]
        if not items:
            raise ValidationError("give at least one value (a comma-separated list)")
        return ",".join(items)


class FakeConnectionSchema(Schema):
    """The values of a fake connection: ``--set store=PATH [--set api_key=KEY]``."""

    class Meta:
        #: Never printed by the core (``hub connections show``).
        secret_fields = ("api_key",)

    store = StorePath(
        required=True,
        metadata={"description": "path of the channel's JSON file (made absolute)"},
    )
    api_key = fields.String(
        load_only=True,
        metadata={"description": f"optional secret; the value {REFUSED_API_KEY!r} is refused"},
    )


class FakeSettingsSchema(Schema):
    """The settings of a fake connection (``hub connections configure NAME --set KEY=VALUE``)."""

    order_days = fields.Integer(
        load_default=7,
        validate=validate.Range(min=1, max=MAX_DAYS),
        metadata={"description": "get orders created within the last N days"},
    )
    statuses = CommaList(
        load_default="open",
        metadata={"description": "comma list of order statuses to import"},
    )


# -------------------------------------------------------------------------------------------
# Declaring the channel
# -------------------------------------------------------------------------------------------


@hookimpl
def hub_channel() -> ChannelDescription:
    """``--channel fake``: every operation, publish included; shipping mappings optional
    (unmapped orders are imported ``held``)."""
    return ChannelDescription(
        name=NAME,
        title=TITLE,
        connection_schema=FakeConnectionSchema,
        settings_schema=FakeSettingsSchema,
        supports=OPERATIONS,
        reauth_advice="Give it another key: 'hub connections configure {name} --set api_key=KEY'.",
    )


@hookimpl
def hub_register_commands(cli: click.Group) -> None:
    """Add ``hub fake ...`` (seed, show, fail, clear-failures, delete-product)."""
    cli.add_command(fake_commands)


# -------------------------------------------------------------------------------------------
# Plumbing shared by the operations
# -------------------------------------------------------------------------------------------


def _credentials_refused(connection: ChannelConnection) -> bool:
    return connection.config.get("api_key") == REFUSED_API_KEY


def _refuse_credentials(connection: ChannelConnection) -> None:
    """Raise AuthError before anything is read or changed (a real channel's gate)."""
    if _credentials_refused(connection):
        raise AuthError(
            f"The fake channel refused the API key of connection {connection.name!r}. "
            f"Set another api_key on the connection, then run "
            f"'hub connections test {connection.name}'.",
            detail="fake channel: api_key refused (401)",
        )


def _store(connection: ChannelConnection) -> FakeStore:
    store = FakeStore(connection.config["store"])
    if not store.exists():
        raise ChannelError(
            f"The fake channel's store {store.path} does not exist. Create it with "
            f"'hub fake seed {store.path}', or point the connection at another file with "
            f"'hub connections configure {connection.name} --set store=PATH'."
        )
    return store


def _failure_message(operation: str, failure: Mapping[str, Any], ref: str | None = None) -> str:
    what = f"{ref} in {operation}" if ref is not None else operation
    if failure["kind"] == "transient":
        return f"The fake channel is temporarily unavailable ({what}); try again."
    if failure["kind"] == "lost":
        return (
            f"No answer from the fake channel ({what}): the answer was lost in transit; "
            "the change may have been applied."
        )
    return f"The fake channel refused {what} (failure switch)."


def _run(connection: ChannelConnection, operation: str, work: Callable[[dict[str, Any]], T]) -> T:
    """Run one operation as one store transaction, honouring the whole-call failure switch.

    The call is counted and a spent switch is saved even when the call then fails. ``lost``
    lets ``work`` apply its changes and fails afterwards.
    """
    _refuse_credentials(connection)
    store = _store(connection)
    failure: dict[str, Any] | None = None
    result: T | None = None
    try:
        with store.transaction() as state:
            count_call(state, operation)
            failure = take_failure(state, operation, None)
            if failure is None or failure["kind"] == "lost":
                result = work(state)
    except FakeStoreError as exc:
        raise ChannelError(f"The fake channel's store is unusable: {exc}") from exc
    if failure is not None:
        raise ChannelError(
            _failure_message(operation, failure), detail=f"fake channel failure switch {failure}"
        )
    return result  # type: ignore[return-value]


def _statuses(connection: ChannelConnection) -> list[str]:
    value = connection.settings.get("statuses", "open")
    if isinstance(value, str):
        value = value.split(",")
    return [s.strip() for s in value if s.strip()]


def _order_to_channel(order: Mapping[str, Any]) -> ChannelOrder:
    lines = [
        ChannelOrderLine(
            channel_line_id=line["id"],
            sku=line["sku"],
            quantity=line["quantity"],
            unit_price=Decimal(line["unit_price"]),
            title=line.get("title") or None,
        )
        for line in order["lines"]
    ]
    subtotal = sum(
        (Decimal(line["unit_price"]) * line["quantity"] for line in order["lines"]), Decimal(0)
    )
    return ChannelOrder(
        channel_order_id=order["id"],
        shipping_text=order["shipping_text"],
        lines=lines,
        created_at=parse_time(order["created_at"]),
        marketplace=order.get("marketplace"),
        marketplace_order_id=order.get("marketplace_order_id"),
        currency=order.get("currency"),
        totals={"subtotal": str(subtotal)},
        cancelled=bool(order.get("cancelled")),
        raw=dict(order),
    )


def _exclusion_reasons(
    connection: ChannelConnection, order: Mapping[str, Any], days: int, now: datetime
) -> list[str]:
    """Why get orders would leave ``order`` out; empty when it would return it."""
    reasons = []
    if order.get("acknowledged"):
        reasons.append(
            "The fake channel has it acknowledged already (taken by the hub): get orders "
            "returns only orders not yet acknowledged."
        )
    statuses = _statuses(connection)
    if order["status"].casefold() not in {s.casefold() for s in statuses}:
        wanted = ",".join([*statuses, order["status"]])
        reasons.append(
            f"Its status {order['status']!r} is not in the setting statuses "
            f"({','.join(statuses)}); include it with 'hub connections configure "
            f"{connection.name} --set statuses={wanted}'."
        )
    created = parse_time(order["created_at"])
    if created < now - timedelta(days=days):
        age = (now - created).total_seconds() / 86400
        needed = math.floor(age) + 1
        reasons.append(
            f"It was created {age:.1f} days ago ({created.isoformat()}), outside the last "
            f"{days} days; --days {needed} (or the setting order_days={needed}) would include it."
        )
    return reasons


# -------------------------------------------------------------------------------------------
# Operations
# -------------------------------------------------------------------------------------------


@hookimpl
def hub_test_connection(connection: ChannelConnection) -> list[ConnectionCheck]:
    """Check the API key and that the store file is there and readable."""
    if _credentials_refused(connection):
        return [
            ConnectionCheck(
                "credentials",
                False,
                "The fake channel refused the API key. Set another api_key on the connection.",
            )
        ]
    checks = [ConnectionCheck("credentials", True, "accepted")]
    store = FakeStore(connection.config["store"])
    if not store.exists():
        checks.append(
            ConnectionCheck(
                "store",
                False,
                f"{store.path} does not exist: create it with 'hub fake seed {store.path}'.",
            )
        )
        return checks

    try:
        store.snapshot()
    except FakeStoreError as exc:
        checks.append(
            ConnectionCheck(
                "store",
                False,
                f"{exc}. Fix or remove the file, then run 'hub fake seed {store.path}'.",
            )
        )
        return checks

    def summary(state: dict[str, Any]) -> str:
        return f"{store.path}: {len(state['products'])} products, {len(state['orders'])} orders"

    checks.append(ConnectionCheck("store", True, _run(connection, "test_connection", summary)))
    return checks


@hookimpl
def hub_link_listings(
    connection: ChannelConnection, items: Sequence[CatalogItem]
) -> list[LinkResult]:
    """Match each SKU exactly, else case-insensitively; several matches are ``ambiguous``."""

    def work(state: dict[str, Any]) -> list[LinkResult]:
        results = []
        for item in items:
            failure = take_failure(state, "link_listings", item.sku)
            if failure is not None:
                message = _failure_message("link_listings", failure, item.sku)
                results.append(LinkResult(item.sku, ListingStatus.UNLINKED, message=message))
                continue
            results.append(_link(state, item.sku))
        return results

    return _run(connection, "link_listings", work)


def _link(state: dict[str, Any], sku: str) -> LinkResult:
    found = match_sku(state["products"].values(), sku)
    if not found:
        return LinkResult(
            sku,
            ListingStatus.NOT_FOUND,
            message=f"No product with SKU {sku!r} on the fake channel.",
        )
    if len(found) > 1:
        ids = ", ".join(p["id"] for p in found)
        return LinkResult(
            sku,
            ListingStatus.AMBIGUOUS,
            message=f"{len(found)} products on the fake channel have SKU {sku!r}: {ids}.",
        )
    product = found[0]
    note = "" if product["sku"] == sku else f" (SKU {product['sku']!r}, matched ignoring case)"
    return LinkResult(sku, ListingStatus.LINKED, product["id"], f"linked to {product['id']}{note}")


@hookimpl
def hub_sync_listings(
    connection: ChannelConnection, updates: Sequence[ListingUpdate]
) -> list[ListingOutcome]:
    """Apply quantity/price (and title) changes; a deleted product comes back ``broken``."""

    def work(state: dict[str, Any]) -> list[ListingOutcome]:
        return [_sync_one(state, connection, update) for update in updates]

    return _run(connection, "sync_listings", work)


def _sync_one(
    state: dict[str, Any], connection: ChannelConnection, update: ListingUpdate
) -> ListingOutcome:
    failure = take_failure(state, "sync_listings", update.sku)
    if failure is not None and failure["kind"] != "lost":
        return ListingOutcome(
            update.sku, Outcome.FAILED, _failure_message("sync_listings", failure, update.sku)
        )
    product = state["products"].get(update.channel_product_id)
    if product is None:
        relink = f"'hub listings relink {connection.name} --sku {update.sku}'"
        elsewhere = match_sku(state["products"].values(), update.sku)
        if elsewhere:
            ids = ", ".join(p["id"] for p in elsewhere)
            message = (
                f"Product {update.channel_product_id} no longer exists on the fake channel; "
                f"SKU {update.sku!r} now exists as {ids}. Relink it with {relink}."
            )
        else:
            message = (
                f"Product {update.channel_product_id} was deleted on the fake channel. "
                f"Relink it with {relink} once it exists again."
            )
        return ListingOutcome(update.sku, Outcome.FAILED, message, status=ListingStatus.BROKEN)
    unknown = sorted(set(update.changes) - set(SYNCED_FIELDS))
    if unknown:
        return ListingOutcome(
            update.sku,
            Outcome.FAILED,
            f"The fake channel cannot change {', '.join(unknown)}; "
            f"it takes only {', '.join(SYNCED_FIELDS)}.",
        )
    applied: dict[str, Any] = {}
    try:
        for field, value in update.changes.items():
            if field == "quantity":
                quantity = int(value)
                if quantity < 0:
                    raise ValueError(f"quantity must be 0 or more, got {quantity}")
                applied[field] = quantity
            elif field == "price":
                applied[field] = money(value)
            else:
                applied[field] = str(value)
    except (ValueError, FakeStoreError) as exc:
        return ListingOutcome(update.sku, Outcome.FAILED, f"The fake channel refused it: {exc}")
    product.update(applied)
    state["updates"].append(
        {"sku": update.sku, "product_id": product["id"], "fields": dict(applied)}
    )
    if failure is not None:  # lost: applied, but the hub never hears so
        return ListingOutcome(
            update.sku, Outcome.FAILED, _failure_message("sync_listings", failure, update.sku)
        )
    sent = ", ".join(f"{k} {v}" for k, v in applied.items()) or "nothing to change"
    return ListingOutcome(update.sku, Outcome.OK, sent)


@hookimpl
def hub_publish_listings(
    connection: ChannelConnection, items: Sequence[CatalogItem]
) -> list[LinkResult]:
    """Create a product per item; an item whose SKU is already there is linked, not duplicated."""

    def work(state: dict[str, Any]) -> list[LinkResult]:
        results = []
        for item in items:
            failure = take_failure(state, "publish_listings", item.sku)
            if failure is not None and failure["kind"] != "lost":
                message = _failure_message("publish_listings", failure, item.sku)
                results.append(LinkResult(item.sku, ListingStatus.UNLINKED, message=message))
                continue
            existing = _link(state, item.sku)
            if existing.status is ListingStatus.NOT_FOUND:
                product_id = insert_product(state, item.sku, item.title, item.quantity, item.price)
                result = LinkResult(
                    item.sku, ListingStatus.LINKED, product_id, f"published as {product_id}"
                )
            elif existing.status is ListingStatus.LINKED:
                existing.message = (
                    f"already on the fake channel as {existing.channel_product_id}; "
                    "linked instead of publishing a duplicate"
                )
                result = existing
            else:
                result = existing
            if failure is not None:  # lost: created, but the hub never hears so
                message = _failure_message("publish_listings", failure, item.sku)
                result = LinkResult(item.sku, ListingStatus.UNLINKED, message=message)
            results.append(result)
        return results

    return _run(connection, "publish_listings", work)


@hookimpl
def hub_get_orders(connection: ChannelConnection, days: int) -> Iterator[ChannelOrder]:
    """Eligible orders, oldest first: not acknowledged, status in ``statuses``, within ``days``;
    then the orders acknowledged earlier and cancelled since, flagged ``cancelled`` (how a
    channel tells the hub of a cancellation after import: the hub marks the ones it holds).

    Nothing is marked on the channel here: :func:`hub_acknowledge_orders` does that. A failure
    switch on one order id breaks the iteration there with ``ChannelError``, after the orders
    before it were yielded (a page that failed mid-way).
    """
    now = datetime.now(UTC)

    def work(state: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        eligible = sorted(
            (
                order
                for order in state["orders"].values()
                if not _exclusion_reasons(connection, order, days, now)
            ),
            key=lambda order: (order["created_at"], order["id"]),
        )
        for index, order in enumerate(eligible):
            failure = take_failure(state, "get_orders", order["id"])
            if failure is not None:
                return eligible[:index], _failure_message("get_orders", failure, order["id"])
        cancelled = sorted(
            (o for o in state["orders"].values() if o.get("acknowledged") and o.get("cancelled")),
            key=lambda order: (order["created_at"], order["id"]),
        )
        return eligible + cancelled, None

    orders, broken = _run(connection, "get_orders", work)
    return _yield_orders(orders, broken)


def _yield_orders(orders: list[dict[str, Any]], broken: str | None) -> Iterator[ChannelOrder]:
    for order in orders:
        yield _order_to_channel(order)
    if broken is not None:
        raise ChannelError(broken)


@hookimpl
def hub_acknowledge_orders(
    connection: ChannelConnection, channel_order_ids: Sequence[str]
) -> list[RecordOutcome]:
    """Mark orders as taken so get orders stops returning them; idempotent."""

    def work(state: dict[str, Any]) -> list[RecordOutcome]:
        outcomes = []
        for order_id in channel_order_ids:
            failure = take_failure(state, "acknowledge_orders", order_id)
            if failure is not None and failure["kind"] != "lost":
                message = _failure_message("acknowledge_orders", failure, order_id)
                outcomes.append(RecordOutcome(order_id, Outcome.FAILED, message))
                continue
            order = state["orders"].get(order_id)
            if order is None:
                outcomes.append(
                    RecordOutcome(
                        order_id, Outcome.FAILED, f"No order {order_id!r} on the fake channel."
                    )
                )
                continue
            already = order["acknowledged"]
            order["acknowledged"] = True
            if failure is not None:
                message = _failure_message("acknowledge_orders", failure, order_id)
                outcomes.append(RecordOutcome(order_id, Outcome.FAILED, message))
            else:
                message = "already acknowledged" if already else "acknowledged"
                outcomes.append(RecordOutcome(order_id, Outcome.OK, message))
        return outcomes

    return _run(connection, "acknowledge_orders", work)


@hookimpl
def hub_sync_orders(
    connection: ChannelConnection, shipments: Sequence[ShipmentToSend]
) -> list[RecordOutcome]:
    """Record each shipment once; a shipment id already received is answered ok, not recorded.

    Refused (failed): unknown orders, lines not on the order, quantities beyond what is still
    unshipped on a line, a missing carrier or class. A shipment of a cancelled order is
    skipped, with ``order_status="cancelled"`` for the core to apply.
    """
    now = datetime.now(UTC)

    def work(state: dict[str, Any]) -> list[RecordOutcome]:
        outcomes = []
        for shipment in shipments:
            failure = take_failure(state, "sync_orders", shipment.shipment_id) or take_failure(
                state, "sync_orders", shipment.channel_order_id
            )
            if failure is not None and failure["kind"] != "lost":
                message = _failure_message("sync_orders", failure, shipment.shipment_id)
                outcomes.append(RecordOutcome(shipment.shipment_id, Outcome.FAILED, message))
                continue
            outcome = _ship(state, shipment, now)
            if failure is not None and outcome.outcome is Outcome.OK:
                outcome = RecordOutcome(
                    shipment.shipment_id,
                    Outcome.FAILED,
                    _failure_message("sync_orders", failure, shipment.shipment_id),
                )
            outcomes.append(outcome)
        return outcomes

    return _run(connection, "sync_orders", work)


def _ship(state: dict[str, Any], shipment: ShipmentToSend, now: datetime) -> RecordOutcome:
    ref = shipment.shipment_id
    known = state["shipments"].get(ref)
    if known is not None:
        known["received"] += 1
        return RecordOutcome(
            ref,
            Outcome.OK,
            f"already received on {known['received_at']}; not recorded again",
        )
    order = state["orders"].get(shipment.channel_order_id)
    if order is None:
        return RecordOutcome(
            ref, Outcome.FAILED, f"No order {shipment.channel_order_id!r} on the fake channel."
        )
    if order.get("cancelled"):
        return RecordOutcome(
            ref,
            Outcome.SKIPPED,
            f"Not sent: order {order['id']} was cancelled on the fake channel.",
            order_status=CANCELLED,
        )
    missing = [
        name
        for name, value in (("carrier", shipment.carrier), ("class", shipment.shipping_class))
        if not value
    ]
    if missing:
        return RecordOutcome(
            ref, Outcome.FAILED, f"The fake channel needs a shipping {' and '.join(missing)}."
        )
    lines_by_id = {line["id"]: line for line in order["lines"]}
    wanted: dict[str, int] = {}
    if shipment.lines:
        for line in shipment.lines:
            target = lines_by_id.get(line.channel_line_id)
            if target is None and not line.channel_line_id:
                target = next(
                    (
                        candidate
                        for candidate in order["lines"]
                        if candidate["sku"].casefold() == line.sku.casefold()
                        and candidate["quantity"] > candidate["shipped"]
                    ),
                    None,
                )
            if target is None:
                return RecordOutcome(
                    ref,
                    Outcome.FAILED,
                    f"Line {line.channel_line_id or '?'} (SKU {line.sku}) is not on order "
                    f"{order['id']}.",
                )
            if line.quantity < 1:
                return RecordOutcome(
                    ref, Outcome.FAILED, f"Quantity {line.quantity} of {line.sku} is not positive."
                )
            wanted[target["id"]] = wanted.get(target["id"], 0) + line.quantity
    else:
        wanted = {
            line["id"]: line["quantity"] - line["shipped"]
            for line in order["lines"]
            if line["quantity"] > line["shipped"]
        }
        if not wanted:
            return RecordOutcome(
                ref, Outcome.FAILED, f"Order {order['id']} has nothing left to ship."
            )
    for line_id, quantity in wanted.items():
        line = lines_by_id[line_id]
        left = line["quantity"] - line["shipped"]
        if quantity > left:
            return RecordOutcome(
                ref,
                Outcome.FAILED,
                f"Cannot ship {quantity} of {line['sku']} (line {line_id}): order {order['id']} "
                f"has {left} unshipped of {line['quantity']}.",
            )
    for line_id, quantity in wanted.items():
        lines_by_id[line_id]["shipped"] += quantity
    done = all(line["shipped"] >= line["quantity"] for line in order["lines"])
    order["shipping_status"] = "Shipped" if done else "PartiallyShipped"
    state["shipments"][ref] = {
        "shipment_id": ref,
        "channel_order_id": order["id"],
        "tracking": shipment.tracking,
        "carrier": shipment.carrier,
        "shipping_class": shipment.shipping_class,
        "shipped_at": parse_time(shipment.shipped_at).isoformat(),
        "complete": shipment.complete,
        "lines": [
            {"channel_line_id": line_id, "sku": lines_by_id[line_id]["sku"], "quantity": qty}
            for line_id, qty in wanted.items()
        ],
        "received": 1,
        "received_at": now.isoformat(),
    }
    shipped = ", ".join(f"{lines_by_id[i]['sku']} x{q}" for i, q in wanted.items())
    return RecordOutcome(ref, Outcome.OK, f"recorded on order {order['id']}: {shipped}")


@hookimpl
def hub_explain_order(connection: ChannelConnection, ref: str, days: int) -> OrderLookup:
    """Find an order by channel or marketplace id and say why get orders would skip it."""
    now = datetime.now(UTC)

    def work(state: dict[str, Any]) -> OrderLookup | str:
        failure = take_failure(state, "explain_order", ref)
        if failure is not None:  # one record is the whole call: fail it after saving
            return _failure_message("explain_order", failure, ref)
        order = _find_order(state, ref)
        if order is None:
            return OrderLookup(order=None, facts={"looked_up": ref})
        facts = {key: order.get(key) for key in _EXPLAIN_FACTS}
        facts["statuses_setting"] = ",".join(_statuses(connection))
        facts["days"] = days
        return OrderLookup(
            order=_order_to_channel(order),
            reasons=_exclusion_reasons(connection, order, days, now),
            facts=facts,
        )

    lookup = _run(connection, "explain_order", work)
    if isinstance(lookup, str):
        raise ChannelError(lookup)
    return lookup


_EXPLAIN_FACTS = (
    "id",
    "marketplace_order_id",
    "created_at",
    "status",
    "checkout_status",
    "payment_status",
    "shipping_status",
    "shipping_text",
    "acknowledged",
    "cancelled",
)


def _find_order(state: dict[str, Any], ref: str) -> dict[str, Any] | None:
    orders = list(state["orders"].values())
    for key in ("id", "marketplace_order_id"):
        for order in orders:
            if order.get(key) == ref:
                return order
    folded = ref.casefold()
    for key in ("id", "marketplace_order_id"):
        for order in orders:
            if str(order.get(key) or "").casefold() == folded:
                return order
    return None
