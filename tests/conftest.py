"""Fixtures for the core's tests: databases (SQLite, and PostgreSQL when reachable), a hub,
a fake channel store with a connection to it, the CLI, and a throw-away channel plugin.

PostgreSQL: every test using the ``database_url`` fixture (or ``hub``, ``hub_cli``, ``shop``,
``cli_shop``: every service and CLI test) runs once on SQLite and once on the local PostgreSQL
(``HUB_TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
The session creates one throw-away database there and migrates it once; each test starts from
empty tables (truncated before it runs), and the database is dropped at the end. Migration
tests take ``fresh_database_url`` instead: an empty schema of their own. When the server is
unreachable the PostgreSQL cases are skipped, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from marshmallow import Schema, fields
from sqlalchemy import make_url, select

from hub_core import hookimpl
from hub_core.channel import (
    OPTIONAL,
    SUPPORTED,
    CatalogItem,
    ChannelConnection,
    ChannelOrder,
    ConnectionCheck,
    LinkResult,
    ListingOutcome,
    ListingStatus,
    ListingUpdate,
    OrderLookup,
    Outcome,
    RecordOutcome,
    ShipmentToSend,
)
from hub_core.cli import cli
from hub_core.db import Database
from hub_core.models import Base
from hub_core.plugins import PluginLoadWarning, Registry
from hub_core.services import Hub
from hub_core.services.connections import add_connection
from hub_core.testing import databases
from hub_fake_channel.store import FakeStore

# --- the installed plugins --------------------------------------------------------------------


def load_registry(**kwargs: Any) -> Registry:
    """The registry of installed plugins (a plugin that cannot load yet is skipped quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        return Registry.load(**kwargs)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The installed channels, loaded once."""
    return load_registry()


# --- databases --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once; tests start from a copy (migrating is slow)."""
    path = tmp_path_factory.mktemp("template") / "hub.db"
    Database(f"sqlite:///{path}").dispose()  # the last connection closed checkpoints the WAL
    assert not path.with_name("hub.db-wal").exists()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh SQLite database at head, in the test's directory."""
    path = tmp_path / "hub.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for the session (dropped at the end)."""
    with databases.postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_migrated(postgres_database: str) -> str:
    """The session's PostgreSQL database migrated to head once."""
    return databases.migrate(postgres_database)


@pytest.fixture
def postgres_url(postgres_migrated: str) -> str:
    """The session's PostgreSQL database at head, every table emptied (ids restart at 1)."""
    return databases.empty_tables(postgres_migrated)


@pytest.fixture
def postgres_fresh_url(postgres_database: str) -> Iterator[str]:
    """A fresh, empty schema in the session's PostgreSQL database (dropped after the test)."""
    import psycopg
    from psycopg import sql

    url = make_url(postgres_database)
    schema = f"t_{secrets.token_hex(6)}"
    dsn = databases.admin_dsn(postgres_database)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty hub database at head: once SQLite, once PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database with no tables at all (for migration tests): SQLite, PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return str(request.getfixturevalue("postgres_fresh_url"))


@pytest.fixture
def hub(database_url: str, registry: Registry) -> Iterator[Hub]:
    """A hub on a fresh database (SQLite and PostgreSQL) with the installed channels."""
    opened = Hub(db=Database(database_url), registry=registry)
    yield opened
    opened.db.dispose()


def snapshot(hub_or_url: Hub | str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to assert that a refused command changed nothing."""
    db = hub_or_url.db if isinstance(hub_or_url, Hub) else Database(hub_or_url, upgrade=False)
    try:
        with db.session() as session:
            return {
                table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
                for table in Base.metadata.sorted_tables
            }
    finally:
        if not isinstance(hub_or_url, Hub):
            db.dispose()


# --- the fake channel -------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> FakeStore:
    """An empty fake channel store."""
    fake = FakeStore(tmp_path / "fake.json")
    fake.create()
    return fake


@pytest.fixture
def shop(hub: Hub, store: FakeStore) -> str:
    """A connection ``shop`` to the fake channel's store; returns its name."""
    add_connection(hub, "shop", "fake", {"store": str(store.path)})
    return "shop"


def write_catalog(path: Path, rows: Sequence[Sequence[Any]], header: str = "") -> Path:
    """Write a catalog CSV (``sku,title,quantity,price`` unless ``header`` says otherwise)."""
    lines = [header or "sku,title,quantity,price"]
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CATALOG = [("SKU-1", "Blue mug", 10, "9.99"), ("SKU-2", "Red mug", 5, "12.50")]


@pytest.fixture
def channel_products(store: FakeStore) -> dict[str, str]:
    """A product on the channel for each SKU of :data:`CATALOG`: SKU -> channel product id."""
    return {sku: store.add_product(sku, title, 0, "1.00") for sku, title, *_ in CATALOG}


# --- the CLI ----------------------------------------------------------------------------------


def table_rows(stdout: str) -> list[dict[str, str]]:
    """The rows of an aligned text table (header row first), each as header -> cell.

    Columns are cut at the header words' positions, so a test fails when a cell runs out of
    its column.
    """
    header, *lines = [line for line in stdout.splitlines() if line.strip()]
    names = header.split()
    starts = [header.index(f" {n}") + 1 if i else 0 for i, n in enumerate(names)]
    ends = [*starts[1:], None]
    return [
        {n: line[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)}
        for line in lines
    ]


@pytest.fixture
def table() -> Callable[[str], list[dict[str, str]]]:
    """:func:`table_rows`: read an aligned text table back."""
    return table_rows


class HubCli:
    """Runs ``hub --database-url URL ...`` in-process with click's CliRunner."""

    def __init__(self, url: str, registry: Registry | None = None) -> None:
        self.url = url
        self.registry = registry

    def __call__(
        self,
        *args: str,
        code: int | None = 0,
        registry: Registry | None = None,
        internal_error: bool = False,
    ) -> Result:
        """Run a command; assert its exit code (unless ``code`` is None), no traceback and
        (unless ``internal_error``) no internal error."""
        obj: dict[str, Any] = {}
        if registry or self.registry:
            obj["registry"] = registry or self.registry
        result = CliRunner().invoke(
            cli, ["--database-url", self.url, *args], obj=obj, catch_exceptions=False
        )
        if "hub" in obj:
            obj["hub"].db.dispose()
        assert "Traceback" not in result.output, result.output
        assert internal_error or "Internal error" not in result.output, result.output
        if code is not None:
            assert result.exit_code == code, (
                f"hub {' '.join(args)} exited {result.exit_code}, not {code}:\n{result.output}"
            )
        return result

    def json(self, *args: str, code: int = 0, registry: Registry | None = None) -> Any:
        """Run a command with ``--json``; stdout must be exactly one JSON document."""
        result = self(*args, "--json", code=code, registry=registry)
        return json.loads(result.stdout)


@pytest.fixture
def hub_cli(database_url: str, registry: Registry) -> HubCli:
    """The CLI on a fresh database (SQLite and PostgreSQL), with the installed plugins loaded
    once."""
    return HubCli(database_url, registry)


@pytest.fixture
def postgres_cli(postgres_url: str, registry: Registry) -> HubCli:
    """The CLI on the PostgreSQL database only (for what needs a shared server database:
    workers)."""
    return HubCli(postgres_url, registry)


@pytest.fixture
def cli_shop(hub_cli: HubCli, store: FakeStore) -> HubCli:
    """The CLI with a connection ``shop`` to the fake store."""
    hub_cli("connections", "add", "shop", "--channel", "fake", "--set", f"store={store.path}")
    return hub_cli


# --- a throw-away channel plugin ---------------------------------------------------------------


class StubConnectionSchema(Schema):
    """Two required keys, one of them secret."""

    class Meta:
        secret_fields = ("token",)

    account = fields.String(required=True)
    token = fields.String(required=True, load_only=True)


class StubSettingsSchema(Schema):
    order_days = fields.Integer(load_default=7)


class StubChannel:
    """A channel plugin that records every operation hook called, and answers ok."""

    def __init__(
        self,
        name: str = "stub",
        capabilities: dict[str, str] | None = None,
        orders: Sequence[ChannelOrder] = (),
        fail_with: Exception | None = None,
        requirements: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.requirements = {"shipping_mappings": OPTIONAL, **(requirements or {})}
        self.capabilities = {
            "link_listings": SUPPORTED,
            "sync_listings": SUPPORTED,
            "publish_listings": SUPPORTED,
            "get_orders": SUPPORTED,
            "sync_orders": SUPPORTED,
            **(capabilities or {}),
        }
        self.orders = list(orders)
        self.fail_with = fail_with
        self.calls: list[str] = []

    def _called(self, hook: str) -> None:
        self.calls.append(hook)
        if self.fail_with is not None:
            raise self.fail_with

    @hookimpl
    def hub_channel_name(self) -> str:
        return self.name

    @hookimpl
    def hub_channel_capabilities(self) -> dict[str, str]:
        return dict(self.capabilities)

    @hookimpl
    def hub_channel_requirements(self) -> dict[str, str]:
        return dict(self.requirements)

    @hookimpl
    def hub_connection_schema(self) -> type[Schema]:
        return StubConnectionSchema

    @hookimpl
    def hub_settings_schema(self) -> type[Schema]:
        return StubSettingsSchema

    @hookimpl
    def hub_test_connection(self, connection: ChannelConnection) -> list[ConnectionCheck]:
        self._called("hub_test_connection")
        return [ConnectionCheck("stub", True)]

    @hookimpl
    def hub_link_listings(
        self, connection: ChannelConnection, items: Sequence[CatalogItem]
    ) -> list[LinkResult]:
        self._called("hub_link_listings")
        return [LinkResult(i.sku, ListingStatus.LINKED, f"S-{i.sku}") for i in items]

    @hookimpl
    def hub_sync_listings(
        self, connection: ChannelConnection, updates: Sequence[ListingUpdate]
    ) -> list[ListingOutcome]:
        self._called("hub_sync_listings")
        return [ListingOutcome(u.sku, Outcome.OK) for u in updates]

    @hookimpl
    def hub_publish_listings(
        self, connection: ChannelConnection, items: Sequence[CatalogItem]
    ) -> list[LinkResult]:
        self._called("hub_publish_listings")
        return [LinkResult(i.sku, ListingStatus.LINKED, f"S-{i.sku}") for i in items]

    @hookimpl
    def hub_get_orders(self, connection: ChannelConnection, days: int) -> list[ChannelOrder]:
        self._called("hub_get_orders")
        return list(self.orders)

    @hookimpl
    def hub_acknowledge_orders(
        self, connection: ChannelConnection, channel_order_ids: Sequence[str]
    ) -> list[RecordOutcome]:
        self._called("hub_acknowledge_orders")
        return [RecordOutcome(ref, Outcome.OK) for ref in channel_order_ids]

    @hookimpl
    def hub_sync_orders(
        self, connection: ChannelConnection, shipments: Sequence[ShipmentToSend]
    ) -> list[RecordOutcome]:
        self._called("hub_sync_orders")
        return [RecordOutcome(s.shipment_id, Outcome.OK) for s in shipments]

    @hookimpl
    def hub_explain_order(self, connection: ChannelConnection, ref: str, days: int) -> OrderLookup:
        self._called("hub_explain_order")
        return OrderLookup(order=None)


def stub_registry(*plugins: tuple[object, str], load_entrypoints: bool = True) -> Registry:
    """The installed channels plus ``plugins`` (``(plugin, name)`` pairs)."""
    return load_registry(load_entrypoints=load_entrypoints, plugins=plugins)


@pytest.fixture
def make_stub() -> Callable[..., StubChannel]:
    """Make a throw-away channel plugin (see :class:`StubChannel`)."""
    return StubChannel


@pytest.fixture
def make_registry() -> Callable[..., Registry]:
    """Build a registry of the installed plugins plus ``(plugin, name)`` pairs."""
    return stub_registry


@pytest.fixture
def db_snapshot() -> Callable[[Hub | str], dict[str, list[tuple[Any, ...]]]]:
    """Take a snapshot of every row (see :func:`snapshot`)."""
    return snapshot


@pytest.fixture
def catalog_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a catalog CSV in the test directory: ``catalog_file(rows, name=, header=)``."""

    def write(
        rows: Sequence[Sequence[Any]] = CATALOG, name: str = "catalog.csv", header: str = ""
    ) -> Path:
        return write_catalog(tmp_path / name, rows, header)

    return write
