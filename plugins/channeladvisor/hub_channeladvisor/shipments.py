"""Sync orders: send each hub shipment to ChannelAdvisor once, with the Ship action.

``POST /v1/Orders(ID)/Ship`` with ``{"Value": {ShippedDateUtc, TrackingNumber, ShippingCarrier,
ShippingClass, DeliveryStatus: "Complete", SellerFulfillmentID: <hub shipment id>,
DistributionCenterID, Items: [{OrderItemID, Quantity}]}}`` (reference §4.6, §11.6).

``Items`` is sent whenever the hub knows the shipment's lines, complete shipments included:
the reference documents Items (OrderItemID + Quantity) as the way to say what a shipment
holds and lets ChannelAdvisor split fulfillments from it, while an order shipped without Items
means "everything on the order" — which would repeat the lines of an earlier partial shipment.
Items is left out only when the hub gives no lines (the whole order ships at once).

Ship is not idempotent, so a shipment is never sent twice:

* before the first send, the orders' fulfillments are read (``$batch`` of ``GET Orders(ID)``,
  up to 100 per round trip) and a shipment whose ``SellerFulfillmentID`` is already there is
  reported sent — that heals a crash between ChannelAdvisor's answer and the hub's commit;
* when an answer is lost (timeout, dropped connection, 5xx), the order's fulfillments are read
  again before any retry, and a fulfillment carrying our id counts as success.

A 400 fails the shipment with ChannelAdvisor's own message (an unknown carrier, say); it keeps
its place for a retry once corrected.

The order read before the first send also decides (design §6):

* an order cancelled in ChannelAdvisor (``ShippingStatus`` or ``CheckoutStatus``
  ``Canceled``) is not shipped: the outcome is ``skipped`` with the reason and the hint
  ``order_status="cancelled"``, which the core applies (the order becomes ``cancelled`` and its
  unsent shipments are cancelled);
* ``DistributionCenterID`` is the distribution center of the order's open fulfillments that
  hold the shipped lines — never the connection's quantity setting, which on an account with
  several distribution centers would move the fulfillment; left out when those lines are in
  no fulfillment, or in fulfillments of several distribution centers;
* lines held by a fulfillment of an externally managed distribution center (the marketplace
  ships them: a ``Mixed`` order) are refused with the reason; the account's distribution
  centers are read for that once per sync, and only when an order is ``Mixed``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.client.batch import BatchPart
from hub_channeladvisor.client.outcomes import RetriesExhausted, error_message
from hub_channeladvisor.orders import EXTERNALLY_MANAGED, is_cancelled, odata_datetime
from hub_core.channel import CANCELLED, Outcome, RecordOutcome, ShipmentToSend
from hub_core.crash import crash_point
from hub_core.errors import AuthError, ChannelError, RateLimited

log = logging.getLogger(__name__)

#: Consecutive shipments that ran out of retries before the rest are left for the next sync.
MAX_UNAVAILABLE = 2


class ShipOutcomeUnknown(ChannelError):
    """A Ship answer was lost and the order's fulfillments could not be read to check it."""


#: Fulfillment delivery statuses that are done with (their lines are not waiting to ship).
_CLOSED = frozenset({"Complete", "InTransit", "ReadyForPickup", "Canceled"})


def ship_value(shipment: ShipmentToSend, distribution_center_id: int | None) -> dict[str, Any]:
    """The ``Value`` of the Ship action for one hub shipment (no DC key when it is unknown)."""
    value: dict[str, Any] = {
        "ShippedDateUtc": odata_datetime(shipment.shipped_at),
        "TrackingNumber": shipment.tracking,
        "ShippingCarrier": shipment.carrier,
        "ShippingClass": shipment.shipping_class,
        "DeliveryStatus": "Complete",
        "SellerFulfillmentID": shipment.shipment_id,
    }
    if distribution_center_id is not None:
        value["DistributionCenterID"] = int(distribution_center_id)
    if shipment.lines:
        value["Items"] = [
            {"OrderItemID": int(line.channel_line_id), "Quantity": int(line.quantity)}
            for line in shipment.lines
        ]
    return value


def fulfillment_ids(order: Mapping[str, Any] | None) -> set[str]:
    """The SellerFulfillmentIDs of an order's fulfillments."""
    if not order:
        return set()
    return {
        str(f["SellerFulfillmentID"])
        for f in order.get("Fulfillments") or []
        if isinstance(f, Mapping) and f.get("SellerFulfillmentID")
    }


def _read_orders(
    client: ChannelAdvisorClient, order_ids: Sequence[str]
) -> dict[str, Mapping[str, Any] | str]:
    """Per order: ChannelAdvisor's order (fulfillments and their lines), or why it is unknown."""
    known: dict[str, Mapping[str, Any] | str] = {}
    if len(order_ids) == 1:
        order_id = order_ids[0]
        try:
            order = client.get_order(order_id)
        except AuthError:
            raise
        except ChannelError as exc:
            known[order_id] = _unreadable(exc.message)
        else:
            known[order_id] = (
                order if order is not None else f"ChannelAdvisor has no order {order_id}."
            )
        return known
    parts = [BatchPart("GET", client.order_url(order_id), key=order_id) for order_id in order_ids]
    for result in client.run_batch(parts):
        order_id = result.part.key
        if result.ok and isinstance(result.body, Mapping):
            known[order_id] = result.body
        elif result.status == 404:
            known[order_id] = f"ChannelAdvisor has no order {order_id}."
        else:
            known[order_id] = _unreadable(result.message)
    return known


def _held_by(order: Mapping[str, Any], shipment: ShipmentToSend) -> dict[str, list[int | None]]:
    """OrderItemID -> the distribution centers of the open fulfillments holding that line.

    Every line still open on the order when the shipment names none (it ships them all).
    """
    held: dict[str, list[int | None]] = {str(ln.channel_line_id): [] for ln in shipment.lines}
    for fulfillment in order.get("Fulfillments") or []:
        if not isinstance(fulfillment, Mapping) or fulfillment.get("DeliveryStatus") in _CLOSED:
            continue
        center = _int_or_none(fulfillment.get("DistributionCenterID"))
        for fitem in fulfillment.get("Items") or []:
            if not isinstance(fitem, Mapping):
                continue
            line = str(fitem.get("OrderItemID"))
            if shipment.lines and line not in held:
                continue
            if center not in held.setdefault(line, []):
                held[line].append(center)
    return held


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _externally_held(
    client: ChannelAdvisorClient, order: Mapping[str, Any], held: Mapping[str, list[int | None]]
) -> str:
    """Why lines of the shipment cannot be shipped by the hub (the marketplace ships them)."""
    if order.get("DistributionCenterTypeRollup") == EXTERNALLY_MANAGED:
        return (
            f"Not sent: order {order.get('ID')} is fulfilled by the marketplace "
            "(DistributionCenterTypeRollup ExternallyManaged); the hub does not ship it."
        )
    if order.get("DistributionCenterTypeRollup") != "Mixed":
        return ""
    external = client.externally_managed_centers()
    skus = {
        str(item.get("ID")): str(item.get("Sku"))
        for item in order.get("Items") or []
        if isinstance(item, Mapping)
    }
    refused = [
        f"{skus.get(line, '?')} (OrderItemID {line}, distribution center {center} "
        f"{external[center]})"
        for line, centers in sorted(held.items())
        for center in centers
        if center in external
    ]
    if not refused:
        return ""
    return (
        f"Not sent: {'; '.join(refused)} of order {order.get('ID')} are fulfilled by the "
        "marketplace from an externally managed distribution center, which the hub cannot "
        "ship from. Cancel this shipment and record one without those lines."
    )


def _center(held: Mapping[str, list[int | None]]) -> int | None:
    """The one distribution center holding every shipped line, else None (key left out)."""
    centers = {center for centers in held.values() for center in centers}
    if len(centers) == 1 and held and all(held.values()):
        return centers.pop()
    return None


def _unreadable(why: str) -> str:
    return (
        "Not sent: could not read the order's fulfillments to make sure the shipment is not "
        f"sent twice ({why}); it is tried again on the next sync."
    )


def sync_shipments(
    client: ChannelAdvisorClient, shipments: Sequence[ShipmentToSend]
) -> list[RecordOutcome]:
    """Send every shipment once (see the module docstring); one outcome per shipment."""
    progress = client.connection.progress
    results: dict[int, RecordOutcome] = {}
    sendable: list[int] = []
    for index, shipment in enumerate(shipments):
        problem = _invalid(shipment)
        if problem:
            results[index] = RecordOutcome(shipment.shipment_id, Outcome.FAILED, problem)
            progress.advance()
        else:
            sendable.append(index)
    order_ids = list(dict.fromkeys(shipments[i].channel_order_id for i in sendable))
    orders = _read_orders(client, order_ids) if order_ids else {}
    sent: dict[str, set[str]] = {
        order_id: fulfillment_ids(order)
        for order_id, order in orders.items()
        if not isinstance(order, str)
    }

    unavailable = 0
    for index in sendable:
        shipment = shipments[index]
        ref = shipment.shipment_id
        order = orders.get(shipment.channel_order_id, {})
        if unavailable >= MAX_UNAVAILABLE:
            results[index] = RecordOutcome(
                ref,
                Outcome.FAILED,
                "Not sent: ChannelAdvisor is not answering; it is sent on the next sync.",
            )
        elif isinstance(order, str):
            results[index] = RecordOutcome(ref, Outcome.FAILED, order)
        elif ref in sent.get(shipment.channel_order_id, set()):
            results[index] = RecordOutcome(
                ref, Outcome.OK, "Already in ChannelAdvisor (sent before); not sent again."
            )
        elif is_cancelled(order):
            results[index] = RecordOutcome(
                ref,
                Outcome.SKIPPED,
                f"Not sent: order {shipment.channel_order_id} was cancelled in ChannelAdvisor "
                f"(ShippingStatus {order.get('ShippingStatus')}, CheckoutStatus "
                f"{order.get('CheckoutStatus')}); the hub marks it cancelled and cancels its "
                "shipments not yet sent.",
                order_status=CANCELLED,
            )
        else:
            held = _held_by(order, shipment)
            refused = _externally_held(client, order, held)
            if refused:
                results[index] = RecordOutcome(ref, Outcome.FAILED, refused)
            else:
                outcome, transient = _ship(client, shipment, _center(held))
                crash_point("channeladvisor.shipped")
                results[index] = outcome
                unavailable = unavailable + 1 if transient else 0
                if outcome.outcome is Outcome.OK:
                    sent.setdefault(shipment.channel_order_id, set()).add(ref)
        progress.advance()
    client.flush()
    return [results[i] for i in range(len(shipments))]


def _invalid(shipment: ShipmentToSend) -> str:
    if not str(shipment.channel_order_id).isdigit():
        return f"{shipment.channel_order_id!r} is not a ChannelAdvisor order ID."
    bad = [
        line.channel_line_id for line in shipment.lines if not str(line.channel_line_id).isdigit()
    ]
    if bad:
        return f"Order lines {', '.join(map(str, bad))} are not ChannelAdvisor OrderItemIDs."
    return ""


def _ship(
    client: ChannelAdvisorClient, shipment: ShipmentToSend, dc: int | None
) -> tuple[RecordOutcome, bool]:
    """Send one shipment: (its outcome, whether ChannelAdvisor was unavailable)."""
    ref = shipment.shipment_id
    order_id = shipment.channel_order_id

    def arrived() -> bool:
        # Called before any retry after a lost answer: did the first send go through?
        try:
            found = ref in fulfillment_ids(client.get_order(order_id))
        except AuthError:
            raise
        except ChannelError as exc:
            raise ShipOutcomeUnknown(
                "ChannelAdvisor's answer to the shipment was lost and the order could not be "
                f"read to check it ({exc.message}); the next sync checks the order's "
                "fulfillments before sending it again.",
                detail=exc.detail,
            ) from exc
        log.info(
            "Ship %s for order %s: answer lost; found in fulfillments: %s", ref, order_id, found
        )
        return found

    try:
        result = client.ship_order(order_id, ship_value(shipment, dc), verify=arrived)
    except AuthError:
        raise
    except (RetriesExhausted, RateLimited, ShipOutcomeUnknown) as exc:
        return RecordOutcome(ref, Outcome.FAILED, exc.message), True
    except ChannelError as exc:
        return RecordOutcome(ref, Outcome.FAILED, exc.message), False
    if result.ok:
        message = (
            "ChannelAdvisor's answer was lost, but the order's fulfillments show the shipment."
            if result.confirmed
            else "Sent to ChannelAdvisor."
        )
        return RecordOutcome(ref, Outcome.OK, message), False
    if result.status == 400:
        reason = error_message(result.body) or "no reason given"
        return (
            RecordOutcome(
                ref,
                Outcome.FAILED,
                f"ChannelAdvisor refused the shipment: {reason}",
            ),
            False,
        )
    if result.status == 404:
        return RecordOutcome(ref, Outcome.FAILED, f"ChannelAdvisor has no order {order_id}."), False
    return RecordOutcome(ref, Outcome.FAILED, result.message), False
