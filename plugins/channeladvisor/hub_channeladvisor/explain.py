"""Why was my order not imported? — look one order up and hold it against get orders' filters.

The order is read by ChannelAdvisor ID (``GET /v1/Orders(ID)?$expand=Items,Fulfillments``) or,
failing that, by marketplace order id (``$filter=SiteOrderID eq '…' and ProfileID eq N``).
Then each filter of get orders is checked, and each one that leaves the order out becomes a
reason that says what to change:

* a status not in the settings (names the setting and the value to add);
* created before the ``order_days`` window (names the smallest ``order_days`` that includes it);
* already exported for this application — the single-order GET ignores the export flag, so
  this asks ``GET /v1/Orders?exported=true&$filter=ID eq N and ProfileID eq P``;
* another profile than the connection's;
* cancelled in ChannelAdvisor (``ShippingStatus`` or ``CheckoutStatus`` ``Canceled``): said as
  such, not as a status to add to the settings;
* fulfilled by the marketplace (``DistributionCenterTypeRollup`` ``ExternallyManaged``): never
  imported. Of a ``Mixed`` order, the lines held in externally managed distribution centers
  (the hub cannot ship them) are named in ``notes`` (and ``facts``), as are bundle lines.

What the hub itself knows (imported, held for an unmapped shipping text) is added by the core.
"""

from __future__ import annotations

import math
import shlex
from datetime import UTC, datetime
from typing import Any

from hub_channeladvisor.client.answers import entity_id
from hub_channeladvisor.client.api import ChannelAdvisorClient, rows
from hub_channeladvisor.client.session import odata_string
from hub_channeladvisor.orders import (
    CANCELED,
    is_cancelled,
    is_externally_managed,
    items_may_be_capped,
    parse_datetime,
    shipping_text,
    to_channel_order,
)
from hub_channeladvisor.schemas import STATUS_SETTINGS, split_list
from hub_core.channel import OrderLookup


def find_order(
    client: ChannelAdvisorClient, ref: str
) -> tuple[dict[str, Any] | None, str, list[str]]:
    """The order ``ref`` names: (order or None, how it was found, every matching id)."""
    ref = ref.strip()
    if ref.isdigit():
        order = client.get_order(ref)
        if order is not None:
            return order, "ChannelAdvisor order ID", [str(order.get("ID"))]
    url = client.orders_url(
        f"SiteOrderID eq {odata_string(ref)} and {client.profile_clause}", exported=None
    )
    found = [row for page in client.pages(url) for row in rows(page)]
    if not found:
        return None, "", []
    order = found[0]
    if items_may_be_capped(order):
        order = client.get_order(str(order.get("ID"))) or order
    return order, "marketplace order ID", [str(row.get("ID")) for row in found]


def is_exported(client: ChannelAdvisorClient, order_id: str, profile_id: int) -> bool:
    """Whether this application has exported the order (only a list query shows it)."""
    url = client.orders_url(
        f"ID eq {int(order_id)} and ProfileID eq {profile_id}", exported=True, expand=False
    )
    return any(rows(page) for page in client.pages(url))


def smallest_order_days(created: datetime, now: datetime) -> int:
    """The smallest whole ``order_days`` whose window includes an order created at ``created``."""
    return max(1, math.ceil((now - created).total_seconds() / 86400))


def explain_order(
    client: ChannelAdvisorClient, ref: str, days: int, now: datetime | None = None
) -> OrderLookup:
    """Look the order up and say why get orders would leave it out (empty: it would not)."""
    now = now or datetime.now(UTC)
    name = shlex.quote(client.name)
    order, found_by, matches = find_order(client, ref)
    if order is None:
        return OrderLookup(
            None,
            [
                f"ChannelAdvisor has no order with ID or marketplace order ID {ref!r} in profile "
                f"{client.profile_id}."
            ],
            {"ref": ref, "profile_id": client.profile_id},
        )
    order_id = str(entity_id(order.get("ID"), "the order looked up"))
    reasons: list[str] = []
    facts: dict[str, Any] = {
        "channel_order_id": order_id,
        "found_by": found_by,
        "profile_id": order.get("ProfileID"),
        "marketplace": order.get("SiteName"),
        "marketplace_order_id": order.get("SiteOrderID"),
        "created_at": order.get("CreatedDateUtc"),
        "checkout_status": order.get("CheckoutStatus"),
        "payment_status": order.get("PaymentStatus"),
        "shipping_status": order.get("ShippingStatus"),
        "shipping_text": shipping_text(order),
    }
    if len(matches) > 1:
        facts["matching_orders"] = matches
        reasons_note = ", ".join(matches)
        facts["note"] = f"Several ChannelAdvisor orders carry this marketplace id: {reasons_note}."

    profile = order.get("ProfileID")
    # Compared as text: an ID of the wrong type must not stop the explanation.
    same_profile = profile is None or str(profile) == str(client.profile_id)
    if not same_profile:
        reasons.append(
            f"The order belongs to profile {profile}, not to this connection's profile "
            f"{client.profile_id}; connect that profile to import it."
        )

    cancelled = is_cancelled(order)
    external = is_externally_managed(order)
    if cancelled:
        reasons.append(
            "It was cancelled in ChannelAdvisor (ShippingStatus "
            f"{order.get('ShippingStatus')}, CheckoutStatus {order.get('CheckoutStatus')}): "
            "get orders leaves cancelled orders out, and an order the hub already holds is "
            "marked cancelled and never shipped."
        )
    if external:
        reasons.append(
            "It is fulfilled by the marketplace (DistributionCenterTypeRollup "
            "ExternallyManaged, e.g. Amazon FBA): the hub never imports such orders, as there "
            "is nothing for the merchant to ship."
        )
    for setting, (prop, _) in STATUS_SETTINGS.items():
        allowed = split_list(str(client.settings[setting]))
        value = order.get(prop)
        if (cancelled and value == CANCELED) or (external and value == "ThirdPartyManaged"):
            continue  # said above; adding it to the settings is not the fix
        if value not in allowed:
            wanted = ",".join([*allowed, str(value)])
            reasons.append(
                f"{prop} is {value}; add it to {setting} to import such orders "
                f"(hub connections configure {name} --set {setting}={wanted})."
            )

    created = parse_datetime(order.get("CreatedDateUtc"))
    if created is not None and (now - created).total_seconds() > days * 86400:
        need = smallest_order_days(created, now)
        reasons.append(
            f"It was created {created:%Y-%m-%d %H:%M} UTC, more than order_days={days} days "
            f"ago; order_days={need} would include it "
            f"(hub connections configure {name} --set order_days={need}, or --days {need})."
        )

    notes = _line_notes(client, order)
    facts.update(notes)
    if same_profile:
        exported = is_exported(client, order_id, client.profile_id)
        facts["exported"] = exported
        if exported:
            reasons.append(
                "It is already marked exported for this application id (the hub, or another "
                "integration using the same application, took it), and get orders only asks "
                "for orders not yet exported."
            )
    return OrderLookup(
        to_channel_order(order),
        reasons,
        facts,
        notes=[notes[k] for k in ("marketplace_note", "bundle_note") if k in notes],
    )


def _line_notes(client: ChannelAdvisorClient, order: dict[str, Any]) -> dict[str, Any]:
    """Lines the hub will not ship (marketplace-fulfilled) and bundle lines, as facts."""
    notes: dict[str, Any] = {}
    items = [i for i in order.get("Items") or [] if isinstance(i, dict)]
    bundles = [str(i.get("Sku")) for i in items if i.get("IsBundle")]
    if bundles:
        notes["bundle_lines"] = bundles
        notes["bundle_note"] = (
            f"Bundle line(s) {', '.join(bundles)}: ChannelAdvisor computes a bundle's quantity "
            "from its components, so the hub never links or syncs a bundle product "
            "(listing status unsupported)."
        )
    if order.get("DistributionCenterTypeRollup") != "Mixed":
        return notes
    external = client.externally_managed_centers()
    skus = {str(i.get("ID")): str(i.get("Sku")) for i in items}
    lines = sorted(
        {
            skus.get(str(fitem.get("OrderItemID")), str(fitem.get("OrderItemID")))
            for fulfillment in order.get("Fulfillments") or []
            if isinstance(fulfillment, dict)
            and _int(fulfillment.get("DistributionCenterID")) in external
            for fitem in fulfillment.get("Items") or []
            if isinstance(fitem, dict)
        }
    )
    if lines:
        notes["marketplace_fulfilled_lines"] = lines
        notes["marketplace_note"] = (
            f"Line(s) {', '.join(lines)} are fulfilled by the marketplace (an externally "
            "managed distribution center): the hub imports the order but cannot ship them; "
            "ship the other lines with --item SKU=QTY."
        )
    return notes


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
