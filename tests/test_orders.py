"""Get orders: each order once (two runs; a concurrent run refused by the lease, or racing after
it lapsed), acknowledged only after commit,
a crash in between heals, held orders and their release (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from hub_core import hookimpl
from hub_core.channel import ChannelConnection, ChannelOrder
from hub_core.db import Database
from hub_core.errors import ChannelError, InvalidInput, LeaseLost, RunInProgress
from hub_core.models import Lease, Order, OrderLine, utcnow
from hub_core.services import Hub, OperationResult
from hub_core.services import orders as orders_service
from hub_core.services.orders import get_orders, list_orders, show_order
from hub_core.services.runs import RunRecorder, list_runs
from hub_core.services.shipping import add_mapping
from hub_fake_channel import plugin as fake_plugin
from hub_fake_channel.store import FakeStore


def _order_rows(hub: Hub) -> list[tuple[str, str]]:
    with hub.db.session() as session:
        rows = session.execute(
            select(Order.channel_order_id, Order.status).order_by(Order.channel_order_id)
        )
        return [(order_id, status) for order_id, status in rows]


def _acknowledged(store: FakeStore) -> dict[str, bool]:
    return {o["id"]: o["acknowledged"] for o in store.orders()}


@pytest.fixture
def orders(store: FakeStore) -> list[str]:
    """Three eligible orders on the channel (shipping text ``UPS - Ground``)."""
    now = datetime.now(UTC)
    return [
        store.add_order(
            [("SKU-1", 2), ("SKU-2", 1)], created_at=now - timedelta(hours=3), order_id="O-0001"
        ),
        store.add_order([("SKU-1", 1)], created_at=now - timedelta(hours=2), order_id="O-0002"),
        store.add_order([("SKU-2", 4)], created_at=now - timedelta(hours=1), order_id="O-0003"),
    ]


@pytest.fixture
def mapped(hub: Hub, shop: str) -> str:
    """``UPS - Ground`` mapped to the policy ``standard`` on ``shop``."""
    add_mapping(hub, shop, "UPS - Ground", "standard")
    return shop


def test_get_orders_imports_and_acknowledges_each_order_once(
    hub: Hub, mapped: str, store: FakeStore, orders: list[str]
) -> None:
    first = get_orders(hub, mapped)
    assert first.status == "ok" and first.operation == "get_orders"
    assert first.counts == {"imported": 3, "ok": 3, "acknowledged": 3}
    assert [r.ref for r in first.records] == orders
    assert _order_rows(hub) == [(o, "imported") for o in orders]
    assert _acknowledged(store) == dict.fromkeys(orders, True)
    shown = show_order(hub, mapped, "O-0001")
    assert shown["shipping_policy"] == "standard"
    assert [(ln["sku"], ln["quantity"]) for ln in shown["lines"]] == [("SKU-1", 2), ("SKU-2", 1)]
    assert shown["acknowledged"] is True

    second = get_orders(hub, mapped)
    assert second.records == [] and second.counts == {}
    store.add_order([("SKU-1", 1)], order_id="O-0004")
    third = get_orders(hub, mapped)
    assert [r.ref for r in third.records] == ["O-0004"]
    assert len(_order_rows(hub)) == 4
    with hub.db.session() as session:
        assert session.scalar(select(func.count()).select_from(OrderLine)) == 5


def test_orders_outside_the_window_or_statuses_are_not_imported(
    hub: Hub, mapped: str, store: FakeStore
) -> None:
    now = datetime.now(UTC)
    store.add_order(order_id="OLD", created_at=now - timedelta(days=10))
    store.add_order(order_id="PENDING", status="pending")
    store.add_order(order_id="NEW", created_at=now - timedelta(days=1))
    assert [r.ref for r in get_orders(hub, mapped).records] == ["NEW"]
    assert [r.ref for r in get_orders(hub, mapped, days=11).records] == ["OLD"]
    assert get_orders(hub, mapped).records == []
    with pytest.raises(InvalidInput, match="--days"):
        get_orders(hub, mapped, days=0)


def test_a_record_already_stored_but_returned_again_is_skipped(
    hub: Hub, mapped: str, store: FakeStore, orders: list[str]
) -> None:
    get_orders(hub, mapped)
    store.update_order("O-0002", acknowledged=False)  # the channel forgot the acknowledgement
    again = get_orders(hub, mapped)
    assert [(r.ref, r.outcome) for r in again.records] == [("O-0002", "skipped")]
    assert again.counts["already_imported"] == 1
    assert len(_order_rows(hub)) == 3


def _run_concurrently(*calls: Callable[[], OperationResult]) -> list[OperationResult]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # reported below
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


class _BothFetchFirst:
    """The fake channel, except that each get orders waits, once the channel answered, until
    the other run has its answer too, so both runs try to store the very same orders. With
    ``expire_lease`` the first run to get there lets its lease lapse first (as a process
    stalled past its expiry would), so the other may take it over.

    (A wrapper plugin cannot hold a run there: it sees the whole of get orders, storing
    included.)
    """

    def __init__(self, parties: int, expire_lease: Database | None = None) -> None:
        self.barrier = threading.Barrier(parties, timeout=60)
        self.expire_lease = expire_lease
        self.expired = threading.Event()
        for name in dir(fake_plugin):
            if name.startswith("hub_") and name != "hub_get_orders":
                setattr(self, name, getattr(fake_plugin, name))

    @hookimpl
    def hub_get_orders(self, connection: ChannelConnection, days: int) -> list[ChannelOrder]:
        orders = list(fake_plugin.hub_get_orders(connection=connection, days=days))
        if self.expire_lease is not None and not self.expired.is_set():
            with self.expire_lease.session() as session:
                session.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
            # Only once committed: a successor woken earlier found the lease still held.
            self.expired.set()
        self.barrier.wait()
        return orders


class _HoldInside:
    """A wrapper plugin: a run waits at the end of get orders (its run still going, its lease
    held) until ``go`` is set."""

    def __init__(self) -> None:
        self.fetched = threading.Event()
        self.go = threading.Event()

    @hookimpl(wrapper=True)
    def hub_get_orders(self) -> Generator[None, Any, Any]:
        result = yield
        self.fetched.set()
        self.go.wait(timeout=60)
        return result


def test_a_second_run_while_one_works_is_refused_naming_it(
    hub: Hub, mapped: str, store: FakeStore, make_registry: Callable, database_url: str
) -> None:
    ids = [store.add_order([("SKU-1", 1)], order_id=f"C-{n:03d}") for n in range(12)]
    hold = _HoldInside()
    first_hub = Hub(db=Database(database_url), registry=make_registry((hold, "hold")))
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(get_orders(first_hub, mapped)))
    worker.start()
    try:
        assert hold.fetched.wait(timeout=60)
        with pytest.raises(RunInProgress) as refused:
            get_orders(hub, mapped)
    finally:
        hold.go.set()
        worker.join(timeout=120)
        first_hub.db.dispose()
    [first] = result
    assert refused.value.run_id == first.run_id
    assert f"run {first.run_id}, started " in refused.value.message
    assert int(refused.value.exit_code) == 1
    assert [r.ref for r in first.records if r.outcome == "ok"] == ids
    assert [r["run_id"] for r in list_runs(hub)] == [first.run_id]  # the refused run left none
    assert store.calls()["get_orders"] == 1
    assert _acknowledged(store) == dict.fromkeys(ids, True)


def test_a_run_that_outlived_its_lease_and_its_successor_import_each_order_once(
    hub: Hub,
    mapped: str,
    store: FakeStore,
    make_registry: Callable,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lease is the first guard; the database's uniqueness is the second: a run stalled
    past its lease while its successor works stores nothing twice, even with the first guard
    off (the run's check at its commit points, see the next test)."""
    monkeypatch.setattr(RunRecorder, "commit_point", lambda self: None)
    ids = [store.add_order([("SKU-1", 1)], order_id=f"C-{n:03d}") for n in range(12)]
    stall = _BothFetchFirst(2, expire_lease=hub.db)
    registry = make_registry((stall, "fake"), load_entrypoints=False)
    hubs = [Hub(db=Database(database_url), registry=registry) for _ in range(2)]

    def successor() -> OperationResult:
        assert stall.expired.wait(timeout=60)  # the first run holds the lease, then stalls
        return get_orders(hubs[1], mapped)

    try:
        results = _run_concurrently(lambda: get_orders(hubs[0], mapped), successor)
    finally:
        for other in hubs:
            other.db.dispose()
    assert sorted(o for o, _ in _order_rows(hub)) == ids
    outcomes = [[(r.ref, r.outcome) for r in result.records] for result in results]
    # Both runs got every order from the channel; each order was stored by exactly one.
    assert all(sorted(ref for ref, _ in run) == ids for run in outcomes)
    imported = sorted(ref for run in outcomes for ref, outcome in run if outcome == "ok")
    assert imported == ids
    skipped = sorted(ref for run in outcomes for ref, outcome in run if outcome == "skipped")
    assert skipped == ids
    assert _acknowledged(store) == dict.fromkeys(ids, True)
    assert all(o["acknowledged"] for o in list_orders(hub, mapped))


def test_a_run_that_outlived_its_lease_stops_and_its_successor_imports_each_order(
    hub: Hub, mapped: str, store: FakeStore, make_registry: Callable, database_url: str
) -> None:
    """With the first guard on, the stalled run sees at its first commit point that its
    successor took the lease over: it stops (failed) before storing or acknowledging."""
    ids = [store.add_order([("SKU-1", 1)], order_id=f"C-{n:03d}") for n in range(12)]
    stall = _BothFetchFirst(2, expire_lease=hub.db)
    registry = make_registry((stall, "fake"), load_entrypoints=False)
    hubs = [Hub(db=Database(database_url), registry=registry) for _ in range(2)]

    def stalled() -> Any:
        with pytest.raises(LeaseLost) as lost:
            get_orders(hubs[0], mapped)
        return [lost.value]  # in a list: an exception returned would be raised

    def successor() -> OperationResult:
        assert stall.expired.wait(timeout=60)  # the first run holds the lease, then stalls
        return get_orders(hubs[1], mapped)

    try:
        [lost], result = _run_concurrently(stalled, successor)
    finally:
        for other in hubs:
            other.db.dispose()
    # The successor may already have finished (and freed the lease) when the stalled run
    # checks: then no holder can be named.
    assert (
        f"run {result.run_id} took over" in lost.message
        or "its lease was taken away" in lost.message
    )
    assert lost.run_result.status == "failed" and lost.run_result.records == []
    assert sorted(r.ref for r in result.records if r.outcome == "ok") == ids
    assert sorted(o for o, _ in _order_rows(hub)) == ids
    assert _acknowledged(store) == dict.fromkeys(ids, True)


def test_a_crash_between_commit_and_acknowledge_heals_on_the_next_run(
    hub: Hub, mapped: str, store: FakeStore, orders: list[str]
) -> None:
    store.fail("acknowledge_orders", times=1)  # the whole call fails once
    with pytest.raises(ChannelError):
        get_orders(hub, mapped)
    assert _order_rows(hub) == [(o, "imported") for o in orders]  # committed
    assert not any(_acknowledged(store).values())
    assert not any(o["acknowledged"] for o in list_orders(hub, mapped))

    healed = get_orders(hub, mapped)
    assert healed.status == "ok"
    assert healed.counts == {"acknowledged": 3}
    assert _acknowledged(store) == dict.fromkeys(orders, True)
    assert all(o["acknowledged"] for o in list_orders(hub, mapped))
    assert len(_order_rows(hub)) == 3


def test_one_acknowledgement_failing_is_retried(
    hub: Hub, mapped: str, store: FakeStore, orders: list[str]
) -> None:
    store.fail("acknowledge_orders", ref="O-0002", times=1)
    first = get_orders(hub, mapped)
    assert first.status == "partial" and int(first.exit_code) == 4
    failed = [r for r in first.records if r.outcome == "failed"]
    assert [r.ref for r in failed] == ["O-0002"]
    assert "retried on the next run" in failed[0].message
    assert _acknowledged(store) == {"O-0001": True, "O-0002": False, "O-0003": True}
    second = get_orders(hub, mapped)
    assert second.status == "ok" and second.counts == {"acknowledged": 1}
    assert _acknowledged(store)["O-0002"] is True
    assert len(_order_rows(hub)) == 3


def test_a_lost_acknowledgement_is_sent_again_harmlessly(
    hub: Hub, mapped: str, store: FakeStore, orders: list[str]
) -> None:
    store.fail("acknowledge_orders", ref="O-0001", times=1, kind="lost")
    assert int(get_orders(hub, mapped).exit_code) == 4
    assert _acknowledged(store)["O-0001"] is True  # applied on the channel, answer lost
    again = get_orders(hub, mapped)
    assert again.status == "ok" and again.counts == {"acknowledged": 1}
    assert len(_order_rows(hub)) == 3


def test_get_orders_failing_mid_way_imports_nothing_twice(
    hub: Hub, mapped: str, store: FakeStore, orders: list[str]
) -> None:
    store.fail("get_orders", ref="O-0002", times=1)
    with pytest.raises(ChannelError):
        get_orders(hub, mapped)
    stored = {o for o, _ in _order_rows(hub)}
    assert {o for o, ack in _acknowledged(store).items() if ack} == stored
    get_orders(hub, mapped)
    assert sorted(o for o, _ in _order_rows(hub)) == orders
    assert all(_acknowledged(store).values())


def test_unmapped_shipping_text_is_held_and_released_by_a_mapping(
    hub: Hub, shop: str, store: FakeStore
) -> None:
    add_mapping(hub, shop, "USPS - Priority", "express")
    store.add_order([("SKU-1", 1)], order_id="H-1", shipping_text="UPS - Ground")
    store.add_order([("SKU-1", 1)], order_id="H-2", shipping_text="UPS - Ground")
    store.add_order([("SKU-1", 1)], order_id="M-1", shipping_text="USPS - Priority")
    result = get_orders(hub, shop)
    assert result.counts["held"] == 2 and result.counts["imported"] == 1
    held = list_orders(hub, shop, "held")
    assert [o["channel_order_id"] for o in held] == ["H-1", "H-2"]
    reason = held[0]["hold_reason"]
    assert "'UPS - Ground'" in reason and "nearest mapping: 'USPS - Priority'" in reason
    assert "hub shipping-mappings add" in reason
    assert all(o["acknowledged"] for o in held)  # held orders are stored, so acknowledged

    released = add_mapping(hub, shop, "UPS - Ground", "standard")
    assert released["released_orders"] == ["H-1", "H-2"]
    assert list_orders(hub, shop, "held") == []
    order = show_order(hub, shop, "H-1")
    assert order["status"] == "imported" and order["hold_reason"] is None
    assert order["shipping_policy"] == "standard"


def test_cancelled_orders_are_stored_cancelled(hub: Hub, mapped: str, store: FakeStore) -> None:
    store.add_order(order_id="X-1", cancelled=True)
    get_orders(hub, mapped)
    assert _order_rows(hub) == [("X-1", "cancelled")]


def test_two_processes_import_each_order_once(
    database_url: str, store: FakeStore, tmp_path: Path, hub_cli: Any
) -> None:
    """Two ``hub orders get`` processes on one database: one may be refused while the other
    works (exit 1, naming it); no duplicate, all acknowledged."""
    hub_cli("connections", "add", "shop", "--channel", "fake", "--set", f"store={store.path}")
    hub_cli("shipping-mappings", "add", "shop", "--channel-text", "UPS - Ground", "--policy", "std")
    ids = [store.add_order([("SKU-1", 1)], order_id=f"P-{n:03d}") for n in range(20)]
    hub_exe = Path(sys.executable).with_name("hub")
    command = [str(hub_exe)] if hub_exe.exists() else [sys.executable, "-m", "hub_core.cli"]
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_DISABLE_PLUGINS": "channeladvisor"}
    processes = [
        subprocess.Popen(
            [*command, "orders", "get", "shop", "--json"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    codes = [p.returncode for p in processes]
    assert 0 in codes, outputs
    for code, (_out, err) in zip(codes, outputs, strict=True):
        assert code == 0 or (code == 1 and "is already running: run " in err), err
    documents = [json.loads(out) for code, (out, _) in zip(codes, outputs, strict=True) if not code]
    imported = [r["ref"] for doc in documents for r in doc["records"] if r["outcome"] == "ok"]
    assert sorted(imported) == ids
    listed = hub_cli.json("orders", "list")
    assert sorted(o["channel_order_id"] for o in listed) == ids
    assert all(o["acknowledged"] for o in listed)
    assert _acknowledged(store) == dict.fromkeys(ids, True)


def test_cancellations_after_import_reach_the_hub(
    hub: Hub, mapped: str, store: FakeStore, orders: list[str]
) -> None:
    """Found by get orders (the channel reports the order again, cancelled) or by sync orders
    (a shipment skipped with ``order_status="cancelled"``): the order becomes cancelled and its
    shipments not yet sent are cancelled, never sent."""
    from hub_core.models import Shipment
    from hub_core.services.shipments import ship_order, sync_orders

    get_orders(hub, mapped)
    by_sync, by_get = orders[0], orders[1]
    ship_order(hub, mapped, by_get, tracking="T1", carrier="UPS", shipping_class="Ground")
    for tracking in ("T2", "T3"):
        ship_order(
            hub,
            mapped,
            by_sync,
            tracking=tracking,
            carrier="UPS",
            shipping_class="Ground",
            items={"SKU-1": 1} if tracking == "T2" else None,
        )
    store.cancel_order(by_get)
    result = get_orders(hub, mapped)
    assert result.counts["cancelled_after_import"] == 1
    store.cancel_order(by_sync)
    synced = sync_orders(hub, mapped)
    assert [r.outcome for r in synced.records] == ["skipped", "skipped"]
    assert synced.counts["order_cancelled"] == 1
    assert synced.counts["shipments_cancelled"] == 2
    assert dict(_order_rows(hub))[by_get] == dict(_order_rows(hub))[by_sync] == "cancelled"
    with hub.db.session() as session:
        states = sorted(session.scalars(select(Shipment.sync_status)))
    assert states == ["cancelled"] * 3
    assert store.shipments_received() == []
    assert sync_orders(hub, mapped).records == []


class _CheckStoredFirst:
    """A wrapper plugin: when the channel is told of orders, are they all committed?"""

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)
        self.calls: list[tuple[list[str], bool]] = []

    @hookimpl(wrapper=True)
    def hub_acknowledge_orders(self, channel_order_ids: list[str]) -> Generator[None, Any, Any]:
        # Another connection sees only what was committed.
        with self.db.session() as session:
            found = set(
                session.scalars(
                    select(Order.channel_order_id).where(
                        Order.channel_order_id.in_(channel_order_ids)
                    )
                )
            )
        self.calls.append((list(channel_order_ids), found == set(channel_order_ids)))
        return (yield)


def test_chunks_are_acknowledged_after_their_commit_while_the_next_is_stored(
    hub: Hub,
    mapped: str,
    store: FakeStore,
    make_registry: Callable,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(orders_service, "CHUNK", 2)
    ids = [store.add_order([("SKU-1", 1)], order_id=f"P-{n}") for n in range(5)]
    check = _CheckStoredFirst(database_url)
    piped = Hub(db=hub.db, registry=make_registry((check, "check")))
    try:
        result = get_orders(piped, mapped)
    finally:
        check.db.dispose()
    # Three chunks (2, 2, 1), each told once, each only after its commit.
    assert check.calls == [(ids[0:2], True), (ids[2:4], True), (ids[4:5], True)]
    assert result.counts == {"imported": 5, "ok": 5, "acknowledged": 5}
    assert [r.ref for r in result.records] == ids
    assert _acknowledged(store) == dict.fromkeys(ids, True)
    with hub.db.session() as session:
        assert session.scalar(select(func.count()).where(Order.acknowledged_at.is_(None))) == 0


def test_a_failure_mid_way_still_records_the_chunk_being_acknowledged(
    hub: Hub, mapped: str, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orders_service, "CHUNK", 2)
    ids = [store.add_order([("SKU-1", 1)], order_id=f"F-{n}") for n in range(5)]
    store.fail("get_orders", ref="F-3", times=1)
    with pytest.raises(ChannelError):
        get_orders(hub, mapped)
    # F-0..F-2 were read (F-3 broke the reading): stored, told, and recorded as told.
    with hub.db.session() as session:
        rows = dict(session.execute(select(Order.channel_order_id, Order.acknowledged_at)).all())
    assert sorted(rows) == ids[:3]
    assert all(at is not None for at in rows.values())
    assert {o for o, ack in _acknowledged(store).items() if ack} == set(ids[:3])


def test_an_order_stored_by_another_run_meanwhile_is_skipped_and_the_chunk_stored(
    hub: Hub, mapped: str, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [store.add_order([("SKU-1", 1)], order_id=f"R-{n}") for n in range(3)]
    get_orders(hub, mapped)
    with hub.db.session() as session:
        session.execute(delete(OrderLine))
        session.execute(delete(Order).where(Order.channel_order_id != "R-1"))
    for order_id in ids:
        store.update_order(order_id, acknowledged=False)
    # The chunk's lookup misses R-1, as if another run stored it after the lookup: the one
    # insert of the chunk fails on the unique key, and the orders are stored one by one.
    monkeypatch.setattr(orders_service, "_known_orders", lambda *args: {})
    result = get_orders(hub, mapped)
    assert {(r.ref, r.outcome) for r in result.records} == {
        ("R-0", "ok"),
        ("R-1", "skipped"),
        ("R-2", "ok"),
    }
    assert result.counts["imported"] == 2 and result.counts["already_imported"] == 1
    assert sorted(o for o, _ in _order_rows(hub)) == ids
