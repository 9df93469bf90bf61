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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.client.batch import BatchPart
from hub_channeladvisor.client.outcomes import RetriesExhausted, error_message
from hub_channeladvisor.orders import odata_datetime
from hub_core.channel import Outcome, RecordOutcome, ShipmentToSend
from hub_core.crash import crash_point
from hub_core.errors import AuthError, ChannelError, RateLimited

log = logging.getLogger(__name__)

#: Consecutive shipments that ran out of retries before the rest are left for the next sync.
MAX_UNAVAILABLE = 2


class ShipOutcomeUnknown(ChannelError):
    """A Ship answer was lost and the order's fulfillments could not be read to check it."""


def ship_value(shipment: ShipmentToSend, distribution_center_id: int) -> dict[str, Any]:
    """The ``Value`` of the Ship action for one hub shipment."""
    value: dict[str, Any] = {
        "ShippedDateUtc": odata_datetime(shipment.shipped_at),
        "TrackingNumber": shipment.tracking,
        "ShippingCarrier": shipment.carrier,
        "ShippingClass": shipment.shipping_class,
        "DeliveryStatus": "Complete",
        "SellerFulfillmentID": shipment.shipment_id,
        "DistributionCenterID": int(distribution_center_id),
    }
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


def _existing(client: ChannelAdvisorClient, order_ids: Sequence[str]) -> dict[str, set[str] | str]:
    """Per order: the SellerFulfillmentIDs already in ChannelAdvisor, or why they are unknown."""
    known: dict[str, set[str] | str] = {}
    if len(order_ids) == 1:
        order_id = order_ids[0]
        try:
            order = client.get_order(order_id)
        except AuthError:
            raise
        except ChannelError as exc:
            known[order_id] = _unreadable(client.redact(exc.message))
        else:
            known[order_id] = (
                fulfillment_ids(order)
                if order is not None
                else f"ChannelAdvisor has no order {order_id}."
            )
        return known
    parts = [BatchPart("GET", client.order_url(order_id), key=order_id) for order_id in order_ids]
    for result in client.run_batch(parts):
        order_id = result.part.key
        if result.ok and isinstance(result.body, Mapping):
            known[order_id] = fulfillment_ids(result.body)
        elif result.status == 404:
            known[order_id] = f"ChannelAdvisor has no order {order_id}."
        else:
            known[order_id] = _unreadable(client.redact(result.message))
    return known


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
    known = _existing(client, order_ids) if order_ids else {}

    unavailable = 0
    dc = int(client.settings["distribution_center_id"])
    for index in sendable:
        shipment = shipments[index]
        ref = shipment.shipment_id
        state = known.get(shipment.channel_order_id, set())
        if unavailable >= MAX_UNAVAILABLE:
            results[index] = RecordOutcome(
                ref,
                Outcome.FAILED,
                "Not sent: ChannelAdvisor is not answering; it is sent on the next sync.",
            )
        elif isinstance(state, str):
            results[index] = RecordOutcome(ref, Outcome.FAILED, state)
        elif ref in state:
            results[index] = RecordOutcome(
                ref, Outcome.OK, "Already in ChannelAdvisor (sent before); not sent again."
            )
        else:
            outcome, transient = _ship(client, shipment, dc)
            crash_point("channeladvisor.shipped")
            results[index] = outcome
            unavailable = unavailable + 1 if transient else 0
            if outcome.outcome is Outcome.OK:
                state.add(ref)
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
    client: ChannelAdvisorClient, shipment: ShipmentToSend, dc: int
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
        return RecordOutcome(ref, Outcome.FAILED, client.redact(exc.message)), True
    except ChannelError as exc:
        return RecordOutcome(ref, Outcome.FAILED, client.redact(exc.message)), False
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
                client.redact(f"ChannelAdvisor refused the shipment: {reason}"),
            ),
            False,
        )
    if result.status == 404:
        return RecordOutcome(ref, Outcome.FAILED, f"ChannelAdvisor has no order {order_id}."), False
    return RecordOutcome(ref, Outcome.FAILED, client.redact(result.message)), False
