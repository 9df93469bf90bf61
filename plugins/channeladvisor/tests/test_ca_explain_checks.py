"""orders explain (the reasons an order is left out) and connections test (the checks)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import time_machine

from hub_channeladvisor import plugin
from hub_channeladvisor.explain import smallest_order_days

NOW = datetime(2024, 5, 20, 12, 0, 0, tzinfo=UTC)
ORDER = {
    "ID": 555,
    "ProfileID": 12345678,
    "SiteName": "eBay",
    "SiteOrderID": "12-34567-89012",
    "CreatedDateUtc": "2024-05-18T10:00:00Z",
    "CheckoutStatus": "Completed",
    "PaymentStatus": "Cleared",
    "ShippingStatus": "Unshipped",
    "RequestedShippingCarrier": "UPS",
    "RequestedShippingClass": "Ground",
    "Items": [{"ID": 1, "Sku": "A", "Quantity": 1, "UnitPrice": 2}],
    "Fulfillments": [],
}


def explain(conn: Any, ref: str, days: int = 7, **kw: Any) -> Any:
    with time_machine.travel(NOW, tick=False):
        return plugin.hub_explain_order(connection=conn(**kw), ref=ref, days=days)


def test_an_order_get_orders_would_return_has_no_reasons(ca, conn, h) -> None:
    ca.get("Orders(555)", {"json": ORDER})
    ca.get("Orders", {"json": {"value": []}})
    lookup = explain(conn, "555")
    assert lookup.reasons == []
    assert lookup.order.channel_order_id == "555"
    assert (
        lookup.facts["exported"] is False and lookup.facts["found_by"] == "ChannelAdvisor order ID"
    )
    exported_query = ca.sent("GET", "exported=true")[0]
    assert h.query(exported_query.url) == {
        "exported": "true",
        "$filter": "ID eq 555 and ProfileID eq 12345678",
    }


def test_every_reason_names_what_to_change(ca, conn) -> None:
    order = ORDER | {
        "PaymentStatus": "Failed",
        "ShippingStatus": "Shipped",
        "CreatedDateUtc": "2024-05-08T13:00:00Z",
    }
    ca.get("Orders(555)", {"json": order})
    ca.get("Orders", {"json": {"value": [{"ID": 555}]}})
    lookup = explain(conn, "555")
    assert lookup.reasons == [
        "PaymentStatus is Failed; add it to payment_statuses to import such orders "
        "(hub connections configure shop --set "
        "payment_statuses=Cleared,Submitted,Deposited,Failed).",
        "ShippingStatus is Shipped; add it to shipping_statuses to import such orders "
        "(hub connections configure shop --set "
        "shipping_statuses=Unshipped,PartiallyShipped,PendingShipment,Shipped).",
        "It was created 2024-05-08 13:00 UTC, more than order_days=7 days ago; order_days=12 "
        "would include it (hub connections configure shop --set order_days=12, or --days 12).",
        "It is already marked exported for this application id (the hub, or another "
        "integration using the same application, took it), and get orders only asks for "
        "orders not yet exported.",
    ]


def test_a_cancelled_order_is_explained_as_cancelled(ca, conn) -> None:
    ca.get("Orders(555)", {"json": ORDER | {"ShippingStatus": "Canceled"}})
    ca.get("Orders", {"json": {"value": [{"ID": 555}]}})
    lookup = explain(conn, "555")
    assert lookup.order.cancelled
    assert lookup.reasons[0] == (
        "It was cancelled in ChannelAdvisor (ShippingStatus Canceled, CheckoutStatus Completed): "
        "get orders leaves cancelled orders out, and an order the hub already holds is marked "
        "cancelled and never shipped."
    )
    # Adding Canceled to shipping_statuses is not offered as the fix.
    assert not any("shipping_statuses" in reason for reason in lookup.reasons)


def test_a_marketplace_fulfilled_order_is_explained(ca, conn) -> None:
    order = ORDER | {
        "DistributionCenterTypeRollup": "ExternallyManaged",
        "ShippingStatus": "ThirdPartyManaged",
    }
    ca.get("Orders(555)", {"json": order})
    ca.get("Orders", {"json": {"value": []}})
    lookup = explain(conn, "555")
    assert lookup.reasons == [
        "It is fulfilled by the marketplace (DistributionCenterTypeRollup ExternallyManaged, "
        "e.g. Amazon FBA): the hub never imports such orders, as there is nothing for the "
        "merchant to ship."
    ]


def test_marketplace_lines_of_a_mixed_order_and_bundle_lines_are_named(ca, conn) -> None:
    order = ORDER | {
        "DistributionCenterTypeRollup": "Mixed",
        "Items": [
            {"ID": 1, "Sku": "A", "Quantity": 1},
            {"ID": 2, "Sku": "KIT", "Quantity": 1, "IsBundle": True},
        ],
        "Fulfillments": [
            {"ID": 7, "DistributionCenterID": 0, "Items": [{"OrderItemID": 2, "Quantity": 1}]},
            {"ID": 8, "DistributionCenterID": 2, "Items": [{"OrderItemID": 1, "Quantity": 1}]},
        ],
    }
    ca.get("Orders(555)", {"json": order})
    ca.get("Orders", {"json": {"value": []}})
    centers = ca.get(
        "DistributionCenters",
        {"json": {"value": [{"ID": 0}, {"ID": 2, "Name": "FBA", "Type": "ExternallyManaged"}]}},
    )
    lookup = explain(conn, "555")
    assert lookup.reasons == []
    assert lookup.facts["marketplace_fulfilled_lines"] == ["A"]
    assert lookup.facts["bundle_lines"] == ["KIT"]
    assert lookup.notes == [lookup.facts["marketplace_note"], lookup.facts["bundle_note"]]
    assert "cannot ship them" in lookup.notes[0]
    assert "listing status unsupported" in lookup.notes[1]
    assert centers.call_count == 1


def test_found_by_marketplace_order_id_in_the_profile(ca, conn, h) -> None:
    ca.get("Orders", {"json": {"value": [ORDER]}}, {"json": {"value": []}})
    lookup = explain(conn, "12-34567-89012")
    assert lookup.facts["found_by"] == "marketplace order ID"
    first = ca.sent("GET")[0]
    assert h.query(first.url) == {
        "$filter": "SiteOrderID eq '12-34567-89012' and ProfileID eq 12345678",
        "$expand": "Items,Fulfillments($expand=Items)",
    }


def test_a_numeric_marketplace_id_falls_back_from_the_id(ca, conn) -> None:
    ca.get("Orders(98765)", {"status_code": 404, "json": {"error": {"message": "no"}}})
    ca.get("Orders", {"json": {"value": [ORDER]}}, {"json": {"value": []}})
    assert explain(conn, "98765").order.channel_order_id == "555"


def test_an_unknown_order(ca, conn) -> None:
    ca.get("Orders", {"json": {"value": []}})
    lookup = explain(conn, "nope's")
    assert lookup.order is None
    assert lookup.reasons == [
        'ChannelAdvisor has no order with ID or marketplace order ID "nope\'s" in profile 12345678.'
    ]


def test_an_order_of_another_profile(ca, conn) -> None:
    ca.get("Orders(555)", {"json": ORDER | {"ProfileID": 999}})
    lookup = explain(conn, "555")
    assert lookup.reasons == [
        "The order belongs to profile 999, not to this connection's profile 12345678; "
        "connect that profile to import it."
    ]


def test_smallest_order_days() -> None:
    now = datetime(2024, 5, 20, tzinfo=UTC)
    assert smallest_order_days(datetime(2024, 5, 13, tzinfo=UTC), now) == 7
    assert smallest_order_days(datetime(2024, 5, 12, 23, tzinfo=UTC), now) == 8


# -- connections test -----------------------------------------------------------------------

PROFILES = {
    "json": {
        "value": [{"ID": 12345678, "CompanyName": "Shoes Inc"}, {"ID": 5, "CompanyName": "Other"}]
    }
}
DCS = {
    "json": {
        "value": [
            {"ID": 0, "Name": "Main", "IsExternallyManaged": False, "IsDeleted": False},
            {"ID": 7, "Name": "FBA", "Type": "ExternallyManaged", "IsExternallyManaged": True},
            {"ID": 8, "Name": "Old", "IsDeleted": True},
        ]
    }
}


def checks(conn: Any, **kw: Any) -> list[tuple[str, bool, str]]:
    return [(c.name, c.ok, c.message) for c in plugin.hub_test_connection(connection=conn(**kw))]


def test_every_check_passes(ca, conn, h) -> None:
    token = ca.token()
    ca.get("Profiles", PROFILES)
    ca.get("DistributionCenters", DCS)
    with time_machine.travel(NOW, tick=False):
        result = checks(conn)
    assert result == [
        (
            "token",
            True,
            "ChannelAdvisor issued an access token (valid until 2024-05-20 13:00:00 UTC).",
        ),
        ("profile", True, "Profile 12345678 (Shoes Inc) is visible to these tokens."),
        ("distribution_center", True, "Distribution center 0 (Main) takes quantity updates."),
    ]
    assert token.call_count == 1
    assert [r.headers["Authorization"] for r in ca.api_sent()] == [f"Bearer {h.FRESH}"] * 2


def test_wrong_profile_and_unusable_distribution_centers(ca, conn) -> None:
    ca.token()
    ca.get("Profiles", PROFILES, PROFILES, PROFILES)
    ca.get("DistributionCenters", DCS, DCS, DCS)
    fix = "(hub connections configure shop --set distribution_center_id=ID)."
    result = checks(conn, config={"profile_id": 42}, settings={"distribution_center_id": 7})
    assert result[1] == (
        "profile",
        False,
        "Profile 42 is not visible to these tokens; they see: 12345678 (Shoes Inc), 5 (Other). "
        "Set the right one: hub connections configure shop --set profile_id=ID",
    )
    assert result[2] == (
        "distribution_center",
        False,
        "Distribution center 7 (FBA) is externally managed (its quantity is not yours to set). "
        f"Choose one of: 0 (Main) {fix}",
    )
    assert checks(conn, settings={"distribution_center_id": 8})[2][2].startswith(
        "Distribution center 8 (Old) is deleted."
    )
    assert checks(conn, settings={"distribution_center_id": 3})[2][2].startswith(
        "Distribution center 3 does not exist in this account."
    )


def test_a_refused_refresh_token_fails_the_token_check_and_skips_the_rest(ca, conn) -> None:
    ca.token({"status_code": 400, "text": "Bad Request"})
    connection = conn(expires_at=time.time() - 1)
    result = [(c.name, c.ok, c.message) for c in plugin.hub_test_connection(connection=connection)]
    assert result[0][1] is False
    assert "ChannelAdvisor refused the refresh token of connection 'shop'" in result[0][2]
    assert result[1:] == [
        ("profile", False, "Not checked: there is no working access token."),
        ("distribution_center", False, "Not checked: there is no working access token."),
    ]
    assert connection.health == "needs_reauth" and ca.api_sent() == []


def test_a_reconnected_connection_is_tested_and_marked_ok(ca, conn) -> None:
    ca.token()
    ca.get("Profiles", PROFILES)
    ca.get("DistributionCenters", DCS)
    connection = conn(health="needs_reauth")
    assert all(c.ok for c in plugin.hub_test_connection(connection=connection))
    assert connection.health == "ok"
    assert connection.recorder.health == [("ok", "The refresh token works again.")]
