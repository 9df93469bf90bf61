"""Secrets: never printed by connections add/show/list/configure, never in run records or error
messages, even when a channel puts them there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hub_core import hookimpl
from hub_core.channel import CatalogItem, ChannelConnection, LinkResult, ListingStatus
from hub_core.errors import AuthError
from hub_fake_channel.store import FakeStore

SECRET = "sk-live-8f2e7c1d93"


def _assert_hidden(result: Any) -> None:
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr


def test_connections_commands_never_print_the_api_key(hub_cli: Any, store: FakeStore) -> None:
    added = hub_cli(
        "connections",
        "add",
        "shop",
        "--channel",
        "fake",
        "--set",
        f"store={store.path}",
        "--set",
        f"api_key={SECRET}",
        "--json",
    )
    _assert_hidden(added)
    for args in (
        ("connections", "show", "shop", "--json"),
        ("connections", "show", "shop"),
        ("connections", "list", "--json"),
        ("connections", "list"),
        ("connections", "test", "shop", "--json"),
        ("connections", "configure", "shop", "--set", "order_days=2", "--json"),
        ("connections", "configure", "shop", "--set", f"api_key={SECRET}x"),
    ):
        _assert_hidden(hub_cli(*args))
    shown = hub_cli.json("connections", "show", "shop")
    assert shown["config"]["api_key"] == "***"
    assert shown["config"]["store"] == str(store.path)
    # Bad input that echoes the values back must not echo the secret either.
    result = hub_cli(
        "connections",
        "add",
        "other",
        "--channel",
        "fake",
        "--set",
        f"api_key={SECRET}",
        "--set",
        "colour=red",
        code=2,
    )
    _assert_hidden(result)


class _Leaky:
    """A careless channel: its error messages and record messages carry the token."""

    def __init__(self, make_stub: Callable) -> None:
        self.stub = make_stub(name="leaky")
        for hook in (
            "hub_channel_name",
            "hub_channel_capabilities",
            "hub_channel_requirements",
            "hub_connection_schema",
            "hub_settings_schema",
            "hub_get_orders",
        ):
            setattr(self, hook, getattr(self.stub, hook))
        self.mode = "records"

    @hookimpl
    def hub_link_listings(
        self, connection: ChannelConnection, items: Sequence[CatalogItem]
    ) -> list[LinkResult]:
        token = connection.config["token"]
        if self.mode == "error":
            raise AuthError(f"401 for Authorization: Bearer {token} (token {token} refused)")
        if self.mode == "crash":
            raise RuntimeError(f"unexpected answer for token {token}")
        return [
            LinkResult(i.sku, ListingStatus.NOT_FOUND, message=f"not found with {token}")
            for i in items
        ]


@pytest.mark.parametrize("mode", ["records", "error", "crash"])
def test_run_records_and_error_messages_never_contain_secrets(
    hub_cli: Any,
    make_stub: Callable,
    make_registry: Callable,
    catalog_file: Callable,
    mode: str,
) -> None:
    leaky = _Leaky(make_stub)
    leaky.mode = mode
    registry = make_registry((leaky, "leaky"))
    hub_cli(
        "connections",
        "add",
        "s",
        "--channel",
        "leaky",
        "--set",
        "account=a",
        "--set",
        f"token={SECRET}",
        registry=registry,
    )
    hub_cli("catalog", "import", str(catalog_file()))
    crash = mode == "crash"
    result = hub_cli(
        "listings", "link", "s", "--json", code=None, registry=registry, internal_error=crash
    )
    # not_found is a state, not a failure (exit 0); its message is still recorded, masked.
    assert result.exit_code == {"records": 0, "error": 1, "crash": 1}[mode]
    _assert_hidden(result)
    if mode != "records":
        assert "***" in result.stderr  # the message is kept, only the secret is masked
    _assert_hidden(
        hub_cli("listings", "link", "s", code=None, registry=registry, internal_error=crash)
    )
    for run in hub_cli.json("runs", "list"):
        _assert_hidden(hub_cli("runs", "show", str(run["run_id"]), "--json"))
        _assert_hidden(hub_cli("runs", "show", str(run["run_id"])))
    _assert_hidden(hub_cli("listings", "list", "s", "--json"))
    _assert_hidden(
        hub_cli("run", "s", "--json", code=None, registry=registry, internal_error=crash)
    )


class _LeakyChecks(_Leaky):
    @hookimpl
    def hub_test_connection(self, connection: ChannelConnection) -> list[Any]:
        raise AuthError(f"token {connection.config['token']} was refused")


def test_errors_of_calls_outside_runs_never_contain_secrets(
    hub_cli: Any, make_stub: Callable, make_registry: Callable
) -> None:
    registry = make_registry((_LeakyChecks(make_stub), "leaky"))
    hub_cli(
        "connections",
        "add",
        "s",
        "--channel",
        "leaky",
        "--set",
        "account=a",
        "--set",
        f"token={SECRET}",
        registry=registry,
    )
    result = hub_cli("connections", "test", "s", code=1, registry=registry)
    _assert_hidden(result)
    assert "token *** was refused" in result.stderr


def test_a_refused_key_is_not_repeated_in_messages(cli_shop: Any, catalog_file: Callable) -> None:
    cli_shop("catalog", "import", str(catalog_file()))
    cli_shop("connections", "configure", "shop", "--set", "api_key=bad")
    result = cli_shop("listings", "link", "shop", "--json", code=1)
    assert "refused the API key" in result.stderr
    run = cli_shop.json("runs", "show", str(cli_shop.json("runs", "list")[0]["run_id"]))
    assert run["status"] == "failed" and "api_key=bad" not in run["message"]
