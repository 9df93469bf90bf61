"""A channel declares itself with one hook, ``hub_channel()``; the core is channel-neutral:
reauthorization advice comes from the plugin, and ``hub connections test`` runs the plugin's
checks on a ``needs_reauth`` connection (issue 9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from marshmallow import Schema, fields

from hub_core import hookimpl
from hub_core.channel import (
    OPERATIONS,
    ChannelConnection,
    ChannelDescription,
    ConnectionCheck,
    LinkResult,
)
from hub_core.db import Database
from hub_core.errors import NeedsReauth, PluginError
from hub_core.plugins import DEFAULT_REAUTH_ADVICE, Registry, get_plugin_manager
from hub_core.services import Hub
from hub_core.services.connections import open_run
from hub_fake_channel.store import FakeStore


class Values(Schema):
    """A connection: an account and a secret token."""

    class Meta:
        secret_fields = ("token",)

    account = fields.String(required=True)
    token = fields.String(required=True, load_only=True)


class Settings(Schema):
    """No settings but the order window."""

    order_days = fields.Integer(load_default=7)


class Described:
    """A channel declared with ``hub_channel`` alone; its token check passes unless told."""

    def __init__(self, description: Any = None, *, token_ok: bool = True) -> None:
        self.description = description or ChannelDescription(
            name="described",
            title="Described Shop",
            connection_schema=Values,
            settings_schema=Settings,
            supports=("link_listings", "get_orders"),
            requires=("shipping_mappings",),
            reauth_advice="Run 'hub connections configure {name} --set token=NEW' once.",
        )
        self.token_ok = token_ok
        self.calls: list[str] = []

    @hookimpl
    def hub_channel(self) -> Any:
        return self.description

    @hookimpl
    def hub_test_connection(self, connection: ChannelConnection) -> list[ConnectionCheck]:
        self.calls.append("test_connection")
        if not self.token_ok:
            connection.mark_needs_reauth("Described Shop refused the token again")
            return [ConnectionCheck("token", False, "Described Shop refused the token again")]
        return [ConnectionCheck("token", True, "accepted")]

    @hookimpl
    def hub_link_listings(self, connection: ChannelConnection, items: list) -> list[LinkResult]:
        self.calls.append("link_listings")
        connection.mark_needs_reauth(f"Described Shop revoked token {connection.config['token']}")
        raise NeedsReauth(f"Described Shop revoked token {connection.config['token']}")


def registry_of(*plugins: tuple[object, str]) -> Registry:
    return Registry(get_plugin_manager(load_entrypoints=False, plugins=plugins))


# --- the description ------------------------------------------------------------------------


def test_one_hook_declares_the_whole_channel(hub_cli: Any) -> None:
    registry = registry_of((Described(), "described"))
    channel = registry.channel("described")
    assert (channel.title, channel.plugin_name) == ("Described Shop", "described")
    assert channel.connection_schema is Values and channel.settings_schema is Settings
    assert hub_cli.json("channels", registry=registry) == [
        {
            "name": "described",
            "capabilities": {
                "link_listings": "supported",
                "sync_listings": "not_supported",
                "publish_listings": "not_supported",
                "get_orders": "supported",
                "sync_orders": "not_supported",
            },
            "requirements": {"shipping_mappings": "required"},
        }
    ]


def test_defaults_support_everything_and_require_nothing() -> None:
    plain = ChannelDescription(name="plain", connection_schema=Values, settings_schema=Settings)
    channel = registry_of((Described(plain), "plain")).channel("plain")
    assert channel.capabilities == dict.fromkeys(OPERATIONS, "supported")
    assert channel.requirements == {"shipping_mappings": "optional"}
    assert channel.title == "plain" and channel.reauth_advice == DEFAULT_REAUTH_ADVICE


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"name": ""}, "name must be a word"),
        ({"supports": ("link_listings", "teleport")}, "unknown operations ['teleport']"),
        ({"supports": "link_listings"}, "collections of names, not one string"),
        ({"requires": ("payments",)}, "unknown requirements ['payments']"),
        ({"settings_schema": dict}, "settings_schema must be a marshmallow Schema class"),
    ],
)
def test_a_wrong_description_is_a_plugin_error_naming_what_is_wrong(
    changes: dict[str, Any], named: str
) -> None:
    base = {"name": "bad", "connection_schema": Values, "settings_schema": Settings}
    with pytest.raises(PluginError, match=r"Plugin 'bad' describes its channel wrongly") as caught:
        registry_of((Described(ChannelDescription(**{**base, **changes})), "bad"))
    assert named in caught.value.message


def test_hub_channel_must_return_a_description() -> None:
    with pytest.raises(PluginError, match=r"must return a hub_core\.channel\.ChannelDescription"):
        registry_of((Described({"name": "dict"}), "dict"))


def test_a_plugin_declares_with_one_hook_or_the_older_ones_not_both(make_stub: Callable) -> None:
    stub = make_stub(name="both")
    stub.hub_channel = hookimpl(lambda: Described().description)
    with pytest.raises(PluginError, match="implements both hub_channel and hub_channel_name"):
        registry_of((stub, "both"))


def test_the_older_declaring_hooks_still_declare_a_channel(make_stub: Callable) -> None:
    registry = registry_of((make_stub(name="older"), "older"), (Described(), "described"))
    assert set(registry.channels) == {"older", "described"}
    assert registry.channel("older").reauth_advice == DEFAULT_REAUTH_ADVICE


# --- reauthorization advice comes from the plugin ------------------------------------------


def test_the_core_names_no_channels_keys_when_the_plugin_gives_no_advice(
    make_stub: Callable,
) -> None:
    channel = registry_of((make_stub(name="older"), "older")).channel("older")
    message = channel.reauth_message("shop", "The stub refused the token.")
    assert message == (
        "Connection 'shop' must be reconnected: The stub refused the token. Give it new "
        "credentials with 'hub connections configure shop --set KEY=VALUE' (its keys: "
        "'hub connections show shop')."
    )
    assert "access_token" not in message and "refresh_token" not in message


def test_a_refusal_during_an_operation_gives_the_plugins_one_command(
    database_url: str, catalog_file: Callable
) -> None:
    from hub_core.services.catalog import import_catalog
    from hub_core.services.connections import add_connection
    from hub_core.services.listings import link_listings

    plugin = Described()
    hub = Hub(db=Database(database_url), registry=registry_of((plugin, "described")))
    add_connection(hub, "shop", "described", {"account": "a", "token": "tok-secret-9"})
    import_catalog(hub, catalog_file())
    with pytest.raises(NeedsReauth) as caught:
        link_listings(hub, "shop")
    assert caught.value.message == (
        "Connection 'shop' must be reconnected: Described Shop revoked token ***. "
        "Run 'hub connections configure shop --set token=NEW' once."
    )
    # Later operations stop before the plugin runs, with the same one command.
    with pytest.raises(NeedsReauth) as again:
        open_run(hub, "shop")
    assert again.value.message.count("hub connections configure") == 1
    assert "tok-secret-9" not in again.value.message
    assert plugin.calls == ["link_listings"]
    hub.db.dispose()


# --- hub connections test on a connection needing reauthorization --------------------------


def _mark_needs_reauth(url: str, registry: Registry, reason: str) -> None:
    hub = Hub(db=Database(url), registry=registry)
    open_run(hub, "shop").connection.mark_needs_reauth(reason)
    hub.db.dispose()


def test_connections_test_checks_a_needs_reauth_connection_and_passing_marks_it_ok(
    cli_shop: Any, store: FakeStore, registry: Registry, catalog_file: Callable
) -> None:
    cli_shop("catalog", "import", str(catalog_file()))
    _mark_needs_reauth(cli_shop.url, registry, "The fake channel refused the key")
    assert cli_shop.json("connections", "show", "shop")["health"] == "needs_reauth"
    result = cli_shop("connections", "test", "shop")
    assert "Connection 'shop' works." in result.stdout
    assert store.calls()["test_connection"] == 1
    assert cli_shop.json("connections", "show", "shop")["health"] == "ok"
    cli_shop("listings", "link", "shop")  # runs again (the SKUs are not on the channel: a state)
    assert store.calls()["link_listings"] == 1


def test_connections_test_on_a_still_refused_connection_says_the_one_fix(
    hub_cli: Any, database_url: str
) -> None:
    plugin = Described(token_ok=False)
    registry = registry_of((plugin, "described"))
    hub_cli(
        "connections", "add", "shop", "--channel", "described", "--set", "account=a",
        "--set", "token=tok-secret-9", registry=registry,
    )  # fmt: skip
    _mark_needs_reauth(database_url, registry, "Described Shop refused the token")
    result = hub_cli("connections", "test", "shop", code=1, registry=registry)
    assert plugin.calls == ["test_connection"]
    assert "FAIL token: Described Shop refused the token again" in result.stdout
    assert result.stdout.count("hub connections configure") == 1
    assert "Run 'hub connections configure shop --set token=NEW' once." in result.stdout
    shown = hub_cli.json("connections", "test", "shop", code=1, registry=registry)
    assert shown["reauth"].startswith("Connection 'shop' must be reconnected: Described Shop")
    assert hub_cli.json("connections", "show", "shop", registry=registry)["health"] == (
        "needs_reauth"
    )


def test_the_core_names_no_channels_key_in_its_own_messages(hub_cli: Any) -> None:
    result = hub_cli("connections", "add", "shop", "--channel", "fake", "--set", "oops", code=2)
    assert "--set takes KEY=VALUE; got 'oops'." in result.stderr
    assert "profile_id" not in result.stderr
