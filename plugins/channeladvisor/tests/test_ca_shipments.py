"""Sync orders: the Ship action, sent once per shipment even when an answer is lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from hub_channeladvisor import plugin
from hub_core.channel import Outcome, ShipmentLine, ShipmentToSend

SHIPPED = datetime(2024, 5, 4, 15, 2, 0, tzinfo=UTC)


def shipment(
    ref: str = "HUB-SHP-000123",
    order: str = "4445862222",
    lines: tuple[ShipmentLine, ...] = (ShipmentLine("91234501", "AL-1", 1),),
    complete: bool = False,
) -> ShipmentToSend:
    return ShipmentToSend(
        shipment_id=ref,
        channel_order_id=order,
        tracking="1Z999AA10123456784",
        carrier="UPS",
        shipping_class="Ground",
        shipped_at=SHIPPED,
        lines=lines,
        complete=complete,
    )


def order_with(*seller_ids: str | None) -> dict[str, Any]:
    return {
        "json": {
            "ID": 4445862222,
            "Items": [],
            "Fulfillments": [
                {"ID": 10 + n, "SellerFulfillmentID": s} for n, s in enumerate(seller_ids)
            ],
        }
    }


def sync(conn: Any, *shipments: ShipmentToSend, **kw: Any) -> Any:
    return plugin.hub_sync_orders(connection=conn(**kw), shipments=list(shipments))


def calls(ca: Any) -> list[str]:
    return [f"{r.method} {r.path.rsplit('/', 1)[1]}" for r in ca.api_sent()]


def fulfillment(fid: int, dc: int | None, *lines: int, status: str = "NoChange") -> dict:
    """A fulfillment of distribution center ``dc`` holding the order items ``lines``."""
    return {
        "ID": fid,
        "DistributionCenterID": dc,
        "DeliveryStatus": status,
        "SellerFulfillmentID": None,
        "Items": [{"OrderItemID": line, "Quantity": 1} for line in lines],
    }


def order_in(*fulfillments: dict, rollup: str = "SellerManaged", **fields: Any) -> dict:
    items = [{"ID": 91234501, "Sku": "AL-1"}, {"ID": 91234502, "Sku": "AL-2"}]
    body = {
        "ID": 4445862222,
        "ShippingStatus": "Unshipped",
        "CheckoutStatus": "Completed",
        "DistributionCenterTypeRollup": rollup,
        "Items": items,
        "Fulfillments": list(fulfillments),
        **fields,
    }
    return {"json": body}


def test_ship_body_for_a_partial_shipment(ca, conn, h) -> None:
    # The shipped line waits in a fulfillment of distribution center 1: that is the DC sent,
    # whatever the connection's quantity setting says (4 would move the fulfillment).
    ca.get("Orders(4445862222)", order_in(fulfillment(11, 1, 91234501)))
    ship = ca.post("Orders(4445862222)/Ship", {"status_code": 204})
    (outcome,) = sync(conn, shipment(), settings={"distribution_center_id": 4})
    assert (outcome.ref, outcome.outcome, outcome.message) == (
        "HUB-SHP-000123",
        Outcome.OK,
        "Sent to ChannelAdvisor.",
    )
    request = ship.last_request
    assert request.url == f"{h.API}/Orders(4445862222)/Ship"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "Value": {
            "ShippedDateUtc": "2024-05-04T15:02:00Z",
            "TrackingNumber": "1Z999AA10123456784",
            "ShippingCarrier": "UPS",
            "ShippingClass": "Ground",
            "DeliveryStatus": "Complete",
            "SellerFulfillmentID": "HUB-SHP-000123",
            "DistributionCenterID": 1,
            "Items": [{"OrderItemID": 91234501, "Quantity": 1}],
        }
    }
    # The order's fulfillments are read first (a crash after an earlier send would show there).
    assert calls(ca) == ["GET orders(4445862222)", "POST ship"]


@pytest.mark.parametrize(
    ("fulfillments", "lines", "center"),
    [
        pytest.param([fulfillment(11, 0, 91234501)], ("91234501",), 0, id="dc-0"),
        pytest.param(
            [fulfillment(11, 1, 91234502), fulfillment(12, 2, 91234501)],
            ("91234502",),
            1,
            id="the-line's-own-dc",
        ),
        pytest.param([fulfillment(11, 1, 91234501, 91234502)], (), 1, id="whole-order-one-dc"),
        pytest.param(
            [fulfillment(11, 0, 91234501), fulfillment(12, 1, 91234502)],
            ("91234501", "91234502"),
            None,
            id="lines-in-two-dcs",
        ),
        pytest.param([fulfillment(11, 0, 91234502)], ("91234501",), None, id="line-in-none"),
        pytest.param(
            [fulfillment(11, 0, 91234501, status="Complete"), fulfillment(12, 1, 91234501)],
            ("91234501",),
            1,
            id="shipped-fulfillments-do-not-count",
        ),
    ],
)
def test_the_distribution_center_is_the_one_holding_the_lines(
    ca, conn, fulfillments, lines, center
) -> None:
    ca.get("Orders(4445862222)", order_in(*fulfillments))
    ship = ca.post("Orders(4445862222)/Ship", {"status_code": 204})
    shipped = tuple(ShipmentLine(line, "AL", 1) for line in lines)
    (outcome,) = sync(conn, shipment(lines=shipped), settings={"distribution_center_id": 7})
    assert outcome.outcome is Outcome.OK
    value = json.loads(ship.last_request.body)["Value"]
    if center is None:
        assert "DistributionCenterID" not in value
    else:
        assert value["DistributionCenterID"] == center


@pytest.mark.parametrize(
    "status",
    [
        pytest.param({"ShippingStatus": "Canceled"}, id="shipping-status"),
        pytest.param({"CheckoutStatus": "Canceled"}, id="checkout-status"),
    ],
)
def test_a_cancelled_order_is_skipped_with_the_hint_and_never_shipped(ca, conn, status) -> None:
    ca.get("Orders(4445862222)", order_in(fulfillment(11, 0, 91234501), **status))
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.SKIPPED
    assert outcome.order_status == "cancelled"
    assert outcome.message.startswith("Not sent: order 4445862222 was cancelled in ChannelAdvisor")
    assert calls(ca) == ["GET orders(4445862222)"]


def test_lines_the_marketplace_fulfills_are_refused_on_a_mixed_order(ca, conn) -> None:
    ca.get(
        "Orders(4445862222)",
        order_in(fulfillment(11, 0, 91234501), fulfillment(12, 2, 91234502), rollup="Mixed"),
    )
    centers = ca.get(
        "DistributionCenters",
        {
            "json": {
                "value": [
                    {"ID": 0, "Name": "Main", "IsExternallyManaged": False},
                    {"ID": 2, "Name": "Amazon FBA US", "IsExternallyManaged": True},
                ]
            }
        },
    )
    ship = ca.post("Orders(4445862222)/Ship", {"status_code": 204})
    refused, own = sync(
        conn,
        shipment("S-FBA", lines=(ShipmentLine("91234502", "AL-2", 1),)),
        shipment("S-OWN", lines=(ShipmentLine("91234501", "AL-1", 1),)),
    )
    assert refused.outcome is Outcome.FAILED
    assert refused.message == (
        "Not sent: AL-2 (OrderItemID 91234502, distribution center 2 Amazon FBA US) of order "
        "4445862222 are fulfilled by the marketplace from an externally managed distribution "
        "center, which the hub cannot ship from. Cancel this shipment and record one without "
        "those lines."
    )
    assert own.outcome is Outcome.OK
    assert json.loads(ship.last_request.body)["Value"]["DistributionCenterID"] == 0
    # One Ship (the seller's line), and the account's centers read once for both.
    assert ship.call_count == 1 and centers.call_count == 1


def test_an_order_the_marketplace_fulfills_is_never_shipped(ca, conn) -> None:
    ca.get("Orders(4445862222)", order_in(fulfillment(11, 2, 91234501), rollup="ExternallyManaged"))
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.FAILED
    assert "fulfilled by the marketplace" in outcome.message
    assert ca.sent("POST") == [] and ca.sent("GET", "DistributionCenters") == []


def test_items_are_sent_for_a_complete_shipment_and_left_out_only_without_lines(ca, conn) -> None:
    ca.get("Orders(4445862222)", order_with(None), order_with(None))
    ship = ca.post("Orders(4445862222)/Ship", {"status_code": 204}, {"status_code": 204})
    sync(conn, shipment(complete=True))
    assert "Items" in json.loads(ship.last_request.body)["Value"]
    sync(conn, shipment(complete=True, lines=()))
    assert "Items" not in json.loads(ship.last_request.body)["Value"]


def test_a_lost_ship_response_is_checked_and_not_sent_twice(ca, conn) -> None:
    ca.get("Orders(4445862222)", order_with(None), order_with(None, "HUB-SHP-000123"))
    ship = ca.post("Orders(4445862222)/Ship", {"exc": requests.exceptions.ReadTimeout("lost")})
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.OK
    assert outcome.message == (
        "ChannelAdvisor's answer was lost, but the order's fulfillments show the shipment."
    )
    assert ship.call_count == 1
    assert calls(ca) == ["GET orders(4445862222)", "POST ship", "GET orders(4445862222)"]


def test_a_server_error_on_ship_is_checked_before_sending_again(ca, conn, waits) -> None:
    ca.get("Orders(4445862222)", order_with(None), order_with(None))
    ship = ca.post("Orders(4445862222)/Ship", {"status_code": 502}, {"status_code": 204})
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.OK and ship.call_count == 2
    assert calls(ca) == [
        "GET orders(4445862222)",
        "POST ship",
        "GET orders(4445862222)",
        "POST ship",
    ]
    assert len(waits) == 1


def test_a_throttled_ship_is_sent_again_without_checking(ca, conn) -> None:
    ca.get("Orders(4445862222)", order_with(None))
    ship = ca.post(
        "Orders(4445862222)/Ship",
        {"status_code": 429, "headers": {"Retry-After": "1"}},
        {"status_code": 204},
    )
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.OK and ship.call_count == 2
    assert calls(ca) == ["GET orders(4445862222)", "POST ship", "POST ship"]


def test_a_refused_shipment_keeps_channeladvisors_message(ca, conn) -> None:
    ca.get("Orders(4445862222)", order_with(None))
    message = "The carrier/class combination UPS/Teleport is not valid for this account"
    ship = ca.post(
        "Orders(4445862222)/Ship",
        {"status_code": 400, "json": {"error": {"code": "", "message": message}}},
    )
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message == f"ChannelAdvisor refused the shipment: {message}"
    assert ship.call_count == 1


def test_a_shipment_already_in_channeladvisor_is_not_sent_again(ca, conn) -> None:
    ca.get("Orders(4445862222)", order_with("HUB-SHP-000123"))
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.OK
    assert outcome.message == "Already in ChannelAdvisor (sent before); not sent again."
    assert ca.sent("POST") == []


def test_several_shipments_are_checked_in_one_batch(ca, conn, h) -> None:
    ca.batch(
        lambda parts: [
            {"status": 200, "body": {"ID": 1, "Fulfillments": [{"SellerFulfillmentID": "S-1"}]}},
            {"status": 404, "body": {"error": {"message": "no order"}}},
            {"status": 200, "body": {"ID": 3, "Fulfillments": []}},
        ]
    )
    ship = ca.post("Orders(3)/Ship", {"status_code": 204}, {"status_code": 204})
    outcomes = sync(
        conn,
        shipment("S-1", "1"),
        shipment("S-2", "2"),
        shipment("S-3", "3"),
        shipment("S-4", "3"),
        shipment("S-5", "not-an-id"),
    )
    assert [(o.ref, o.outcome) for o in outcomes] == [
        ("S-1", Outcome.OK),
        ("S-2", Outcome.FAILED),
        ("S-3", Outcome.OK),
        ("S-4", Outcome.OK),
        ("S-5", Outcome.FAILED),
    ]
    assert outcomes[1].message == "ChannelAdvisor has no order 2."
    assert outcomes[4].message == "'not-an-id' is not a ChannelAdvisor order ID."
    (batch,) = ca.batches
    assert [p["url"] for p in batch] == [
        f"{h.API}/Orders({n})?$expand=Items,Fulfillments($expand%3DItems)" for n in (1, 2, 3)
    ]
    assert [json.loads(r.body)["Value"]["SellerFulfillmentID"] for r in ship.request_history] == [
        "S-3",
        "S-4",
    ]


def test_a_shipment_is_not_sent_when_its_order_cannot_be_checked(ca, conn, waits) -> None:
    ca.get("Orders(4445862222)", {"status_code": 503})
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message.startswith("Not sent: could not read the order's fulfillments")
    assert ca.sent("POST") == []


def test_when_channeladvisor_stops_answering_the_rest_waits_for_the_next_sync(
    ca, conn, waits
) -> None:
    ca.batch(lambda parts: [{"status": 200, "body": {"Fulfillments": []}}] * len(parts))
    for n in (1, 2, 3):
        ca.get(f"Orders({n})", {"json": {"Fulfillments": []}})
        ca.post(f"Orders({n})/Ship", {"status_code": 503})
    outcomes = sync(conn, shipment("S-1", "1"), shipment("S-2", "2"), shipment("S-3", "3"))
    assert [o.outcome for o in outcomes] == [Outcome.FAILED] * 3
    assert (
        outcomes[2].message
        == "Not sent: ChannelAdvisor is not answering; it is sent on the next sync."
    )
    assert ca.sent("POST", "Orders(3)") == []


def test_a_lost_answer_that_cannot_be_checked_is_not_sent_again(ca, conn, waits) -> None:
    ca.get("Orders(4445862222)", order_with(None), {"status_code": 503})
    ship = ca.post("Orders(4445862222)/Ship", {"exc": requests.exceptions.ConnectionError("reset")})
    (outcome,) = sync(conn, shipment())
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message.startswith(
        "ChannelAdvisor's answer to the shipment was lost and the order could not be read"
    )
    assert ship.call_count == 1
