"""What one operation costs against the embedded sandbox (issue 9: one path per operation):
requests sent, database sessions opened, HTTP clients built, connection lookups and capability
checks. Counts only, never times.

The run context resolves the connection, its channel and the capability once per run, and the
plugin keeps one client per run, so these numbers do not grow with the hook calls of a run or
with the records it handles.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

pytest.importorskip("hub_channeladvisor_sandbox")

from hub_channeladvisor.client import api
from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.plugins import Registry
from hub_core.testing.contract import World, open_world

SKUS = [f"COST-{n:02d}" for n in range(10)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(ChannelAdvisorHarness, tmp_path) as opened:
        opened.connect()
        yield opened


class Costs:
    """Counts what the code under test builds and asks, on the test's own thread (the lease
    keeper renews on a timer, from a thread of its own): database sessions, ``requests``
    sessions, ChannelAdvisor clients, statements reading the ``connections`` table and
    capability checks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        self._thread = threading.get_ident()
        for name, owner, method in (
            ("db_sessions", Session, "__init__"),
            ("http_sessions", requests.Session, "__init__"),
            ("ca_clients", api.ChannelAdvisorClient, "__init__"),
            ("capability_checks", Registry, "check_supported"),
        ):
            monkeypatch.setattr(owner, method, self._counting(name, getattr(owner, method)))
        event.listen(Engine, "before_cursor_execute", self._statement)

    def _count(self, name: str) -> None:
        if threading.get_ident() == self._thread:
            self.counts[name] += 1

    def _counting(self, name: str, method: Any) -> Any:
        def counted(obj: Any, *args: Any, **kwargs: Any) -> Any:
            self._count(name)
            return method(obj, *args, **kwargs)

        return counted

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM connections" in statement:
            self._count("connection_lookups")

    def stop(self) -> dict[str, int]:
        """Stop counting statements; the counts so far."""
        if event.contains(Engine, "before_cursor_execute", self._statement):
            event.remove(Engine, "before_cursor_execute", self._statement)
        return dict(self.counts)


@pytest.fixture
def costs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    started: list[Costs] = []

    def start() -> Costs:
        started.append(Costs(monkeypatch))
        return started[-1]

    yield start
    for counting in started:
        counting.stop()


def _sent_since(world: World, mark: int) -> tuple[Counter[str], int]:
    """HTTP requests the sandbox received after ``mark`` by endpoint, and the batch parts."""
    entries = world.harness.sandbox.request_log(since=mark)["entries"]  # type: ignore[attr-defined]
    return (
        Counter(e["endpoint"] for e in entries if not e["in_batch"]),
        sum(1 for e in entries if e["in_batch"]),
    )


def _mark(world: World) -> int:
    entries = world.harness.sandbox.request_log()["entries"]  # type: ignore[attr-defined]
    return max((e["seq"] for e in entries), default=0)


def _linked(world: World) -> None:
    """10 linked listings, synced once."""
    for sku in SKUS:
        world.harness.add_product(sku, 0, Decimal("1.00"))
    world.catalog([(sku, 5, "10.00") for sku in SKUS])
    world.link()
    world.sync()


def test_one_sync_of_ten_changed_listings(world: World, costs: Any) -> None:
    _linked(world)
    world.catalog([(sku, 7, "10.00") for sku in SKUS])
    mark, counting = _mark(world), costs()

    result = world.sync()

    counted = counting.stop()
    assert result["counts"]["sent"] == 10
    # One $batch of the 10 quantity updates; the token the connection holds is still valid.
    sent, parts = _sent_since(world, mark)
    assert (sent, parts) == ({"POST /v1/$batch": 1}, 10)
    # Sessions: open the run's connection, start the run, read the changes, check the lease
    # before sending (issue 12), store the outcomes, advance the cursor, finish the run (main
    # before issue 9: 6 sessions, 3 connection lookups, 2 capability checks).
    assert counted == {
        "db_sessions": 7,
        "connection_lookups": 1,
        "capability_checks": 1,
        "ca_clients": 1,
        "http_sessions": 1,
    }


def test_hub_run_resolves_the_connection_once(world: World, costs: Any) -> None:
    """``hub run`` opens the connection once for its four steps; each step is a run with one
    client (get orders and its acknowledgements share one)."""
    _linked(world)
    world.catalog([(sku, 7, "10.00") for sku in SKUS])
    world.map("UPS - Ground")
    for sku in SKUS[:3]:
        world.harness.add_order([(sku, 1)], "UPS - Ground")
    counting = costs()

    document = world.json("run", "shop")

    counted = counting.stop()
    assert document["status"] == "ok"
    assert [(s["operation"], s["counts"]) for s in document["operations"]] == [
        ("link_listings", {}),
        ("sync_listings", {"ok": 10, "sent": 10}),
        ("get_orders", {"ok": 3, "imported": 3, "acknowledged": 3}),
        ("sync_orders", {}),
    ]
    # Link has nothing to look up and sync orders nothing to send: two operations call the
    # plugin. Main before issue 9: 22 sessions, 10 connection lookups (one more per stored
    # chunk of orders), 7 capability checks, 3 clients (one per hook call). Plus one session
    # per commit point before a channel write, where the run checks its lease (issue 12):
    # before the sync call, before storing the orders and before acknowledging them.
    assert counted == {
        "db_sessions": 21,
        "connection_lookups": 2,
        "capability_checks": 5,
        "ca_clients": 2,
        "http_sessions": 2,
    }


def test_relink_opens_no_session_per_sku(world: World, costs: Any) -> None:
    _linked(world)
    counting = costs()

    world.json("listings", "relink", "shop", *[a for sku in SKUS for a in ("--sku", sku)])

    counted = counting.stop()
    # Main before issue 9: 20 sessions (one per SKU to see whether it had a listing).
    assert counted == {
        "db_sessions": 10,
        "connection_lookups": 3,
        "capability_checks": 1,
        "ca_clients": 1,
        "http_sessions": 1,
    }
