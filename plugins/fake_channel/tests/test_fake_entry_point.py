"""The plugin as the core sees it: found through the ``hub`` entry point, called by the registry,
and its ``hub fake ...`` commands."""

from __future__ import annotations

import json
from collections.abc import Generator
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hub_core import hookimpl
from hub_core.channel import (
    OPERATIONS,
    CatalogItem,
    ChannelConnection,
    LinkResult,
    ListingStatus,
)
from hub_core.errors import NotSupported
from hub_core.plugins import Registry
from hub_fake_channel import plugin
from hub_fake_channel.store import FakeStore


def test_the_plugin_is_found_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    [entry] = [ep for ep in entry_points(group="hub") if ep.name == "fake"]
    assert entry.value == "hub_fake_channel.plugin"
    # Other channels are being built alongside; load ours alone, by entry point only.
    others = [ep.name for ep in entry_points(group="hub") if ep.name != "fake"]
    monkeypatch.setenv("HUB_DISABLE_PLUGINS", ",".join(others))
    registry = Registry.load()
    assert "fake" in registry.channels
    channel = registry.channel("fake")
    assert channel.title == "Fake channel"
    assert channel.plugin_name == "fake"
    assert channel.describe() == {
        "name": "fake",
        "capabilities": dict.fromkeys(OPERATIONS, "supported"),
        "requirements": {"shipping_mappings": "optional"},
    }


def test_a_disabled_plugin_is_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [ep.name for ep in entry_points(group="hub")]
    monkeypatch.setenv("HUB_DISABLE_PLUGINS", ",".join(names))
    assert "fake" not in Registry.load().channels


def test_the_registry_calls_every_operation(store: FakeStore, conn: ChannelConnection) -> None:
    registry = Registry.load(load_entrypoints=False, plugins=[(plugin, "fake")])
    channel = registry.channel("fake")
    store.add_product("A-1")
    order_id = store.add_order()
    for operation in ("publish_listings", "get_orders", "explain_order", "acknowledge_orders"):
        registry.check_supported(channel, operation)  # none refused
    items = [CatalogItem("A-1", "A", 1, Decimal("1"))]
    [link] = registry.call(channel, "link_listings", connection=conn, items=items)
    assert link.status is ListingStatus.LINKED
    orders = list(registry.call(channel, "get_orders", connection=conn, days=7))
    assert [o.channel_order_id for o in orders] == [order_id]
    lookup = registry.call(channel, "explain_order", connection=conn, ref=order_id, days=7)
    assert lookup.order.channel_order_id == order_id
    assert store.calls() == {"link_listings": 1, "get_orders": 1, "explain_order": 1}


def test_the_registry_still_refuses_unknown_operations() -> None:
    registry = Registry.load(load_entrypoints=False, plugins=[(plugin, "fake")])
    with pytest.raises(NotSupported):
        registry.check_supported(registry.channel("fake"), "teleport_orders")


def test_a_wrapper_plugin_sees_fake_calls(store: FakeStore, conn: ChannelConnection) -> None:
    seen: list[str] = []

    class Tracer:
        @hookimpl(wrapper=True)
        def hub_link_listings(
            self, connection: ChannelConnection, items: list[CatalogItem]
        ) -> Generator[None, list[LinkResult], list[LinkResult]]:
            seen.append("before")
            result = yield
            seen.append(f"after {len(result)}")
            return result

    registry = Registry.load(
        load_entrypoints=False, plugins=[(plugin, "fake"), (Tracer(), "tracer")]
    )
    store.add_product("A-1")
    items = [CatalogItem("A-1", "A", 1, Decimal("1"))]
    [result] = registry.call(
        registry.channel("fake"), "link_listings", connection=conn, items=items
    )
    assert result.status is ListingStatus.LINKED
    assert seen == ["before", "after 1"]


# -- hub fake ... ---------------------------------------------------------------------------


@pytest.fixture
def cli() -> click.Group:
    """A bare root group with the plugin's commands, as ``hub`` would register them."""
    root = click.Group("hub")
    plugin.hub_register_commands(cli=root)
    return root


def test_seed_creates_a_deterministic_store(cli: click.Group, tmp_path: Path) -> None:
    path = tmp_path / "shop.json"
    result = CliRunner().invoke(
        cli, ["fake", "seed", str(path), "--products", "3", "--orders", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "store": str(path),
        "products": ["P-0001", "P-0002", "P-0003"],
        "orders": ["O-0001", "O-0002", "O-0003", "O-0004"],
    }
    store = FakeStore(path)
    assert [(p["sku"], p["quantity"], p["price"]) for p in store.products()] == [
        ("FAKE-0001", 8, "5.99"),
        ("FAKE-0002", 15, "6.99"),
        ("FAKE-0003", 2, "7.99"),
    ]
    orders = store.orders()
    assert [o["shipping_text"] for o in orders] == [
        "UPS - Ground",
        "USPS - Priority",
        "UPS - Ground",
        "USPS - Priority",
    ]
    assert [len(o["lines"]) for o in orders] == [1, 2, 1, 2]
    assert all(o["status"] == "open" and not o["acknowledged"] for o in orders)
    assert {ln["sku"] for o in orders for ln in o["lines"]} <= {
        "FAKE-0001",
        "FAKE-0002",
        "FAKE-0003",
    }


def test_seed_extends_an_existing_store(cli: click.Group, tmp_path: Path) -> None:
    path = tmp_path / "shop.json"
    runner = CliRunner()
    runner.invoke(cli, ["fake", "seed", str(path), "--products", "2", "--orders", "1"])
    result = runner.invoke(cli, ["fake", "seed", str(path), "--products", "2", "--orders", "1"])
    assert result.exit_code == 0, result.output
    assert "added 2 products (P-0003..P-0004) and 1 orders (O-0002)" in result.stdout
    assert [p["sku"] for p in FakeStore(path).products()] == [
        "FAKE-0001",
        "FAKE-0002",
        "FAKE-0003",
        "FAKE-0004",
    ]


def test_seed_refuses_a_file_that_is_not_a_store(cli: click.Group, tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("[1, 2]")
    result = CliRunner().invoke(cli, ["fake", "seed", str(path)])
    assert result.exit_code == 1
    assert "not a fake channel store" in result.output
    assert path.read_text() == "[1, 2]"


def test_fail_show_clear_and_delete_commands(cli: click.Group, tmp_path: Path) -> None:
    path = str(tmp_path / "shop.json")
    runner = CliRunner()
    runner.invoke(cli, ["fake", "seed", path, "--products", "2", "--orders", "1"])
    result = runner.invoke(
        cli, ["fake", "fail", path, "sync_orders", "--ref", "S1", "--kind", "transient"]
    )
    assert result.exit_code == 0, result.output
    assert FakeStore(path).failures() == [
        {"operation": "sync_orders", "ref": "S1", "times": 1, "kind": "transient"}
    ]
    bad = runner.invoke(cli, ["fake", "fail", path, "ship_everything"])
    assert bad.exit_code == 2
    shown = runner.invoke(cli, ["fake", "show", path])
    assert shown.exit_code == 0
    assert "FAKE-0001" in shown.stdout and "Failure switches armed: 1" in shown.stdout
    as_json = json.loads(runner.invoke(cli, ["fake", "show", path, "--json"]).stdout)
    assert len(as_json["products"]) == 2
    assert runner.invoke(cli, ["fake", "clear-failures", path]).exit_code == 0
    assert FakeStore(path).failures() == []
    assert runner.invoke(cli, ["fake", "delete-product", path, "P-0001"]).exit_code == 0
    assert FakeStore(path).product("P-0001") is None
    missing = runner.invoke(cli, ["fake", "delete-product", path, "P-0001"])
    assert missing.exit_code == 1 and "No product 'P-0001'" in missing.output
    absent = runner.invoke(cli, ["fake", "show", str(tmp_path / "absent.json")])
    assert absent.exit_code == 1 and "does not exist" in absent.output
