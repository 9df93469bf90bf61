"""A run that loses its lease stops at its next commit point (SQLite and PostgreSQL).

Another process taking the lease over is played deterministically: a wrapper plugin, right
after the channel answered the run's first call, ends every lease (``expire_all``, as if the
run had stalled past its expiry) and starts a second run of the same operation, which takes the
lease over. The first run must then send nothing more to the channel, store what the channel
already did, and end ``failed`` naming the run that took over; the next run goes on from there
with nothing sent twice and nothing lost.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from hub_core import hookimpl
from hub_core.errors import LeaseLost
from hub_core.models import Connection, utcnow
from hub_core.services import Hub
from hub_core.services.catalog import import_catalog
from hub_core.services.connections import get_connection
from hub_core.services.leases import expire_all
from hub_core.services.listings import link_listings, sync_listings
from hub_core.services.orders import get_orders
from hub_core.services.runs import RunRecorder, show_run
from hub_core.services.shipments import ship_order, sync_orders
from hub_core.services.shipping import add_mapping
from hub_fake_channel.store import FakeStore


def _connection(hub: Hub, name: str = "shop") -> Connection:
    with hub.db.session() as session:
        return get_connection(session, name)


class TakeOver:
    """Wraps one operation hook; after the channel answered its ``after``-th call, another
    run of ``operation`` takes the lease over (and keeps it until :meth:`finish`)."""

    def __init__(self, hub: Hub, operation: str, hook: str, after: int = 1) -> None:
        self.hub, self.operation, self.hook, self.after = hub, operation, hook, after
        self.calls = 0
        self.successor: RunRecorder | None = None

    def _answered(self) -> None:
        self.calls += 1
        if self.calls == self.after:
            assert expire_all(self.hub.db) == 1  # the run's own lease, and no other
            successor = RunRecorder(self.hub, self.operation, _connection(self.hub))
            successor.__enter__()
            assert successor.lease is not None
            successor.lease.stop()  # a stand-in for the other process: it renews nothing
            self.successor = successor

    def finish(self) -> None:
        """The other run ends (ok) and gives the lease back."""
        assert self.successor is not None
        self.successor.__exit__(None, None, None)

    def _wrap(self, hook: str) -> Generator[None, Any, Any]:
        answer = yield
        if hook == self.hook:
            self._answered()
        return answer

    @hookimpl(wrapper=True)
    def hub_sync_listings(self) -> Generator[None, Any, Any]:
        return (yield from self._wrap("sync_listings"))

    @hookimpl(wrapper=True)
    def hub_acknowledge_orders(self) -> Generator[None, Any, Any]:
        return (yield from self._wrap("acknowledge_orders"))

    @hookimpl(wrapper=True)
    def hub_sync_orders(self) -> Generator[None, Any, Any]:
        return (yield from self._wrap("sync_orders"))


@pytest.fixture
def take_over(hub: Hub, make_registry: Callable[..., Any]) -> Callable[..., tuple[Hub, TakeOver]]:
    """``take_over(operation, hook)``: a hub whose registry holds a :class:`TakeOver`."""

    def make(operation: str, hook: str) -> tuple[Hub, TakeOver]:
        plugin = TakeOver(hub, operation, hook)
        return Hub(db=hub.db, registry=make_registry((plugin, "take-over"))), plugin

    return make


def _lost(error: pytest.ExceptionInfo[LeaseLost], hub: Hub, successor: RunRecorder) -> dict:
    """The stopped run as ``hub runs show`` has it; its error and record say why."""
    assert int(error.value.exit_code) == 1
    run_id = error.value.run_result.run_id
    assert f"run {successor.run_id} took over" in error.value.message
    assert "before sending anything more to the channel" in error.value.message
    shown = show_run(hub, run_id)
    assert shown["status"] == "failed" and shown["finished_at"] is not None
    assert shown["message"] == error.value.message
    return shown


def test_sync_listings_stops_sending_when_its_lease_is_taken_over(
    hub: Hub,
    shop: str,
    store: FakeStore,
    catalog_file: Callable,
    channel_products: dict[str, str],
    take_over: Callable[..., tuple[Hub, TakeOver]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import_catalog(hub, catalog_file())
    link_listings(hub, shop)
    monkeypatch.setattr("hub_core.services.listings.CHUNK", 1)  # one channel call per SKU
    racing, other = take_over("sync_listings", "sync_listings")

    with pytest.raises(LeaseLost) as error:
        sync_listings(racing, shop)

    assert other.calls == 1 and [u["sku"] for u in store.updates_received()] == ["SKU-1"]
    assert other.successor is not None
    shown = _lost(error, hub, other.successor)
    # What the channel did before the loss is stored: SKU-1 is not sent again.
    assert [(r["ref"], r["outcome"]) for r in shown["records"]] == [("SKU-1", "ok")]
    other.finish()
    after = sync_listings(hub, shop)
    assert [r.ref for r in after.records] == ["SKU-2"]
    assert [u["sku"] for u in store.updates_received()] == ["SKU-1", "SKU-2"]


def test_get_orders_stops_before_storing_more_when_its_lease_is_taken_over(
    hub: Hub,
    shop: str,
    store: FakeStore,
    take_over: Callable[..., tuple[Hub, TakeOver]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [store.add_order([("SKU-1", 1)]) for _ in range(3)]
    add_mapping(hub, shop, "UPS - Ground", "standard")
    monkeypatch.setattr("hub_core.services.orders.CHUNK", 1)  # store and acknowledge each
    racing, other = take_over("get_orders", "acknowledge_orders")

    with pytest.raises(LeaseLost) as error:
        get_orders(racing, shop)

    assert other.calls == 1 and other.successor is not None
    _lost(error, hub, other.successor)
    acknowledged = [o["id"] for o in store.orders() if o["acknowledged"]]
    assert acknowledged == ids[:1]  # nothing acknowledged after the loss
    from hub_core.models import Order

    with hub.db.session() as session:
        # Storing is pipelined with acknowledging: the chunk after the one being acknowledged
        # when the lease was lost may be stored (unacknowledged), nothing after it.
        assert session.query(Order).count() <= 2
    other.finish()
    get_orders(hub, shop)
    assert sorted(o["id"] for o in store.orders() if o["acknowledged"]) == ids
    with hub.db.session() as session:
        stored = session.scalars(select(Order.channel_order_id)).all()
    assert sorted(stored) == sorted(ids)  # each order stored once


def test_sync_orders_stops_sending_when_its_lease_is_taken_over(
    hub: Hub,
    shop: str,
    store: FakeStore,
    take_over: Callable[..., tuple[Hub, TakeOver]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [store.add_order([("SKU-1", 1)]) for _ in range(3)]
    add_mapping(hub, shop, "UPS - Ground", "standard")
    get_orders(hub, shop)
    for order_id in ids:
        ship_order(
            hub, shop, order_id, tracking=f"T-{order_id}", carrier="UPS", shipping_class="Ground"
        )
    monkeypatch.setattr("hub_core.services.shipments.CHUNK", 1)  # one channel call each
    racing, other = take_over("sync_orders", "sync_orders")

    with pytest.raises(LeaseLost) as error:
        sync_orders(racing, shop)

    assert other.calls == 1 and other.successor is not None
    shown = _lost(error, hub, other.successor)
    assert [r["outcome"] for r in shown["records"]] == ["ok"]
    assert len(store.shipments_received()) == 1
    other.finish()
    after = sync_orders(hub, shop)
    assert [r.outcome for r in after.records] == ["ok", "ok"]
    received = store.shipments_received()
    assert len(received) == 3 and {s["received"] for s in received} == {1}  # each once


def test_the_cli_exits_1_with_the_reason_and_no_trace(
    hub: Hub,
    cli_shop: Any,
    catalog_file: Callable,
    channel_products: dict[str, str],
    make_registry: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli_shop("catalog", "import", str(catalog_file()))
    cli_shop("listings", "link", "shop")
    monkeypatch.setattr("hub_core.services.listings.CHUNK", 1)
    plugin = TakeOver(hub, "sync_listings", "sync_listings")
    registry = make_registry((plugin, "take-over"))
    result = cli_shop("listings", "sync", "shop", code=1, registry=registry)
    assert plugin.successor is not None
    assert f"run {plugin.successor.run_id} took over" in result.stderr
    assert "before sending anything more" in result.stderr
    plugin.finish()
    runs = cli_shop.json("runs", "list", "--connection", "shop")
    stopped = next(r for r in runs if r["operation"] == "sync_listings" and r["status"] == "failed")
    assert "took over" in stopped["message"]


def test_an_expired_lease_nobody_took_is_renewed_and_the_run_goes_on(
    hub: Hub,
    shop: str,
    store: FakeStore,
    catalog_file: Callable,
    channel_products: dict[str, str],
    make_registry: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Expiry alone loses nothing: the lease is still the run's until another run takes it."""
    import_catalog(hub, catalog_file())
    link_listings(hub, shop)
    monkeypatch.setattr("hub_core.services.listings.CHUNK", 1)

    class Expire:
        @hookimpl(wrapper=True)
        def hub_sync_listings(self) -> Generator[None, Any, Any]:
            answer = yield
            assert expire_all(hub.db) == 1
            return answer

    racing = Hub(db=hub.db, registry=make_registry((Expire(), "expire")))
    result = sync_listings(racing, shop)
    assert result.status == "ok" and [r.ref for r in result.records] == ["SKU-1", "SKU-2"]
    assert len(store.updates_received()) == 2


def test_a_lease_not_renewed_before_its_expiry_is_lost(hub: Hub, shop: str) -> None:
    """The database away past the lease's expiry: the run cannot know whether another took
    over, so it stops; before the expiry it goes on."""
    run = RunRecorder(hub, "sync_orders", _connection(hub))
    run.__enter__()
    keeper = run.lease
    assert keeper is not None
    keeper.stop()

    def away() -> Any:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    real_session = hub.db.session
    hub.db.session = away  # type: ignore[method-assign]
    try:
        run.commit_point()  # renewal failed, but the last one still holds: go on
        assert not keeper.lost
        keeper.held_until = utcnow() - timedelta(seconds=1)  # ...until its expiry passed
        with pytest.raises(LeaseLost) as error:
            run.commit_point()
    finally:
        hub.db.session = real_session  # type: ignore[method-assign]
    assert "could not be renewed before it expired" in error.value.message
    assert "OperationalError" in error.value.message
    run.__exit__(LeaseLost, error.value, None)
    shown = show_run(hub, run.run_id)
    assert shown["status"] == "failed" and "could not be renewed" in shown["message"]
