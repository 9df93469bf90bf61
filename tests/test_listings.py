"""Listings: link, sync (only changes, once), dry run, retries, broken + relink, publish."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from decimal import Decimal
from typing import Any

import pytest

from hub_core import hookimpl
from hub_core.errors import ChannelError
from hub_core.services import Hub
from hub_core.services import listings as listings_service
from hub_core.services.catalog import import_catalog, set_product
from hub_core.services.listings import (
    link_listings,
    list_listings,
    relink_listings,
    sync_listings,
)
from hub_fake_channel.store import FakeStore


def _received(store: FakeStore) -> list[tuple[str, dict[str, Any]]]:
    """The listing updates the channel received: (SKU, fields), prices as decimals."""
    return [
        (u["sku"], {k: Decimal(v) if k == "price" else v for k, v in u["fields"].items()})
        for u in store.updates_received()
    ]


def _statuses(hub: Hub, name: str = "shop") -> dict[str, tuple[str, str | None]]:
    return {r["sku"]: (r["status"], r["channel_product_id"]) for r in list_listings(hub, name)}


@pytest.fixture
def linked(
    hub: Hub, shop: str, store: FakeStore, catalog_file: Callable, channel_products: dict
) -> dict[str, str]:
    """SKU-1 and SKU-2 in the catalog, on the channel, and linked (not synced yet)."""
    import_catalog(hub, catalog_file())
    result = link_listings(hub, shop)
    assert result.status == "ok", result.records
    return channel_products


# --- services (SQLite and PostgreSQL) ---------------------------------------------------------


def test_link_matches_channel_products_by_sku(hub: Hub, linked: dict[str, str]) -> None:
    assert _statuses(hub) == {
        "SKU-1": ("linked", linked["SKU-1"]),
        "SKU-2": ("linked", linked["SKU-2"]),
    }


def test_link_reports_not_found_and_ambiguous_and_keeps_the_rest(
    hub: Hub, shop: str, store: FakeStore, catalog_file: Callable
) -> None:
    import_catalog(hub, catalog_file([("A", "a", 1, "1"), ("B", "b", 1, "1"), ("C", "c", 1, "1")]))
    a = store.add_product("A")
    store.add_product("B")
    store.add_product("b")  # matched only case-insensitively, and not needed for B
    store.add_product("C")
    store.add_product("C")
    store.add_product("GONE")
    result = link_listings(hub, shop)
    # Not found and ambiguous are states of a listing, not failures of the run (issue 10).
    assert int(result.exit_code) == 0 and result.status == "ok"
    assert result.counts == {"linked": 2, "ambiguous": 1, "ok": 2, "skipped": 1}
    assert _statuses(hub)["A"] == ("linked", a)
    assert _statuses(hub)["C"] == ("ambiguous", None)
    # Not found: a SKU the channel does not have.
    import_catalog(hub, catalog_file([("D", "d", 1, "1")], name="d.csv"))
    again = link_listings(hub, shop)
    assert {r.ref: r.outcome for r in again.records} == {"C": "skipped", "D": "skipped"}
    assert int(again.exit_code) == 0
    assert _statuses(hub)["D"] == ("not_found", None)


def test_sync_sends_only_changed_listings_and_fields_once(
    hub: Hub, shop: str, store: FakeStore, linked: dict[str, str]
) -> None:
    first = sync_listings(hub, shop)
    assert first.status == "ok" and first.counts["sent"] == 2
    assert _received(store) == [
        ("SKU-1", {"quantity": 10, "price": Decimal("9.99")}),
        ("SKU-2", {"quantity": 5, "price": Decimal("12.50")}),
    ]
    assert store.product(linked["SKU-1"])["quantity"] == 10

    again = sync_listings(hub, shop)
    assert again.counts.get("sent", 0) == 0 and again.records == []
    assert len(store.updates_received()) == 2

    set_product(hub, "SKU-1", quantity=3)
    set_product(hub, "SKU-2", title="A new title only")  # not a synced field
    third = sync_listings(hub, shop)
    assert [r.ref for r in third.records] == ["SKU-1"]
    assert _received(store)[2:] == [("SKU-1", {"quantity": 3})]
    set_product(hub, "SKU-2", price=Decimal("11"))
    sync_listings(hub, shop)
    assert _received(store)[3:] == [("SKU-2", {"price": Decimal("11")})]
    # Setting a value back and forth between syncs sends nothing.
    set_product(hub, "SKU-1", quantity=4)
    set_product(hub, "SKU-1", quantity=3)
    assert sync_listings(hub, shop).records == []
    assert len(store.updates_received()) == 4


def test_dry_run_lists_and_changes_nothing(
    hub: Hub, shop: str, store: FakeStore, linked: dict[str, str], db_snapshot: Callable
) -> None:
    before_db, before_store = db_snapshot(hub), store.snapshot()
    dry = sync_listings(hub, shop, dry_run=True)
    assert dry.run_id is None and dry.counts == {"would_send": 2}
    assert [(r.ref, r.outcome) for r in dry.records] == [("SKU-1", "skipped"), ("SKU-2", "skipped")]
    assert "quantity 10" in dry.records[0].message
    assert db_snapshot(hub) == before_db
    assert store.snapshot() == before_store
    # The real sync afterwards sends what the dry run listed.
    assert sync_listings(hub, shop).counts["sent"] == 2


def test_a_failed_listing_is_retried_on_the_next_sync(
    hub: Hub, shop: str, store: FakeStore, linked: dict[str, str]
) -> None:
    store.fail("sync_listings", ref="SKU-1", times=1)
    first = sync_listings(hub, shop)
    assert first.status == "partial" and int(first.exit_code) == 4
    assert {r.ref: r.outcome for r in first.records} == {"SKU-1": "failed", "SKU-2": "ok"}
    assert [u["sku"] for u in store.updates_received()] == ["SKU-2"]
    second = sync_listings(hub, shop)
    assert {r.ref: r.outcome for r in second.records} == {"SKU-1": "ok"}
    assert [u["sku"] for u in store.updates_received()] == ["SKU-2", "SKU-1"]
    assert sync_listings(hub, shop).records == []


def test_a_whole_call_failure_loses_no_change(
    hub: Hub, shop: str, store: FakeStore, linked: dict[str, str]
) -> None:
    sync_listings(hub, shop)
    set_product(hub, "SKU-2", quantity=1)
    store.fail("sync_listings", times=1)
    with pytest.raises(ChannelError):
        sync_listings(hub, shop)
    assert len(store.updates_received()) == 2
    retry = sync_listings(hub, shop)
    assert [r.ref for r in retry.records] == ["SKU-2"]
    assert store.updates_received()[-1]["fields"] == {"quantity": 1}


def test_deleted_product_becomes_broken_and_relink_fixes_it(
    hub: Hub, shop: str, store: FakeStore, linked: dict[str, str]
) -> None:
    sync_listings(hub, shop)
    store.delete_product(linked["SKU-1"])
    assert _statuses(hub)["SKU-1"] == ("linked", linked["SKU-1"])  # until the next sync
    set_product(hub, "SKU-1", quantity=2)
    result = sync_listings(hub, shop)
    assert int(result.exit_code) == 4
    assert result.counts.get("broken") == 1
    assert _statuses(hub)["SKU-1"][0] == "broken"
    assert "relink" in result.records[0].message
    assert [r["sku"] for r in list_listings(hub, shop, "broken")] == ["SKU-1"]
    # Broken listings are not sent again.
    assert sync_listings(hub, shop).records == []

    gone = relink_listings(hub, shop, ["SKU-1"])
    assert int(gone.exit_code) == 0 and _statuses(hub)["SKU-1"] == ("not_found", None)
    new_id = store.add_product("SKU-1", "Blue mug again")
    relinked = relink_listings(hub, shop, ["SKU-1"])
    assert relinked.operation == "relink_listings" and relinked.status == "ok"
    assert _statuses(hub)["SKU-1"] == ("linked", new_id)
    after = sync_listings(hub, shop)
    assert [r.ref for r in after.records] == ["SKU-1"]
    assert store.product(new_id)["quantity"] == 2


# --- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli_catalog(cli_shop: Any, catalog_file: Callable, channel_products: dict) -> Any:
    """The CLI with the catalog imported and its SKUs on the channel (not linked yet)."""
    cli_shop("catalog", "import", str(catalog_file()))
    return cli_shop


def test_cli_link_list_sync_json(cli_catalog: Any, store: FakeStore, table: Callable) -> None:
    linked = cli_catalog.json("listings", "link", "shop")
    assert linked["operation"] == "link_listings" and linked["status"] == "ok"
    assert linked["counts"] == {"linked": 2, "ok": 2}
    assert [r["ref"] for r in linked["records"]] == ["SKU-1", "SKU-2"]
    assert {r["outcome"] for r in linked["records"]} == {"ok"}

    listed = cli_catalog.json("listings", "list", "shop")
    assert [(r["sku"], r["status"], r["channel_product_id"]) for r in listed] == [
        ("SKU-1", "linked", "P-0001"),
        ("SKU-2", "linked", "P-0002"),
    ]
    assert cli_catalog.json("listings", "list", "shop", "--status", "broken") == []
    row = table(cli_catalog("listings", "list", "shop").stdout)[0]
    assert (row["SKU"], row["STATUS"], row["CHANNEL_PRODUCT_ID"]) == ("SKU-1", "linked", "P-0001")

    dry = cli_catalog.json("listings", "sync", "shop", "--dry-run")
    assert dry["run_id"] is None and dry["counts"] == {"would_send": 2}
    assert store.updates_received() == []
    synced = cli_catalog.json("listings", "sync", "shop")
    assert synced["operation"] == "sync_listings" and synced["counts"]["sent"] == 2
    assert "(sent: 0)" in cli_catalog("listings", "sync", "shop").stdout


def test_cli_link_with_a_not_found_sku_exits_0(cli_catalog: Any, catalog_file: Callable) -> None:
    cli_catalog("catalog", "import", str(catalog_file([("NEW", "n", 1, "1")], name="n.csv")))
    data = cli_catalog.json("listings", "link", "shop")
    assert data["status"] == "ok"
    assert data["counts"] == {"linked": 2, "not_found": 1, "ok": 2, "skipped": 1}
    skipped = [r for r in data["records"] if r["outcome"] == "skipped"]
    assert [r["ref"] for r in skipped] == ["NEW"] and "NEW" in skipped[0]["message"]
    statuses = {r["sku"]: r["status"] for r in cli_catalog.json("listings", "list", "shop")}
    assert statuses == {"NEW": "not_found", "SKU-1": "linked", "SKU-2": "linked"}
    # Only the listings not linked yet are tried again.
    again = cli_catalog.json("listings", "link", "shop")
    assert [r["ref"] for r in again["records"]] == ["NEW"]
    text = cli_catalog("listings", "link", "shop").stdout
    assert "skipped  NEW" in text and "not_found: 1" in text


def test_cli_link_some_skus_unlink_relink(cli_catalog: Any, store: FakeStore) -> None:
    data = cli_catalog.json("listings", "link", "shop", "--sku", "SKU-2")
    assert [r["ref"] for r in data["records"]] == ["SKU-2"]
    unlinked = cli_catalog.json("listings", "unlink", "shop", "--sku", "SKU-2")
    assert unlinked["operation"] == "unlink_listings"
    assert unlinked["records"] == [{"ref": "SKU-2", "outcome": "ok", "message": "unlinked"}]
    assert {r["sku"]: r["status"] for r in cli_catalog.json("listings", "list", "shop")} == {
        "SKU-1": "unlinked",
        "SKU-2": "unlinked",
    }
    relinked = cli_catalog.json("listings", "relink", "shop", "--sku", "SKU-1", "--sku", "SKU-2")
    assert relinked["operation"] == "relink_listings" and relinked["counts"]["linked"] == 2


def test_cli_listing_failures_exit_1(cli_catalog: Any, store: FakeStore) -> None:
    store.fail("link_listings", times=1)
    result = cli_catalog("listings", "link", "shop", code=1)
    assert "refused link_listings" in result.stderr
    assert {r["status"] for r in cli_catalog.json("listings", "list", "shop")} == {"unlinked"}
    cli_catalog("listings", "link", "shop", "--sku", "SKU-1")
    cli_catalog("connections", "configure", "shop", "--set", "api_key=bad")
    result = cli_catalog("listings", "link", "shop", code=1)
    assert "refused the API key" in result.stderr
    result = cli_catalog("listings", "sync", "shop", code=1)
    assert "refused the API key" in result.stderr
    assert store.updates_received() == []


def test_cli_sync_with_a_per_record_failure_exits_4(cli_catalog: Any, store: FakeStore) -> None:
    cli_catalog("listings", "link", "shop")
    store.fail("sync_listings", ref="SKU-2")
    data = cli_catalog.json("listings", "sync", "shop", code=4)
    assert {r["ref"]: r["outcome"] for r in data["records"]} == {"SKU-1": "ok", "SKU-2": "failed"}
    assert "SKU-2" in data["records"][1]["message"]
    shown = cli_catalog.json("runs", "show", str(data["run_id"]))
    assert shown["status"] == "partial" and shown["records"] == data["records"]


def test_cli_listings_bad_input_exits_2(
    cli_catalog: Any, db_snapshot: Callable, store: FakeStore
) -> None:
    cli_catalog("listings", "link", "shop", "--sku", "SKU-1")
    before, before_store = db_snapshot(cli_catalog.url), store.snapshot()
    cases = [
        (("listings", "link", "shop", "--sku", "NOPE", "--sku", "ALSO"), ["NOPE", "ALSO"]),
        (("listings", "unlink", "shop"), ["--sku"]),
        (("listings", "unlink", "shop", "--sku", "SKU-2", "--sku", "ZZZ"), ["ZZZ"]),
        (("listings", "relink", "shop"), ["--sku"]),
        (("listings", "relink", "shop", "--sku", "NOPE"), ["NOPE"]),
        (("listings", "publish", "shop", "--sku", "NOPE"), ["NOPE"]),
        (("listings", "list", "shop", "--status", "lost"), ["'lost'", "linked", "broken"]),
    ]
    for args, words in cases:
        result = cli_catalog(*args, code=2)
        for word in words:
            assert word in result.stderr, (args, result.stderr)
    assert db_snapshot(cli_catalog.url) == before
    assert store.snapshot() == before_store


def test_cli_publish_creates_products_on_the_channel(
    cli_shop: Any, store: FakeStore, catalog_file: Callable
) -> None:
    cli_shop("catalog", "import", str(catalog_file()))
    data = cli_shop.json("listings", "publish", "shop", "--sku", "SKU-2")
    assert data["operation"] == "publish_listings" and data["status"] == "ok"
    product = store.product_by_sku("SKU-2")
    assert product is not None and product["quantity"] == 5 and product["price"] == "12.5000"
    listed = {r["sku"]: r for r in cli_shop.json("listings", "list", "shop")}
    assert listed["SKU-2"]["channel_product_id"] == product["id"]
    assert listed["SKU-1"]["status"] == "unlinked"
    # Publishing what is there already links it instead of making a duplicate.
    again = cli_shop.json("listings", "publish", "shop", "--sku", "SKU-2")
    assert again["status"] == "ok" and len(store.products()) == 1

    store.fail("publish_listings", ref="SKU-1", times=1)
    failed = cli_shop.json("listings", "publish", "shop", "--sku", "SKU-1", code=4)
    assert [r["outcome"] for r in failed["records"]] == ["failed"]
    assert store.product_by_sku("SKU-1") is None
    store.fail("publish_listings", times=1)
    assert "refused publish_listings" in cli_shop("listings", "publish", "shop", code=1).stderr
    cli_shop.json("listings", "publish", "shop")
    assert store.product_by_sku("SKU-1") is not None


def test_cli_publish_not_supported_exits_3_without_calling_the_plugin(
    hub_cli: Any,
    make_stub: Callable,
    make_registry: Callable,
    catalog_file: Callable,
    db_snapshot: Callable,
) -> None:
    stub = make_stub(capabilities={"publish_listings": "not_supported"})
    registry = make_registry((stub, "stub"))
    hub_cli(
        "connections",
        "add",
        "s",
        "--channel",
        "stub",
        "--set",
        "account=a",
        "--set",
        "token=t",
        registry=registry,
    )
    hub_cli("catalog", "import", str(catalog_file()))
    before = db_snapshot(hub_cli.url)
    result = hub_cli("listings", "publish", "s", code=3, registry=registry)
    assert "Publishing new listings is not supported for stub" in result.stderr
    assert "hub listings link" in result.stderr
    result = hub_cli(
        "listings", "publish", "s", "--sku", "SKU-1", "--json", code=3, registry=registry
    )
    assert json.loads(result.stdout) == {
        "error": {"code": 3, "message": result.stderr.removeprefix("Error: ").strip()}
    }
    assert stub.calls == []
    assert db_snapshot(hub_cli.url) == before
    # The supported operations still reach it.
    hub_cli("listings", "link", "s", registry=registry)
    assert stub.calls == ["hub_link_listings"]


@pytest.mark.parametrize(
    ("operation", "command"),
    [
        ("link_listings", ("listings", "link", "s")),
        ("sync_listings", ("listings", "sync", "s")),
        ("get_orders", ("orders", "get", "s")),
        ("get_orders", ("orders", "explain", "s", "O-1")),
        ("sync_orders", ("orders", "sync", "s")),
    ],
)
def test_every_unsupported_operation_exits_3(
    hub_cli: Any,
    make_stub: Callable,
    make_registry: Callable,
    db_snapshot: Callable,
    operation: str,
    command: tuple[str, ...],
) -> None:
    stub = make_stub(capabilities={operation: "not_supported"})
    registry = make_registry((stub, "stub"))
    hub_cli(
        "connections",
        "add",
        "s",
        "--channel",
        "stub",
        "--set",
        "account=a",
        "--set",
        "token=t",
        registry=registry,
    )
    before = db_snapshot(hub_cli.url)
    result = hub_cli(*command, code=3, registry=registry)
    assert "not supported for stub" in result.stderr
    assert stub.calls == []
    assert db_snapshot(hub_cli.url) == before


def test_a_catalog_import_is_synced_like_any_change(
    hub: Hub, shop: str, store: FakeStore, linked: dict[str, str], catalog_file: Callable
) -> None:
    sync_listings(hub, shop)
    changed = [("SKU-1", "Blue mug", 10, "9.99"), ("SKU-2", "Red mug", 6, "12.50")]
    assert import_catalog(hub, catalog_file(changed, name="changed.csv")).counts["updated"] == 1
    result = sync_listings(hub, shop)
    assert [r.ref for r in result.records] == ["SKU-2"]
    assert _received(store)[2:] == [("SKU-2", {"quantity": 6})]


class _ChangeDuringSync:
    """A wrapper plugin that changes the catalog while the channel call is in flight."""

    def __init__(self) -> None:
        self.hub: Hub | None = None

    @hookimpl(wrapper=True)
    def hub_sync_listings(self) -> Generator[None, Any, Any]:
        if self.hub is not None:
            set_product(self.hub, "SKU-1", quantity=77)
            self.hub = None
        return (yield)


def test_a_change_committed_during_a_sync_is_sent_by_the_next_one(
    hub: Hub,
    shop: str,
    store: FakeStore,
    linked: dict[str, str],
    make_registry: Callable,
) -> None:
    meddler = _ChangeDuringSync()
    racing = Hub(db=hub.db, registry=make_registry((meddler, "meddler")))
    meddler.hub = hub
    first = sync_listings(racing, shop)
    assert first.counts["sent"] == 2
    assert _received(store)[0] == ("SKU-1", {"quantity": 10, "price": Decimal("9.99")})
    second = sync_listings(hub, shop)
    assert [r.ref for r in second.records] == ["SKU-1"]
    assert _received(store)[2:] == [("SKU-1", {"quantity": 77})]


class _SeeChunks:
    """A wrapper plugin recording the SKUs of each sync call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @hookimpl(wrapper=True)
    def hub_sync_listings(self, updates: list[Any]) -> Generator[None, Any, Any]:
        self.calls.append([u.sku for u in updates])
        return (yield)


def test_pending_updates_are_read_and_sent_chunk_by_chunk_in_sku_order(
    hub: Hub,
    shop: str,
    store: FakeStore,
    catalog_file: Callable,
    make_registry: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [(f"SKU-{n}", f"Mug {n}", n, "2.00") for n in (5, 1, 4, 2, 3)]
    for sku, title, *_ in rows:
        store.add_product(sku, title, 0, "1.00")
    import_catalog(hub, catalog_file(rows))
    link_listings(hub, shop)
    assert sync_listings(hub, shop).counts["sent"] == 5

    monkeypatch.setattr(listings_service, "CHUNK", 2)
    seen = _SeeChunks()
    chunked = Hub(db=hub.db, registry=make_registry((seen, "seen")))
    for n in (1, 2, 3, 5):
        set_product(hub, f"SKU-{n}", quantity=10 + n)
    set_product(hub, "SKU-4", quantity=7)
    set_product(hub, "SKU-4", quantity=4)  # back to what was pushed: nothing to send
    result = sync_listings(chunked, shop)
    # Ids of the 5 candidates are read first; values chunk by chunk (2, 2, 1), each chunk
    # with only what needs sending.
    assert seen.calls == [["SKU-1", "SKU-2"], ["SKU-3"], ["SKU-5"]]
    assert result.counts["sent"] == 4
    assert _received(store)[5:] == [(f"SKU-{n}", {"quantity": 10 + n}) for n in (1, 2, 3, 5)]
    assert sync_listings(chunked, shop).records == []
    assert len(seen.calls) == 3
