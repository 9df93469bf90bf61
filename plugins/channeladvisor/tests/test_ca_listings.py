"""Link listings (lookups or sweep) and sync listings (UpdateQuantity and PATCH in batches)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hub_channeladvisor import plugin
from hub_channeladvisor.listings import LINK_STRATEGY_ENV, match_sku, plan_link
from hub_core.channel import CatalogItem, ListingStatus, ListingUpdate, Outcome
from hub_core.errors import InvalidInput


def item(sku: str) -> CatalogItem:
    return CatalogItem(sku=sku, title=sku, quantity=1, price=Decimal("1.00"))


def update(sku: str, product_id: str, **changes: Any) -> ListingUpdate:
    return ListingUpdate(sku, product_id, changes, item(sku))


def test_a_sku_with_an_apostrophe_is_quoted_and_escaped(ca, conn, h) -> None:
    ca.get("Products", {"json": {"value": [{"ID": 5, "Sku": "O'Brien"}]}})
    (result,) = plugin.hub_link_listings(connection=conn(), items=[item("O'Brien")])
    assert (result.status, result.channel_product_id) == (ListingStatus.LINKED, "5")
    (request,) = ca.sent("GET")
    assert h.query(request.url) == {
        "$filter": "Sku eq 'O''Brien' and ProfileID eq 12345678",
        "$select": "ID,Sku,IsParent,ProductType",
    }
    # Spaces travel as %20 (never '+'), so the same URL also works inside a $batch.
    assert "+" not in request.url and "%20eq%20'O''Brien'%20and%20" in request.url


def test_batched_lookups_and_matching(ca, conn, h) -> None:
    rows = {
        "Exact": [{"ID": 1, "Sku": "Exact"}, {"ID": 2, "Sku": "EXACT"}],
        "lower": [{"ID": 3, "Sku": "LOWER"}],
        "Twice": [{"ID": 4, "Sku": "twice"}, {"ID": 5, "Sku": "TWICE"}],
        "None": [],
        "a&b+c d": [{"ID": 6, "Sku": "a&b+c d"}],
    }

    def handler(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answers = []
        for part in parts:
            sku = h.query(part["url"])["$filter"].split("'")[1]
            answers.append({"status": 200, "body": {"value": rows[sku]}})
        return answers

    ca.batch(handler)
    results = plugin.hub_link_listings(connection=conn(), items=[item(s) for s in rows])
    assert [(r.sku, r.status, r.channel_product_id) for r in results] == [
        ("Exact", ListingStatus.LINKED, "1"),
        ("lower", ListingStatus.LINKED, "3"),
        ("Twice", ListingStatus.AMBIGUOUS, None),
        ("None", ListingStatus.NOT_FOUND, None),
        ("a&b+c d", ListingStatus.LINKED, "6"),
    ]
    assert results[1].message == "Matched ChannelAdvisor SKU 'LOWER' ignoring case."
    assert results[2].message == "2 ChannelAdvisor products match SKU 'Twice': IDs 4, 5."
    assert results[3].message == "No ChannelAdvisor product in profile 12345678 has SKU 'None'."
    (batch,) = ca.batches
    assert all(p["method"] == "GET" and p["url"].startswith(f"{h.API}/Products?") for p in batch)
    assert h.query(batch[4]["url"])["$filter"] == "Sku eq 'a&b+c d' and ProfileID eq 12345678"


def test_match_prefers_exact_case_and_dedupes_rows() -> None:
    rows = [{"ID": 1, "Sku": "abc"}, {"ID": 1, "Sku": "abc"}, {"ID": 2, "Sku": "ABC"}]
    assert match_sku("abc", rows, 1).channel_product_id == "1"
    assert match_sku("Abc", rows, 1).status is ListingStatus.AMBIGUOUS


@pytest.mark.parametrize(
    ("skus", "size", "page", "more", "available", "strategy"),
    [
        pytest.param(150, 120, 100, True, 2000, "sweep", id="1-page-left-vs-2-batches"),
        pytest.param(150, 100_000, 100, True, 2000, "lookup", id="big-catalog"),
        pytest.param(5000, 100_000, 100, True, 2000, "sweep", id="rate-bound-fewer-units"),
        pytest.param(5000, 1_000_000, 100, True, 2000, "lookup", id="rate-bound-more-pages"),
        pytest.param(300, 40, 40, False, 2000, "sweep", id="one-page-catalog"),
        pytest.param(300, None, 100, True, 2000, "lookup", id="unknown-size"),
        pytest.param(
            250, 1000, 100, True, 2000, "lookup", id="9-pages-vs-3-batches-not-rate-bound"
        ),
        pytest.param(250, 1000, 100, True, 50, "sweep", id="9-pages-vs-253-units-rate-bound"),
    ],
)
def test_link_plan_rule(skus, size, page, more, available, strategy) -> None:
    plan = plan_link(skus, size, page, has_more=more, rate_available=available)
    assert plan.strategy == strategy, plan.reason


def catalog(n: int, h: Any) -> list[dict[str, Any]]:
    rows = [{"ID": 1000 + i, "Sku": f"SKU-{i}"} for i in range(n)]
    pages = [rows[i : i + 100] for i in range(0, n, 100)]
    answers = []
    for number, chunk in enumerate(pages):
        page: dict[str, Any] = {"value": chunk}
        if number == 0:
            page["@odata.count"] = n
        if number < len(pages) - 1:
            page["@odata.nextLink"] = f"{h.API}/Products?$skip={100 * (number + 1)}"
        answers.append({"json": page})
    return answers


def test_a_sweep_is_used_when_it_costs_fewer_requests(ca, conn, h) -> None:
    ca.get("Products", *catalog(120, h))
    items = [item(f"SKU-{i}") for i in range(150)]
    results = plugin.hub_link_listings(connection=conn(), items=items)
    assert sum(r.status is ListingStatus.LINKED for r in results) == 120
    assert results[0].channel_product_id == "1000"
    assert results[149].status is ListingStatus.NOT_FOUND
    first, second = ca.sent("GET")
    assert h.query(first.url) == {
        "$filter": "ProfileID eq 12345678",
        "$select": "ID,Sku,IsParent,ProductType",
        "$count": "true",
    }
    assert second.url == f"{h.API}/Products?$skip=100"
    assert ca.batches == []


def test_lookups_are_used_when_the_catalog_is_large(ca, conn, h) -> None:
    big = {
        "json": {
            "value": [{"ID": 1, "Sku": "x"}] * 100,
            "@odata.count": 100_000,
            "@odata.nextLink": f"{h.API}/Products?$skip=100",
        }
    }
    ca.get("Products", big)
    ca.batch(lambda parts: [{"status": 200, "body": {"value": []}}] * len(parts))
    connection = conn()
    results = plugin.hub_link_listings(
        connection=connection, items=[item(f"S{i}") for i in range(150)]
    )
    assert len(ca.sent("GET")) == 1
    assert sorted((len(b) for b in ca.batches), reverse=True) == [100, 50]
    assert all(r.status is ListingStatus.NOT_FOUND for r in results)
    # The core sets the total; the plugin advances per SKU answered.
    assert (connection.progress.total, connection.progress.done) == (None, 150)


def test_sync_sends_quantity_and_price_in_one_batch(ca, conn, h) -> None:
    ca.batch(lambda parts: [{"status": 204}] * len(parts))
    connection = conn(
        settings={
            "quantity_update_type": "Absolute",
            "distribution_center_id": 3,
            "price_field": "RetailPrice",
        }
    )
    outcomes = plugin.hub_sync_listings(
        connection=connection,
        updates=[
            update("A", "11", quantity=5, price=Decimal("12.50")),
            update("B", "12", quantity=0),
            update("C", "13"),
        ],
    )
    assert [o.outcome for o in outcomes] == [Outcome.OK, Outcome.OK, Outcome.SKIPPED]
    (batch,) = ca.batches
    assert [(p["method"], p["url"], p["body"]) for p in batch] == [
        (
            "POST",
            f"{h.API}/Products(11)/UpdateQuantity",
            {
                "Value": {
                    "UpdateType": "Absolute",
                    "CompleteDCList": False,
                    "Updates": [{"DistributionCenterID": 3, "Quantity": 5}],
                }
            },
        ),
        ("PATCH", f"{h.API}/Products(11)", {"RetailPrice": 12.5}),
        (
            "POST",
            f"{h.API}/Products(12)/UpdateQuantity",
            {
                "Value": {
                    "UpdateType": "Absolute",
                    "CompleteDCList": False,
                    "Updates": [{"DistributionCenterID": 3, "Quantity": 0}],
                }
            },
        ),
    ]
    assert "Content-Type: application/json" in batch[0]["inner_headers"]
    assert (connection.progress.total, connection.progress.done) == (None, 3)


def test_default_settings_in_the_bodies(ca, conn, h) -> None:
    ca.batch(lambda parts: [{"status": 204}] * len(parts))
    plugin.hub_sync_listings(
        connection=conn(), updates=[update("A", "11", quantity=2, price=Decimal("3"))]
    )
    (batch,) = ca.batches
    assert batch[0]["body"] == {
        "Value": {
            "UpdateType": "UnShipped",
            "CompleteDCList": False,
            "Updates": [{"DistributionCenterID": 0, "Quantity": 2}],
        }
    }
    assert batch[1]["body"] == {"BuyItNowPrice": 3}


def test_nothing_is_sent_for_unchanged_listings(ca, conn) -> None:
    outcomes = plugin.hub_sync_listings(
        connection=conn(), updates=[update("A", "11"), update("B", "12", title="ignored")]
    )
    assert [o.outcome for o in outcomes] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert ca.m.request_history == []


def test_a_product_deleted_between_two_syncs_becomes_broken(ca, conn, h) -> None:
    deleted = {"value": False}

    def handler(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if deleted["value"]:
            return [
                {"status": 404, "body": {"error": {"code": "", "message": "Product not found."}}}
            ] * len(parts)
        return [{"status": 204}] * len(parts)

    ca.batch(handler)
    ca.get("Products", {"json": {"value": []}})
    connection = conn()
    first = plugin.hub_sync_listings(
        connection=connection, updates=[update("A-1", "11", quantity=5)]
    )
    assert first[0].outcome is Outcome.OK and first[0].status is None
    deleted["value"] = True
    (second,) = plugin.hub_sync_listings(
        connection=connection, updates=[update("A-1", "11", quantity=4, price=Decimal("2"))]
    )
    assert (second.outcome, second.status) == (Outcome.FAILED, ListingStatus.BROKEN)
    assert second.message == (
        "Product 11 was deleted in ChannelAdvisor (no product in profile 12345678 has SKU "
        "'A-1' any more). Re-create it there, then run: hub listings relink shop --sku A-1"
    )
    (lookup,) = ca.sent("GET")
    assert h.query(lookup.url)["$filter"] == "Sku eq 'A-1' and ProfileID eq 12345678"


def test_a_sku_that_moved_to_another_product_is_broken_with_the_new_id(ca, conn) -> None:
    ca.batch(lambda parts: [{"status": 404}] * len(parts))
    ca.get("Products", {"json": {"value": [{"ID": 77, "Sku": "it's"}]}})
    (outcome,) = plugin.hub_sync_listings(
        connection=conn(), updates=[update("it's", "11", quantity=1)]
    )
    assert outcome.status is ListingStatus.BROKEN
    assert 'SKU "it\'s" now belongs to product 77' in outcome.message
    assert outcome.message.endswith("hub listings relink shop --sku 'it'\"'\"'s'")
    assert outcome.channel_product_id is None


def test_a_404_for_a_product_still_listed_is_a_plain_failure(ca, conn) -> None:
    ca.batch(lambda parts: [{"status": 404}] * len(parts))
    ca.get("Products", {"json": {"value": [{"ID": 11, "Sku": "A"}]}})
    (outcome,) = plugin.hub_sync_listings(
        connection=conn(), updates=[update("A", "11", quantity=1)]
    )
    assert (outcome.outcome, outcome.status) == (Outcome.FAILED, None)
    assert "still lists it" in outcome.message


def test_several_deleted_products_are_checked_in_one_batch(ca, conn) -> None:
    replies: list[Any] = [
        [{"status": 404}, {"status": 404}, {"status": 204}],
        [
            {"status": 200, "body": {"value": []}},
            {"status": 200, "body": {"value": [{"ID": 9, "Sku": "B"}]}},
        ],
    ]
    ca.batch(lambda parts: replies.pop(0))
    outcomes = plugin.hub_sync_listings(
        connection=conn(),
        updates=[
            update("A", "1", quantity=1),
            update("B", "2", quantity=1),
            update("C", "3", quantity=1),
        ],
    )
    assert [o.status for o in outcomes] == [ListingStatus.BROKEN, ListingStatus.BROKEN, None]
    assert [p["method"] for p in ca.batches[1]] == ["GET", "GET"]
    assert "product 9" in outcomes[1].message


def test_a_refused_price_fails_that_listing_only(ca, conn) -> None:
    ca.batch(
        lambda parts: [
            {"status": 204},
            {"status": 400, "body": {"error": {"message": "BuyItNowPrice must be positive"}}},
            {"status": 204},
        ]
    )
    outcomes = plugin.hub_sync_listings(
        connection=conn(),
        updates=[update("A", "1", quantity=1, price=Decimal("-1")), update("B", "2", quantity=3)],
    )
    assert [o.outcome for o in outcomes] == [Outcome.FAILED, Outcome.OK]
    assert outcomes[0].message == (
        "price: ChannelAdvisor refused the request (HTTP 400): BuyItNowPrice must be positive"
    )


def test_a_relative_quantity_is_never_sent_twice(ca, conn) -> None:
    replies: list[Any] = [[{"status": 500}, {"status": 500}], [{"status": 204}]]
    ca.batch(lambda parts: replies.pop(0))
    (outcome,) = plugin.hub_sync_listings(
        connection=conn(settings={"quantity_update_type": "Relative"}),
        updates=[update("A", "1", quantity=2, price=Decimal("5"))],
    )
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message.startswith("quantity: ChannelAdvisor's answer was lost")
    # Only the idempotent PATCH went out again.
    assert [[p["method"] for p in b] for b in ca.batches] == [["POST", "PATCH"], ["PATCH"]]


def test_a_listing_without_a_channeladvisor_id_is_broken(ca, conn) -> None:
    (outcome,) = plugin.hub_sync_listings(
        connection=conn(), updates=[update("A", "abc", quantity=1)]
    )
    assert (outcome.outcome, outcome.status) == (Outcome.FAILED, ListingStatus.BROKEN)
    assert ca.m.request_history == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param(
            {"IsParent": True, "ProductType": "Parent"},
            "a parent product: link its children",
            id="parent",
        ),
        pytest.param(
            {"IsParent": True, "ProductType": None},
            "a parent product: link its children",
            id="is-parent-only",
        ),
        pytest.param(
            {"IsParent": False, "ProductType": "Bundle"},
            "a bundle product: ChannelAdvisor computes its quantity from its components; "
            "link the components",
            id="bundle",
        ),
    ],
)
def test_parents_and_bundles_are_never_linked(ca, conn, row, message) -> None:
    ca.get("Products", {"json": {"value": [{"ID": 5, "Sku": "SHIRT", **row}]}})
    (result,) = plugin.hub_link_listings(connection=conn(), items=[item("SHIRT")])
    assert (result.status, result.channel_product_id, result.message) == (
        ListingStatus.UNSUPPORTED,
        None,
        message,
    )


@pytest.mark.parametrize("product_type", ["Item", "Child", None])
def test_items_and_children_are_linked(ca, conn, product_type) -> None:
    row = {"ID": 5, "Sku": "SHIRT-M", "IsParent": False, "ProductType": product_type}
    ca.get("Products", {"json": {"value": [row]}})
    (result,) = plugin.hub_link_listings(connection=conn(), items=[item("SHIRT-M")])
    assert (result.status, result.channel_product_id) == (ListingStatus.LINKED, "5")


def test_a_product_that_became_a_parent_turns_unsupported_at_sync(ca, conn) -> None:
    refusal = {"error": {"code": "", "message": "Product 11 is a parent product."}}
    ca.batch(lambda parts: [{"status": 400, "body": refusal}, {"status": 204}])
    (outcome,) = plugin.hub_sync_listings(
        connection=conn(), updates=[update("A", "11", quantity=5, price=Decimal("2"))]
    )
    assert outcome.outcome is Outcome.FAILED
    assert outcome.status is ListingStatus.UNSUPPORTED
    assert outcome.message == ("ChannelAdvisor product 11 is a parent product: link its children.")


def test_a_deleted_product_whose_sku_is_now_a_bundle_is_unsupported(ca, conn) -> None:
    ca.batch(lambda parts: [{"status": 404, "body": {"error": {"message": "gone"}}}])
    ca.get("Products", {"json": {"value": [{"ID": 9, "Sku": "A", "ProductType": "Bundle"}]}})
    (outcome,) = plugin.hub_sync_listings(
        connection=conn(), updates=[update("A", "11", quantity=5)]
    )
    assert outcome.status is ListingStatus.UNSUPPORTED
    assert "now belongs to a bundle product" in outcome.message


def test_the_link_strategy_switch_forces_the_sweep_or_the_lookups(ca, conn, h, monkeypatch) -> None:
    ca.get("Products", *catalog(120, h))
    ca.batch(lambda parts: [{"status": 200, "body": {"value": []}}] * len(parts))
    monkeypatch.setenv(LINK_STRATEGY_ENV, "sweep")
    # Two SKUs would be looked up in one batch; forced, the catalog is read instead.
    results = plugin.hub_link_listings(connection=conn(), items=[item("SKU-1"), item("nope")])
    assert [r.status for r in results] == [ListingStatus.LINKED, ListingStatus.NOT_FOUND]
    assert (len(ca.sent("GET")), ca.batches) == (2, [])

    monkeypatch.setenv(LINK_STRATEGY_ENV, "lookup")
    # 150 SKUs of a 120-product catalog would be swept; forced, they are looked up.
    plugin.hub_link_listings(connection=conn(), items=[item(f"SKU-{i}") for i in range(150)])
    assert len(ca.sent("GET")) == 2  # no catalog page read this time
    assert sorted(len(b) for b in ca.batches) == [50, 100]


def test_an_unknown_link_strategy_is_refused_naming_the_choices(conn, monkeypatch) -> None:
    monkeypatch.setenv(LINK_STRATEGY_ENV, "fastest")
    with pytest.raises(InvalidInput, match="must be one of auto, lookup, sweep"):
        plugin.hub_link_listings(connection=conn(), items=[item("SKU-1")])
