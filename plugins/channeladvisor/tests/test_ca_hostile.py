"""Hostile ChannelAdvisor answers (issue 11): foreign next links and redirects are never
followed, and answers the hub cannot read stop it with a message saying what came back.

No request may leave the configured base URL (``https://ca.test``): requests-mock refuses any
unregistered URL, and each test also checks the request history.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hub_channeladvisor import plugin
from hub_channeladvisor.client import answers
from hub_channeladvisor.client.answers import ForeignUrl, MalformedAnswer
from hub_channeladvisor.client.paging import NextLinkPaginator
from hub_core.channel import CatalogItem, ListingStatus
from hub_core.errors import ChannelError

EVIL = "https://evil.test"
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
)


def order(order_id: Any, **fields: Any) -> dict[str, Any]:
    return {
        "ID": order_id,
        "ProfileID": 12345678,
        "Items": [{"ID": 10, "Sku": "A", "Quantity": 1, "UnitPrice": 1.5}],
        "Fulfillments": [],
        **fields,
    }


def all_sent_to_base(ca: Any, h: Any) -> bool:
    return all(r.url.startswith(h.BASE + "/") for r in ca.m.request_history)


def get_orders(conn: Any) -> list[Any]:
    return list(plugin.hub_get_orders(connection=conn(), days=7))


@pytest.mark.parametrize(
    ("link", "named"),
    [
        (f"{EVIL}/v1/Orders?$skip=20", "evil.test over https"),
        ("http://ca.test/v1/Orders?$skip=20", "ca.test over http"),
        ("https://ca.test:8443/v1/Orders?$skip=20", "ca.test:8443"),
        ("//evil.test/v1/Orders", "evil.test"),
    ],
)
def test_a_foreign_next_link_is_never_followed(ca, conn, h, link: str, named: str) -> None:
    ca.get("Orders", {"json": {"value": [order(1)], "@odata.nextLink": link}})
    orders = plugin.hub_get_orders(connection=conn(), days=7)
    assert next(orders).channel_order_id == "1"  # the page read before is handed over
    with pytest.raises(ForeignUrl) as caught:
        next(orders)
    assert named in caught.value.message and "did not follow" in caught.value.message
    assert len(ca.m.request_history) == 1 and all_sent_to_base(ca, h)


def test_paginator_rules() -> None:
    paginator = NextLinkPaginator("https://ca.test/v1/Products?$top=5")
    paginator.advance({"value": [], "@odata.nextLink": "https://ca.test/v1/Products?$skip=5"})
    assert paginator.current_url == "https://ca.test/v1/Products?$skip=5"
    # A relative link is read against the current page.
    paginator.advance({"value": [], "@odata.nextLink": "Products?$skip=10"})
    assert paginator.current_url == "https://ca.test/v1/Products?$skip=10"
    # Host names compare without case.
    paginator.advance({"value": [], "@odata.nextLink": "https://CA.test/v1/Products?$skip=15"})
    assert paginator.current_url == "https://CA.test/v1/Products?$skip=15"
    with pytest.raises(ForeignUrl, match="internal:8080"):
        paginator.advance({"value": [], "@odata.nextLink": "http://internal:8080/v1/Products"})
    with pytest.raises(MalformedAnswer, match="not a URL"):
        paginator.advance({"value": [], "@odata.nextLink": {"href": "x"}})
    paginator.advance({"value": [], "@odata.nextLink": "https://ca.test/v1/Products?$top=5"})
    assert paginator.finished and paginator.repeated == "https://ca.test/v1/Products?$top=5"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_never_followed(ca, conn, h, status: int) -> None:
    ca.get("Orders", {"status_code": status, "headers": {"Location": f"{EVIL}/v1/Orders"}})
    with pytest.raises(ForeignUrl, match=rf"redirect \(HTTP {status}\) to evil\.test"):
        get_orders(conn)
    assert len(ca.m.request_history) == 1 and all_sent_to_base(ca, h)


def test_a_redirect_on_the_same_host_is_not_followed_either(ca, conn, h) -> None:
    ca.get("Orders", {"status_code": 302, "headers": {"Location": "/login"}})
    with pytest.raises(MalformedAnswer, match=r"redirect .* to /login"):
        get_orders(conn)
    assert len(ca.m.request_history) == 1


def test_a_redirect_of_the_token_call_keeps_the_secrets_home(ca, conn, h) -> None:
    ca.token({"status_code": 307, "headers": {"Location": f"{EVIL}/oauth2/token"}})
    with pytest.raises(ForeignUrl, match=r"evil\.test"):
        get_orders(lambda: conn(expires_at=0.0))
    assert [r.url for r in ca.m.request_history] == [h.TOKEN_URL]


def test_a_redirect_inside_a_batch_write_is_not_followed(ca, conn, h) -> None:
    ca.m.post(f"{h.API}/$batch", status_code=302, headers={"Location": f"{EVIL}/v1/$batch"})
    items = [CatalogItem(f"S{i}", "t", 1, Decimal(1)) for i in range(3)]
    with pytest.raises(ForeignUrl, match=r"evil\.test"):
        plugin.hub_link_listings(connection=conn(), items=items)
    assert all_sent_to_base(ca, h)


def test_an_html_error_page_is_named_by_its_title(ca, conn, h, waits) -> None:
    ca.get("Orders", *[{"status_code": 502, "text": HTML_502}] * 5)
    with pytest.raises(ChannelError) as caught:
        get_orders(conn)
    message = caught.value.message
    assert "an HTML page ('502 Bad Gateway')" in message and "<html>" not in message
    assert "gave up after 5 attempts" in message


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"text": HTML_502}, "an HTML page ('502 Bad Gateway')"),
        ({"text": '{"value": [{"ID": 1'}, "text that is not JSON"),
        ({"json": [1, 2]}, "JSON a list"),
        ({"json": {"value": "none"}}, "without a readable 'value' list"),
        ({"json": {"value": [1, 2]}}, "without a readable 'value' list"),
        ({"json": {"value": [order("abc")]}}, "whose ID is 'abc'"),
        ({"json": {"value": [order(None)]}}, "whose ID is None"),
        ({"json": {"value": [order(-4)]}}, "whose ID is -4"),
        ({"json": {"value": [order(True)]}}, "whose ID is True"),
        ({"json": {"value": [order(1, Items="many")]}}, "not a list of objects"),
        (
            {"json": {"value": [order(1, Items=[{"ID": 1, "Sku": "A", "Quantity": "x"}])]}},
            "quantity must be a whole number",
        ),
        (
            {"json": {"value": [order(1, Items=[{"ID": 1, "Sku": "A", "Quantity": 1e20}])]}},
            "quantity must be from 0",
        ),
        (
            {"json": {"value": [order(1, Items=[{"ID": 1, "Quantity": 1}])]}},
            "without a SKU",
        ),
        (
            {"json": {"value": [order(1, Items=[{"ID": "x", "Sku": "A", "Quantity": 1}])]}},
            "an item of order 1 whose ID is 'x'",
        ),
    ],
)
def test_unreadable_order_answers_stop_get_orders(ca, conn, h, answer, words: str) -> None:
    ca.get("Orders", answer)
    # An order whose items look capped is read again by ID: it comes back as odd.
    ca.m.get(f"{h.API}/Orders(1)", json=order(1, Items="many"))
    with pytest.raises(MalformedAnswer) as caught:
        get_orders(conn)
    assert words in caught.value.message, caught.value.message


def test_odd_but_harmless_fields_are_tolerated(ca, conn, h) -> None:
    items = [{"ID": 10, "Sku": "A", "Quantity": "3", "UnitPrice": "NaN", "Title": {"x": 1}}]
    page = {
        "value": [order("7", Items=items, TotalPrice=[1], CreatedDateUtc=12)],
        "@odata.count": "many",
    }
    ca.get("Orders", {"json": page})
    [got] = get_orders(conn)
    line = got.lines[0]
    assert (got.channel_order_id, line.quantity, line.unit_price, line.title) == (
        "7",
        3,
        None,
        None,
    )
    assert got.created_at is None


def test_unreadable_lookup_answers_leave_the_sku_unlinked(ca, conn, h) -> None:
    def handler(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        replies = {
            "A": {"status": 200, "body": {"value": [{"ID": "x1", "Sku": "A"}]}},
            "B": {"status": 200, "body": "<html>oops</html>"},
            "C": {"status": 200, "body": {"value": [{"ID": 3, "Sku": 3}]}},
            "D": {"status": 200, "body": {"value": [{"ID": 4, "Sku": "D"}]}},
        }
        return [replies[h.query(p["url"])["$filter"].split("'")[1]] for p in parts]

    ca.batch(handler)
    results = plugin.hub_link_listings(
        connection=conn(), items=[CatalogItem(s, "t", 1, Decimal(1)) for s in "ABCD"]
    )
    by_sku = {r.sku: r for r in results}
    assert by_sku["D"].status is ListingStatus.LINKED and by_sku["D"].channel_product_id == "4"
    for sku, words in (("A", "whose ID is 'x1'"), ("B", "an HTML page"), ("C", "text SKU")):
        assert by_sku[sku].status is ListingStatus.UNLINKED
        assert words in by_sku[sku].message, by_sku[sku].message


def test_a_batch_part_without_a_readable_status_is_retried_then_failed(ca, conn, h, waits) -> None:
    ca.batch(lambda parts: [{"status": "OK", "body": {"value": []}} for _ in parts])
    results = plugin.hub_link_listings(
        connection=conn(), items=[CatalogItem(s, "t", 1, Decimal(1)) for s in "AB"]
    )
    assert [r.status for r in results] == [ListingStatus.UNLINKED] * 2
    assert "no readable status" in results[0].message
    assert len(ca.batches) == 5  # the policy's attempts, then it gives up


def test_an_enormous_answer_is_not_read(ca, conn, h, monkeypatch) -> None:
    monkeypatch.setattr(answers, "MAX_ANSWER_BYTES", 1000)
    ca.get("Orders", {"text": "x" * 5000})
    with pytest.raises(MalformedAnswer, match="larger than 1,000 bytes"):
        get_orders(conn)
    ca.get("Orders", {"text": "{}", "headers": {"Content-Length": "99999"}})
    with pytest.raises(MalformedAnswer, match="larger than 1,000 bytes"):
        get_orders(conn)


def test_a_page_of_too_many_rows_is_refused(ca, conn, h) -> None:
    ca.get("Orders", {"json": {"value": [{}] * (answers.MAX_PAGE_ROWS + 1)}})
    with pytest.raises(MalformedAnswer, match="a page of 10,001 rows"):
        get_orders(conn)


def test_explain_refuses_an_order_without_a_readable_id(ca, conn, h) -> None:
    ca.m.get(f"{h.API}/Orders(5)", json=order("five", ProfileID="12345678"))
    with pytest.raises(MalformedAnswer, match="whose ID is 'five'"):
        plugin.hub_explain_order(connection=conn(), ref="5", days=7)
