"""``hub channels`` and ``hub connections ...``: success, JSON shapes, exit codes, bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub_core.services.schedule import SCHEDULE_DEFAULTS
from hub_fake_channel.store import FakeStore

SECRET = "sk-live-8f2e7c1d"


def test_channels_json_lists_the_fake_channel_with_its_capabilities(hub_cli: Any) -> None:
    channels = hub_cli.json("channels")
    fake = next(c for c in channels if c["name"] == "fake")
    assert fake == {
        "name": "fake",
        "capabilities": {
            "link_listings": "supported",
            "sync_listings": "supported",
            "publish_listings": "supported",
            "get_orders": "supported",
            "sync_orders": "supported",
        },
        "requirements": {"shipping_mappings": "optional"},
    }


def test_channels_text(hub_cli: Any, table: Callable) -> None:
    rows = {row["CHANNEL"]: row for row in table(hub_cli("channels").stdout)}
    assert rows["fake"]["LINK_LISTINGS"] == "supported"
    assert rows["fake"]["SHIPPING_MAPPINGS"] == "optional"


def test_add_list_show_configure_remove(hub_cli: Any, store: FakeStore) -> None:
    added = hub_cli.json(
        "connections", "add", "shop", "--channel", "fake", "--set", f"store={store.path}"
    )
    assert added["name"] == "shop" and added["channel"] == "fake"
    assert added["config"]["store"] == str(store.path)

    listed = hub_cli.json("connections", "list")
    assert [c["name"] for c in listed] == ["shop"]
    assert {"name", "channel", "config", "settings", "health"} <= set(listed[0])

    shown = hub_cli.json("connections", "show", "shop")
    # The channel's settings, then the scheduler's (every connection has them).
    assert shown["settings"] == {"order_days": 7, "statuses": "open", **SCHEDULE_DEFAULTS}
    assert "shop (fake)" in hub_cli("connections", "show", "shop").stdout

    configured = hub_cli.json(
        "connections", "configure", "shop", "--set", "order_days=3", "--set", "statuses=open,paid"
    )
    assert configured["settings"] == {
        "order_days": 3, "statuses": "open,paid", **SCHEDULE_DEFAULTS
    }
    assert hub_cli.json("connections", "show", "shop")["settings"]["order_days"] == 3

    assert "Removed connection 'shop'" in hub_cli("connections", "remove", "shop").stdout
    assert hub_cli.json("connections", "list") == []


def test_text_output_of_add_and_list(hub_cli: Any, store: FakeStore, table: Callable) -> None:
    out = hub_cli("connections", "add", "shop", "--channel", "fake", "--set", f"store={store.path}")
    assert "Added connection 'shop' (fake)" in out.stdout
    assert table(hub_cli("connections", "list").stdout) == [
        {"NAME": "shop", "CHANNEL": "fake", "HEALTH": "unknown", "NOTE": "-"}
    ]


def test_empty_list_says_how_to_add_one(hub_cli: Any) -> None:
    assert "hub connections add" in hub_cli("connections", "list").stdout


def test_connection_test_ok_records_health(cli_shop: Any) -> None:
    data = cli_shop.json("connections", "test", "shop")
    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]] == ["credentials", "store"]
    assert cli_shop.json("connections", "show", "shop")["health"] == "ok"
    assert "works." in cli_shop("connections", "test", "shop").stdout


def test_connection_test_with_a_refused_key_exits_1(cli_shop: Any) -> None:
    cli_shop("connections", "configure", "shop", "--set", "api_key=bad")
    result = cli_shop("connections", "test", "shop", code=1)
    assert "FAIL credentials" in result.stdout
    assert cli_shop.json("connections", "show", "shop")["health"] == "failing"


def test_connection_test_when_the_channel_fails_exits_1(cli_shop: Any, store: FakeStore) -> None:
    store.fail("test_connection")
    result = cli_shop("connections", "test", "shop", code=1)
    assert "refused test_connection" in result.stderr


def test_connection_test_with_a_missing_store_file_exits_1(hub_cli: Any, tmp_path: Any) -> None:
    missing = tmp_path / "nowhere.json"
    hub_cli("connections", "add", "shop", "--channel", "fake", "--set", f"store={missing}")
    result = hub_cli("connections", "test", "shop", code=1)
    assert "does not exist" in result.stdout


# --- bad input: exit 2, nothing changed -----------------------------------------------------


def test_unknown_channel(hub_cli: Any, db_snapshot: Callable, store: FakeStore) -> None:
    before = db_snapshot(hub_cli.url)
    result = hub_cli(
        "connections", "add", "shop", "--channel", "nosuch", "--set", f"store={store.path}", code=2
    )
    assert "Unknown channel 'nosuch'" in result.stderr and "fake" in result.stderr
    assert db_snapshot(hub_cli.url) == before


def test_unknown_set_key_lists_the_valid_ones(
    hub_cli: Any, db_snapshot: Callable, store: FakeStore
) -> None:
    before = db_snapshot(hub_cli.url)
    result = hub_cli(
        "connections",
        "add",
        "shop",
        "--channel",
        "fake",
        "--set",
        f"store={store.path}",
        "--set",
        "colour=blue",
        code=2,
    )
    assert "colour" in result.stderr
    for valid in ("store", "api_key", "order_days", "statuses"):
        assert valid in result.stderr
    assert db_snapshot(hub_cli.url) == before


def test_missing_required_keys_are_named_at_once(
    hub_cli: Any, make_stub: Callable, make_registry: Callable, db_snapshot: Callable
) -> None:
    registry = make_registry((make_stub(), "stub"))
    before = db_snapshot(hub_cli.url)
    result = hub_cli("connections", "add", "s", "--channel", "stub", code=2, registry=registry)
    assert "account" in result.stderr and "token" in result.stderr
    assert "missing required keys" in result.stderr
    assert db_snapshot(hub_cli.url) == before


def test_missing_store_for_fake(hub_cli: Any) -> None:
    result = hub_cli("connections", "add", "shop", "--channel", "fake", code=2)
    assert "store" in result.stderr


def test_set_without_equals_sign(hub_cli: Any) -> None:
    result = hub_cli("connections", "add", "shop", "--channel", "fake", "--set", "store", code=2)
    assert "KEY=VALUE" in result.stderr and "'store'" in result.stderr


def test_duplicate_name(cli_shop: Any, store: FakeStore, db_snapshot: Callable) -> None:
    before = db_snapshot(cli_shop.url)
    result = cli_shop(
        "connections", "add", "shop", "--channel", "fake", "--set", f"store={store.path}", code=2
    )
    assert "exists already" in result.stderr
    assert db_snapshot(cli_shop.url) == before


def test_configure_refuses_bad_values(cli_shop: Any, db_snapshot: Callable) -> None:
    before = db_snapshot(cli_shop.url)
    result = cli_shop("connections", "configure", "shop", "--set", "order_days=soon", code=2)
    assert "order_days" in result.stderr
    result = cli_shop("connections", "configure", "shop", "--set", "order_days=0", code=2)
    assert "order_days" in result.stderr
    result = cli_shop("connections", "configure", "shop", "--set", "nope=1", code=2)
    assert "nope" in result.stderr and "statuses" in result.stderr
    result = cli_shop("connections", "configure", "shop", code=2)
    assert "--set" in result.stderr
    assert db_snapshot(cli_shop.url) == before


def test_unknown_connection_everywhere(hub_cli: Any, db_snapshot: Callable, tmp_path: Any) -> None:
    shipments = tmp_path / "s.csv"
    shipments.write_text("channel_order_id,tracking,carrier,class\nO-1,T,UPS,Ground\n")
    before = db_snapshot(hub_cli.url)
    commands = [
        ("connections", "show", "ghost"),
        ("connections", "test", "ghost"),
        ("connections", "remove", "ghost"),
        ("connections", "configure", "ghost", "--set", "order_days=2"),
        ("listings", "link", "ghost"),
        ("listings", "unlink", "ghost", "--sku", "A"),
        ("listings", "relink", "ghost", "--sku", "A"),
        ("listings", "list", "ghost"),
        ("listings", "sync", "ghost"),
        ("listings", "publish", "ghost"),
        ("shipping-mappings", "add", "ghost", "--channel-text", "A", "--policy", "p"),
        ("shipping-mappings", "list", "ghost"),
        ("shipping-mappings", "remove", "ghost", "--channel-text", "A"),
        ("orders", "get", "ghost"),
        ("orders", "list", "--connection", "ghost"),
        ("orders", "show", "ghost", "O-1"),
        ("orders", "explain", "ghost", "O-1"),
        ("orders", "ship", "ghost", "O-1", "--tracking", "T", "--carrier", "C", "--class", "K"),
        ("orders", "sync", "ghost"),
        ("shipments", "import", "ghost", str(shipments)),
        ("run", "ghost"),
        ("runs", "list", "--connection", "ghost"),
    ]
    for command in commands:
        result = hub_cli(*command, code=2)
        assert "'ghost'" in result.stderr, command
    assert db_snapshot(hub_cli.url) == before


def test_channeladvisor_names_every_missing_required_key_at_once(
    hub_cli: Any, db_snapshot: Callable
) -> None:
    before = db_snapshot(hub_cli.url)
    result = hub_cli("connections", "add", "ca", "--channel", "channeladvisor", code=2)
    for key in ("access_token", "refresh_token", "profile_id"):
        assert key in result.stderr
    result = hub_cli(
        "connections", "add", "ca", "--channel", "channeladvisor", "--set", "token=x", code=2
    )
    for key in ("access_token", "refresh_token", "profile_id", "order_days", "price_field"):
        assert key in result.stderr  # the valid keys are listed
    assert db_snapshot(hub_cli.url) == before


def test_channeladvisor_refuses_publish_before_any_request(
    hub_cli: Any, db_snapshot: Callable, catalog_file: Callable
) -> None:
    hub_cli(
        "connections",
        "add",
        "ca",
        "--channel",
        "channeladvisor",
        "--set",
        "access_token=a-token",
        "--set",
        "refresh_token=r-token",
        "--set",
        "profile_id=12345678",
        "--set",
        "application_id=app",
        "--set",
        "shared_secret=s3cret-value",
        "--set",
        "base_url=http://127.0.0.1:9",
    )
    hub_cli("catalog", "import", str(catalog_file()))
    before = db_snapshot(hub_cli.url)
    result = hub_cli("listings", "publish", "ca", code=3)
    assert "not supported for ChannelAdvisor" in result.stderr
    assert "hub listings link" in result.stderr
    assert db_snapshot(hub_cli.url) == before
    shown = hub_cli("connections", "show", "ca", "--json")
    for secret in ("a-token", "r-token", "s3cret-value"):
        assert secret not in shown.stdout


def test_removing_a_connection_removes_what_was_stored_for_it(
    cli_shop: Any, store: FakeStore
) -> None:
    store.add_order(order_id="O-1")
    cli_shop("shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "s")
    run_id = cli_shop.json("orders", "get", "shop")["run_id"]
    cli_shop("connections", "remove", "shop", "--json")
    assert cli_shop.json("orders", "list") == []
    cli_shop("connections", "add", "shop", "--channel", "fake", "--set", f"store={store.path}")
    assert cli_shop.json("shipping-mappings", "list", "shop") == []
    # The run stays, with the name it ran under.
    assert cli_shop.json("runs", "show", str(run_id))["connection"] == "shop"


def test_a_connection_needing_reauth_sends_nothing_until_reconfigured(
    cli_shop: Any, store: FakeStore, catalog_file: Callable, registry: Any, table: Callable
) -> None:
    from hub_core.db import Database
    from hub_core.services import Hub
    from hub_core.services.connections import open_run

    cli_shop("catalog", "import", str(catalog_file()))
    hub = Hub(db=Database(cli_shop.url), registry=registry)
    open_run(hub, "shop").connection.mark_needs_reauth("refresh_token=r-123 refused")
    hub.db.dispose()
    shown = cli_shop.json("connections", "show", "shop")
    assert shown["health"] == "needs_reauth" and "r-123" not in shown["health_message"]
    [listed] = cli_shop.json("connections", "list")
    assert (listed["health"], listed["needs_reauth"]) == ("needs_reauth", True)
    text = cli_shop("connections", "list").stdout
    assert table(text) == [
        {
            "NAME": "shop",
            "CHANNEL": "fake",
            "HEALTH": "needs_reauth",
            "NOTE": "must be reconnected, skipped until then: see 'hub connections show shop'",
        }
    ]
    result = cli_shop("listings", "link", "shop", code=1)
    assert "must be reconnected" in result.stderr
    assert "hub connections configure shop" in result.stderr
    assert "link_listings" not in store.calls()
    cli_shop("connections", "configure", "shop", "--set", "api_key=fresh-key")
    assert cli_shop.json("connections", "show", "shop")["health"] == "unknown"
    assert cli_shop.json("connections", "list")[0]["needs_reauth"] is False
    assert "must be reconnected" not in cli_shop("connections", "list").stdout
    cli_shop("listings", "link", "shop")  # runs again (the SKUs are not on the channel: a state)
    assert store.calls()["link_listings"] == 1


CONTRACT_COMMANDS = [
    ("channels",),
    ("connections", "add"),
    ("connections", "list"),
    ("connections", "show"),
    ("connections", "test"),
    ("connections", "remove"),
    ("connections", "configure"),
    ("catalog", "import"),
    ("catalog", "set"),
    ("catalog", "list"),
    ("listings", "link"),
    ("listings", "unlink"),
    ("listings", "relink"),
    ("listings", "list"),
    ("listings", "sync"),
    ("listings", "publish"),
    ("shipping-mappings", "add"),
    ("shipping-mappings", "list"),
    ("shipping-mappings", "remove"),
    ("orders", "get"),
    ("orders", "list"),
    ("orders", "show"),
    ("orders", "explain"),
    ("orders", "ship"),
    ("orders", "sync"),
    ("shipments", "import"),
    ("run",),
    ("runs", "list"),
    ("runs", "show"),
]


def test_every_contract_command_exists_and_lists_and_operations_take_json(hub_cli: Any) -> None:
    takes_json = {"list", "show", "get", "sync", "link", "unlink", "relink", "publish", "run"}
    for command in CONTRACT_COMMANDS:
        result = hub_cli(*command, "--help")
        assert "Usage: " in result.stdout, command
        if command[-1] in takes_json or command == ("catalog", "import"):
            assert "--json" in result.stdout, command
    assert "Usage: " in hub_cli("--help").stdout
