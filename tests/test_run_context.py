"""One path per operation (issue 9): a run resolves its connection once, into one context that
the service, the run recorder and the plugin share; what a plugin keeps for the run (its HTTP
client) lives on the connection and is closed when the run ends, failed or not."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from hub_core import hookimpl
from hub_core.channel import ChannelConnection, ChannelOrder, ChannelOrderLine
from hub_core.db import Database
from hub_core.errors import ChannelError
from hub_core.plugins import Registry
from hub_core.services import Hub
from hub_core.services.catalog import import_catalog
from hub_core.services.connections import add_connection
from hub_core.services.listings import link_listings, sync_listings
from hub_core.services.operations import run_connection
from hub_core.services.orders import get_orders
from hub_core.services.runs import show_run


@dataclasses.dataclass
class Resource:
    """Stands for a plugin's HTTP client."""

    number: int
    closed: int = 0

    def close(self) -> None:
        self.closed += 1


class Keeper:
    """A plugin with no channel that keeps a resource on the run's connection at every hook
    call it wraps, as a channel plugin keeps its client, and remembers what it saw."""

    def __init__(self) -> None:
        self.built: list[Resource] = []
        self.seen: list[tuple[str, ChannelConnection, Resource]] = []

    def _use(self, hook: str, connection: ChannelConnection) -> None:
        resource = connection.keep("test.resource", self._build)
        self.seen.append((hook, connection, resource))

    def _build(self) -> Resource:
        self.built.append(Resource(len(self.built)))
        return self.built[-1]

    @hookimpl(wrapper=True)
    def hub_link_listings(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        self._use("link", connection)
        return (yield)

    @hookimpl(wrapper=True)
    def hub_sync_listings(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        self._use("sync", connection)
        return (yield)

    @hookimpl(wrapper=True)
    def hub_get_orders(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        self._use("get_orders", connection)
        return (yield)

    @hookimpl(wrapper=True)
    def hub_acknowledge_orders(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
        self._use("acknowledge", connection)
        return (yield)


ORDER = ChannelOrder(
    channel_order_id="A-1",
    shipping_text="UPS - Ground",
    lines=[ChannelOrderLine(channel_line_id="1", sku="SKU-1", quantity=1)],
)


@pytest.fixture
def open_hub(database_url: str, make_stub: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``open_hub(**stub_options)``: a hub whose only channel is a stub (connection ``shop``)
    and whose plugins include a :class:`Keeper`; returns ``(hub, stub, keeper)``."""
    opened: list[Hub] = []

    def make(**options: Any) -> tuple[Hub, Any, Keeper]:
        stub, keeper = make_stub(**options), Keeper()
        registry = Registry.load(load_entrypoints=False, plugins=[(stub, "stub"), (keeper, "k")])
        hub = Hub(db=Database(database_url), registry=registry)
        opened.append(hub)
        add_connection(hub, "shop", "stub", {"account": "a", "token": "t-secret"})
        return hub, stub, keeper

    yield make
    for hub in opened:
        hub.db.dispose()


def test_one_run_shares_one_connection_and_closes_its_resources(open_hub: Any) -> None:
    hub, stub, keeper = open_hub(orders=[ORDER])

    result = get_orders(hub, "shop")

    assert result.status == "ok"
    assert stub.calls == ["hub_get_orders", "hub_acknowledge_orders"]
    assert [r.closed for r in keeper.built] == [1]
    (_, first, resource), (_, second, again) = keeper.seen
    assert first is second and resource is again  # one connection, one resource, one run
    assert keeper.built == [Resource(0, closed=1)]  # closed once, when the run ended
    assert first.resources == {}


def test_resources_are_closed_when_the_run_fails(open_hub: Any) -> None:
    hub, _, keeper = open_hub(orders=[ORDER], fail_with=ChannelError("the channel is down"))

    with pytest.raises(ChannelError) as raised:
        get_orders(hub, "shop")

    assert show_run(hub, raised.value.run_result.run_id)["status"] == "failed"
    assert keeper.built == [Resource(0, closed=1)]


def test_each_run_has_its_own_resources(open_hub: Any, tmp_path: Any) -> None:
    hub, _, keeper = open_hub()
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,title,quantity,price\nSKU-1,One,3,9.50\n", encoding="utf-8")
    import_catalog(hub, str(catalog))

    link_listings(hub, "shop")
    sync_listings(hub, "shop")

    assert [hook for hook, _, _ in keeper.seen] == ["link", "sync"]
    assert keeper.seen[0][1] is not keeper.seen[1][1]  # two runs, two contexts
    assert keeper.built == [Resource(0, closed=1), Resource(1, closed=1)]


def test_hub_run_resolves_the_connection_once_for_its_steps(
    open_hub: Any, tmp_path: Any
) -> None:
    hub, stub, keeper = open_hub(orders=[ORDER])
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("sku,title,quantity,price\nSKU-1,One,3,9.50\n", encoding="utf-8")
    import_catalog(hub, str(catalog))

    document, code = run_connection(hub, "shop")

    assert code == 0, document
    assert stub.calls == [
        "hub_link_listings",
        "hub_sync_listings",
        "hub_get_orders",
        "hub_acknowledge_orders",
    ]
    assert [hook for hook, _, _ in keeper.seen] == ["link", "sync", "get_orders", "acknowledge"]
    # One connection for every step; each step is a run of its own with its own resources.
    assert len({id(connection) for _, connection, _ in keeper.seen}) == 1
    assert [r.number for _, _, r in keeper.seen] == [0, 1, 2, 2]
    assert [r.closed for r in keeper.built] == [1, 1, 1]


def test_a_step_marking_the_connection_refused_stops_the_next_steps(open_hub: Any) -> None:
    """``hub run`` shares the connection: health set by one step holds for the next, which is
    refused before its run starts, as a new ``hub`` command would be."""
    hub, stub, keeper = open_hub(orders=[ORDER])

    class Refusing:
        @hookimpl(wrapper=True)
        def hub_get_orders(self, connection: ChannelConnection) -> Generator[None, Any, Any]:
            connection.mark_needs_reauth("the channel refused the refresh token")
            return (yield)

    hub.registry.pm.register(Refusing(), name="refusing")

    document, code = run_connection(hub, "shop")

    assert code == 1
    steps = {step["operation"]: step for step in document["operations"]}
    assert steps["get_orders"]["status"] == "ok"
    assert steps["sync_orders"]["status"] == "failed"
    assert "must be reconnected" in steps["sync_orders"]["message"]
    assert stub.calls == ["hub_get_orders", "hub_acknowledge_orders"]
    assert [r.closed for r in keeper.built] == [1]
