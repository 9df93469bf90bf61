"""Get orders (and mark them exported once the hub has stored them).

The query (design §6, reference §4.4)::

    GET /v1/Orders?exported=false
        &$filter=ProfileID eq N and CreatedDateUtc ge <now - days>
                 and (CheckoutStatus eq 'A' or ...) and (PaymentStatus eq ...)
                 and (ShippingStatus eq ...)
        &$expand=Items,Fulfillments&$count=true

Pages are followed through ``@odata.nextLink`` and orders are yielded as they arrive, so the
core stores and exports them page by page. Exporting shrinks the ``exported=false`` list while
it is being paged, and the ``$skip`` inside the next links then jumps over orders nobody has
seen; so when a pass over the pages listed fewer orders than ``@odata.count`` announced, the
query is read again from the start, skipping the orders already yielded, until a pass brings
nothing new (without a count, an order skipped that way is simply found by the next run).
An order listing 20 items (the cap of expanded collections in a list answer), or carrying
``Items@odata.nextLink``, is read again by ID to get every line.

Orders fulfilled by the marketplace (``DistributionCenterTypeRollup`` ``ExternallyManaged``,
e.g. Amazon FBA) are not the merchant's to ship: the filter leaves them out (and a listed one
is dropped all the same).

Cancellations (design §6): an order cancelled in ChannelAdvisor after the hub imported it is
found by one more query per run, of this profile's orders this application has exported
(the hub exports exactly the orders it stored) whose ``ShippingStatus`` became ``Canceled``
within the window::

    GET /v1/Orders?exported=true
        &$filter=ProfileID eq N and ShippingStatus eq 'Canceled'
                 and ShippingDateUtc ge <now - days>
        &$expand=…

``ShippingDateUtc`` is the time of the last change of the shipping status (reference §4.1).
Those orders are yielded with ``cancelled=True`` after the new ones; the core marks the ones
it holds ``cancelled``. Cost: one request per run, plus one per further page when more
cancelled orders than a page holds changed within the window.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from hub_channeladvisor.client.answers import (
    MalformedAnswer,
    collection,
    entity_id,
    optional_count,
    whole_number,
)
from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.client.session import odata_string
from hub_channeladvisor.schemas import STATUS_SETTINGS, split_list
from hub_core.channel import ChannelOrder, ChannelOrderLine, Outcome, RecordOutcome
from hub_core.errors import AuthError, ChannelError

log = logging.getLogger(__name__)

#: ChannelAdvisor lists at most this many expanded items per order in a list answer.
ITEMS_CAP = 20
#: Amounts at or above this are not read from an order (the hub's money column's limit).
MONEY_LIMIT = Decimal(10) ** 10
#: Passes over the query at most (each pass after the first only when orders were skipped).
MAX_PASSES = 10

_ADDRESS_FIELDS = (
    "Title",
    "FirstName",
    "LastName",
    "Suffix",
    "CompanyName",
    "CompanyJobTitle",
    "DaytimePhone",
    "EveningPhone",
    "AddressLine1",
    "AddressLine2",
    "City",
    "StateOrProvince",
    "StateOrProvinceName",
    "PostalCode",
    "Country",
)
_TOTALS = {
    "total": "TotalPrice",
    "tax": "TotalTaxPrice",
    "shipping": "TotalShippingPrice",
    "shipping_tax": "TotalShippingTaxPrice",
    "insurance": "TotalInsurancePrice",
    "gift_option": "TotalGiftOptionPrice",
    "gift_option_tax": "TotalGiftOptionTaxPrice",
    "additional_cost_or_discount": "AdditionalCostOrDiscount",
    "promotion_amount": "PromotionAmount",
}


def odata_datetime(moment: datetime) -> str:
    """A date literal for ``$filter``: ``yyyy-MM-ddTHH:mm:ssZ`` (UTC, unquoted)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_clause(prop: str, values: Sequence[str]) -> str:
    """``(Prop eq 'A' or Prop eq 'B')``."""
    return "(" + " or ".join(f"{prop} eq {odata_string(v)}" for v in values) + ")"


#: ``DistributionCenterTypeRollup`` of an order the marketplace fulfills (design §6).
EXTERNALLY_MANAGED = "ExternallyManaged"
#: The status value of a cancelled order.
CANCELED = "Canceled"


def order_filter(
    profile_id: int, settings: Mapping[str, Any], days: int, now: datetime | None = None
) -> str:
    """The ``$filter`` of get orders: profile, age, the three status settings, and no order
    the marketplace fulfills."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    clauses = [f"ProfileID eq {profile_id}", f"CreatedDateUtc ge {odata_datetime(since)}"]
    for setting, (prop, _) in STATUS_SETTINGS.items():
        clauses.append(status_clause(prop, split_list(str(settings[setting]))))
    clauses.append(f"DistributionCenterTypeRollup ne {odata_string(EXTERNALLY_MANAGED)}")
    return " and ".join(clauses)


def cancellations_filter(profile_id: int, days: int, now: datetime | None = None) -> str:
    """The ``$filter`` of the cancellation check: this profile's orders cancelled lately."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    return (
        f"ProfileID eq {profile_id} and ShippingStatus eq {odata_string(CANCELED)} "
        f"and ShippingDateUtc ge {odata_datetime(since)}"
    )


def is_cancelled(order: Mapping[str, Any]) -> bool:
    """Whether ChannelAdvisor has cancelled the order (shipping or checkout status)."""
    return CANCELED in (order.get("ShippingStatus"), order.get("CheckoutStatus"))


def is_externally_managed(order: Mapping[str, Any]) -> bool:
    """Whether the marketplace fulfills the whole order (nothing for the hub to ship)."""
    return order.get("DistributionCenterTypeRollup") == EXTERNALLY_MANAGED


def parse_datetime(value: Any) -> datetime | None:
    """A ChannelAdvisor date (UTC, any number of fraction digits) as an aware datetime."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _join(carrier: Any, shipping_class: Any) -> str:
    carrier = str(carrier or "").strip()
    shipping_class = str(shipping_class or "").strip()
    if carrier and shipping_class:
        return f"{carrier} - {shipping_class}"
    return carrier or shipping_class


def shipping_text(order: Mapping[str, Any]) -> str:
    """What a shipping mapping must equal (design §6).

    ``"{ShippingCarrier} - {ShippingClass}"`` of the order's first fulfillment, else of
    ``RequestedShippingCarrier/Class``; one half alone when the other is empty.
    """
    fulfillments = [f for f in order.get("Fulfillments") or [] if isinstance(f, Mapping)]
    if fulfillments:
        first = min(fulfillments, key=lambda f: _sort_id(f.get("ID")))
        text = _join(first.get("ShippingCarrier"), first.get("ShippingClass"))
        if text:
            return text
    return _join(order.get("RequestedShippingCarrier"), order.get("RequestedShippingClass"))


def _sort_id(value: Any) -> tuple[int, str]:
    try:
        return (int(value), "")
    except (TypeError, ValueError):
        return (2**63, str(value))


def _decimal(value: Any) -> Decimal | None:
    # A price the hub's money column cannot hold (NaN, 1e400, a list) is left out, not stored.
    if value is None or value == "" or isinstance(value, bool | dict | list):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and abs(number) < MONEY_LIMIT else None


def _address(order: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {
        field: order.get(prefix + field) for field in _ADDRESS_FIELDS if order.get(prefix + field)
    }


def to_channel_order(order: Mapping[str, Any]) -> ChannelOrder:
    """A ChannelAdvisor order as the hub stores it; ``raw`` keeps the payload as received.

    :raises MalformedAnswer: the order's ID, an item's ID, SKU or quantity cannot be read
        (the hub stores no order it would have to guess at).
    """
    order_id = entity_id(order.get("ID"), "an order")
    items = order.get("Items") or []
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise MalformedAnswer(
            f"ChannelAdvisor sent order {order_id} with items that are not a list of objects."
        )
    lines = []
    for item in items:
        what = f"an item of order {order_id}"
        sku = item.get("Sku")
        if not isinstance(sku, str) or not sku.strip():
            raise MalformedAnswer(f"ChannelAdvisor sent {what} without a SKU (got {sku!r}).")
        lines.append(
            ChannelOrderLine(
                channel_line_id=str(entity_id(item.get("ID"), what)),
                sku=sku,
                quantity=whole_number(item.get("Quantity"), f"{what} ({sku})"),
                unit_price=_decimal(item.get("UnitPrice")),
                title=item.get("Title") if isinstance(item.get("Title"), str) else None,
            )
        )
    shipping = _address(order, "Shipping")
    # An empty billing address means "same as shipping" (reference §4.1).
    billing = _address(order, "Billing") or dict(shipping)
    addresses: dict[str, Any] = {"shipping": shipping, "billing": billing}
    if order.get("BuyerEmailAddress"):
        addresses["buyer_email"] = order["BuyerEmailAddress"]
    return ChannelOrder(
        channel_order_id=str(order_id),
        shipping_text=shipping_text(order),
        lines=lines,
        created_at=parse_datetime(order.get("CreatedDateUtc")),
        marketplace=order.get("SiteName"),
        marketplace_order_id=(str(order["SiteOrderID"]) if order.get("SiteOrderID") else None),
        currency=order.get("Currency"),
        totals={k: order.get(v) for k, v in _TOTALS.items() if order.get(v) is not None},
        addresses=addresses,
        cancelled=is_cancelled(order),
        raw=dict(order),
    )


def items_may_be_capped(order: Mapping[str, Any]) -> bool:
    """Whether a listed order may miss lines (20 listed, a nested next link, or none at all)."""
    items = order.get("Items")
    return (
        not isinstance(items, list)
        or len(items) >= ITEMS_CAP
        or bool(order.get("Items@odata.nextLink"))
    )


def iter_orders(client: ChannelAdvisorClient, days: int) -> Iterator[ChannelOrder]:
    """Yield the new orders of the connection, page by page (see the module docstring)."""
    url = client.orders_url(
        order_filter(client.profile_id, client.settings, days), exported=False, count=True
    )
    # Progress is the core's here: it advances as it stores each chunk of orders.
    seen: set[str] = set()
    try:
        for number in range(1, MAX_PASSES + 1):
            listed = fresh = pages = 0
            announced: int | None = None
            for page in client.pages(url):
                pages += 1
                if announced is None:
                    announced = optional_count(page.get("@odata.count"))
                for order in collection(page, "the order list"):
                    listed += 1
                    order_id = str(entity_id(order.get("ID"), "an order in the order list"))
                    if order_id in seen:
                        continue
                    seen.add(order_id)
                    if is_externally_managed(order):
                        continue
                    if items_may_be_capped(order):
                        full = client.get_order(order_id)
                        if full is None:
                            continue
                        order = full
                    fresh += 1
                    yield to_channel_order(order)
            # Read again only when orders were provably skipped; without a count, skipped
            # orders stay unexported and come with the next run.
            if pages <= 1 or fresh == 0 or announced is None or listed >= announced:
                break
            log.info("Pass %d listed %d of %s orders; reading again", number, listed, announced)
        yield from iter_cancellations(client, days, seen)
    finally:
        client.flush()


def iter_cancellations(
    client: ChannelAdvisorClient, days: int, seen: set[str] | None = None
) -> Iterator[ChannelOrder]:
    """Orders this application exported that were cancelled within the last ``days`` days.

    One paged query (see the module docstring); orders already in ``seen`` are left out.
    """
    seen = set() if seen is None else seen
    url = client.orders_url(cancellations_filter(client.profile_id, days), exported=True)
    for page in client.pages(url):
        for order in collection(page, "the cancelled orders"):
            order_id = str(entity_id(order.get("ID"), "a cancelled order"))
            if order_id in seen or not is_cancelled(order):
                continue
            seen.add(order_id)
            if items_may_be_capped(order):
                order = client.get_order(order_id) or order
            yield to_channel_order(order)


def acknowledge_orders(
    client: ChannelAdvisorClient, channel_order_ids: Sequence[str]
) -> list[RecordOutcome]:
    """``POST Orders(ID)/Export`` for each id, one call each (never batched).

    Exporting an exported order changes nothing, so a repeat is harmless. Up to the
    application's in-flight limit of calls run at once.
    """
    ids = list(channel_order_ids)
    if not ids:
        return []
    workers = max(1, min(len(ids), client.limiter.in_flight.limit))
    if workers == 1:
        return [_export(client, order_id) for order_id in ids]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda order_id: _export(client, order_id), ids))
    client.flush()
    return results


def _export(client: ChannelAdvisorClient, order_id: str) -> RecordOutcome:
    if not str(order_id).isdigit():
        return RecordOutcome(
            order_id, Outcome.FAILED, f"{order_id!r} is not a ChannelAdvisor order ID."
        )
    try:
        result = client.export_order(order_id)
    except AuthError:
        raise
    except ChannelError as exc:
        return RecordOutcome(order_id, Outcome.FAILED, exc.message)
    if result.ok:
        return RecordOutcome(order_id, Outcome.OK, "Marked exported in ChannelAdvisor.")
    if result.status == 404:
        return RecordOutcome(
            order_id, Outcome.FAILED, f"ChannelAdvisor has no order {order_id} any more."
        )
    return RecordOutcome(order_id, Outcome.FAILED, result.message)
