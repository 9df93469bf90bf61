"""The paginator: follow @odata.nextLink, stop on a repeated link (foreign links:
test_ca_hostile)."""

from __future__ import annotations

from typing import Any

from hub_channeladvisor import plugin


def order(order_id: int) -> dict[str, Any]:
    return {
        "ID": order_id,
        "ProfileID": 12345678,
        "Items": [{"ID": order_id * 10, "Sku": "A", "Quantity": 1, "UnitPrice": 1.5}],
        "Fulfillments": [],
    }


def test_paging_over_several_pages_follows_each_link(ca, conn, h) -> None:
    link2 = f"{h.API}/Orders?exported=false&$skip=20"
    link3 = f"{h.API}/Orders?exported=false&$skip=40"
    pages = [
        {"value": [order(1), order(2)], "@odata.nextLink": link2, "@odata.count": 5},
        {"value": [order(3), order(4)], "@odata.nextLink": link3},
        {"value": [order(5)]},
    ]
    ca.m.get(f"{h.API}/Orders", [{"json": p} for p in pages])
    ca.cancellations()
    got = [o.channel_order_id for o in plugin.hub_get_orders(connection=conn(), days=7)]
    assert got == ["1", "2", "3", "4", "5"]
    urls = [r.url for r in ca.sent("GET")]
    assert urls[1:3] == [link2, link3]
    assert "exported=true" in urls[3] and len(urls) == 4


def test_a_repeated_link_stops_paging(ca, conn, h) -> None:
    link2 = f"{h.API}/Orders?exported=false&$skip=20"
    pages = [
        {"value": [order(1)], "@odata.nextLink": link2},
        # Past the end, ChannelAdvisor has answered with the first page again.
        {"value": [order(2)], "@odata.nextLink": link2},
    ]
    ca.m.get(f"{h.API}/Orders", [{"json": p} for p in pages] + [{"status_code": 500}])
    ca.cancellations()
    got = [o.channel_order_id for o in plugin.hub_get_orders(connection=conn(), days=7)]
    assert got == ["1", "2"]
    assert len(ca.sent("GET", "exported=false")) == 2
