"""Orders through the CLI: shipping mappings, get, list, show, explain, ship, shipments import,
sync orders, with JSON shapes and exit codes."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub_fake_channel.store import FakeStore

ORDER_KEYS = {"channel_order_id", "status", "hold_reason", "shipping_text", "shipping_policy"}


@pytest.fixture
def cli_orders(cli_shop: Any, store: FakeStore) -> Any:
    """``shop`` with ``UPS - Ground`` mapped and two orders imported (O-0001: SKU-1 x2 + SKU-2
    x1; O-0002: SKU-1 x1), and one held order (H-0001, ``FedEx - Home``)."""
    now = datetime.now(UTC)
    store.add_order(
        [("SKU-1", 2), ("SKU-2", 1)],
        order_id="O-0001",
        marketplace_order_id="AMZ-111",
        created_at=now - timedelta(2),
    )
    store.add_order([("SKU-1", 1)], order_id="O-0002", created_at=now - timedelta(1))
    store.add_order([("SKU-3", 1)], order_id="H-0001", shipping_text="FedEx - Home")
    cli_shop(
        "shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "std"
    )
    cli_shop("orders", "get", "shop")
    return cli_shop


# --- shipping mappings ------------------------------------------------------------------------


def test_mappings_add_list_remove(cli_shop: Any, db_snapshot: Callable, table: Callable) -> None:
    added = cli_shop.json(
        "shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "std"
    )
    assert added == {
        "connection": "shop",
        "channel_text": "UPS - Ground",
        "policy": "std",
        "released_orders": [],
    }
    listed = cli_shop.json("shipping-mappings", "list", "shop")
    assert listed == [{"channel_text": "UPS - Ground", "policy": "std"}]
    assert table(cli_shop("shipping-mappings", "list", "shop").stdout) == [
        {"CHANNEL_TEXT": "UPS - Ground", "POLICY": "std"}
    ]

    before = db_snapshot(cli_shop.url)
    dup = cli_shop(
        "shipping-mappings",
        "add",
        "shop",
        "--channel-text",
        "UPS - Ground",
        "--policy",
        "x",
        code=2,
    )
    assert "already maps 'UPS - Ground'" in dup.stderr
    empty = cli_shop(
        "shipping-mappings", "add", "shop", "--channel-text", " ", "--policy", "x", code=2
    )
    assert "--channel-text" in empty.stderr
    gone = cli_shop("shipping-mappings", "remove", "shop", "--channel-text", "UPS", code=2)
    assert "'UPS'" in gone.stderr and "'UPS - Ground'" in gone.stderr
    missing = cli_shop("shipping-mappings", "add", "shop", "--channel-text", "X", code=2)
    assert "--policy" in missing.stderr
    assert db_snapshot(cli_shop.url) == before

    removed = cli_shop.json("shipping-mappings", "remove", "shop", "--channel-text", "UPS - Ground")
    assert removed == {"removed": "UPS - Ground"}
    assert cli_shop.json("shipping-mappings", "list", "shop") == []


def test_mapping_releases_held_orders(cli_orders: Any) -> None:
    held = cli_orders.json("orders", "list", "--status", "held")
    assert [o["channel_order_id"] for o in held] == ["H-0001"]
    assert "'FedEx - Home'" in held[0]["hold_reason"]
    assert "'UPS - Ground'" in held[0]["hold_reason"]  # the nearest (only) mapping
    added = cli_orders(
        "shipping-mappings", "add", "shop", "--channel-text", "FedEx - Home", "--policy", "home"
    )
    assert "Released 1 held order(s): H-0001" in added.stdout
    order = cli_orders.json("orders", "show", "shop", "H-0001")
    assert order["status"] == "imported" and order["shipping_policy"] == "home"


# --- get, list, show, explain -----------------------------------------------------------------


def test_orders_get_json_and_exit_codes(cli_shop: Any, store: FakeStore) -> None:
    store.add_order([("SKU-1", 1)], order_id="O-0001")
    data = cli_shop.json("orders", "get", "shop", "--days", "3")
    assert data["operation"] == "get_orders" and data["status"] == "ok"
    assert data["counts"] == {"held": 1, "ok": 1, "acknowledged": 1}
    assert data["records"][0]["ref"] == "O-0001"
    assert data["records"][0]["outcome"] == "ok"
    assert "held" in data["records"][0]["message"]
    assert cli_shop.json("orders", "get", "shop")["records"] == []

    store.add_order([("SKU-1", 1)], order_id="O-0002")
    store.fail("get_orders", times=1)
    failed = cli_shop.json("orders", "get", "shop", code=1)
    assert failed["status"] == "failed" and "refused get_orders" in failed["message"]
    store.fail("acknowledge_orders", ref="O-0002", times=1)
    partial = cli_shop.json("orders", "get", "shop", code=4)
    assert [r["outcome"] for r in partial["records"]] == ["ok", "failed"]

    result = cli_shop("orders", "get", "shop", "--days", "0", code=2)
    assert "--days" in result.stderr
    cli_shop("connections", "configure", "shop", "--set", "api_key=bad")
    assert "refused the API key" in cli_shop("orders", "get", "shop", code=1).stderr


def test_orders_list_and_show_json_shapes(
    cli_orders: Any, db_snapshot: Callable, table: Callable
) -> None:
    listed = cli_orders.json("orders", "list")
    assert [o["channel_order_id"] for o in listed] == ["O-0001", "O-0002", "H-0001"]
    for order in listed:
        assert ORDER_KEYS | {"lines"} <= set(order)
        assert order["status"] in {"imported", "held", "partially_shipped", "shipped", "cancelled"}
    first = listed[0]
    assert first["status"] == "imported" and first["hold_reason"] is None
    assert first["shipping_text"] == "UPS - Ground" and first["shipping_policy"] == "std"
    assert [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in first["lines"]] == [
        {"sku": "SKU-1", "quantity": 2},
        {"sku": "SKU-2", "quantity": 1},
    ]
    assert [
        o["channel_order_id"]
        for o in cli_orders.json("orders", "list", "--connection", "shop", "--status", "imported")
    ] == ["O-0001", "O-0002"]
    first_row = table(cli_orders("orders", "list").stdout)[0]
    assert first_row["ORDER"] == "O-0001" and first_row["STATUS"] == "imported"
    assert first_row["LINES"] == "SKU-1 x2, SKU-2 x1"

    shown = cli_orders.json("orders", "show", "shop", "O-0001")
    assert ORDER_KEYS | {"lines", "shipments"} <= set(shown)
    assert shown["shipments"] == []
    by_marketplace_id = cli_orders.json("orders", "show", "shop", "AMZ-111")
    assert by_marketplace_id["channel_order_id"] == "O-0001"
    assert (
        "shipping: 'UPS - Ground' -> std" in cli_orders("orders", "show", "shop", "O-0001").stdout
    )

    before = db_snapshot(cli_orders.url)
    bad = cli_orders("orders", "list", "--status", "lost", code=2)
    assert "'lost'" in bad.stderr and "partially_shipped" in bad.stderr
    assert "'NOPE'" in cli_orders("orders", "show", "shop", "NOPE", code=2).stderr
    assert db_snapshot(cli_orders.url) == before


def test_orders_explain(cli_orders: Any, store: FakeStore) -> None:
    imported = cli_orders.json("orders", "explain", "shop", "O-0001")
    assert imported["imported"] is True and imported["would_import"] is False
    assert "imported on" in cli_orders("orders", "explain", "shop", "O-0001").stdout

    store.add_order([("SKU-1", 1)], order_id="N-0001")
    eligible = cli_orders.json("orders", "explain", "shop", "N-0001")
    assert eligible["imported"] is False and eligible["would_import"] is True

    store.add_order([("SKU-1", 1)], order_id="P-0001", status="pending")
    pending = cli_orders.json("orders", "explain", "shop", "P-0001")
    assert pending["would_import"] is False
    assert any("'pending'" in reason for reason in pending["reasons"])
    assert "would NOT be imported" in cli_orders("orders", "explain", "shop", "P-0001").stdout

    store.add_order([("SKU-1", 1)], order_id="U-0001", shipping_text="DHL - Express")
    unmapped = cli_orders.json("orders", "explain", "shop", "U-0001")
    assert any("held" in reason and "'DHL - Express'" in reason for reason in unmapped["reasons"])

    assert "'NOPE'" in cli_orders("orders", "explain", "shop", "NOPE", code=2).stderr
    store.fail("explain_order", times=1)
    assert (
        "refused explain_order" in cli_orders("orders", "explain", "shop", "N-0001", code=1).stderr
    )


def test_orders_get_refuses_without_required_mappings(
    hub_cli: Any, make_stub: Callable, make_registry: Callable, db_snapshot: Callable
) -> None:
    stub = make_stub(requirements={"shipping_mappings": "required"})
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
    result = hub_cli("orders", "get", "s", code=2, registry=registry)
    assert "requires shipping mappings" in result.stderr
    assert "hub shipping-mappings add s" in result.stderr
    assert stub.calls == []
    assert db_snapshot(hub_cli.url) == before
    hub_cli(
        "shipping-mappings", "add", "s", "--channel-text", "A", "--policy", "p", registry=registry
    )
    hub_cli("orders", "get", "s", registry=registry)
    assert stub.calls == ["hub_get_orders"]


# --- ship, sync -------------------------------------------------------------------------------


def test_ship_partial_then_full_then_sync_each_once(cli_orders: Any, store: FakeStore) -> None:
    partial = cli_orders.json(
        "orders",
        "ship",
        "shop",
        "O-0001",
        "--tracking",
        "1Z1",
        "--carrier",
        "UPS",
        "--class",
        "Ground",
        "--item",
        "SKU-1=1",
        "--shipped-at",
        "2026-01-02T03:04:05Z",
    )
    assert partial["order_status"] == "partially_shipped"
    assert partial["complete"] is False and partial["sync_status"] == "pending"
    assert partial["lines"] == [{"sku": "SKU-1", "quantity": 1}]
    assert partial["shipped_at"].startswith("2026-01-02T03:04:05")
    assert (partial["tracking"], partial["carrier"], partial["class"]) == ("1Z1", "UPS", "Ground")

    first_sync = cli_orders.json("orders", "sync", "shop")
    assert first_sync["operation"] == "sync_orders" and first_sync["status"] == "ok"
    assert [r["ref"] for r in first_sync["records"]] == [partial["shipment_id"]]

    rest = cli_orders(
        "orders",
        "ship",
        "shop",
        "O-0001",
        "--tracking",
        "1Z2",
        "--carrier",
        "UPS",
        "--class",
        "Ground",
    )
    assert "(shipped)" in rest.stdout
    order = cli_orders.json("orders", "show", "shop", "O-0001")
    assert order["status"] == "shipped"
    assert [ln["shipped_quantity"] for ln in order["lines"]] == [2, 1]
    second = order["shipments"][1]
    assert second["complete"] is True
    assert second["lines"] == [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 1}]

    second_sync = cli_orders.json("orders", "sync", "shop")
    assert [r["ref"] for r in second_sync["records"]] == [second["shipment_id"]]
    assert cli_orders.json("orders", "sync", "shop")["records"] == []
    received = store.shipments_received()
    assert [(s["shipment_id"], s["received"]) for s in received] == [
        (partial["shipment_id"], 1),
        (second["shipment_id"], 1),
    ]
    assert received[0]["lines"] == [{"channel_line_id": "O-0001-L1", "sku": "SKU-1", "quantity": 1}]
    assert store.order("O-0001")["shipping_status"] == "Shipped"
    assert {
        s["sync_status"] for s in cli_orders.json("orders", "show", "shop", "O-0001")["shipments"]
    } == {"sent"}


def test_a_failed_shipment_keeps_its_error_and_is_retried(
    cli_orders: Any, store: FakeStore
) -> None:
    for order in ("O-0001", "O-0002"):
        cli_orders(
            "orders",
            "ship",
            "shop",
            order,
            "--tracking",
            f"T-{order}",
            "--carrier",
            "UPS",
            "--class",
            "Ground",
        )
    store.fail("sync_orders", ref="O-0002", times=1)
    first = cli_orders.json("orders", "sync", "shop", code=4)
    assert first["status"] == "partial"
    assert [r["outcome"] for r in first["records"]] == ["ok", "failed"]
    shipment = cli_orders.json("orders", "show", "shop", "O-0002")["shipments"][0]
    assert shipment["sync_status"] == "failed"
    assert shipment["sync_error"] == first["records"][1]["message"]
    assert "refused" in shipment["sync_error"]
    assert shipment["sync_error"] in cli_orders("orders", "show", "shop", "O-0002").stdout

    retry = cli_orders.json("orders", "sync", "shop")
    assert [(r["ref"], r["outcome"]) for r in retry["records"]] == [(shipment["shipment_id"], "ok")]
    shipment = cli_orders.json("orders", "show", "shop", "O-0002")["shipments"][0]
    assert shipment["sync_status"] == "sent" and shipment["sync_error"] is None
    assert all(s["received"] == 1 for s in store.shipments_received())


def test_a_lost_answer_does_not_send_a_shipment_twice(cli_orders: Any, store: FakeStore) -> None:
    cli_orders(
        "orders",
        "ship",
        "shop",
        "O-0002",
        "--tracking",
        "T",
        "--carrier",
        "UPS",
        "--class",
        "Ground",
    )
    store.fail("sync_orders", ref="O-0002", times=1, kind="lost")
    cli_orders("orders", "sync", "shop", code=4)
    cli_orders("orders", "sync", "shop")
    [received] = store.shipments_received()
    assert store.order("O-0002")["lines"][0]["shipped"] == 1  # recorded once on the channel
    assert received["received"] == 2  # the retry reached it, and was answered ok


def test_sync_orders_whole_call_failure_exits_1_and_keeps_shipments_pending(
    cli_orders: Any, store: FakeStore
) -> None:
    cli_orders(
        "orders",
        "ship",
        "shop",
        "O-0002",
        "--tracking",
        "T",
        "--carrier",
        "UPS",
        "--class",
        "Ground",
    )
    store.fail("sync_orders", times=1)
    result = cli_orders("orders", "sync", "shop", code=1)
    assert "refused sync_orders" in result.stderr
    assert (
        cli_orders.json("orders", "show", "shop", "O-0002")["shipments"][0]["sync_status"]
        == "pending"
    )
    assert store.shipments_received() == []
    assert len(cli_orders.json("orders", "sync", "shop")["records"]) == 1


def test_ship_refuses_bad_input_and_changes_nothing(cli_orders: Any, db_snapshot: Callable) -> None:
    cli_orders(
        "orders",
        "ship",
        "shop",
        "O-0001",
        "--tracking",
        "T",
        "--carrier",
        "UPS",
        "--class",
        "Ground",
        "--item",
        "SKU-1=1",
    )
    before = db_snapshot(cli_orders.url)
    base = (
        "orders",
        "ship",
        "shop",
        "O-0001",
        "--tracking",
        "T2",
        "--carrier",
        "UPS",
        "--class",
        "G",
    )
    cases: list[tuple[tuple[str, ...], list[str]]] = [
        ((*base, "--item", "SKU-1=2"), ["cannot ship 2 of SKU-1", "only 1 unshipped"]),
        ((*base, "--item", "SKU-9=1"), ["SKU-9 is not on order O-0001", "SKU-1, SKU-2"]),
        ((*base, "--item", "SKU-1=0"), ["quantity for SKU-1 must be 1 or more"]),
        ((*base, "--item", "SKU-1"), ["--item takes SKU=QTY", "'SKU-1'", "--item TSHIRT-M=2"]),
        ((*base, "--item", "SKU-1=two"), ["--item SKU-1=two", "whole number"]),
        ((*base, "--shipped-at", "yesterday"), ["'yesterday'", "ISO 8601"]),
        (
            (
                "orders",
                "ship",
                "shop",
                "O-0001",
                "--tracking",
                " ",
                "--carrier",
                "UPS",
                "--class",
                "G",
            ),
            ["--tracking must not be empty"],
        ),
        (
            (
                "orders",
                "ship",
                "shop",
                "H-0001",
                "--tracking",
                "T",
                "--carrier",
                "UPS",
                "--class",
                "G",
            ),
            ["H-0001 is held", "mapping"],
        ),
        (
            (
                "orders",
                "ship",
                "shop",
                "NOPE",
                "--tracking",
                "T",
                "--carrier",
                "UPS",
                "--class",
                "G",
            ),
            ["'NOPE'"],
        ),
        (("orders", "ship", "shop", "O-0001", "--tracking", "T"), ["--carrier"]),
    ]
    for args, words in cases:
        result = cli_orders(*args, code=2)
        for word in words:
            assert word in result.stderr, (args, result.stderr)
    # Two problems at once are both named.
    result = cli_orders(*base, "--item", "SKU-9=1", "--item", "SKU-2=5", code=2)
    assert "SKU-9" in result.stderr and "cannot ship 5 of SKU-2" in result.stderr
    assert db_snapshot(cli_orders.url) == before
    cli_orders(
        "orders", "ship", "shop", "O-0002", "--tracking", "T", "--carrier", "UPS", "--class", "G"
    )
    again = cli_orders(
        "orders",
        "ship",
        "shop",
        "O-0002",
        "--tracking",
        "T",
        "--carrier",
        "UPS",
        "--class",
        "G",
        code=2,
    )
    assert "already fully shipped" in again.stderr


# --- shipments import -------------------------------------------------------------------------


def test_shipments_import_keeps_good_rows_and_reports_bad_lines(
    cli_orders: Any, tmp_path: Path
) -> None:
    path = tmp_path / "shipments.csv"
    path.write_text(
        "channel_order_id,tracking,carrier,class,sku,quantity,shipped_at\n"
        "O-0001,T1,UPS,Ground,SKU-1,1,\n"  # 2 \ one shipment
        "O-0001,T1,UPS,Ground,SKU-2,1,\n"  # 3 /
        "O-0002,T2,UPS,Ground,,,2026-03-04T05:06:07+00:00\n"  # 4: the whole order
        "O-0001,T3,UPS,Ground,SKU-1,lots,\n"  # 5: bad quantity
        "O-9999,T4,UPS,Ground,,,\n"  # 6: unknown order
        "O-0001,T5,UPS,Ground,SKU-1,9,\n"  # 7: more than unshipped
        ",T6,UPS,Ground,,,\n"  # 8: no order id
        "O-0001,T7,UPS,Ground,,,2026-13-01\n"  # 9: bad date
        "O-0001,T8,UPS,Ground,SKU-2,1,,surplus\n"  # 10: too many values
    )
    data = cli_orders.json("shipments", "import", "shop", str(path), code=4)
    assert data["operation"] == "shipments_import" and data["status"] == "partial"
    ok = [r for r in data["records"] if r["outcome"] == "ok"]
    failed = {r["ref"]: r["message"] for r in data["records"] if r["outcome"] == "failed"}
    assert [r["message"] for r in ok] == ["lines 2, 3: order O-0001", "line 4: order O-0002"]
    assert all(r["ref"].startswith("hub-") for r in ok)
    assert set(failed) == {"line 5", "line 6", "line 7", "line 8", "line 9", "line 10"}
    assert "too many values" in failed["line 10"]
    assert "quantity" in failed["line 5"]
    assert "'O-9999'" in failed["line 6"]
    assert "only 1 unshipped" in failed["line 7"]
    assert "channel_order_id" in failed["line 8"]
    assert "2026-13-01" in failed["line 9"]
    assert cli_orders.json("orders", "show", "shop", "O-0002")["status"] == "shipped"
    order = cli_orders.json("orders", "show", "shop", "O-0001")
    assert order["status"] == "partially_shipped"
    assert order["shipments"][0]["lines"] == [
        {"sku": "SKU-1", "quantity": 1},
        {"sku": "SKU-2", "quantity": 1},
    ]
    assert "line 5" in cli_orders("runs", "show", str(data["run_id"])).stdout


def test_shipments_import_refuses_bad_files(
    cli_orders: Any, tmp_path: Path, db_snapshot: Callable
) -> None:
    before = db_snapshot(cli_orders.url)
    no_class = tmp_path / "a.csv"
    no_class.write_text("channel_order_id,tracking,carrier\nO-0001,T,UPS\n")
    text = tmp_path / "a.txt"
    text.write_text("channel_order_id,tracking,carrier,class\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(
        "channel_order_id,tracking,carrier,class\nO-0001,T,Poste \u00e9,G\n".encode("latin-1")
    )
    assert "UTF-8" in cli_orders("shipments", "import", "shop", str(latin1), code=2).stderr
    result = cli_orders("shipments", "import", "shop", str(no_class), code=2)
    assert "missing column class" in result.stderr
    assert ".csv" in cli_orders("shipments", "import", "shop", str(text), code=2).stderr
    assert (
        "No such file"
        in cli_orders("shipments", "import", "shop", str(tmp_path / "x.csv"), code=2).stderr
    )
    assert db_snapshot(cli_orders.url) == before


# --- cancelled after import (issue 10) --------------------------------------------------------


def _ship(cli: Any, order_id: str) -> dict[str, Any]:
    return cli.json(
        "orders", "ship", "shop", order_id, "--tracking", "T", "--carrier", "UPS", "--class", "G"
    )


def test_a_cancellation_found_by_get_orders_cancels_the_order_and_its_unsent_shipments(
    cli_orders: Any, store: FakeStore
) -> None:
    pending = _ship(cli_orders, "O-0001")
    store.cancel_order("O-0001")
    got = cli_orders.json("orders", "get", "shop")
    assert got["counts"]["cancelled_after_import"] == 1
    (record,) = [r for r in got["records"] if r["ref"] == "O-0001"]
    assert record["outcome"] == "ok"
    assert record["message"] == (
        "cancelled in the channel after import; 1 shipment(s) not yet sent were cancelled"
    )
    cancelled = cli_orders.json("orders", "list", "--status", "cancelled")
    assert [o["channel_order_id"] for o in cancelled] == ["O-0001"]
    (shipment,) = cli_orders.json("orders", "show", "shop", "O-0001")["shipments"]
    assert (shipment["shipment_id"], shipment["sync_status"]) == (
        pending["shipment_id"],
        "cancelled",
    )
    # Nothing is ever sent for it; a later get orders changes nothing.
    assert cli_orders.json("orders", "sync", "shop")["records"] == []
    assert store.shipments_received() == []
    again = cli_orders.json("orders", "get", "shop")
    assert "cancelled_after_import" not in again["counts"]
    assert again["counts"]["already_cancelled"] == 1
    assert [r["message"] for r in again["records"] if r["ref"] == "O-0001"] == ["already cancelled"]
    refused = cli_orders(
        "orders", "ship", "shop", "O-0002", "--tracking", "T", "--carrier", "UPS", "--class", "G"
    )
    assert refused.exit_code == 0  # another order still ships
    assert (
        "is cancelled"
        in cli_orders(
            "orders",
            "ship",
            "shop",
            "O-0001",
            "--tracking",
            "T",
            "--carrier",
            "UPS",
            "--class",
            "G",
            code=2,
        ).stderr
    )


def test_a_cancellation_found_by_sync_orders_skips_the_shipment_and_cancels_the_order(
    cli_orders: Any, store: FakeStore
) -> None:
    first = _ship(cli_orders, "O-0001")
    other = _ship(cli_orders, "O-0002")
    store.cancel_order("O-0001")
    synced = cli_orders.json("orders", "sync", "shop")  # exit 0: nothing failed
    assert [(r["ref"], r["outcome"]) for r in synced["records"]] == [
        (first["shipment_id"], "skipped"),
        (other["shipment_id"], "ok"),
    ]
    assert "was cancelled" in synced["records"][0]["message"]
    assert synced["counts"]["order_cancelled"] == 1
    order = cli_orders.json("orders", "show", "shop", "O-0001")
    assert order["status"] == "cancelled"
    assert [s["sync_status"] for s in order["shipments"]] == ["cancelled"]
    assert [s["shipment_id"] for s in store.shipments_received()] == [other["shipment_id"]]
    assert cli_orders.json("orders", "sync", "shop")["records"] == []

def test_a_held_orders_hint_is_the_command_to_paste(cli_orders: Any) -> None:
    held = cli_orders.json("orders", "show", "shop", "H-0001")
    hint = 'hub shipping-mappings add shop --channel-text "FedEx - Home" --policy POLICY'
    assert held["status"] == "held" and held["hold_reason"].endswith(f"add one with: {hint}")
    assert hint in cli_orders("orders", "list", "--status", "held").stdout
    assert hint in cli_orders("orders", "explain", "shop", "H-0001").stdout
    # Pasted with a policy filled in (as a shell splits it), it releases the order.
    added = cli_orders.json(*shlex.split(hint.replace("POLICY", "home"))[1:])
    assert added["released_orders"] == ["H-0001"]
