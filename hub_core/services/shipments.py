"""Shipments: record full or partial shipments, import them from CSV, send them once; list,
edit and cancel the ones not sent yet."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub_core.channel import Outcome, RecordOutcome, ShipmentToSend
from hub_core.channel import ShipmentLine as SendLine
from hub_core.crash import crash_point
from hub_core.errors import InvalidInput, NotFound
from hub_core.models import Connection, Order, Shipment, ShipmentLine, utcnow
from hub_core.services.catalog import CsvTable, not_utf8
from hub_core.services.connections import get_connection, open_run
from hub_core.services.context import Hub, OperationResult, RunContext
from hub_core.services.orders import (
    CANCELLED,
    cancel_order,
    get_order,
    shipment_ref,
    shipment_to_json,
    shipped_quantities,
)
from hub_core.services.runs import RunRecorder
from hub_core.services.shipping import HELD, IMPORTED
from hub_core.values import parse_quantity

CHUNK = 500
PENDING, SENT, FAILED = "pending", "sent", "failed"
#: ``sync_status`` values (contract); a cancelled shipment is kept, but ships nothing.
SYNC_STATUSES = (PENDING, SENT, FAILED, CANCELLED)
#: Statuses of a shipment not sent yet: the only ones that may be edited or cancelled.
UNSENT = (PENDING, FAILED)
CSV_REQUIRED = ("channel_order_id", "tracking", "carrier", "class")
CSV_OPTIONAL = ("sku", "quantity", "shipped_at")


#: The earliest ship time the hub takes (older ones are typing mistakes).
EARLIEST_SHIP_TIME = datetime(2000, 1, 1, tzinfo=UTC)
#: How far in the future a ship time may be (time zones, clocks a little off).
SHIP_TIME_SLACK = timedelta(days=1)


def parse_shipped_at(value: str | None) -> datetime:
    """An ISO 8601 ship time (UTC when no zone is given); now when empty.

    :raises InvalidInput: not ISO 8601, before 2000, or more than a day in the future.
    """
    if not value:
        return utcnow()
    example = "use ISO 8601, e.g. 2026-11-28T14:30:00Z"
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"Invalid ship time {value!r}: {example}.") from None
    if parsed < EARLIEST_SHIP_TIME or parsed > utcnow() + SHIP_TIME_SLACK:
        raise InvalidInput(
            f"Invalid ship time {value!r}: it must be between 2000 and now; {example}."
        )
    return parsed


def _record(
    session: Session,
    order: Order,
    *,
    tracking: str,
    carrier: str,
    shipping_class: str,
    items: Mapping[str, int] | None,
    shipped_at: datetime,
) -> Shipment:
    """Validate and add one shipment of ``order``; raise InvalidInput naming every problem."""
    problems = [
        f"{flag} must not be empty"
        for flag, value in (
            ("--tracking", tracking),
            ("--carrier", carrier),
            ("--class", shipping_class),
        )
        if not value.strip()
    ]
    if order.status == CANCELLED:
        problems.append(f"order {order.channel_order_id} is cancelled")
    if order.status == HELD:
        problems.append(
            f"order {order.channel_order_id} is held ({order.hold_reason}); add the shipping "
            "mapping first"
        )
    shipped = shipped_quantities(order)
    remaining = {line.id: line.quantity - shipped.get(line.id, 0) for line in order.lines}
    lines: list[tuple[int, int]] = []
    if items:
        skus_on_order = {line.sku for line in order.lines}
        for sku, quantity in items.items():
            if sku not in skus_on_order:
                problems.append(
                    f"SKU {sku} is not on order {order.channel_order_id} "
                    f"(its SKUs: {', '.join(sorted(skus_on_order))})"
                )
                continue
            if quantity < 1:
                problems.append(f"quantity for {sku} must be 1 or more, got {quantity}")
                continue
            # Spread the quantity over the order's lines with that SKU, in order.
            left = quantity
            for line in order.lines:
                if line.sku != sku or left == 0:
                    continue
                take = min(left, remaining[line.id])
                if take:
                    lines.append((line.id, take))
                    left -= take
            if left:
                unshipped = sum(remaining[ln.id] for ln in order.lines if ln.sku == sku)
                problems.append(
                    f"cannot ship {quantity} of {sku}: only {unshipped} unshipped on order "
                    f"{order.channel_order_id}"
                )
    else:
        lines = [(line_id, qty) for line_id, qty in remaining.items() if qty > 0]
        if not lines and order.status != CANCELLED:
            problems.append(f"order {order.channel_order_id} is already fully shipped")
    if problems:
        raise InvalidInput(
            f"Cannot record the shipment of order {order.channel_order_id}:", errors=problems
        )
    complete = all(remaining[line_id] == qty for line_id, qty in _sum_lines(lines).items()) and sum(
        q for _, q in lines
    ) == sum(remaining.values())
    shipment = Shipment(
        order=order,
        tracking=tracking.strip(),
        carrier=carrier.strip(),
        shipping_class=shipping_class.strip(),
        shipped_at=shipped_at,
        complete=complete,
        lines=[ShipmentLine(order_line_id=lid, quantity=q) for lid, q in lines],
    )
    session.add(shipment)
    session.flush()
    shipped = shipped_quantities(order)
    fully = all(shipped.get(line.id, 0) >= line.quantity for line in order.lines)
    order.status = "shipped" if fully else "partially_shipped"
    return shipment


def _sum_lines(lines: Sequence[tuple[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for line_id, quantity in lines:
        total[line_id] = total.get(line_id, 0) + quantity
    return total


def ship_order(
    hub: Hub,
    connection_name: str,
    channel_order_id: str,
    *,
    tracking: str,
    carrier: str,
    shipping_class: str,
    items: Mapping[str, int] | None = None,
    shipped_at: datetime | None = None,
) -> dict[str, Any]:
    """Record a shipment: everything still unshipped, or ``items`` (SKU -> quantity).

    It is sent to the channel by the next ``orders sync``.
    """
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        order = get_order(session, connection, channel_order_id)
        shipment = _record(
            session,
            order,
            tracking=tracking,
            carrier=carrier,
            shipping_class=shipping_class,
            items=items,
            shipped_at=shipped_at or utcnow(),
        )
        return shipment_to_json(shipment) | {"order_status": order.status}


_SHIPMENT_ID = re.compile(r"hub-([1-9][0-9]{0,17})", re.IGNORECASE)


def parse_shipment_id(value: str, connection_name: str) -> int:
    """The row id of a public shipment id (``hub-12``); exit 2 naming the form expected."""
    match = _SHIPMENT_ID.fullmatch(value.strip())
    if match is None:
        raise InvalidInput(
            f"Invalid shipment id {value!r}: shipment ids look like hub-12. "
            f"See 'hub shipments list {connection_name}'."
        )
    return int(match.group(1))


def get_shipment(session: Session, connection: Connection, shipment_id: str) -> Shipment:
    """A shipment of ``connection`` by its public id, or exit 2 naming it."""
    row_id = parse_shipment_id(shipment_id, connection.name)
    shipment = session.scalar(
        select(Shipment)
        .join(Order)
        .where(Shipment.id == row_id, Order.connection_id == connection.id)
    )
    if shipment is None:
        raise NotFound(
            f"No shipment {shipment_id!r} on {connection.name!r}. "
            f"See 'hub shipments list {connection.name}'."
        )
    return shipment


def list_shipments(
    hub: Hub, connection_name: str, status: str | None = None
) -> list[dict[str, Any]]:
    """A connection's shipments, oldest first, optionally of one ``sync_status``."""
    if status is not None and status not in SYNC_STATUSES:
        raise InvalidInput(
            f"Unknown status {status!r}. Valid statuses: {', '.join(SYNC_STATUSES)}."
        )
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        query = (
            select(Shipment)
            .join(Order)
            .where(Order.connection_id == connection.id)
            .options(
                selectinload(Shipment.order),
                selectinload(Shipment.lines).selectinload(ShipmentLine.order_line),
            )
            .order_by(Shipment.id)
        )
        if status is not None:
            query = query.where(Shipment.sync_status == status)
        return [shipment_to_json(s) for s in session.scalars(query)]


def _require_unsent(shipment: Shipment, action: str, channel_title: str) -> None:
    """Refuse (exit 2) to ``action`` a shipment that is sent or cancelled, saying why."""
    ref = shipment_ref(shipment.id)
    if shipment.sync_status == SENT:
        when = f" on {shipment.sent_at.isoformat(timespec='seconds')}" if shipment.sent_at else ""
        raise InvalidInput(
            f"Cannot {action} {ref}: it was sent to {channel_title}{when}, which now holds it "
            f"as sent. A sent shipment can be neither edited nor cancelled in the hub; correct "
            f"it in {channel_title} itself."
        )
    if shipment.sync_status == CANCELLED:
        raise InvalidInput(
            f"Cannot {action} {ref}: it is cancelled ({shipment.sync_error}). Record a new "
            f"shipment with 'hub orders ship {shipment.order.connection.name} "
            f"{shipment.order.channel_order_id} ...'."
        )


def _channel_title(hub: Hub, connection: Connection) -> str:
    channel = hub.registry.channels.get(connection.channel)
    return channel.title if channel is not None else connection.channel


def edit_shipment(
    hub: Hub,
    connection_name: str,
    shipment_id: str,
    *,
    tracking: str | None = None,
    carrier: str | None = None,
    shipping_class: str | None = None,
    shipped_at: datetime | None = None,
) -> dict[str, Any]:
    """Correct a shipment not sent yet (``pending`` or ``failed``).

    It becomes ``pending`` with its error cleared, so the next ``orders sync`` sends the
    corrected shipment, once, under the same shipment id.
    """
    given = {
        flag: value
        for flag, value in (
            ("--tracking", tracking),
            ("--carrier", carrier),
            ("--class", shipping_class),
        )
        if value is not None
    }
    if not given and shipped_at is None:
        raise InvalidInput(
            f"Nothing to change in {shipment_id}: give at least one of --tracking, --carrier, "
            "--class, --shipped-at."
        )
    problems = [f"{flag} must not be empty" for flag, value in given.items() if not value.strip()]
    if problems:
        raise InvalidInput(f"Cannot edit {shipment_id}:", errors=problems)
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        shipment = get_shipment(session, connection, shipment_id)
        _require_unsent(shipment, "edit", _channel_title(hub, connection))
        if shipment.order.status == CANCELLED:
            raise InvalidInput(
                f"Cannot edit {shipment_ref(shipment.id)}: order "
                f"{shipment.order.channel_order_id} is cancelled, so it must never be sent. "
                f"Cancel it with 'hub shipments cancel {connection_name} "
                f"{shipment_ref(shipment.id)}'."
            )
        if tracking is not None:
            shipment.tracking = tracking.strip()
        if carrier is not None:
            shipment.carrier = carrier.strip()
        if shipping_class is not None:
            shipment.shipping_class = shipping_class.strip()
        if shipped_at is not None:
            shipment.shipped_at = shipped_at
        shipment.sync_status = PENDING
        shipment.sync_error = None
        session.flush()
        return shipment_to_json(shipment)


def cancel_shipment(shipment: Shipment, *, reason: str, channel_title: str = "the channel") -> None:
    """Cancel one shipment not sent yet, in the caller's transaction.

    Its quantities become shippable again: the order's status and the ``complete`` flag of
    its other unsent shipments follow. The row stays, ``cancelled`` with ``reason`` as its
    ``sync_error``, and is never sent. A sent or cancelled shipment is refused (exit 2).
    """
    _require_unsent(shipment, "cancel", channel_title)
    shipment.sync_status = CANCELLED
    shipment.sync_error = reason
    _settle(shipment.order)


def cancel_unsent_shipments(order: Order, *, reason: str) -> list[str]:
    """Cancel every shipment of ``order`` not sent yet (an order cancelled on the channel),
    in the caller's transaction; return their ids (``hub-N``)."""
    cancelled = []
    for shipment in order.shipments:
        if shipment.sync_status in UNSENT:
            shipment.sync_status = CANCELLED
            shipment.sync_error = reason
            cancelled.append(shipment_ref(shipment.id))
    if cancelled:
        _settle(order)
    return cancelled


def cancel_shipment_by_id(hub: Hub, connection_name: str, shipment_id: str) -> dict[str, Any]:
    """``hub shipments cancel``: cancel a shipment not sent yet; its quantities become
    shippable again."""
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
        shipment = get_shipment(session, connection, shipment_id)
        when = utcnow().isoformat(timespec="seconds")
        cancel_shipment(
            shipment,
            reason=f"cancelled with 'hub shipments cancel' on {when}",
            channel_title=_channel_title(hub, connection),
        )
        session.flush()
        return shipment_to_json(shipment) | {"order_status": shipment.order.status}


def _settle(order: Order) -> None:
    """After a cancellation: the order's status from what is still shipped, and each unsent
    shipment's ``complete`` (it ships everything the others leave unshipped)."""
    shipped = shipped_quantities(order)
    if order.status not in (CANCELLED, HELD):
        if all(shipped.get(line.id, 0) >= line.quantity for line in order.lines):
            order.status = "shipped"
        elif any(shipped.values()):
            order.status = "partially_shipped"
        else:
            order.status = IMPORTED
    for shipment in order.shipments:
        if shipment.sync_status not in UNSENT:
            continue
        own = _sum_lines([(ln.order_line_id, ln.quantity) for ln in shipment.lines])
        shipment.complete = all(
            own.get(line.id, 0) == line.quantity - (shipped.get(line.id, 0) - own.get(line.id, 0))
            for line in order.lines
        )


def import_shipments(hub: Hub, connection_name: str, file: str | Path) -> OperationResult:
    """Record shipments from a CSV file; bad rows are reported with their line, good ones kept.

    Rows with the same order, tracking, carrier, class and ship time form one shipment; a row
    without ``sku`` ships everything still unshipped on the order.
    """
    path = Path(file)
    if not path.is_file():
        raise InvalidInput(f"No such file: {path}. Give the path of a .csv shipments file.")
    if path.suffix.lower() != ".csv":
        raise InvalidInput(f"{path}: shipments import reads .csv files only.")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    groups: dict[tuple, dict[str, Any]] = {}
    with hub.db.session() as session:
        connection = get_connection(session, connection_name)
    with RunRecorder(hub, "shipments_import", connection) as run:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            table = CsvTable(path, handle, CSV_REQUIRED + CSV_OPTIONAL)
            table.check_columns(CSV_REQUIRED, CSV_OPTIONAL)
            for line, row in table.rows():
                if isinstance(row, str):
                    run.record(f"line {line}", Outcome.FAILED, f"line {line}: {row}")
                    continue
                try:
                    key, sku, quantity = _parse_row(row)
                except InvalidInput as exc:
                    run.record(f"line {line}", Outcome.FAILED, f"line {line}: {exc.message}")
                    continue
                group = groups.setdefault(key, {"lines": [], "items": {}, "whole": False})
                group["lines"].append(line)
                if sku is None:
                    group["whole"] = True
                else:
                    group["items"][sku] = group["items"].get(sku, 0) + quantity
        for (order_id, tracking, carrier, klass, shipped_at), group in groups.items():
            where = (
                "line"
                + ("s " if len(group["lines"]) > 1 else " ")
                + ", ".join(str(n) for n in group["lines"])
            )
            try:
                with hub.db.session() as session:
                    connection = get_connection(session, connection_name)
                    order = get_order(session, connection, order_id)
                    shipment = _record(
                        session,
                        order,
                        tracking=tracking,
                        carrier=carrier,
                        shipping_class=klass,
                        items=None if group["whole"] else group["items"],
                        shipped_at=parse_shipped_at(shipped_at),
                    )
                    run.record(shipment_ref(shipment.id), Outcome.OK, f"{where}: order {order_id}")
            except InvalidInput as exc:
                run.record(where, Outcome.FAILED, f"{where}: {exc.message}")
    return run.result()


def _parse_row(row: dict[str, str]) -> tuple[tuple, str | None, int]:
    missing = [c for c in CSV_REQUIRED if not row.get(c)]
    if missing:
        raise InvalidInput(f"missing {', '.join(missing)}")
    sku = row.get("sku") or None
    quantity = 0
    if sku:
        try:
            quantity = parse_quantity(row.get("quantity") or "", minimum=1)
        except ValueError as exc:
            raise InvalidInput(f"quantity for sku {sku} {exc}") from None
    elif row.get("quantity"):
        raise InvalidInput("quantity given without sku")
    shipped_at = row.get("shipped_at") or ""
    parse_shipped_at(shipped_at or None)
    key = (row["channel_order_id"], row["tracking"], row["carrier"], row["class"], shipped_at)
    return key, sku, quantity


def sync_orders(
    hub: Hub, connection_name: str, *, context: RunContext | None = None
) -> OperationResult:
    """Send every shipment not yet sent (failed ones again) to the channel, once each.

    ``context``: the connection opened already (``hub run``).
    """
    ctx = open_run(hub, connection_name, "sync_orders", hub.progress("ship"), context=context)
    with RunRecorder(hub, "sync_orders", context=ctx) as run:
        # Read under the run's lease, so two runs never both pick up the same shipment.
        to_send = _shipments_to_send(hub, ctx.row.id)
        ctx.connection.progress.set_total(len(to_send))
        for start in range(0, len(to_send), CHUNK):
            chunk = to_send[start : start + CHUNK]
            run.commit_point()  # a run that lost its lease sends nothing more
            outcomes = ctx.call("sync_orders", shipments=chunk)
            crash_point("sync_orders.sent")
            _store_outcomes(hub, chunk, outcomes, run)
    return run.result()


def _shipments_to_send(hub: Hub, connection_id: int) -> list[ShipmentToSend]:
    with hub.db.session() as session:
        shipments = session.scalars(
            select(Shipment)
            .join(Order)
            .where(
                Order.connection_id == connection_id, Shipment.sync_status.in_([PENDING, FAILED])
            )
            .options(
                selectinload(Shipment.lines).selectinload(ShipmentLine.order_line),
                selectinload(Shipment.order),
            )
            .order_by(Shipment.id)
        ).all()
        return [_to_send(s) for s in shipments]


def _to_send(shipment: Shipment) -> ShipmentToSend:
    return ShipmentToSend(
        shipment_id=shipment_ref(shipment.id),
        channel_order_id=shipment.order.channel_order_id,
        tracking=shipment.tracking,
        carrier=shipment.carrier,
        shipping_class=shipment.shipping_class,
        shipped_at=shipment.shipped_at,
        lines=tuple(
            SendLine(
                channel_line_id=ln.order_line.channel_line_id,
                sku=ln.order_line.sku,
                quantity=ln.quantity,
            )
            for ln in shipment.lines
        ),
        complete=shipment.complete,
    )


def _store_outcomes(
    hub: Hub, sent: Sequence[ShipmentToSend], outcomes: Sequence[RecordOutcome], run: RunRecorder
) -> None:
    by_ref = {o.ref: o for o in outcomes}
    with hub.db.session() as session:
        for item in sent:
            shipment = session.get(Shipment, int(item.shipment_id.removeprefix("hub-")))
            assert shipment is not None
            outcome = by_ref.get(item.shipment_id)
            shipment.attempts += 1
            if _changed_during_sync(shipment, item):
                _store_raced(shipment, item, outcome, run)
                continue
            if outcome is None:
                shipment.sync_status = FAILED
                shipment.sync_error = "the channel plugin gave no answer for this shipment"
                run.record(item.shipment_id, Outcome.FAILED, shipment.sync_error)
            elif outcome.order_status == CANCELLED:
                # The channel cancelled the order after import: never send its shipments.
                newly = shipment.order.status != CANCELLED
                dropped = cancel_order(shipment.order)
                run.record(item.shipment_id, Outcome.SKIPPED, outcome.message or CANCELLED)
                run.count("order_cancelled", int(newly))
                run.count("shipments_cancelled", dropped)
            elif outcome.outcome == Outcome.OK:
                shipment.sync_status = SENT
                shipment.sync_error = None
                shipment.sent_at = utcnow()
                run.record(item.shipment_id, Outcome.OK, outcome.message or "sent")
            else:
                shipment.sync_status = FAILED
                shipment.sync_error = run.clean(outcome.message)
                run.record(item.shipment_id, Outcome(outcome.outcome), outcome.message)


def _changed_during_sync(shipment: Shipment, sent: ShipmentToSend) -> bool:
    """Whether ``hub shipments edit`` or ``cancel`` changed the shipment while it was sent."""
    return shipment.sync_status == CANCELLED or (
        shipment.tracking,
        shipment.carrier,
        shipment.shipping_class,
        shipment.shipped_at,
    ) != (sent.tracking, sent.carrier, sent.shipping_class, sent.shipped_at)


def _store_raced(
    shipment: Shipment, sent: ShipmentToSend, outcome: RecordOutcome | None, run: RunRecorder
) -> None:
    """Store the truth for a shipment edited or cancelled while this sync sent it.

    Accepted by the channel: the channel holds the values sent, so the hub keeps those (the
    edit or cancel came too late). Not accepted: the edit or cancel stands, and an edited
    shipment goes out, corrected, on the next sync.
    """
    if outcome is not None and outcome.outcome == Outcome.OK:
        shipment.tracking, shipment.carrier = sent.tracking, sent.carrier
        shipment.shipping_class, shipment.shipped_at = sent.shipping_class, sent.shipped_at
        shipment.sync_status, shipment.sync_error, shipment.sent_at = SENT, None, utcnow()
        _settle(shipment.order)
        run.record(
            sent.shipment_id,
            Outcome.OK,
            "sent as it was before an edit or cancel made during this sync; the channel holds "
            "the values sent, so the change was not applied",
        )
        return
    if shipment.sync_status != CANCELLED:
        shipment.sync_status, shipment.sync_error = PENDING, None
    message = outcome.message if outcome is not None else "no answer from the channel plugin"
    run.record(
        sent.shipment_id,
        Outcome.SKIPPED,
        f"changed during this sync ({shipment.sync_status} now): {message}",
    )
