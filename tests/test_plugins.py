"""Plugin discovery and dispatch: entry points, HUB_DISABLE_PLUGINS, check_pending, wrapper
plugins that see every operation, and calls that reach exactly one channel."""

from __future__ import annotations

import importlib
import importlib.metadata
import textwrap
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

from hub_core import hookimpl
from hub_core.channel import CatalogItem, ChannelConnection, LinkResult
from hub_core.errors import ChannelError, PluginError
from hub_core.plugins import OPERATION_HOOKS, PluginLoadWarning, Registry, get_plugin_manager
from hub_core.services import Hub
from hub_core.services.catalog import import_catalog, set_product
from hub_core.services.connections import add_connection, check_connection
from hub_core.services.listings import link_listings, publish_listings, sync_listings
from hub_core.services.orders import explain_order, get_orders
from hub_core.services.shipments import ship_order, sync_orders
from hub_core.services.shipping import add_mapping
from hub_fake_channel.store import FakeStore


@pytest.fixture
def fresh_cli_registry(hub_cli: Any) -> None:
    """Pass the CLI no registry: each command then builds its own with the factory."""
    hub_cli.registry = None


def test_both_channels_are_found_through_entry_points(
    hub_cli: Any, fresh_cli_registry: None
) -> None:
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="hub")}
    assert entry_points["fake"] == "hub_fake_channel.plugin"
    assert entry_points["channeladvisor"] == "hub_channeladvisor.plugin"
    channels = {c["name"]: c for c in hub_cli.json("channels")}
    assert {"fake", "channeladvisor"} <= set(channels)
    assert channels["channeladvisor"]["capabilities"]["publish_listings"] == "not_supported"
    assert channels["channeladvisor"]["requirements"] == {"shipping_mappings": "required"}
    registry = Registry.load()
    assert registry.channels["fake"].plugin_name == "fake"
    assert registry.channels["channeladvisor"].plugin_name == "channeladvisor"


def test_disabled_plugins_are_not_loaded(
    hub_cli: Any, store: FakeStore, monkeypatch: pytest.MonkeyPatch, fresh_cli_registry: None
) -> None:
    monkeypatch.setenv("HUB_DISABLE_PLUGINS", "fake")
    names = [c["name"] for c in hub_cli.json("channels")]
    assert "fake" not in names and "channeladvisor" in names
    result = hub_cli(
        "connections", "add", "shop", "--channel", "fake", "--set", f"store={store.path}", code=2
    )
    assert "Unknown channel 'fake'" in result.stderr
    monkeypatch.setenv("HUB_DISABLE_PLUGINS", " fake , channeladvisor ")
    assert Registry.load().channels == {}


def _install_distribution(root: Path, name: str, entry_point: str, module: str = "") -> None:
    """Make ``root`` hold a distribution with one ``hub`` entry point (and its module)."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[hub]\n{name} = {entry_point}\n")
    if module:
        (root / f"{entry_point}.py").write_text(textwrap.dedent(module))


THIRD_PARTY = """
    from marshmallow import Schema, fields
    from hub_core import hookimpl

    class Values(Schema):
        account = fields.String(required=True)

    class Settings(Schema):
        pass

    @hookimpl
    def hub_channel_name():
        return "thirdparty"

    @hookimpl
    def hub_channel_capabilities():
        return {op: "not_supported" for op in (
            "link_listings", "sync_listings", "publish_listings", "get_orders", "sync_orders")}

    @hookimpl
    def hub_channel_requirements():
        return {"shipping_mappings": "optional"}

    @hookimpl
    def hub_connection_schema():
        return Values

    @hookimpl
    def hub_settings_schema():
        return Settings
"""


def test_a_third_party_channel_needs_only_a_distribution_with_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_distribution(tmp_path, "thirdparty", "hub_thirdparty_channel", THIRD_PARTY)
    _install_distribution(tmp_path / "broken", "broken", "hub_no_such_module_anywhere")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "broken"))
    importlib.invalidate_caches()
    with pytest.warns(PluginLoadWarning, match="'broken'.*HUB_DISABLE_PLUGINS=broken"):
        registry = Registry.load()
    assert {"thirdparty", "fake"} <= set(registry.channels)
    assert registry.channels["thirdparty"].plugin_name == "thirdparty"


class _Misspelled:
    @hookimpl
    def hub_link_listing(self, connection: ChannelConnection) -> list[LinkResult]:
        return []


class _BadArgument:
    @hookimpl
    def hub_link_listings(
        self, connection: ChannelConnection, items: Sequence[CatalogItem], extra: int
    ) -> list[LinkResult]:
        return []


def test_check_pending_rejects_a_misspelled_hook() -> None:
    with pytest.raises(PluginError, match="hub_link_listing"):
        get_plugin_manager(load_entrypoints=False, plugins=[(_Misspelled(), "typo")])


def test_a_hook_asking_for_an_unknown_argument_is_rejected() -> None:
    with pytest.raises(PluginError, match="extra"):
        get_plugin_manager(load_entrypoints=False, plugins=[(_BadArgument(), "bad-argument")])


def test_two_plugins_declaring_one_channel_are_refused(make_stub: Callable) -> None:
    with pytest.raises(PluginError, match="Two plugins declare the channel 'fake'"):
        Registry(get_plugin_manager(plugins=[(make_stub(name="fake"), "impostor")]))


def test_capabilities_must_name_every_operation(make_stub: Callable) -> None:
    stub = make_stub()
    del stub.capabilities["sync_orders"]
    with pytest.raises(PluginError, match="sync_orders"):
        Registry(get_plugin_manager(load_entrypoints=False, plugins=[(stub, "stub")]))
    stub.capabilities["sync_orders"] = "maybe"
    with pytest.raises(PluginError, match="maybe"):
        Registry(get_plugin_manager(load_entrypoints=False, plugins=[(stub, "stub")]))


class _Tracer:
    """A non-channel plugin wrapping every operation hook, as run recording or tracing would."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def _trace(self, hook: str, connection: ChannelConnection) -> Generator[None, Any, Any]:
        self.seen.append((hook, connection.channel))
        return (yield)

    @hookimpl(wrapper=True)
    def hub_test_connection(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_test_connection", connection))

    @hookimpl(wrapper=True)
    def hub_link_listings(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_link_listings", connection))

    @hookimpl(wrapper=True)
    def hub_sync_listings(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_sync_listings", connection))

    @hookimpl(wrapper=True)
    def hub_publish_listings(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_publish_listings", connection))

    @hookimpl(wrapper=True)
    def hub_get_orders(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_get_orders", connection))

    @hookimpl(wrapper=True)
    def hub_acknowledge_orders(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_acknowledge_orders", connection))

    @hookimpl(wrapper=True)
    def hub_sync_orders(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_sync_orders", connection))

    @hookimpl(wrapper=True)
    def hub_explain_order(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        return (yield from self._trace("hub_explain_order", connection))


def _exercise(hub: Hub, name: str, store: FakeStore, catalog_file: Callable) -> None:
    """Call every operation once on connection ``name`` of the fake channel."""
    check_connection(hub, name)
    import_catalog(hub, catalog_file())
    store.add_product("SKU-1")
    link_listings(hub, name, ["SKU-1"])
    sync_listings(hub, name)
    publish_listings(hub, name, ["SKU-2"])
    add_mapping(hub, name, "UPS - Ground", "standard")
    store.add_order([("SKU-1", 1)], order_id="O-1")
    store.add_order([("SKU-1", 1)], order_id="O-2", status="pending")
    get_orders(hub, name)
    explain_order(hub, name, "O-2")
    ship_order(hub, name, "O-1", tracking="T", carrier="UPS", shipping_class="Ground")
    sync_orders(hub, name)


def test_a_wrapper_plugin_sees_every_operation_call(
    database_url: str, store: FakeStore, catalog_file: Callable, make_registry: Callable
) -> None:
    tracer = _Tracer()
    hub = Hub.open(database_url, plugins=[(tracer, "tracer")])
    add_connection(hub, "shop", "fake", {"store": str(store.path)})
    _exercise(hub, "shop", store, catalog_file)
    assert [hook for hook, _ in tracer.seen] == [
        "hub_test_connection",
        "hub_link_listings",
        "hub_sync_listings",
        "hub_publish_listings",
        "hub_get_orders",
        "hub_acknowledge_orders",
        "hub_explain_order",
        "hub_sync_orders",
    ]
    assert set(OPERATION_HOOKS.values()) == {hook for hook, _ in tracer.seen}
    assert {channel for _, channel in tracer.seen} == {"fake"}
    # The wrapped calls still did their work.
    assert store.order("O-1")["acknowledged"] is True
    assert len(store.shipments_received()) == 1
    hub.db.dispose()


def test_a_wrapper_can_refuse_a_call_before_the_channel_runs(
    database_url: str, store: FakeStore, catalog_file: Callable
) -> None:
    class Guard:
        @hookimpl(wrapper=True)
        def hub_sync_listings(self) -> Generator[None, Any, Any]:
            raise ChannelError("sync listings is paused by the guard")
            yield  # pragma: no cover

    hub = Hub.open(database_url, plugins=[(Guard(), "guard")])
    add_connection(hub, "shop", "fake", {"store": str(store.path)})
    import_catalog(hub, catalog_file())
    store.add_product("SKU-1")
    link_listings(hub, "shop", ["SKU-1"])
    with pytest.raises(ChannelError, match="paused by the guard"):
        sync_listings(hub, "shop")
    assert "sync_listings" not in store.calls()
    hub.db.dispose()


def test_a_call_reaches_only_the_channel_of_its_connection(
    database_url: str, store: FakeStore, catalog_file: Callable, make_stub: Callable
) -> None:
    other = make_stub(name="other")
    tracer = _Tracer()
    hub = Hub.open(database_url, plugins=[(other, "other"), (tracer, "tracer")])
    add_connection(hub, "shop", "fake", {"store": str(store.path)})
    add_connection(hub, "elsewhere", "other", {"account": "a", "token": "t"})

    _exercise(hub, "shop", store, catalog_file)
    assert other.calls == []
    calls_on_fake = store.calls()
    assert calls_on_fake == {hook.removeprefix("hub_"): 1 for hook in OPERATION_HOOKS.values()}

    set_product(hub, "SKU-1", quantity=99)
    check_connection(hub, "elsewhere")
    link_listings(hub, "elsewhere")
    sync_listings(hub, "elsewhere")
    get_orders(hub, "elsewhere")
    assert other.calls == [
        "hub_test_connection",
        "hub_link_listings",
        "hub_sync_listings",
        "hub_get_orders",
    ]
    assert store.calls() == calls_on_fake
    # The wrapper saw the calls of both channels.
    assert {channel for _, channel in tracer.seen} == {"fake", "other"}
    hub.db.dispose()


def test_a_supported_operation_the_plugin_does_not_implement_is_a_plugin_error(
    database_url: str, make_stub: Callable, catalog_file: Callable
) -> None:
    class Lazy:
        """Declares everything supported, implements nothing but the declarations."""

        def __init__(self) -> None:
            self.stub = make_stub(name="lazy")
            for hook in (
                "hub_channel_name",
                "hub_channel_capabilities",
                "hub_channel_requirements",
                "hub_connection_schema",
                "hub_settings_schema",
            ):
                setattr(self, hook, getattr(self.stub, hook))

    hub = Hub.open(database_url, load_entrypoints=False, plugins=[(Lazy(), "lazy")])
    add_connection(hub, "l", "lazy", {"account": "a", "token": "t"})
    import_catalog(hub, catalog_file())
    with pytest.raises(PluginError, match="does not implement"):
        link_listings(hub, "l")
    hub.db.dispose()
