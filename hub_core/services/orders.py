"""Orders: import each channel order exactly once, list, show, explain."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hub_core.channel import ChannelOrder, ListingStatus, Outcome, RecordOutcome
from hub_core.crash import crash_point
from hub_core.errors import HubError, InvalidInput, NotFound, RequirementNotMet
from hub_core.models import Connection, Listing, Order, OrderLine, Shipment, utcnow
from hub_core.plugins import Channel
from hub_core.services.connections import get_connection, open_run
from hub_core.services.context import Hub, OperationResult, RunContext
from hub_core.services.runs import RunRecorder
from hub_core.services.shipping import HELD, IMPORTED, hold_reason, mappings_of
from hub_core.values import MAX_DAYS

#: Orders stored per transaction; each batch is acknowledged right after its commit.
CHUNK = 100
STATUSES = ("imported", "held", "partially_shipped", "shipped", "cancelled")
CANCELLED = "cancelled"
#: Shipment sync states of a shipment not yet sent, and of one that never will be (§5).
UNSENT_SHIPMENT_STATUSES = ("pending", "failed")
SHIPMENT_CANCELLED = "cancelled"


def _chunks(
    items: Iterable[ChannelOrder], size: int
) -> Iterator[tuple[list[ChannelOrder], HubError | None]]:
    """Chunks of orders, each with the channel's error that ended the reading after it.

    When the channel fails part way (a foreign next link, an unreadable page), the orders
    read before are still handed over, with the error, so they are stored and acknowledged
    before the run fails; nothing read is lost.
    """
    iterator = iter(items)
    chunk: list[ChannelOrder] = []
    while True:
        try:
            chunk.append(next(iterator))
        except StopIteration:
            break
        except HubError as exc:
            if not chunk:
                raise
            yield chunk, exc
            return
        if len(chunk) >= size:
            yield chunk, None
            chunk = []
    if chunk:
        yield chunk, None


def require_mappings(hub: Hub, channel: Channel, connection: Connection) -> None:
    """Refuse get orders when the channel requires shipping mappings and there are none."""
    if not channel.requires("shipping_mappings"):
        return
    connection_name = connection.name
    with hub.db.session() as session:
        if not mappings_of(session, connection):
            raise RequirementNotMet(
                f"{channel.title} requires shipping mappings before getting orders, and "
                f"{connection_name!r} has none. Add one per shipping method, e.g. "
                f'\'hub shipping-mappings add {connection_name} --channel-text "UPS - Ground" '
                "--policy standard' (the text must equal the channel's shipping method exactly)."
            )


def _order_days(settings: Mapping[str, Any], connection_name: str) -> int:
    """The connection's ``order_days`` setting, refused when outside 1..MAX_DAYS."""
    days = int(settings.get("order_days", 7))
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(
            f"The setting order_days of {connection_name!r} is {days}; it must be from 1 to "
            f"{MAX_DAYS}. Fix it with 'hub connections configure {connection_name} --set "
            "order_days=7'."
        )
    return days


def get_orders(
    hub: Hub, connection_name: str, days: int | None = None, *, context: RunContext | None = None
) -> OperationResult:
    """Import new eligible orders, each exactly once, then acknowledge them to the channel.

    Orders are committed in batches; a batch is acknowledged only after its commit. Orders
    stored earlier but never acknowledged (a crash in between) are acknowledged first.
    ``context``: the connection opened already (``hub run``).

    Pipelined: while the channel is told of one committed chunk (on a thread of its own),
    the next chunk is read and stored. At most one chunk is being acknowledged at a time,
    and what the channel answered is recorded here, on the run's thread.
    """
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"--days must be from 1 to {MAX_DAYS}, got {days}.")
    ctx = open_run(hub, connection_name, "get_orders", hub.progress("orders"), context=context)
    row, channel, view = ctx.row, ctx.channel, ctx.connection
    require_mappings(hub, channel, row)
    window = days or _order_days(view.settings, connection_name)
    with RunRecorder(hub, "get_orders", context=ctx) as run:
        run.extra["days"] = window
        _acknowledge(hub, ctx, row.id, _unacknowledged(hub, row.id), run)

        def store_and_acknowledge(orders: Iterable[ChannelOrder]) -> None:
            with concurrent.futures.ThreadPoolExecutor(1, "hub-acknowledge") as pool:
                telling: tuple[concurrent.futures.Future[list[RecordOutcome]], int] | None
                telling = None

                def finish() -> None:
                    """Record what the channel answered for the chunk being acknowledged."""
                    nonlocal telling
                    if telling is None:
                        return
                    future, size = telling
                    telling = None
                    _record_acknowledged(hub, row.id, future.result(), run)
                    view.progress.advance(size)
                    crash_point("get_orders.chunk")

                try:
                    for chunk, failure in _chunks(orders, CHUNK):
                        # Lost its lease: stop before storing (the orders stay unacknowledged
                        # on the channel, so the run that took over imports them).
                        run.commit_point()
                        stored = _store(hub, row.id, chunk, run.run_id, run)
                        crash_point("get_orders.stored")
                        finish()
                        if stored:
                            # Checked here, on the run's thread (the check is once a run).
                            ctx.require("acknowledge_orders")
                            run.commit_point()  # before telling the channel
                        telling = (pool.submit(_tell, ctx, stored), len(chunk))
                        if failure is not None:
                            raise failure
                    finish()
                except BaseException:
                    # The run fails, but what the channel was told is still recorded.
                    if telling is not None and telling[0].exception() is None:
                        finish()
                    raise

        # Inside the hook call, so that a wrapper around get orders sees all of it.
        ctx.call("get_orders", days=window, consume=store_and_acknowledge)
    return run.result()


def _unacknowledged(hub: Hub, connection_id: int) -> list[str]:
    with hub.db.session() as session:
        return list(
            session.scalars(
                select(Order.channel_order_id).where(
                    Order.connection_id == connection_id, Order.acknowledged_at.is_(None)
                )
            )
        )


def _store(
    hub: Hub, connection_id: int, orders: Sequence[ChannelOrder], run_id: int | None, run
) -> list[str]:
    """Store new orders in one transaction; return the ids to acknowledge (new and known).

    One query finds the orders already stored, and the new ones are inserted together. If
    another run stored one of them meanwhile (a unique-key conflict), they are inserted one
    by one instead, each in a savepoint, and the one already stored is skipped.
    """
    to_acknowledge: list[str] = []
    with hub.db.session() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        mappings = mappings_of(session, connection)
        known = _known_orders(session, connection_id, [o.channel_order_id for o in orders])
        new: dict[str, ChannelOrder] = {}
        for order in orders:
            existing = known.get(order.channel_order_id)
            if existing is not None:
                if _store_known(session, existing, order, run):
                    to_acknowledge.append(order.channel_order_id)
            elif order.channel_order_id in new:
                # Listed twice in one chunk: the first one is stored.
                run.record(order.channel_order_id, Outcome.SKIPPED, "already imported")
                run.count("already_imported")
            else:
                new[order.channel_order_id] = order
        try:
            with session.begin_nested():
                added = [
                    _new_order(connection_id, o, mappings, run_id, connection.name)
                    for o in new.values()
                ]
                session.add_all(added)
        except IntegrityError:
            # Another run stored one of them between our query and our insert.
            added = []
            for order in new.values():
                stored = _new_order(connection_id, order, mappings, run_id, connection.name)
                try:
                    with session.begin_nested():
                        session.add(stored)
                except IntegrityError:
                    run.record(order.channel_order_id, Outcome.SKIPPED, "already imported")
                    run.count("already_imported")
                    continue
                added.append(stored)
        for stored in added:
            to_acknowledge.append(stored.channel_order_id)
            run.count(stored.status)
            message = stored.status + (f": {stored.hold_reason}" if stored.hold_reason else "")
            run.record(stored.channel_order_id, Outcome.OK, message)
    return to_acknowledge


def _known_orders(session: Session, connection_id: int, ids: Sequence[str]) -> dict[str, Any]:
    """The orders of ``ids`` the hub holds already: id -> (id, acknowledged_at, status)."""
    return {
        found.channel_order_id: found
        for found in session.execute(
            select(Order.id, Order.channel_order_id, Order.acknowledged_at, Order.status).where(
                Order.connection_id == connection_id,
                Order.channel_order_id.in_(list(dict.fromkeys(ids))),
            )
        )
    }


def _store_known(session: Session, existing: Any, order: ChannelOrder, run: RunRecorder) -> bool:
    """Record an order the hub holds already (cancelling it when the channel says so);
    return whether it still needs acknowledging."""
    if order.cancelled and existing.status != CANCELLED:
        stored_order = session.get(Order, existing.id)
        assert stored_order is not None
        dropped = cancel_order(stored_order)
        run.record(
            order.channel_order_id,
            Outcome.OK,
            f"cancelled in the channel after import; {dropped} shipment(s) not yet "
            "sent were cancelled",
        )
        run.count("cancelled_after_import")
    elif order.cancelled:
        # Reported again by the channel's cancellation check: nothing to change.
        run.record(order.channel_order_id, Outcome.SKIPPED, "already cancelled")
        run.count("already_cancelled")
    else:
        run.record(order.channel_order_id, Outcome.SKIPPED, "already imported")
        run.count("already_imported")
    return existing.acknowledged_at is None


def cancel_order(order: Order) -> int:
    """Mark an order the channel cancelled: status ``cancelled``, and its shipments not yet
    sent are cancelled (they must never reach the channel). Return how many were."""
    order.status = CANCELLED
    order.hold_reason = None
    dropped = 0
    for shipment in order.shipments:
        if shipment.sync_status in UNSENT_SHIPMENT_STATUSES:
            shipment.sync_status = SHIPMENT_CANCELLED
            dropped += 1
    return dropped


def _new_order(
    connection_id: int,
    order: ChannelOrder,
    mappings: dict[str, str],
    run_id: int | None,
    connection_name: str,
) -> Order:
    policy = mappings.get(order.shipping_text)
    if order.cancelled:
        status, reason = CANCELLED, None
    elif policy is None:
        status, reason = HELD, hold_reason(order.shipping_text, mappings, connection_name)
    else:
        status, reason = IMPORTED, None
    return Order(
        connection_id=connection_id,
        channel_order_id=order.channel_order_id,
        status=status,
        hold_reason=reason,
        shipping_text=order.shipping_text,
        shipping_policy=policy,
        marketplace=order.marketplace,
        marketplace_order_id=order.marketplace_order_id,
        currency=order.currency,
        totals=_jsonable(order.totals),
        addresses=_jsonable(order.addresses),
        raw=_jsonable(order.raw),
        channel_created_at=order.created_at,
        run_id=run_id,
        lines=[
            OrderLine(
                channel_line_id=line.channel_line_id,
                sku=line.sku,
                title=line.title,
                quantity=line.quantity,
                unit_price=line.unit_price,
            )
            for line in order.lines
        ],
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _acknowledge(
    hub: Hub,
    ctx: RunContext,
    connection_id: int,
    channel_order_ids: Sequence[str],
    run: RunRecorder,
) -> None:
    if channel_order_ids:
        run.commit_point()  # a run that lost its lease tells the channel nothing more
    _record_acknowledged(hub, connection_id, _tell(ctx, channel_order_ids), run)


def _tell(ctx: RunContext, channel_order_ids: Sequence[str]) -> list[RecordOutcome]:
    """Acknowledge orders to the channel (stored ones only); return its answers."""
    if not channel_order_ids:
        return []
    return list(ctx.call("acknowledge_orders", channel_order_ids=list(channel_order_ids)))


def _record_acknowledged(
    hub: Hub, connection_id: int, outcomes: Sequence[RecordOutcome], run: RunRecorder
) -> None:
    """Store which orders the channel now knows are taken, and record the failures."""
    if not outcomes:
        return
    ok = [o.ref for o in outcomes if o.outcome == Outcome.OK]
    crash_point("get_orders.acknowledged")
    for outcome in outcomes:
        if outcome.outcome == Outcome.FAILED:
            run.record(
                outcome.ref,
                Outcome.FAILED,
                f"stored, but the channel was not told (retried on the next run): "
                f"{outcome.message}",
            )
    if ok:
        # One UPDATE per 1,000 ids: the orders themselves are not read.
        now = utcnow()
        with hub.db.session() as session:
            for start in range(0, len(ok), 1000):
                session.execute(
                    update(Order)
                    .where(
                        Order.connection_id == connection_id,
                        Order.channel_order_id.in_(ok[start : start + 1000]),
                    )
                    .values(acknowledged_at=now)
                    .execution_options(synchronize_session=False)
                )
        run.count("acknowledged", len(ok))


# --- reading ------------------------------------------------------------------------------


def order_to_json(order: Order, *, detail: bool = False) -> dict[str, Any]:
    """An order's JSON shape (contract fields first)."""
    shipped = shipped_quantities(order)
    data: dict[str, Any] = {
        "channel_order_id": order.channel_order_id,
        "status": order.status,
        "hold_reason": order.hold_reason,
        "shipping_text": order.shipping_text,
        "shipping_policy": order.shipping_policy,
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "shipped_quantity": shipped.get(line.id, 0),
                "channel_line_id": line.channel_line_id,
            }
            for line in order.lines
        ],
        "connection": order.connection.name,
        "marketplace": order.marketplace,
        "marketplace_order_id": order.marketplace_order_id,
        "imported_at": order.imported_at.isoformat(),
        "acknowledged": order.acknowledged_at is not None,
    }
    if detail:
        data["created_at"] = (
            order.channel_created_at.isoformat() if order.channel_created_at else None
        )
        data["currency"] = order.currency
        data["totals"] = order.totals
        data["addresses"] = order.addresses
        data["shipments"] = [shipment_to_json(s) for s in order.shipments]
    return data


def shipment_ref(shipment_id: int) -> str:
    """The hub's public id of a shipment (ChannelAdvisor: SellerFulfillmentID)."""
    return f"hub-{shipment_id}"


def shipment_to_json(shipment: Shipment) -> dict[str, Any]:
    """A shipment's JSON shape."""
    return {
        "shipment_id": shipment_ref(shipment.id),
        "channel_order_id": shipment.order.channel_order_id,
        "tracking": shipment.tracking,
        "carrier": shipment.carrier,
        "class": shipment.shipping_class,
        "shipped_at": shipment.shipped_at.isoformat(),
        "complete": shipment.complete,
        "lines": [{"sku": ln.order_line.sku, "quantity": ln.quantity} for ln in shipment.lines],
        "sync_status": shipment.sync_status,
        "sync_error": shipment.sync_error,
    }


def shipped_quantities(order: Order) -> dict[int, int]:
    """Order line id -> quantity recorded as shipped (a cancelled shipment ships nothing)."""
    shipped: dict[int, int] = {}
    for shipment in order.shipments:
        if shipment.sync_status == CANCELLED:
            continue
        for line in shipment.lines:
            shipped[line.order_line_id] = shipped.get(line.order_line_id, 0) + line.quantity
    return shipped


def _order_query():  # type: ignore[no-untyped-def]
    return select(Order).options(
        selectinload(Order.lines),
        selectinload(Order.shipments),
        selectinload(Order.connection),
    )


def list_orders(
    hub: Hub, connection_name: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Stored orders, oldest first, optionally of one connection and one status."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"Unknown status {status!r}. Valid statuses: {', '.join(STATUSES)}.")
    with hub.db.session() as session:
        query = _order_query().order_by(Order.id)
        if connection_name:
            query = query.where(Order.connection_id == get_connection(session, connection_name).id)
        if status:
            query = query.where(Order.status == status)
        return [order_to_json(o) for o in session.scalars(query)]


def find_order(session: Session, connection: Connection, ref: str) -> Order | None:
    """An order by the channel's id, or else by the marketplace's order id."""
    return session.scalar(
        _order_query()
        .where(
            Order.connection_id == connection.id,
            or_(Order.channel_order_id == ref, Order.marketplace_order_id == ref),
        )
        .order_by((Order.channel_order_id == ref).desc())
        .limit(1)
    )


def get_order(session: Session, connection: Connection, channel_order_id: str) -> Order:
    """An order the hub stored, or exit 2 naming it."""
    order = find_order(session, connection, channel_order_id)
    if order is None:
        raise NotFound(
            f"No order {channel_order_id!r} on {connection.name!r} in the hub. "
            f"See 'hub orders list --connection {connection.name}', or "
            f"'hub orders explain {connection.name} {channel_order_id}' to learn why."
        )
    return order


def show_order(hub: Hub, connection_name: str, channel_order_id: str) -> dict[str, Any]:
    """One stored order with its lines and shipments."""
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        return order_to_json(get_order(session, connection, channel_order_id), detail=True)


def explain_order(hub: Hub, connection_name: str, ref: str) -> dict[str, Any]:
    """Why the channel's order was, or would not be, imported."""
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        stored = find_order(session, connection, ref)
        if stored is not None:
            when = stored.imported_at.isoformat(timespec="seconds")
            reasons = [f"imported on {when} by run {stored.run_id}; status {stored.status}"]
            if stored.hold_reason:
                reasons.append(f"held: {stored.hold_reason}")
            if stored.status == CANCELLED:
                reasons.append(
                    "the channel cancelled it; its shipments not yet sent were cancelled and "
                    "none is ever sent"
                )
            return {
                "connection": connection_name,
                "ref": ref,
                "channel_order_id": stored.channel_order_id,
                "imported": True,
                "imported_at": stored.imported_at.isoformat(),
                "would_import": False,
                "status": stored.status,
                "reasons": reasons,
                "notes": unsupported_line_notes(
                    session, connection, [line.sku for line in stored.lines]
                ),
            }
        mappings = mappings_of(session, connection)
    with open_run(hub, connection_name, "explain_order") as context:
        channel = context.channel
        days = _order_days(context.settings, connection_name)
        lookup = context.call("explain_order", ref=ref, days=days)
    if lookup.order is None:
        raise NotFound(
            f"{channel.title} has no order {ref!r} for {connection_name!r} "
            "(looked up by the channel's order id and by the marketplace order id). "
            "Check the id, and that the connection's profile is the order's."
        )
    reasons = list(lookup.reasons)
    text = lookup.order.shipping_text
    if text not in mappings:
        if channel.requires("shipping_mappings") and not mappings:
            reasons.append(
                f"{connection_name!r} has no shipping mappings at all, so 'hub orders get' "
                "refuses to run; add one with 'hub shipping-mappings add'"
            )
        else:
            reasons.append(
                f"it would be imported as held: {hold_reason(text, mappings, connection_name)}"
            )
    would_import = not lookup.reasons
    if would_import and text in mappings:
        reasons.append(
            f"it is eligible and will be imported by the next 'hub orders get {connection_name}'"
        )
    with hub.db.session() as session:
        notes = list(lookup.notes) + unsupported_line_notes(
            session, context.row, [line.sku for line in lookup.order.lines]
        )
    return {
        "connection": connection_name,
        "ref": ref,
        "channel_order_id": lookup.order.channel_order_id,
        "imported": False,
        "would_import": would_import,
        "shipping_text": text,
        "reasons": reasons,
        "notes": notes,
        "facts": _jsonable(lookup.facts),
    }


def unsupported_line_notes(
    session: Session, connection: Connection, skus: Sequence[str]
) -> list[str]:
    """A note per order line whose SKU's listing on this connection is ``unsupported``: the
    channel's product cannot take the hub's values (a parent or bundle product)."""
    rows = session.execute(
        select(Listing.sku, Listing.message).where(
            Listing.connection_id == connection.id,
            Listing.sku.in_(list(dict.fromkeys(skus))),
            Listing.status == ListingStatus.UNSUPPORTED.value,
        )
    )
    return [
        f"line {sku}: its channel product is unsupported ({message or 'no reason given'}); "
        "the hub never syncs its quantity"
        for sku, message in sorted(rows)
    ]
