"""``hub run`` (every supported operation, in order) and ``hub runs list / show``."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from hub_fake_channel.store import FakeStore

STEPS = ["link_listings", "sync_listings", "get_orders", "sync_orders"]


@pytest.fixture
def ready(cli_shop: Any, store: FakeStore, catalog_file: Callable, channel_products: dict) -> Any:
    """A catalog on the channel, a mapping, an order waiting: ready for ``hub run``."""
    cli_shop("catalog", "import", str(catalog_file()))
    cli_shop("shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "s")
    store.add_order([("SKU-1", 1)], order_id="O-0001")
    return cli_shop


def test_run_does_every_supported_operation_in_order(ready: Any, store: FakeStore) -> None:
    data = ready.json("run", "shop")
    assert data["connection"] == "shop" and data["status"] == "ok"
    assert [step["operation"] for step in data["operations"]] == STEPS
    link, sync, get, ship = data["operations"]
    assert link["counts"]["linked"] == 2
    assert sync["counts"]["sent"] == 2
    assert [r["ref"] for r in get["records"]] == ["O-0001"]
    assert ship["records"] == []
    assert store.calls()["link_listings"] == 1 and store.calls()["sync_listings"] == 1
    assert store.order("O-0001")["acknowledged"] is True

    runs = ready.json("runs", "list", "--connection", "shop")
    assert [r["operation"] for r in runs] == list(reversed(STEPS))
    assert [r["run_id"] for r in runs] == sorted(
        (s["run_id"] for s in data["operations"]), reverse=True
    )

    # A shipment recorded since: the next run sends it, and nothing else.
    ready("orders", "ship", "shop", "O-0001", "--tracking", "T", "--carrier", "UPS", "--class", "G")
    again = ready.json("run", "shop")
    assert [len(step["records"]) for step in again["operations"]] == [0, 0, 0, 1]
    assert len(store.shipments_received()) == 1
    text = ready("run", "shop").stdout
    for step in STEPS:
        assert step in text


def test_run_exits_4_when_some_records_failed_and_goes_on(ready: Any, store: FakeStore) -> None:
    store.fail("sync_listings", ref="SKU-2", times=1)
    data = ready.json("run", "shop", code=4)
    assert data["status"] == "partial"
    assert [step["status"] for step in data["operations"]] == ["ok", "partial", "ok", "ok"]


def test_run_stops_at_a_failed_operation_with_exit_1(ready: Any, store: FakeStore) -> None:
    store.fail("get_orders", times=1)
    data = ready.json("run", "shop", code=1)
    assert data["status"] == "failed"
    assert [step["operation"] for step in data["operations"]] == STEPS[:3]
    assert data["operations"][2]["status"] == "failed"
    assert "refused get_orders" in data["operations"][2]["message"]
    assert "sync_orders" not in store.calls()


def test_run_skips_unsupported_operations(
    hub_cli: Any, make_stub: Callable, make_registry: Callable, catalog_file: Callable
) -> None:
    hub_cli("catalog", "import", str(catalog_file()))
    stub = make_stub(
        capabilities={"sync_listings": "not_supported", "sync_orders": "not_supported"}
    )
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
    data = hub_cli.json("run", "s", registry=registry)
    assert [(s["operation"], s["status"]) for s in data["operations"]] == [
        ("link_listings", "ok"),
        ("sync_listings", "not_supported"),
        ("get_orders", "ok"),
        ("sync_orders", "not_supported"),
    ]
    assert stub.calls == ["hub_link_listings", "hub_get_orders"]


def test_runs_list_and_show(ready: Any, store: FakeStore, table: Callable) -> None:
    ready("listings", "link", "shop")
    store.fail("sync_listings", ref="SKU-1", times=1)
    synced = ready.json("listings", "sync", "shop", code=4)

    runs = ready.json("runs", "list")
    assert [r["operation"] for r in runs] == ["sync_listings", "link_listings", "catalog_import"]
    latest = runs[0]
    assert {"run_id", "operation", "status", "counts", "connection", "started_at"} <= set(latest)
    assert latest["run_id"] == synced["run_id"] and latest["status"] == "partial"
    assert latest["connection"] == "shop" and runs[2]["connection"] is None
    assert "records" not in latest
    assert [r["operation"] for r in ready.json("runs", "list", "--connection", "shop")] == [
        "sync_listings",
        "link_listings",
    ]
    rows = table(ready("runs", "list").stdout)
    assert (rows[0]["RUN"], rows[0]["OPERATION"], rows[0]["STATUS"]) == (
        str(synced["run_id"]),
        "sync_listings",
        "partial",
    )

    shown = ready.json("runs", "show", str(synced["run_id"]))
    assert shown["operation"] == "sync_listings" and shown["counts"] == synced["counts"]
    assert shown["records"] == synced["records"]
    assert {(r["ref"], r["outcome"]) for r in shown["records"]} == {
        ("SKU-1", "failed"),
        ("SKU-2", "ok"),
    }
    assert shown["finished_at"] is not None
    text = ready("runs", "show", str(synced["run_id"])).stdout
    assert "failed   SKU-1" in text and "ok       SKU-2" in text

    assert "No run with id 999" in ready("runs", "show", "999", code=2).stderr
    ready("runs", "show", "latest", code=2)


def test_a_failed_run_is_recorded_with_its_message(ready: Any, store: FakeStore) -> None:
    store.fail("link_listings", times=1)
    data = ready.json("listings", "link", "shop", code=1)
    assert data["status"] == "failed" and "refused link_listings" in data["message"]
    shown = ready.json("runs", "show", str(data["run_id"]))
    assert shown["status"] == "failed" and shown["message"] == data["message"]


def _assert_operation_shape(data: dict[str, Any], operation: str) -> None:
    assert {"run_id", "operation", "status", "counts", "records"} <= set(data)
    assert data["operation"] == operation
    assert isinstance(data["counts"], dict)
    assert all(isinstance(v, int) for v in data["counts"].values())
    for record in data["records"]:
        assert set(record) == {"ref", "outcome", "message"}
        assert record["outcome"] in {"ok", "skipped", "failed"}
        assert isinstance(record["ref"], str) and isinstance(record["message"], str)


def test_every_operation_command_prints_the_contract_shape(
    ready: Any, store: FakeStore, catalog_file: Callable, tmp_path: Any
) -> None:
    shipments = tmp_path / "shipments.csv"
    shipments.write_text("channel_order_id,tracking,carrier,class\nO-0001,T,UPS,Ground\n")
    commands: list[tuple[tuple[str, ...], str]] = [
        (("catalog", "import", str(catalog_file())), "catalog_import"),
        (("listings", "link", "shop"), "link_listings"),
        (("listings", "sync", "shop", "--dry-run"), "sync_listings"),
        (("listings", "sync", "shop"), "sync_listings"),
        (("listings", "unlink", "shop", "--sku", "SKU-2"), "unlink_listings"),
        (("listings", "relink", "shop", "--sku", "SKU-2"), "relink_listings"),
        (("listings", "publish", "shop"), "publish_listings"),
        (("orders", "get", "shop"), "get_orders"),
        (("shipments", "import", "shop", str(shipments)), "shipments_import"),
        (("orders", "sync", "shop"), "sync_orders"),
    ]
    for args, operation in commands:
        data = ready.json(*args)
        _assert_operation_shape(data, operation)
        if "--dry-run" not in args:
            assert ready.json("runs", "show", str(data["run_id"]))["records"] == data["records"]
    run = ready.json("run", "shop")
    for step, operation in zip(run["operations"], STEPS, strict=True):
        _assert_operation_shape(step, operation)


def test_run_prints_each_operations_run_id_and_a_one_line_summary(
    ready: Any, store: FakeStore, table: Callable
) -> None:
    store.fail("sync_listings", ref="SKU-1", times=1)
    result = ready("run", "shop", code=4)
    rows = table(result.stdout.split("\nshop: ")[0])
    assert [r["OPERATION"] for r in rows] == STEPS
    runs = {r["operation"]: r for r in ready.json("runs", "list", "--connection", "shop")}
    for row in rows:
        assert row["RUN"] == str(runs[row["OPERATION"]]["run_id"])
    by_operation = {r["OPERATION"]: r for r in rows}
    assert by_operation["sync_listings"]["STATUS"] == "partial"
    assert by_operation["sync_listings"]["SUMMARY"] == "failed: 1, ok: 1, sent: 1"
    assert by_operation["get_orders"]["SUMMARY"].startswith("acknowledged: 1")
    assert "shop: partial." in result.stdout
    assert f"Details: 'hub runs show {runs['sync_listings']['run_id']}'." in result.stdout


def test_runs_show_reads_as_a_report_with_failures_first(
    ready: Any, store: FakeStore, table: Callable
) -> None:
    ready("listings", "link", "shop")
    store.fail("sync_listings", ref="SKU-2", times=1)
    run_id = ready.json("listings", "sync", "shop", code=4)["run_id"]
    report = ready("runs", "show", str(run_id)).stdout
    head, records = report.split("\nRecords (2, failed first):\n")
    lines = head.splitlines()
    assert lines[0] == f"Run {run_id}: sync_listings"
    facts = dict(line.strip().split(None, 1) for line in lines[1:])
    assert facts["connection"] == "shop" and facts["status"] == "partial"
    assert facts["counts"] == "failed: 1, ok: 1, sent: 1"
    assert facts["started"].endswith("UTC by cli on " + socket.gethostname())
    assert facts["finished"].endswith(" s)")
    rows = table(records)
    assert [(r["OUTCOME"], r["REF"]) for r in rows] == [("failed", "SKU-2"), ("ok", "SKU-1")]
    assert rows[0]["MESSAGE"] != "-"


def test_an_operations_records_print_as_an_aligned_table(
    ready: Any, store: FakeStore, table: Callable
) -> None:
    store.fail("link_listings", ref="SKU-2", times=1)
    *records, summary = ready("listings", "link", "shop", code=4).stdout.splitlines()
    rows = table("\n".join(records))
    assert {(r["OUTCOME"], r["REF"]) for r in rows} == {("ok", "SKU-1"), ("failed", "SKU-2")}
    assert all(r["MESSAGE"] != "-" for r in rows)
    assert summary.startswith("link — run ") and "partial" in summary
