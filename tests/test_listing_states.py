"""SKUs not on the channel do not fail every run (issue 10, deliverable 9): ``not_found``,
``ambiguous`` and ``unsupported`` are states of a listing, and ``hub listings exclude`` /
``include`` keep SKUs off one connection. Through the CLI, with the fake channel and a stub
channel that answers every state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hub_core import hookimpl
from hub_core.channel import (
    CatalogItem,
    ChannelConnection,
    LinkResult,
    ListingOutcome,
    ListingStatus,
    ListingUpdate,
    Outcome,
)
from hub_fake_channel.store import FakeStore

#: What the stub channel answers to link, by SKU; any other SKU is linked.
ANSWERS = {
    "PARENT-1": (ListingStatus.UNSUPPORTED, "a parent product: link its children"),
    "MISSING-1": (ListingStatus.NOT_FOUND, "no product with SKU MISSING-1"),
    "DUP-1": (ListingStatus.AMBIGUOUS, "2 products match DUP-1"),
}
CATALOG = [
    ("DUP-1", "d", 1, "1"),
    ("MISSING-1", "m", 1, "1"),
    ("OK-1", "o", 2, "2"),
    ("OK-2", "o", 3, "3"),
    ("PARENT-1", "p", 1, "1"),
]


class StatesChannel:
    """Link answers :data:`ANSWERS`; sync answers ``sync_answers`` (SKU -> status) or ok.
    Remembers every SKU it was asked to look up or sync."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []
        self.synced: list[str] = []
        self.sync_answers: dict[str, ListingStatus] = {}

    @hookimpl
    def hub_link_listings(
        self, connection: ChannelConnection, items: Sequence[CatalogItem]
    ) -> list[LinkResult]:
        self.looked_up += [i.sku for i in items]
        results = []
        for item in items:
            status, message = ANSWERS.get(item.sku, (ListingStatus.LINKED, ""))
            product = f"S-{item.sku}" if status == ListingStatus.LINKED else None
            results.append(LinkResult(item.sku, status, product, message))
        return results

    @hookimpl
    def hub_sync_listings(
        self, connection: ChannelConnection, updates: Sequence[ListingUpdate]
    ) -> list[ListingOutcome]:
        self.synced += [u.sku for u in updates]
        outcomes = []
        for update in updates:
            status = self.sync_answers.get(update.sku)
            if status is None:
                outcomes.append(ListingOutcome(update.sku, Outcome.OK))
            else:
                outcomes.append(
                    ListingOutcome(update.sku, Outcome.FAILED, f"now {status.value}", status)
                )
        return outcomes


@pytest.fixture
def states(
    hub_cli: Any, make_stub: Callable, make_registry: Callable, catalog_file: Callable
) -> tuple[Any, StatesChannel]:
    """The CLI with connection ``s`` to a stub channel answering every link state, and the
    catalog :data:`CATALOG` imported."""
    channel = StatesChannel()
    stub = make_stub()
    stub.hub_link_listings = channel.hub_link_listings
    stub.hub_sync_listings = channel.hub_sync_listings
    hub_cli.registry = make_registry((stub, "stub"))
    hub_cli(
        "connections", "add", "s", "--channel", "stub", "--set", "account=a", "--set", "token=t"
    )
    hub_cli("catalog", "import", str(catalog_file(CATALOG)))
    return hub_cli, channel


def _statuses(cli: Any, name: str = "s") -> dict[str, str]:
    return {row["sku"]: row["status"] for row in cli.json("listings", "list", name)}


# --- states, not failures ---------------------------------------------------------------------


def test_link_exits_0_with_not_found_ambiguous_and_unsupported_counted(
    states: tuple[Any, StatesChannel],
) -> None:
    cli, channel = states
    data = cli.json("listings", "link", "s")
    assert data["status"] == "ok"
    assert data["counts"] == {
        "linked": 2,
        "not_found": 1,
        "ambiguous": 1,
        "unsupported": 1,
        "ok": 2,
        "skipped": 3,
    }
    records = {r["ref"]: (r["outcome"], r["message"]) for r in data["records"]}
    assert records["PARENT-1"] == ("skipped", "a parent product: link its children")
    assert records["MISSING-1"][0] == records["DUP-1"][0] == "skipped"
    assert _statuses(cli) == {
        "DUP-1": "ambiguous",
        "MISSING-1": "not_found",
        "OK-1": "linked",
        "OK-2": "linked",
        "PARENT-1": "unsupported",
    }
    unsupported = cli.json("listings", "list", "s", "--status", "unsupported")
    assert [(r["sku"], r["message"]) for r in unsupported] == [
        ("PARENT-1", "a parent product: link its children")
    ]
    # The text output shows each state and the counts, and the exit code is 0.
    channel.looked_up.clear()
    text = cli("listings", "link", "s").stdout
    assert "skipped  MISSING-1  no product with SKU MISSING-1" in text
    assert "ambiguous: 1" in text and "not_found: 1" in text and "— run" in text
    # Not found and ambiguous are tried again; an unsupported product is not (it stays one).
    assert sorted(channel.looked_up) == ["DUP-1", "MISSING-1"]
    channel.looked_up.clear()
    cli.json("listings", "link", "s", "--sku", "PARENT-1")  # asked for by name: looked up
    assert channel.looked_up == ["PARENT-1"]


def test_run_exits_0_when_nothing_failed_with_the_counts_shown(
    states: tuple[Any, StatesChannel],
) -> None:
    cli, channel = states
    data = cli.json("run", "s")
    assert data["status"] == "ok"
    link = data["operations"][0]
    assert link["operation"] == "link_listings" and link["status"] == "ok"
    assert (link["counts"]["not_found"], link["counts"]["unsupported"]) == (1, 1)
    assert data["operations"][1]["counts"]["sent"] == 2  # the linked ones were synced
    assert sorted(channel.synced) == ["OK-1", "OK-2"]
    text = cli("run", "s").stdout
    assert "ambiguous: 1" in text and "not_found: 1" in text


def test_run_with_the_fake_channel_and_a_sku_it_lacks_exits_0(
    cli_shop: Any, store: FakeStore, catalog_file: Callable, channel_products: dict
) -> None:
    cli_shop("catalog", "import", str(catalog_file([*_fake_catalog(), ("GIFT", "g", 1, "1")])))
    data = cli_shop.json("run", "shop")
    assert data["status"] == "ok"
    assert data["operations"][0]["counts"]["not_found"] == 1
    assert cli_shop.json("listings", "list", "shop", "--status", "not_found")[0]["sku"] == "GIFT"


def _fake_catalog() -> list[tuple[str, str, int, str]]:
    return [("SKU-1", "Blue mug", 10, "9.99"), ("SKU-2", "Red mug", 5, "12.50")]


def test_a_product_found_unsupported_at_sync_is_a_state(
    states: tuple[Any, StatesChannel],
) -> None:
    cli, channel = states
    cli("listings", "link", "s")
    channel.sync_answers = {
        "OK-1": ListingStatus.UNSUPPORTED,  # became a parent on the channel: a state
        "OK-2": ListingStatus.BROKEN,  # deleted on the channel: the merchant must act
    }
    data = cli.json("listings", "sync", "s", code=4)
    assert {r["ref"]: r["outcome"] for r in data["records"]} == {
        "OK-1": "skipped",
        "OK-2": "failed",
    }
    assert _statuses(cli)["OK-1"] == "unsupported"
    channel.synced.clear()
    cli("catalog", "set", "OK-1", "--quantity", "7")
    assert cli.json("listings", "sync", "s")["records"] == []  # never sent again
    assert channel.synced == []


def test_list_accepts_every_status_and_names_them_on_a_bad_one(
    states: tuple[Any, StatesChannel], db_snapshot: Callable
) -> None:
    cli, _ = states
    cli("listings", "link", "s")
    cli("listings", "exclude", "s", "--sku", "OK-2")
    expected = {
        "unlinked": [],
        "linked": ["OK-1"],
        "not_found": ["MISSING-1"],
        "ambiguous": ["DUP-1"],
        "broken": [],
        "unsupported": ["PARENT-1"],
        "excluded": ["OK-2"],
    }
    assert set(expected) == {s.value for s in ListingStatus}
    for status, skus in expected.items():
        rows = cli.json("listings", "list", "s", "--status", status)
        assert [r["sku"] for r in rows] == skus, status
    before = db_snapshot(cli.url)
    bad = cli("listings", "list", "s", "--status", "parent", code=2)
    assert "'parent'" in bad.stderr
    for status in expected:
        assert status in bad.stderr
    assert db_snapshot(cli.url) == before


# --- exclude / include ------------------------------------------------------------------------


def test_excluded_skus_are_never_looked_up_linked_or_synced(
    states: tuple[Any, StatesChannel],
) -> None:
    cli, channel = states
    excluded = cli.json("listings", "exclude", "s", "--sku", "MISSING-1", "--sku", "PARENT-1")
    assert excluded["operation"] == "exclude_listings" and excluded["status"] == "ok"
    assert [(r["ref"], r["outcome"]) for r in excluded["records"]] == [
        ("MISSING-1", "ok"),
        ("PARENT-1", "ok"),
    ]
    data = cli.json("run", "s")
    assert data["status"] == "ok"
    assert sorted(channel.looked_up) == ["DUP-1", "OK-1", "OK-2"]
    assert "not_found" not in data["operations"][0]["counts"]
    # Asked for by name, by link, relink, unlink or publish: skipped, the channel never asked.
    channel.looked_up.clear()
    for command in ("link", "relink", "unlink", "publish"):
        result = cli.json("listings", command, "s", "--sku", "PARENT-1")
        [record] = result["records"]
        assert record["outcome"] == "skipped", command
        assert "hub listings include s --sku PARENT-1" in record["message"]
    assert channel.looked_up == []
    assert _statuses(cli)["PARENT-1"] == "excluded"

    # A linked SKU excluded later is no longer synced, and forgets its product.
    cli("listings", "exclude", "s", "--sku", "OK-1")
    row = cli.json("listings", "list", "s", "--status", "excluded")
    assert [(r["sku"], r["channel_product_id"]) for r in row] == [
        ("MISSING-1", None),
        ("OK-1", None),
        ("PARENT-1", None),
    ]
    channel.synced.clear()
    cli("catalog", "set", "OK-1", "--quantity", "50")
    cli("listings", "sync", "s")
    assert channel.synced == []


def test_include_undoes_exclude(states: tuple[Any, StatesChannel]) -> None:
    cli, channel = states
    cli("listings", "exclude", "s", "--sku", "OK-1")
    cli("listings", "link", "s")
    assert "OK-1" not in channel.looked_up
    included = cli.json("listings", "include", "s", "--sku", "OK-1", "--sku", "OK-2")
    assert included["operation"] == "include_listings" and included["status"] == "ok"
    assert [(r["ref"], r["outcome"]) for r in included["records"]] == [
        ("OK-1", "ok"),
        ("OK-2", "skipped"),
    ]
    assert "not excluded (status linked)" in included["records"][1]["message"]
    assert _statuses(cli)["OK-1"] == "unlinked"
    channel.looked_up.clear()
    cli("listings", "link", "s")
    assert "OK-1" in channel.looked_up and _statuses(cli)["OK-1"] == "linked"
    again = cli.json("listings", "exclude", "s", "--sku", "OK-1")
    assert again["records"][0]["message"] == "excluded (was linked)"
    twice = cli.json("listings", "exclude", "s", "--sku", "OK-1")
    assert twice["records"] == [
        {"ref": "OK-1", "outcome": "skipped", "message": "already excluded"}
    ]
    text = cli("listings", "include", "s", "--sku", "OK-1").stdout
    assert "include — run" in text and "hub listings link s" in text


def test_exclude_and_include_refuse_bad_input_and_change_nothing(
    states: tuple[Any, StatesChannel], db_snapshot: Callable
) -> None:
    cli, _ = states
    before = db_snapshot(cli.url)
    for command in ("exclude", "include"):
        missing = cli("listings", command, "s", "--sku", "OK-1", "--sku", "NOPE", code=2)
        assert "Not in the catalog: NOPE" in missing.stderr
        assert "--sku" in cli("listings", command, "s", code=2).stderr
        assert "'nope'" in cli("listings", command, "nope", "--sku", "OK-1", code=2).stderr
    assert db_snapshot(cli.url) == before
