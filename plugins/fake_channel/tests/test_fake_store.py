"""FakeStore: the channel's state in a JSON file, its Python API, atomic writes and locking."""

from __future__ import annotations

import json
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub_fake_channel.store import FakeStore, FakeStoreError, take_failure


def test_a_missing_store_reads_empty_and_the_first_change_creates_it(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "sub" / "shop.json")
    assert not store.exists()
    assert store.products() == []
    store.add_product("A-1")
    assert store.exists()
    assert json.loads(store.path.read_text())["format"] == "hub-fake-channel"


def test_products_get_sequential_ids_and_keep_their_values(store: FakeStore) -> None:
    first = store.add_product("A-1", "Alpha", 5, "9.90")
    second = store.add_product("B-2", price=3)
    assert (first, second) == ("P-0001", "P-0002")
    assert store.product(first) == {
        "id": "P-0001",
        "sku": "A-1",
        "title": "Alpha",
        "quantity": 5,
        "price": "9.90",
    }
    assert store.product(second)["price"] == "3"  # type: ignore[index]


def test_a_product_id_can_be_chosen_but_not_twice(store: FakeStore) -> None:
    assert store.add_product("A-1", product_id="X9") == "X9"
    with pytest.raises(FakeStoreError, match="taken"):
        store.add_product("A-2", product_id="X9")


def test_generated_ids_skip_ids_chosen_by_hand(store: FakeStore) -> None:
    store.add_product("A-1", product_id="P-0001")
    assert store.add_product("A-2") == "P-0002"


def test_product_by_sku_prefers_exact_case_then_ignores_case(store: FakeStore) -> None:
    lower = store.add_product("abc-1")
    upper = store.add_product("ABC-1")
    assert store.product_by_sku("abc-1")["id"] == lower  # type: ignore[index]
    assert store.product_by_sku("ABC-1")["id"] == upper  # type: ignore[index]
    with pytest.raises(LookupError, match="Several products"):
        store.product_by_sku("Abc-1")
    assert {p["id"] for p in store.products_by_sku("Abc-1")} == {lower, upper}
    assert store.product_by_sku("nope") is None


def test_duplicate_skus_are_allowed(store: FakeStore) -> None:
    store.add_product("DUP")
    store.add_product("DUP")
    assert len(store.products_by_sku("DUP")) == 2


def test_update_and_delete_product(store: FakeStore) -> None:
    pid = store.add_product("A-1")
    store.update_product(pid, quantity="4", price="1.5", title="T")
    assert store.product(pid) == {
        "id": pid,
        "sku": "A-1",
        "title": "T",
        "quantity": 4,
        "price": "1.5",
    }
    with pytest.raises(FakeStoreError, match="Unknown product fields: colour"):
        store.update_product(pid, colour="red")
    store.delete_product(pid)
    assert store.product(pid) is None
    with pytest.raises(FakeStoreError, match="No product"):
        store.delete_product(pid)


def test_a_price_must_be_a_number(store: FakeStore) -> None:
    with pytest.raises(FakeStoreError, match="Not a price"):
        store.add_product("A-1", price="cheap")


def test_add_order_defaults(store: FakeStore) -> None:
    store.add_product("A-1", price="2.50")
    before = datetime.now(UTC)
    order_id = store.add_order()
    order = store.order(order_id)
    assert order is not None
    assert order_id == "O-0001"
    assert order["marketplace_order_id"] == "M-0001"
    assert order["status"] == "open"
    assert (order["checkout_status"], order["payment_status"], order["shipping_status"]) == (
        "Completed",
        "Cleared",
        "Unshipped",
    )
    assert order["shipping_text"] == "UPS - Ground"
    assert order["acknowledged"] is False
    assert order["cancelled"] is False
    assert datetime.fromisoformat(order["created_at"]) >= before - timedelta(seconds=1)
    assert order["lines"] == [
        {
            "id": "O-0001-L1",
            "sku": "A-1",
            "quantity": 1,
            "unit_price": "2.50",
            "title": "",
            "shipped": 0,
        }
    ]


def test_add_order_takes_tuples_mappings_and_explicit_values(store: FakeStore) -> None:
    order_id = store.add_order(
        [("A-1", 2, "3.00"), {"sku": "B-2", "quantity": 1, "title": "Bee"}],
        order_id="X-1",
        marketplace_order_id="AMZ-77",
        created_at="2024-01-02T03:04:05",
        status="pending",
        shipping_text="USPS - Priority",
    )
    order = store.order(order_id)
    assert order is not None
    assert order["created_at"] == "2024-01-02T03:04:05+00:00"
    assert [(ln["id"], ln["sku"], ln["quantity"], ln["unit_price"]) for ln in order["lines"]] == [
        ("X-1-L1", "A-1", 2, "3.00"),
        ("X-1-L2", "B-2", 1, "0"),
    ]
    assert order["lines"][1]["title"] == "Bee"
    assert (order["marketplace_order_id"], order["status"]) == ("AMZ-77", "pending")
    with pytest.raises(FakeStoreError, match="taken"):
        store.add_order(order_id="X-1")
    with pytest.raises(FakeStoreError, match="quantity"):
        store.add_order([("A-1", 0)])


def test_update_and_cancel_order(store: FakeStore) -> None:
    order_id = store.add_order()
    store.update_order(order_id, status="pending", acknowledged=True)
    store.cancel_order(order_id)
    order = store.order(order_id)
    assert order is not None
    assert (order["status"], order["acknowledged"], order["cancelled"]) == (
        "pending",
        True,
        True,
    )
    with pytest.raises(FakeStoreError, match="Unknown order fields"):
        store.update_order(order_id, lines=[])
    with pytest.raises(FakeStoreError, match="No order"):
        store.cancel_order("nope")


def test_state_is_shared_between_store_objects(store: FakeStore) -> None:
    store.add_product("A-1")
    store.fail("get_orders")
    other = FakeStore(store.path)
    assert [p["sku"] for p in other.products()] == ["A-1"]
    assert other.failures() == [
        {"operation": "get_orders", "ref": None, "times": None, "kind": "error"}
    ]


def test_fail_validates_its_arguments(store: FakeStore) -> None:
    with pytest.raises(FakeStoreError, match="Unknown operation 'ship'"):
        store.fail("ship")
    with pytest.raises(FakeStoreError, match="Unknown failure kind"):
        store.fail("sync_orders", kind="sometimes")  # type: ignore[arg-type]
    with pytest.raises(FakeStoreError, match="at least 1"):
        store.fail("sync_orders", times=0)


def test_a_transient_failure_fires_once_by_default(store: FakeStore) -> None:
    store.fail("sync_orders", kind="transient")
    assert store.failures()[0]["times"] == 1


def test_take_failure_matches_operation_and_ref_and_spends_times(store: FakeStore) -> None:
    store.fail("sync_listings", ref="sku-1", times=2)
    store.fail("sync_listings")
    with store.transaction() as state:
        assert take_failure(state, "link_listings", "SKU-1") is None
        assert take_failure(state, "sync_listings", "other") is None
        assert take_failure(state, "sync_listings", "SKU-1")["times"] == 2  # type: ignore[index]
        assert take_failure(state, "sync_listings", "SKU-1")["times"] == 1  # type: ignore[index]
        assert take_failure(state, "sync_listings", "SKU-1") is None
        whole = take_failure(state, "sync_listings", None)
        assert whole is not None and whole["times"] is None
        assert take_failure(state, "sync_listings", None) is not None  # never spent
    store.clear_failures()
    assert store.failures() == []


def test_a_failed_transaction_changes_nothing(store: FakeStore) -> None:
    store.add_product("A-1")
    before = store.path.read_bytes()
    with pytest.raises(RuntimeError), store.transaction() as state:
        state["products"].clear()
        raise RuntimeError("boom")
    assert store.path.read_bytes() == before


def test_writes_leave_no_temporary_files(store: FakeStore) -> None:
    for n in range(3):
        store.add_product(f"A-{n}")
    names = sorted(p.name for p in store.path.parent.iterdir())
    assert names == ["fake.json", "fake.json.lock"]


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(FakeStoreError, match="invalid JSON"):
        FakeStore(path).products()
    path.write_text('{"hello": 1}')
    with pytest.raises(FakeStoreError, match="not a fake channel store"):
        FakeStore(path).add_product("A-1")
    assert path.read_text() == '{"hello": 1}'


def test_calls_and_received_things_start_empty(store: FakeStore) -> None:
    assert store.calls() == {}
    assert store.shipments_received() == []
    assert store.updates_received() == []


def _add_many(path: str, prefix: str, count: int) -> None:
    store = FakeStore(path)
    for n in range(count):
        store.add_product(f"{prefix}-{n}")


def test_two_threads_writing_lose_nothing(store: FakeStore) -> None:
    threads = [
        threading.Thread(target=_add_many, args=(str(store.path), name, 25)) for name in "AB"
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    products = store.products()
    assert len(products) == 50
    assert len({p["id"] for p in products}) == 50


def test_two_processes_writing_lose_nothing(store: FakeStore) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(str(store.path), name, 20)) for name in "AB"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    products = store.products()
    assert len(products) == 40
    assert {p["sku"] for p in products} == {f"{c}-{n}" for c in "AB" for n in range(20)}


def test_a_reader_waits_for_a_writer(store: FakeStore) -> None:
    store.add_product("A-1")
    entered = threading.Event()
    release = threading.Event()
    seen: list[int] = []

    def writer() -> None:
        with store.transaction() as state:
            state["products"].clear()
            entered.set()
            release.wait(5)

    def reader() -> None:
        seen.append(len(FakeStore(store.path).products()))

    w = threading.Thread(target=writer)
    w.start()
    assert entered.wait(5)
    r = threading.Thread(target=reader)
    r.start()
    r.join(0.2)
    assert r.is_alive()  # blocked on the lock while the writer holds it
    release.set()
    w.join()
    r.join()
    assert seen == [0]
