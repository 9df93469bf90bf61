"""The channel contract: what every channel must do for the hub, as tests a plugin adopts.

Subclass :class:`ChannelContract` in a test module and name your harness; that is all::

    from hub_core.testing import ChannelContract
    from hub_fake_channel.testing import FakeHarness


    class TestFakeContract(ChannelContract):
        harness_class = FakeHarness

Each ``test_*`` method drives the real ``hub`` CLI (click's CliRunner, in-process) against a
temporary SQLite database (and, for a class that lists ``"postgresql"`` in
:attr:`ChannelContract.databases`, once more against PostgreSQL) and the harness's channel
double, with a registry holding only the
channel's plugin and :class:`~hub_core.testing.cli.HookCalls`, a wrapper plugin that counts
every operation hook call. Scenario ids name the channel (``test_sync_sends_only_changes[fake]``)
and the case (``test_capability_matches_behaviour[fake-publish_listings]``).

Tests adapt to what the channel declares: an operation it does not support must be refused
with exit 3 before the plugin is called (asserted, never skipped); tests of a whole area the
channel does not support at all (orders for a listings-only channel) are skipped with a reason.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import pytest

from hub_core.channel import NOT_SUPPORTED, OPERATIONS, REQUIREMENTS, SUPPORTED
from hub_core.home import HOME_ENV
from hub_core.plugins import Channel, Registry
from hub_core.services.connections import secret_keys
from hub_core.testing import databases
from hub_core.testing.cli import CliResult, HookCalls, HubCli, make_registry
from hub_core.testing.harness import ChannelHarness, FailureKind

#: The connection every contract test works on.
CONNECTION = "shop"
#: The shipping policies the contract maps channel texts to.
POLICY = "standard"
OTHER_POLICY = "express"


@dataclasses.dataclass(frozen=True)
class Fault:
    """A transient failure of one operation: ``sync_listings`` answering 5xx, or 429."""

    operation: str
    kind: FailureKind

    @property
    def id(self) -> str:
        """The scenario id: ``sync_listings-5xx``."""
        return f"{self.operation}-{'429' if self.kind == 'rate_limited' else '5xx'}"


#: Transient failures the contract injects, one test each.
FAULTS: tuple[Fault, ...] = tuple(
    Fault(operation, kind)
    for operation in (
        "link_listings",
        "sync_listings",
        "get_orders",
        "acknowledge_orders",
        "sync_orders",
    )
    for kind in ("transient", "rate_limited")
)
#: The capability an operation the hub calls belongs to.
_CAPABILITY = {"acknowledge_orders": "get_orders"}


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


# -------------------------------------------------------------------------------------------
# A world: one channel double, one hub database, one registry
# -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    """A harness (the channel double), the CLI on a fresh database, and the hook counter.

    Its methods are the vocabulary of the contract tests: each runs one ``hub`` command and
    asserts its exit code (``expect``), or reads the hub's or the channel's state.
    """

    harness: ChannelHarness
    cli: HubCli
    calls: HookCalls
    workdir: Path

    @property
    def registry(self) -> Registry:
        """The registry the CLI runs with."""
        return self.cli.registry

    @property
    def channel(self) -> Channel:
        """The channel under test, as the core sees it."""
        return self.registry.channel(self.harness.channel)

    def supports(self, operation: str) -> bool:
        """Whether the channel declares ``operation`` (or what it belongs to) supported."""
        return self.channel.supports(_CAPABILITY.get(operation, operation))

    def require(self, *operations: str) -> None:
        """Skip the test when the channel does not support one of ``operations``."""
        for operation in operations:
            if not self.supports(operation):
                pytest.skip(
                    f"{self.harness.channel} does not support {operation}; the refusal is "
                    f"asserted by test_capability_matches_behaviour[{operation}]"
                )

    # -- commands ---------------------------------------------------------------------------

    def __call__(self, *args: str, expect: int | None = 0) -> CliResult:
        """Run ``hub ARGS``."""
        return self.cli(*args, expect=expect)

    def json(self, *args: str, expect: int | None = 0) -> Any:
        """Run ``hub ARGS --json`` and return its document."""
        return self.cli.json(*args, expect=expect)

    def connect(self, **settings: str) -> None:
        """Add the connection with the harness's values (and ``settings``)."""
        values = {**self.harness.connection_values(), **settings}
        self("connections", "add", CONNECTION, "--channel", self.harness.channel, *_sets(values))

    def configure(self, values: Mapping[str, str], expect: int = 0) -> CliResult:
        """``hub connections configure`` with ``values``."""
        return self("connections", "configure", CONNECTION, *_sets(values), expect=expect)

    def catalog(self, rows: Iterable[tuple[str, int, str]]) -> None:
        """Import catalog products ``(sku, quantity, price)`` from a JSON file."""
        path = self.workdir / f"catalog-{len(self.cli.history)}.json"
        products = [
            {"sku": sku, "title": f"Product {sku}", "quantity": quantity, "price": price}
            for sku, quantity, price in rows
        ]
        path.write_text(json.dumps(products), encoding="utf-8")
        self("catalog", "import", str(path))

    def set_product(
        self, sku: str, *, quantity: int | None = None, price: str | None = None
    ) -> CliResult:
        """``hub catalog set SKU``."""
        args = ["catalog", "set", sku]
        if quantity is not None:
            args += ["--quantity", str(quantity)]
        if price is not None:
            args += ["--price", price]
        return self(*args)

    def link(self, *skus: str, expect: int | None = 0) -> Any:
        """``hub listings link shop [--sku SKU]...``; its JSON document."""
        return self.json("listings", "link", CONNECTION, *_skus(skus), expect=expect)

    def sync(self, expect: int | None = 0) -> Any:
        """``hub listings sync shop``; its JSON document."""
        return self.json("listings", "sync", CONNECTION, expect=expect)

    def map(self, text: str, policy: str = POLICY) -> Any:
        """``hub shipping-mappings add shop``; its JSON document."""
        return self.json(
            "shipping-mappings", "add", CONNECTION, "--channel-text", text, "--policy", policy
        )

    def get_orders(self, *args: str, expect: int | None = 0) -> Any:
        """``hub orders get shop``; its JSON document."""
        return self.json("orders", "get", CONNECTION, *args, expect=expect)

    def ship(self, order_id: str, tracking: str, items: Mapping[str, int] | None = None) -> Any:
        """``hub orders ship shop ORDER`` (all that is unshipped, or ``items``)."""
        args = [
            "orders",
            "ship",
            CONNECTION,
            order_id,
            "--tracking",
            tracking,
            "--carrier",
            self.harness.carrier,
            "--class",
            self.harness.shipping_class,
        ]
        for sku, quantity in (items or {}).items():
            args += ["--item", f"{sku}={quantity}"]
        return self.json(*args)

    def sync_orders(self, expect: int | None = 0) -> Any:
        """``hub orders sync shop``; its JSON document."""
        return self.json("orders", "sync", CONNECTION, expect=expect)

    # -- reading the hub --------------------------------------------------------------------

    def listings(self) -> dict[str, dict[str, Any]]:
        """The connection's listings by SKU."""
        return {row["sku"]: row for row in self.json("listings", "list", CONNECTION)}

    def orders(self) -> dict[str, dict[str, Any]]:
        """The connection's stored orders by channel order id."""
        rows = self.json("orders", "list", "--connection", CONNECTION)
        ids = [row["channel_order_id"] for row in rows]
        assert len(ids) == len(set(ids)), f"an order is stored twice: {sorted(ids)}"
        return {row["channel_order_id"]: row for row in rows}

    def order(self, order_id: str) -> dict[str, Any]:
        """One stored order with its shipments."""
        return self.json("orders", "show", CONNECTION, order_id)  # type: ignore[no-any-return]

    def hub_state(self) -> dict[str, Any]:
        """Listings and orders (with shipments) as the hub holds them."""
        orders = self.orders()
        return {
            "listings": self.listings(),
            "orders": orders,
            "shipments": {oid: self.order(oid)["shipments"] for oid in orders},
        }

    def records(self, operation: str) -> list[dict[str, Any]]:
        """Every record of every run of ``operation`` on the connection."""
        records = []
        for run in self.json("runs", "list", "--connection", CONNECTION):
            if run["operation"] == operation:
                records += self.json("runs", "show", str(run["run_id"]))["records"]
        return records

    # -- reading the channel ----------------------------------------------------------------

    def channel_state(self, skus: Iterable[str] = ()) -> dict[str, Any]:
        """What the channel holds and received: to assert that a refused command sent
        nothing."""
        harness = self.harness
        return {
            "products": {sku: harness.product(sku) for sku in skus},
            "updates": [(u.sku, sorted(u.fields)) for u in harness.received_updates()],
            "shipments": [
                (s.channel_order_id, s.tracking, sorted(s.lines.items()))
                for s in harness.received_shipments()
            ],
            "acknowledged": sorted(harness.acknowledged_orders()),
        }

    def secrets(self) -> list[str]:
        """Secret connection values (good and bad) long enough to search output for."""
        keys = secret_keys(self.channel.connection_schema)
        values = [
            *(v for k, v in self.harness.connection_values().items() if k in keys),
            *(v for k, v in self.harness.bad_credentials().items() if k in keys),
        ]
        return [v for v in values if len(v) >= 4]


@contextmanager
def open_world(
    harness_class: type[ChannelHarness], workdir: Path, database_url: str | None = None
) -> Iterator[World]:
    """Start a harness in ``workdir`` and open the CLI on a fresh database next to it (or on
    ``database_url``, an empty database at head).

    The registry holds only the harness's plugin and a :class:`HookCalls`; the harness is
    stopped when the block ends. The hub's home (where it keeps its key file) is in
    ``workdir`` too, so the suite never writes into the real one.
    """
    (workdir / "channel").mkdir(parents=True, exist_ok=True)
    harness = harness_class(workdir / "channel")
    with mock.patch.dict(os.environ, {HOME_ENV: str(workdir / "hub-home")}):
        harness.start()
        try:
            calls = HookCalls()
            registry = make_registry([(harness.plugin(), harness.channel)], calls)
            cli = HubCli(registry, database_url or f"sqlite:///{workdir / 'hub.db'}")
            yield World(harness=harness, cli=cli, calls=calls, workdir=workdir)
        finally:
            harness.stop()


def _sets(values: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    return args


def _skus(skus: Iterable[str]) -> list[str]:
    args: list[str] = []
    for sku in skus:
        args += ["--sku", sku]
    return args


def _updates_since(world: World, mark: int) -> list[tuple[str, list[str]]]:
    return [(u.sku, sorted(u.fields)) for u in world.harness.received_updates()[mark:]]


def _shipments_of(world: World, order_id: str) -> list[tuple[str, dict[str, int]]]:
    return [
        (s.tracking, dict(s.lines))
        for s in world.harness.received_shipments()
        if s.channel_order_id == order_id
    ]


# -------------------------------------------------------------------------------------------
# The contract
# -------------------------------------------------------------------------------------------


class ChannelContract:
    """The contract tests; subclass as ``TestXxxContract`` and set :attr:`harness_class`.

    Override nothing else: a channel that cannot pass a test has a bug or needs a better
    harness, not a different contract.
    """

    #: The channel's :class:`~hub_core.testing.ChannelHarness` subclass.
    harness_class: ClassVar[type[ChannelHarness]]
    #: The hub databases every test runs on: ``"sqlite"`` (a file per test) and, listed,
    #: ``"postgresql"`` (one throw-away database per class on ``HUB_TEST_POSTGRES_URL``,
    #: emptied before each test; skipped when unreachable, failed under ``CI=true``).
    databases: ClassVar[tuple[str, ...]] = ("sqlite",)

    # -- parametrization and fixtures -------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Give every test the channel's name as its scenario id, plus its cases."""
        harness_class = getattr(type(self), "harness_class", None)
        if harness_class is None or not getattr(harness_class, "channel", None):
            raise TypeError(
                f"{type(self).__name__} must set harness_class to a ChannelHarness subclass "
                "with a channel name (see hub_core.testing.ChannelHarness)."
            )
        channel = harness_class.channel
        unknown = set(self.databases) - {"sqlite", "postgresql"}
        if unknown or not self.databases:
            raise TypeError(
                f"{type(self).__name__}.databases must list 'sqlite' and/or 'postgresql', "
                f"not {self.databases!r}."
            )
        if "contract_channel" in metafunc.fixturenames:
            metafunc.parametrize("contract_channel", [channel], ids=[channel], scope="class")
        if len(self.databases) > 1 and "contract_database" in metafunc.fixturenames:
            # After the channel in the id: test_sync_sends_only_changes[fake-postgresql]
            metafunc.parametrize("contract_database", self.databases, ids=list(self.databases))
        if "operation" in metafunc.fixturenames:
            metafunc.parametrize("operation", OPERATIONS, ids=list(OPERATIONS))
        if "fault" in metafunc.fixturenames:
            metafunc.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])

    @pytest.fixture
    def contract_database(self) -> str:
        """The database of this test (parametrized when :attr:`databases` lists several)."""
        return self.databases[0]

    @pytest.fixture(scope="class")
    @classmethod
    def contract_postgres(cls) -> Iterator[str]:
        """A throw-away PostgreSQL database at head for this class's tests (dropped after)."""
        with databases.postgres_database() as url:
            yield databases.migrate(url)

    @pytest.fixture
    def world(
        self, contract_channel: str, contract_database: str, tmp_path: Path, request: Any
    ) -> Iterator[World]:
        """A started channel double and the CLI on a fresh database (no connection yet)."""
        url = None
        if contract_database == "postgresql":
            url = databases.empty_tables(request.getfixturevalue("contract_postgres"))
        with open_world(self.harness_class, tmp_path, url) as world:
            yield world

    @pytest.fixture
    def shop(self, world: World) -> World:
        """:func:`world` with the connection ``shop`` added."""
        world.connect()
        return world

    @pytest.fixture(scope="class")
    @classmethod
    def reference_end_state(
        cls, contract_channel: str, tmp_path_factory: pytest.TempPathFactory
    ) -> dict[str, Any]:
        """The end state of :func:`reference_flow` without any failure (computed once)."""
        with open_world(cls.harness_class, tmp_path_factory.mktemp("reference")) as world:
            return reference_flow(world, None)

    # -- declaration ------------------------------------------------------------------------

    def test_channel_is_declared(self, world: World) -> None:
        """``hub channels`` lists the channel with every capability and requirement, and a
        connection with the harness's values works and hides its secrets."""
        channels = {c["name"]: c for c in world.json("channels")}
        assert world.harness.channel in channels, f"not listed: {sorted(channels)}"
        declared = channels[world.harness.channel]
        assert set(declared["capabilities"]) == set(OPERATIONS)
        assert set(declared["capabilities"].values()) <= {SUPPORTED, NOT_SUPPORTED}
        assert set(declared["requirements"]) == set(REQUIREMENTS)
        world.connect()
        world("connections", "test", CONNECTION)
        shown = world("connections", "show", CONNECTION, "--json")
        for secret in world.secrets():
            assert secret not in shown.output, "a secret is shown by 'connections show'"

    def test_capability_matches_behaviour(self, shop: World, operation: str) -> None:
        """An unsupported operation is refused with exit 3 and the plugin is never called; a
        supported one calls the plugin and does its work on the channel."""
        world, harness = shop, shop.harness
        harness.add_product("CAP-1", 1, Decimal("1.00"))
        world.catalog([("CAP-1", 4, "2.50"), ("CAP-NEW", 3, "3.00")])
        order_id = None
        if world.supports("get_orders"):
            order_id = harness.add_order([("CAP-1", 1)], harness.shipping_text)
            world.map(harness.shipping_text)
        if operation == "sync_listings" and world.supports("link_listings"):
            world.link("CAP-1")
            world.set_product("CAP-1", quantity=9)
        if operation == "sync_orders" and order_id is not None:
            world.get_orders()
            world.ship(order_id, "CAP-TRACK-1")
        command = {
            "link_listings": ("listings", "link", CONNECTION, "--sku", "CAP-1"),
            "sync_listings": ("listings", "sync", CONNECTION),
            "publish_listings": ("listings", "publish", CONNECTION, "--sku", "CAP-NEW"),
            "get_orders": ("orders", "get", CONNECTION),
            "sync_orders": ("orders", "sync", CONNECTION),
        }[operation]
        hub_before = world.hub_state()
        channel_before = world.channel_state(["CAP-1", "CAP-NEW"])
        calls_before = world.calls.snapshot()

        if not world.supports(operation):
            refused = world(*command, expect=3)
            assert "not supported" in refused.stderr.lower(), refused
            assert world.calls.snapshot() == calls_before, "the plugin was called"
            assert world.hub_state() == hub_before
            assert world.channel_state(["CAP-1", "CAP-NEW"]) == channel_before
            return

        if operation == "sync_listings" and not world.supports("link_listings"):
            pytest.skip("nothing to sync: the channel cannot link listings")
        if operation == "sync_orders" and order_id is None:
            pytest.skip("nothing to send: the channel cannot get orders")
        world(*command)
        assert world.calls[operation] == calls_before.get(operation, 0) + 1
        listings = world.listings()
        if operation == "link_listings":
            assert listings["CAP-1"]["status"] == "linked"
        elif operation == "sync_listings":
            product = harness.product("CAP-1")
            assert product is not None and product.quantity == 9
        elif operation == "publish_listings":
            product = harness.product("CAP-NEW")
            assert product is not None, "published, but the product is not on the channel"
            assert (product.quantity, _money(product.price)) == (3, _money("3.00"))
            assert listings["CAP-NEW"]["status"] == "linked"
        elif operation == "get_orders":
            assert list(world.orders()) == [order_id]
        else:
            assert [t for t, _ in _shipments_of(world, str(order_id))] == ["CAP-TRACK-1"]

    def test_shipping_mapping_requirement(self, shop: World) -> None:
        """With ``shipping_mappings: required`` get orders refuses to run (exit 2, plugin not
        called) until a mapping exists; with ``optional`` an unmapped order is held."""
        world, harness = shop, shop.harness
        world.require("get_orders")
        order_id = harness.add_order([("REQ-1", 1)], harness.shipping_text)
        if world.channel.requires("shipping_mappings"):
            refused = world("orders", "get", CONNECTION, expect=2)
            assert "mapping" in refused.stderr.lower(), refused
            assert world.calls["get_orders"] == 0, "the plugin was called"
            assert world.orders() == {}
            assert harness.acknowledged_orders() == set()
            world.map(harness.shipping_text)
            world.get_orders()
            assert world.orders()[order_id]["status"] == "imported"
        else:
            world.get_orders()
            stored = world.orders()[order_id]
            assert stored["status"] == "held"
            assert harness.shipping_text in stored["hold_reason"]

    # -- listings ---------------------------------------------------------------------------

    def test_link_finds_existing_reports_missing_and_ambiguous(self, shop: World) -> None:
        """Link finds existing SKUs; missing ones are ``not_found``, several matches
        ``ambiguous`` (states, not failures: exit 0); a later link finds a product created
        meanwhile."""
        world, harness = shop, shop.harness
        world.require("link_listings")
        product_id = harness.add_product("LNK-1", 2, Decimal("5.00"))
        harness.add_ambiguous_products("Lnk-Dup-1")
        world.catalog([("LNK-1", 2, "5.00"), ("LNK-MISSING", 1, "1.00"), ("Lnk-Dup-1", 1, "1.00")])

        result = world.link()
        outcomes = {r["ref"]: r["outcome"] for r in result["records"]}
        assert outcomes == {"LNK-1": "ok", "LNK-MISSING": "skipped", "Lnk-Dup-1": "skipped"}
        listings = world.listings()
        assert listings["LNK-1"]["status"] == "linked"
        assert listings["LNK-1"]["channel_product_id"] == str(product_id)
        assert listings["LNK-MISSING"]["status"] == "not_found"
        assert listings["Lnk-Dup-1"]["status"] == "ambiguous"
        assert world.calls["link_listings"] == 1

        missing_id = harness.add_product("LNK-MISSING", 1, Decimal("1.00"))
        world.link()  # the ambiguous SKU is tried again, and stays ambiguous
        listings = world.listings()
        assert listings["LNK-MISSING"]["status"] == "linked"
        assert listings["LNK-MISSING"]["channel_product_id"] == str(missing_id)
        assert listings["LNK-1"]["channel_product_id"] == str(product_id)
        assert listings["Lnk-Dup-1"]["status"] == "ambiguous"

    def test_sync_sends_only_changes(self, shop: World) -> None:
        """Sync sends each linked listing's hub values once, then only what changed (only the
        changed field); sending the same state again sends nothing."""
        world, harness = shop, shop.harness
        world.require("link_listings", "sync_listings")
        for sku in ("SYN-1", "SYN-2", "SYN-3"):
            harness.add_product(sku, 0, Decimal("1.00"))
        world.catalog([("SYN-1", 5, "10.00"), ("SYN-2", 6, "11.00"), ("SYN-3", 7, "12.00")])
        world.link()

        mark = len(harness.received_updates())
        world.sync()
        assert {sku for sku, _ in _updates_since(world, mark)} == {"SYN-1", "SYN-2", "SYN-3"}
        for sku, quantity, price in (("SYN-1", 5, "10.00"), ("SYN-2", 6, "11.00")):
            product = harness.product(sku)
            assert product is not None
            assert (product.quantity, _money(product.price)) == (quantity, _money(price))

        mark, calls = len(harness.received_updates()), world.calls["sync_listings"]
        world.sync()
        assert _updates_since(world, mark) == [], "the same state was sent again"
        assert world.calls["sync_listings"] == calls

        world.set_product("SYN-2", quantity=9)
        mark = len(harness.received_updates())
        world.sync()
        assert _updates_since(world, mark) == [("SYN-2", ["quantity"])]
        assert harness.product("SYN-2").quantity == 9  # type: ignore[union-attr]

        world.set_product("SYN-3", price="12.75")
        mark = len(harness.received_updates())
        world.sync()
        assert _updates_since(world, mark) == [("SYN-3", ["price"])]
        assert _money(harness.product("SYN-3").price) == _money("12.75")  # type: ignore[union-attr]

        world.set_product("SYN-2", quantity=9)  # the same value again
        mark = len(harness.received_updates())
        world.sync()
        assert _updates_since(world, mark) == []
        product = harness.product("SYN-1")
        assert product is not None and product.quantity == 5

    def test_deleted_product_becomes_broken_and_relink_fixes_it(self, shop: World) -> None:
        """A product deleted on the channel stays ``linked`` until the next sync, which marks
        it ``broken`` (the others go through); relink finds it once it exists again."""
        world, harness = shop, shop.harness
        world.require("link_listings", "sync_listings")
        harness.add_product("DEL-1", 1, Decimal("1.00"))
        harness.add_product("DEL-2", 1, Decimal("1.00"))
        world.catalog([("DEL-1", 4, "4.00"), ("DEL-2", 5, "5.00")])
        world.link()
        world.sync()

        harness.delete_product("DEL-1")
        assert world.listings()["DEL-1"]["status"] == "linked"
        world.set_product("DEL-1", quantity=6)
        world.set_product("DEL-2", quantity=7)
        result = world.sync(expect=4)
        assert {r["ref"]: r["outcome"] for r in result["records"]} == {
            "DEL-1": "failed",
            "DEL-2": "ok",
        }
        listings = world.listings()
        assert listings["DEL-1"]["status"] == "broken"
        assert listings["DEL-2"]["status"] == "linked"
        assert harness.product("DEL-2").quantity == 7  # type: ignore[union-attr]
        assert harness.product("DEL-1") is None

        world.sync()  # a broken listing is not sent again
        world.json("listings", "relink", CONNECTION, "--sku", "DEL-1")
        assert world.listings()["DEL-1"]["status"] == "not_found"

        new_id = harness.add_product("DEL-1", 0, Decimal("1.00"))
        world.json("listings", "relink", CONNECTION, "--sku", "DEL-1")
        relinked = world.listings()["DEL-1"]
        assert relinked["status"] == "linked"
        assert relinked["channel_product_id"] == str(new_id)
        world.sync()
        product = harness.product("DEL-1")
        assert product is not None
        assert (product.quantity, _money(product.price)) == (6, _money("4.00"))

    def test_excluded_sku_is_never_looked_up_linked_or_synced(self, shop: World) -> None:
        """An excluded SKU is never handed to the plugin: not looked up (even asked for by
        name), not linked, not synced once excluded; include undoes it."""
        world, harness = shop, shop.harness
        world.require("link_listings", "sync_listings")
        harness.add_product("EXC-1", 1, Decimal("1.00"))
        harness.add_product("EXC-2", 1, Decimal("1.00"))
        world.catalog([("EXC-1", 3, "3.00"), ("EXC-2", 4, "4.00")])
        world.json("listings", "exclude", CONNECTION, "--sku", "EXC-1")

        result = world.link()
        assert {r["ref"]: r["outcome"] for r in result["records"]} == {"EXC-2": "ok"}
        calls = world.calls["link_listings"]
        by_name = world.link("EXC-1")
        assert [(r["ref"], r["outcome"]) for r in by_name["records"]] == [("EXC-1", "skipped")]
        assert world.calls["link_listings"] == calls, "an excluded SKU was looked up"
        assert world.listings()["EXC-1"]["status"] == "excluded"

        world.sync()
        world.json("listings", "exclude", CONNECTION, "--sku", "EXC-2")  # linked, then excluded
        world.set_product("EXC-2", quantity=9)
        mark = len(harness.received_updates())
        world.sync()
        assert _updates_since(world, mark) == [], "an excluded SKU was synced"
        assert harness.product("EXC-2").quantity == 4  # type: ignore[union-attr]

        world.json("listings", "include", CONNECTION, "--sku", "EXC-1", "--sku", "EXC-2")
        world.link()
        assert {sku: row["status"] for sku, row in world.listings().items()} == {
            "EXC-1": "linked",
            "EXC-2": "linked",
        }
        world.sync()
        assert harness.product("EXC-1").quantity == 3  # type: ignore[union-attr]
        assert harness.product("EXC-2").quantity == 9  # type: ignore[union-attr]

    # -- orders -----------------------------------------------------------------------------

    def test_get_orders_imports_each_order_once(self, shop: World) -> None:
        """Each eligible order is imported once, with its lines, and acknowledged to the
        channel; repeated runs import nothing again, and a new order once."""
        world, harness = shop, shop.harness
        world.require("get_orders")
        ids = [harness.add_order([(f"ORD-{n}", n)], harness.shipping_text) for n in (1, 2, 3)]
        world.map(harness.shipping_text)

        world.get_orders()
        orders = world.orders()
        assert sorted(orders) == sorted(ids)
        for n, order_id in enumerate(ids, start=1):
            assert orders[order_id]["status"] == "imported"
            assert [(ln["sku"], ln["quantity"]) for ln in orders[order_id]["lines"]] == [
                (f"ORD-{n}", n)
            ]
        assert harness.acknowledged_orders() >= set(ids)

        world.get_orders()
        assert sorted(world.orders()) == sorted(ids)
        late = harness.add_order([("ORD-4", 1)], harness.shipping_text)
        world.get_orders()
        assert sorted(world.orders()) == sorted([*ids, late])
        imported = [r["ref"] for r in world.records("get_orders") if r["outcome"] == "ok"]
        assert sorted(imported) == sorted([*ids, late]), "an order was imported twice"

    def test_get_orders_concurrent_runs_import_each_order_once(self, shop: World) -> None:
        """A second ``orders get`` while the first is working is refused naming the run in
        progress (exit 1, before it calls the channel); the first imports each order once."""
        world, harness = shop, shop.harness
        world.require("get_orders")
        ids = [harness.add_order([(f"CON-{n}", 1)], harness.shipping_text) for n in range(5)]
        world.map(harness.shipping_text)
        # The first run waits there, inside get orders, until this test has run the second.
        world.calls.get_orders_barrier = threading.Barrier(2)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(world.cli.in_thread, "orders", "get", CONNECTION)
            for _ in range(3000):  # at most 30 s for the first run to reach the channel
                if world.calls["get_orders"] or first.done():
                    break
                threading.Event().wait(0.01)
            second = world("orders", "get", CONNECTION, expect=1)
            world.calls.get_orders_barrier.wait(timeout=30)
            assert first.result(timeout=60) == 0
        world.calls.get_orders_barrier = None
        assert "already running" in second.stderr and "run " in second.stderr, second
        assert world.calls["get_orders"] == 1, "the refused run called the channel"
        assert sorted(world.orders()) == sorted(ids)
        imported = [r["ref"] for r in world.records("get_orders") if r["outcome"] == "ok"]
        assert sorted(imported) == sorted(ids), "an order was imported twice"
        assert harness.acknowledged_orders() >= set(ids)

    def test_get_orders_holds_unmapped_shipping(self, shop: World) -> None:
        """An order whose shipping text matches no mapping is imported ``held`` (and
        acknowledged); adding the mapping releases it, and it is never imported again."""
        world, harness = shop, shop.harness
        world.require("get_orders")
        mapped = harness.add_order([("HLD-1", 1)], harness.shipping_text)
        unmapped = harness.add_order([("HLD-2", 1)], harness.other_shipping_text)
        world.map(harness.shipping_text)

        world.get_orders()
        orders = world.orders()
        assert (orders[mapped]["status"], orders[mapped]["shipping_policy"]) == (
            "imported",
            POLICY,
        )
        assert orders[unmapped]["status"] == "held"
        assert harness.other_shipping_text in orders[unmapped]["hold_reason"]
        assert harness.acknowledged_orders() >= {mapped, unmapped}

        added = world.map(harness.other_shipping_text, OTHER_POLICY)
        assert added["released_orders"] == [unmapped]
        released = world.orders()[unmapped]
        assert (released["status"], released["shipping_policy"]) == ("imported", OTHER_POLICY)
        world.get_orders()
        assert sorted(world.orders()) == sorted([mapped, unmapped])

    def test_get_orders_honours_status_setting(self, shop: World) -> None:
        """An order whose status the settings exclude is not imported (nor acknowledged)
        until the settings include it."""
        world, harness = shop, shop.harness
        world.require("get_orders")
        eligible = harness.add_order([("STA-1", 1)], harness.shipping_text)
        excluded = harness.add_order([("STA-2", 1)], harness.shipping_text, status_eligible=False)
        world.map(harness.shipping_text)
        world.get_orders()
        assert list(world.orders()) == [eligible]
        assert excluded not in harness.acknowledged_orders()

        world.configure(harness.settings_accepting_ineligible_status())
        world.get_orders()
        assert sorted(world.orders()) == sorted([eligible, excluded])

    def test_get_orders_honours_day_setting(self, shop: World) -> None:
        """Orders older than ``order_days`` (default 7) are not imported; ``--days N`` widens
        one run, and the ``order_days`` setting every run."""
        world, harness = shop, shop.harness
        world.require("get_orders")
        recent = harness.add_order([("DAY-1", 1)], harness.shipping_text, age_days=1)
        older = harness.add_order([("DAY-2", 1)], harness.shipping_text, age_days=10)
        oldest = harness.add_order([("DAY-3", 1)], harness.shipping_text, age_days=20)
        world.map(harness.shipping_text)

        world.get_orders()
        assert list(world.orders()) == [recent]
        world.get_orders("--days", "11")
        assert sorted(world.orders()) == sorted([recent, older])
        world.get_orders()
        assert oldest not in world.orders()
        world.configure({"order_days": "21"})
        world.get_orders()
        assert sorted(world.orders()) == sorted([recent, older, oldest])
        assert oldest in harness.acknowledged_orders()

    def test_sync_orders_sends_each_shipment_once(self, shop: World) -> None:
        """Each shipment, partial ones included, reaches the channel once; syncing again
        sends nothing."""
        world, harness = shop, shop.harness
        world.require("get_orders", "sync_orders")
        order_id = harness.add_order([("SHP-1", 2), ("SHP-2", 1)], harness.shipping_text)
        world.map(harness.shipping_text)
        world.get_orders()

        partial = world.ship(order_id, "SHP-TRACK-1", {"SHP-1": 1})
        assert partial["order_status"] == "partially_shipped"
        world.sync_orders()
        assert _shipments_of(world, order_id) == [("SHP-TRACK-1", {"SHP-1": 1})]
        calls = world.calls["sync_orders"]
        world.sync_orders()
        assert world.calls["sync_orders"] == calls, "nothing to send, yet the plugin was called"
        assert len(_shipments_of(world, order_id)) == 1

        rest = world.ship(order_id, "SHP-TRACK-2")
        assert rest["order_status"] == "shipped"
        world.sync_orders()
        world.sync_orders()
        assert _shipments_of(world, order_id) == [
            ("SHP-TRACK-1", {"SHP-1": 1}),
            ("SHP-TRACK-2", {"SHP-1": 1, "SHP-2": 1}),
        ]
        shipments = world.order(order_id)["shipments"]
        assert [(s["sync_status"], s["sync_error"]) for s in shipments] == [("sent", None)] * 2

    def test_failed_shipment_keeps_its_error(self, shop: World) -> None:
        """A shipment the channel refuses is ``failed`` with the channel's message, kept
        through later syncs (the others go through once) until it is sent."""
        world, harness = shop, shop.harness
        world.require("get_orders", "sync_orders")
        refused = harness.add_order([("ERR-1", 1)], harness.shipping_text)
        accepted = harness.add_order([("ERR-2", 1)], harness.shipping_text)
        world.map(harness.shipping_text)
        world.get_orders()
        world.ship(refused, "ERR-TRACK-1")
        world.ship(accepted, "ERR-TRACK-2")
        harness.fail("sync_orders", kind="error", ref=refused, times=None)

        result = world.sync_orders(expect=4)
        assert sorted(r["outcome"] for r in result["records"]) == ["failed", "ok"]
        [failed] = world.order(refused)["shipments"]
        assert failed["sync_status"] == "failed"
        assert failed["sync_error"], "the failed shipment has no error message"
        assert _shipments_of(world, refused) == []
        assert [t for t, _ in _shipments_of(world, accepted)] == ["ERR-TRACK-2"]

        world.sync_orders(expect=4)
        [still] = world.order(refused)["shipments"]
        assert (still["sync_status"], bool(still["sync_error"])) == ("failed", True)
        assert [t for t, _ in _shipments_of(world, accepted)] == ["ERR-TRACK-2"]

        harness.clear_failures()
        world.sync_orders()
        [sent] = world.order(refused)["shipments"]
        assert (sent["sync_status"], sent["sync_error"]) == ("sent", None)
        assert [t for t, _ in _shipments_of(world, refused)] == ["ERR-TRACK-1"]
        assert [t for t, _ in _shipments_of(world, accepted)] == ["ERR-TRACK-2"]

    def test_an_order_cancelled_after_import_is_never_shipped(self, shop: World) -> None:
        """An order the channel cancels after import becomes ``cancelled``: its shipment not
        yet sent is skipped by sync orders (exit 0) and cancelled, never reaching the channel;
        another cancelled order is found by get orders alone."""
        world, harness = shop, shop.harness
        world.require("get_orders", "sync_orders")
        shipped = harness.add_order([("CAN-1", 1)], harness.shipping_text)
        found = harness.add_order([("CAN-2", 1)], harness.shipping_text)
        world.map(harness.shipping_text)
        world.get_orders()
        world.ship(shipped, "CAN-TRACK-1")
        try:
            harness.cancel_order(shipped)
        except NotImplementedError:
            pytest.skip(f"{type(harness).__name__} does not implement cancel_order")
        harness.cancel_order(found)

        result = world.sync_orders()
        assert [r["outcome"] for r in result["records"]] == ["skipped"]
        order = world.order(shipped)
        assert order["status"] == "cancelled"
        assert [s["sync_status"] for s in order["shipments"]] == ["cancelled"]
        world.sync_orders()
        assert _shipments_of(world, shipped) == []

        world.get_orders()
        assert world.order(found)["status"] == "cancelled"
        cancelled = world.json(
            "orders", "list", "--connection", CONNECTION, "--status", "cancelled"
        )
        assert sorted(o["channel_order_id"] for o in cancelled) == sorted([shipped, found])

    def test_refused_shipment_is_corrected_and_sent_once(self, shop: World) -> None:
        """A refused shipment corrected with ``hub shipments edit`` reaches the channel once,
        with the corrected values; one cancelled before it is sent never reaches it."""
        world, harness = shop, shop.harness
        world.require("get_orders", "sync_orders")
        order_id = harness.add_order([("FIX-1", 2)], harness.shipping_text)
        world.map(harness.shipping_text)
        world.get_orders()
        mistake = world.ship(order_id, "FIX-WRONG", {"FIX-1": 2})["shipment_id"]
        world.json("shipments", "cancel", CONNECTION, mistake)
        shipment = world.ship(order_id, "FIX-TYPO")["shipment_id"]
        harness.fail("sync_orders", kind="error", ref=order_id, times=None)
        world.sync_orders(expect=4)
        assert _shipments_of(world, order_id) == []

        harness.clear_failures()
        world.json("shipments", "edit", CONNECTION, shipment, "--tracking", "FIX-RIGHT")
        world.sync_orders()
        world.sync_orders()
        assert _shipments_of(world, order_id) == [("FIX-RIGHT", {"FIX-1": 2})]
        rows = {r["shipment_id"]: r for r in world.json("shipments", "list", CONNECTION)}
        assert (rows[mistake]["sync_status"], rows[shipment]["sync_status"]) == (
            "cancelled",
            "sent",
        )

    # -- failures ---------------------------------------------------------------------------

    def test_bad_credentials_give_a_clear_error_and_change_nothing(self, shop: World) -> None:
        """With refused credentials every operation fails with exit 1 and a message naming
        the connection (no secret in it), and nothing changes in the hub or on the channel;
        with good ones again everything pending goes through."""
        world, harness = shop, shop.harness
        skus = ["BAD-1", "BAD-2"]
        for sku in skus:
            harness.add_product(sku, 1, Decimal("1.00"))
        world.catalog([("BAD-1", 5, "5.00"), ("BAD-2", 6, "6.00")])
        commands: list[tuple[str, ...]] = []
        shipped = waiting = None
        if world.supports("link_listings"):
            world.link("BAD-1")
            commands.append(("listings", "link", CONNECTION, "--sku", "BAD-2"))
            if world.supports("sync_listings"):
                world.sync()
                world.set_product("BAD-1", quantity=8)
                commands.append(("listings", "sync", CONNECTION))
        if world.supports("get_orders"):
            world.map(harness.shipping_text)
            shipped = harness.add_order([("BAD-1", 1)], harness.shipping_text)
            world.get_orders()
            waiting = harness.add_order([("BAD-2", 1)], harness.shipping_text)
            commands.append(("orders", "get", CONNECTION))
            if world.supports("sync_orders"):
                world.ship(shipped, "BAD-TRACK-1")
                commands.append(("orders", "sync", CONNECTION))

        world.configure(harness.bad_credentials())
        hub_before = world.hub_state()
        channel_before = world.channel_state(skus)
        tested = world("connections", "test", CONNECTION, expect=1)
        assert tested.output.strip(), f"no message:\n{tested}"
        for command in commands:
            refused = world(*command, expect=1)
            assert CONNECTION in refused.stderr, (
                f"the error does not name the connection:\n{refused}"
            )
        assert world.hub_state() == hub_before
        assert world.channel_state(skus) == channel_before
        for result in world.cli.history:
            for secret in world.secrets():
                assert secret not in result.output, f"a secret in the output of:\n{result}"

        world.configure(harness.connection_values())
        for command in commands:
            world(*command)
        listings = world.listings()
        if world.supports("link_listings"):
            assert listings["BAD-2"]["status"] == "linked"
        if world.supports("sync_listings"):
            assert harness.product("BAD-1").quantity == 8  # type: ignore[union-attr]
        if waiting is not None:
            assert waiting in world.orders()
        if shipped is not None and world.supports("sync_orders"):
            assert [t for t, _ in _shipments_of(world, shipped)] == ["BAD-TRACK-1"]

    def test_transient_failure_is_retried(
        self, world: World, fault: Fault, reference_end_state: dict[str, Any]
    ) -> None:
        """A 5xx or 429 on one operation is retried (in the same call, or by the next run for
        a channel that leaves retries to the hub) and the end state equals the one without
        it."""
        world.require(fault.operation)
        end_state = reference_flow(world, fault)
        assert world.harness.armed_failures() == 0, "the failure was never triggered"
        assert end_state == reference_end_state


def reference_flow(world: World, fault: Fault | None) -> dict[str, Any]:
    """Link, sync, get orders, ship (one partial), sync orders; return the end state with
    channel order ids replaced by seed names, so two worlds compare equal."""
    harness = world.harness
    world.connect()
    for sku in ("FLOW-1", "FLOW-2"):
        harness.add_product(sku, 1, Decimal("1.00"))
    world.catalog([("FLOW-1", 5, "5.50"), ("FLOW-2", 7, "7.25")])
    refs = {
        harness.add_order([("FLOW-1", 1)], harness.shipping_text): "order-1",
        harness.add_order([("FLOW-2", 2)], harness.shipping_text): "order-2",
    }
    first, second = list(refs)

    def step(operations: Sequence[str], args: Sequence[str]) -> None:
        armed = fault is not None and fault.operation in operations
        if armed:
            assert fault is not None
            harness.fail(fault.operation, kind=fault.kind, times=1)
        result = world(*args, expect=None)
        if not armed:
            assert result.exit_code == 0, f"expected exit 0:\n{result}"
        elif harness.retries_in_call:
            assert result.exit_code == 0, (
                f"{harness.channel} retries in the call, yet {fault} was not retried:\n{result}"
            )
        elif result.exit_code != 0:
            assert result.exit_code in (1, 4), result
            world(*args)  # the next run sends what is still pending

    if world.supports("link_listings"):
        step(["link_listings"], ["listings", "link", CONNECTION])
        if world.supports("sync_listings"):
            step(["sync_listings"], ["listings", "sync", CONNECTION])
    if world.supports("get_orders"):
        world.map(harness.shipping_text)
        step(["get_orders", "acknowledge_orders"], ["orders", "get", CONNECTION])
        world.ship(first, "FLOW-TRACK-1")
        world.ship(second, "FLOW-TRACK-2", {"FLOW-2": 1})
        if world.supports("sync_orders"):
            step(["sync_orders"], ["orders", "sync", CONNECTION])
    return _end_state(world, refs)


def _end_state(world: World, refs: Mapping[str, str]) -> dict[str, Any]:
    """The hub's and the channel's state after :func:`reference_flow`."""
    harness = world.harness
    orders = world.orders()
    products = {}
    for sku in ("FLOW-1", "FLOW-2"):
        product = harness.product(sku)
        products[sku] = None if product is None else (product.quantity, _money(product.price))
    return {
        "listings": {sku: row["status"] for sku, row in world.listings().items()},
        "products": products,
        "updates": sorted((u.sku, tuple(sorted(u.fields))) for u in harness.received_updates()),
        "orders": {
            refs.get(oid, oid): (
                row["status"],
                row["acknowledged"],
                sorted((ln["sku"], ln["quantity"], ln["shipped_quantity"]) for ln in row["lines"]),
                sorted(
                    (s["sync_status"], s["tracking"], _lines(s["lines"]))
                    for s in world.order(oid)["shipments"]
                ),
            )
            for oid, row in orders.items()
        },
        "acknowledged": sorted(refs.get(oid, oid) for oid in harness.acknowledged_orders()),
        "received_shipments": sorted(
            (refs.get(s.channel_order_id, s.channel_order_id), s.tracking, _lines(s.lines))
            for s in harness.received_shipments()
        ),
    }


def _lines(lines: Iterable[Mapping[str, Any]] | Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    if isinstance(lines, Mapping):
        return tuple(sorted((str(k), int(v)) for k, v in lines.items()))
    return tuple(sorted((str(ln["sku"]), int(ln["quantity"])) for ln in lines))


__all__ = [
    "CONNECTION",
    "FAULTS",
    "ChannelContract",
    "Fault",
    "World",
    "open_world",
    "reference_flow",
]
