"""Plugins you can see: ``hub plugins [--json]``, ``HUB_TRACE_PLUGINS=1``, wrappers that see
the whole of get orders, and a registry built by the factory and passed (issue 9)."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable, Generator
from typing import Any

import pytest
from sqlalchemy import func, select

from hub_core import hookimpl
from hub_core.channel import ChannelConnection
from hub_core.errors import ChannelError
from hub_core.models import Order
from hub_core.plugins import Registry
from hub_core.services import Hub
from hub_core.services.orders import get_orders
from hub_core.services.shipping import add_mapping
from hub_fake_channel import plugin as fake_plugin
from hub_fake_channel.store import FakeStore

TRACE_LINE = re.compile(r"^hub trace: (hub_\w+) \[([^\]]*)\] \d+\.\d ms( raised \w+)?$")


class _Watcher:
    """A wrapper plugin around get orders that notes what it saw, and when."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub
        self.seen: list[str] = []

    def _stored(self) -> int:
        assert self.hub is not None
        with self.hub.db.session() as session:
            return session.scalar(select(func.count()).select_from(Order)) or 0

    @hookimpl(wrapper=True)
    def hub_get_orders(self) -> Generator[None, Any, Any]:
        self.seen.append(f"enter get_orders, {self._stored()} stored")
        try:
            answer = yield
        except ChannelError as exc:
            self.seen.append(f"get_orders raised {exc.__class__.__name__}")
            raise
        self.seen.append(f"leave get_orders, {self._stored()} stored")
        return answer

    @hookimpl(wrapper=True)
    def hub_acknowledge_orders(self, channel_order_ids: list[str]) -> Generator[None, Any, Any]:
        self.seen.append(f"acknowledge {len(channel_order_ids)}")
        return (yield)


@pytest.fixture
def mapped(hub: Hub, shop: str) -> str:
    """``UPS - Ground`` (the fake store's shipping text) mapped on ``shop``."""
    add_mapping(hub, shop, "UPS - Ground", "standard")
    return shop


# --- hub plugins ----------------------------------------------------------------------------


def test_plugins_json_lists_each_installed_plugin_with_distribution_version_and_hooks(
    hub_cli: Any,
) -> None:
    plugins = {p["name"]: p for p in hub_cli.json("plugins")}
    assert {"fake", "channeladvisor", "channeladvisor_sandbox"} <= set(plugins)
    assert "hub-core" not in plugins, "the core's own plugin is not an installed plugin"
    fake = plugins["fake"]
    assert fake["distribution"] == "hub-fake-channel"
    assert fake["version"] == importlib.metadata.version("hub-fake-channel")
    assert fake["channel"] == "fake"
    assert {"hub_channel", "hub_get_orders", "hub_register_commands"} <= set(fake["hooks"])
    assert fake["hooks"] == sorted(fake["hooks"])
    sandbox = plugins["channeladvisor_sandbox"]
    assert sandbox["distribution"] == "hub-channeladvisor-sandbox"
    assert sandbox["channel"] is None and sandbox["hooks"] == ["hub_register_commands"]
    assert plugins["channeladvisor"]["channel"] == "channeladvisor"


def test_plugins_text_names_each_plugin_and_its_hooks(hub_cli: Any) -> None:
    out = hub_cli("plugins").stdout
    version = importlib.metadata.version("hub-fake-channel")
    assert f"fake (hub-fake-channel {version}, channel fake)" in out
    assert "channeladvisor_sandbox (hub-channeladvisor-sandbox" in out
    assert "  hooks: hub_acknowledge_orders, hub_channel," in out


def test_a_plugin_registered_in_process_has_no_distribution(
    hub_cli: Any, make_registry: Callable
) -> None:
    registry = make_registry((_Watcher(), "watcher"), load_entrypoints=False)
    assert hub_cli.json("plugins", registry=registry) == [
        {
            "name": "watcher",
            "distribution": None,
            "version": None,
            "hooks": ["hub_acknowledge_orders", "hub_get_orders"],
            "channel": None,
        }
    ]
    assert "watcher (no distribution)" in hub_cli("plugins", registry=registry).stdout


# --- HUB_TRACE_PLUGINS ----------------------------------------------------------------------


def test_trace_prints_each_hook_call_with_its_plugins_and_duration(
    cli_shop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_TRACE_PLUGINS", "1")
    cli_shop.registry = None  # built by the factory, which reads the variable
    result = cli_shop("connections", "test", "shop")
    lines = [line for line in result.stderr.splitlines() if line.startswith("hub trace:")]
    assert len(lines) == 1, result.stderr
    match = TRACE_LINE.match(lines[0])
    assert match, lines[0]
    assert match.group(1) == "hub_test_connection"
    assert match.group(2) == "fake"
    assert "hub trace" not in result.stdout


def test_trace_names_every_plugin_reached_and_a_failure(
    hub: Hub,
    mapped: str,
    store: FakeStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUB_TRACE_PLUGINS", "1")
    traced = Hub(db=hub.db, registry=Registry.load(plugins=[(_Watcher(hub), "watcher")]))
    store.add_order([("SKU-1", 1)], order_id="T-1")
    store.fail("acknowledge_orders", times=1)
    with pytest.raises(ChannelError):
        get_orders(traced, mapped)
    lines = [TRACE_LINE.match(line) for line in capsys.readouterr().err.splitlines()]
    calls = [(m.group(1), sorted(m.group(2).split(", ")), m.group(3)) for m in lines if m]
    # The acknowledge call ends first: it runs inside get orders (a wrapper sees it all).
    assert calls == [
        ("hub_acknowledge_orders", ["fake", "watcher"], " raised ChannelError"),
        ("hub_get_orders", ["fake", "hub-core", "watcher"], " raised ChannelError"),
    ]


def test_no_trace_without_the_variable(cli_shop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_TRACE_PLUGINS", raising=False)
    cli_shop.registry = None
    assert "hub trace" not in cli_shop("connections", "test", "shop").stderr


# --- a wrapper sees the whole of get orders -------------------------------------------------


def test_a_wrapper_around_get_orders_sees_storing_and_acknowledging(
    hub: Hub, mapped: str, store: FakeStore
) -> None:
    watcher = _Watcher(hub)
    watched = Hub(db=hub.db, registry=Registry.load(plugins=[(watcher, "watcher")]))
    for n in range(3):
        store.add_order([("SKU-1", 1)], order_id=f"W-{n}")
    result = get_orders(watched, mapped)
    assert result.counts["imported"] == 3
    assert watcher.seen == [
        "enter get_orders, 0 stored",
        "acknowledge 3",
        "leave get_orders, 3 stored",
    ]


def test_a_wrapper_around_get_orders_sees_a_failure_while_storing(
    hub: Hub, mapped: str, store: FakeStore
) -> None:
    watcher = _Watcher(hub)
    watched = Hub(db=hub.db, registry=Registry.load(plugins=[(watcher, "watcher")]))
    store.add_order([("SKU-1", 1)], order_id="W-1")
    store.fail("acknowledge_orders", times=1)
    with pytest.raises(ChannelError):
        get_orders(watched, mapped)
    assert watcher.seen == [
        "enter get_orders, 0 stored",
        "acknowledge 1",
        "get_orders raised ChannelError",
    ]


def test_called_without_a_consumer_get_orders_still_answers_its_orders(store: FakeStore) -> None:
    registry = Registry.load(load_entrypoints=False, plugins=[(fake_plugin, "fake")])
    conn = ChannelConnection("shop", "fake", {"store": str(store.path)}, {"statuses": "open"})
    store.add_order([("SKU-1", 1)], order_id="N-1")
    orders = registry.call(registry.channel("fake"), "get_orders", connection=conn, days=7)
    assert [o.channel_order_id for o in orders] == ["N-1"]


# --- the registry is built by the factory and passed ----------------------------------------


def test_two_registries_in_one_process_keep_their_own_commands(
    hub_cli: Any, make_registry: Callable
) -> None:
    only_fake = make_registry((fake_plugin, "fake"), load_entrypoints=False)
    assert "fake [OPTIONS] COMMAND" in hub_cli("fake", "--help", registry=only_fake).stdout
    assert "No such command 'demo'" in hub_cli("demo", "--help", code=2, registry=only_fake).stderr
    assert "demo [OPTIONS]" in hub_cli("demo", "--help").stdout  # the installed plugins
    listed = hub_cli("--help", registry=only_fake).stdout
    assert "fake" in listed and "demo" not in listed
