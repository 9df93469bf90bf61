"""Kills at every commit point, one by one: the next run ends where a run without the kill
would have, with nothing imported, sent or exported twice and nothing lost.

The killed command is a child process (``HUB_CRASH_AT=<point>``, SIGKILL: no clean-up runs);
everything else runs in-process. The channel is the ChannelAdvisor sandbox.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.crash import CRASH_ENV, POINTS, crash_point
from hub_core.db import Database
from hub_core.services.leases import expire_all
from hub_core.testing.processes import stop_process

CONNECTION = "shop"
SKUS = ("CP-1", "CP-2", "CP-3")


class Story:
    """A connection to a sandbox with three products, a catalog, a mapping and helpers."""

    def __init__(self, hub_cli: Any, url: str, workdir: Path) -> None:
        self.cli = hub_cli
        self.url = url
        self.workdir = workdir
        self.harness = ChannelAdvisorHarness(workdir)
        self.harness.start()
        self.sandbox = self.harness.sandbox
        # One item a page: paging happens in every read.
        self.sandbox.configure(orders_page_size=1, products_page_size=1)
        for sku in SKUS:
            self.harness.add_product(sku, 1, Decimal("1.00"))
        catalog = workdir / "catalog.csv"
        catalog.write_text(
            "sku,title,quantity,price\n" + "".join(f"{s},{s},7,9.50\n" for s in SKUS)
        )
        self.cli("catalog", "import", str(catalog))
        values = [f"--set={k}={v}" for k, v in self.harness.connection_values().items()]
        self.cli("connections", "add", CONNECTION, "--channel", "channeladvisor", *values)
        self.cli(
            "shipping-mappings", "add", CONNECTION,
            "--channel-text", self.harness.shipping_text, "--policy", "standard",
        )  # fmt: skip

    def killed(self, point: str, *argv: str) -> None:
        """Run ``hub ARGV`` in a child process that dies at ``point``; it must die there."""
        env = {**os.environ, CRASH_ENV: point}
        hub = str(Path(sys.executable).with_name("hub"))
        result = subprocess.run(
            [hub, "--database-url", self.url, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == -signal.SIGKILL, (
            f"hub {' '.join(argv)} was not killed at {point} (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
        # Time passes: the dead run's lease expires and the next run may take over (waiting
        # for the real expiry is tested in tests/test_leases.py).
        db = Database(self.url, upgrade=False)
        try:
            expire_all(db)
        finally:
            db.dispose()

    def orders(self, count: int) -> list[str]:
        """``count`` orders arrive on the channel (one line each)."""
        return [
            self.harness.add_order([(SKUS[i % len(SKUS)], 2)], self.harness.shipping_text)
            for i in range(count)
        ]

    def hub_orders(self) -> Counter[str]:
        """How often each channel order id is in the hub."""
        rows = self.cli.json("orders", "list", "--connection", CONNECTION)
        return Counter(row["channel_order_id"] for row in rows)

    def exported(self, order_ids: list[str]) -> list[str]:
        """Which of these orders the channel has marked exported."""
        return [
            oid for oid in order_ids if (self.sandbox.get_order(int(oid)) or {}).get("exported_by")
        ]

    def fulfillments(self, order_ids: list[str]) -> Counter[str]:
        """How often each hub shipment id is among the orders' fulfillments."""
        found: Counter[str] = Counter()
        for oid in order_ids:
            for fulfillment in (self.sandbox.get_order(int(oid)) or {}).get("Fulfillments", []):
                if fulfillment.get("SellerFulfillmentID"):
                    found[fulfillment["SellerFulfillmentID"]] += 1
        return found

    def ship_all(self, order_ids: list[str]) -> None:
        """Record one full shipment per order."""
        for number, oid in enumerate(order_ids):
            self.cli(
                "orders", "ship", CONNECTION, oid, "--tracking", f"1ZCRASH{number}",
                "--carrier", self.harness.carrier, "--class", self.harness.shipping_class,
            )  # fmt: skip

    def channel_matches_catalog(self) -> list[str]:
        """SKUs whose channel quantity or price differ from the catalog's."""
        catalog = {row["sku"]: row for row in self.cli.json("catalog", "list")}
        wrong = []
        for sku in SKUS:
            product = self.harness.product(sku)
            want = catalog[sku]
            if product is None or (product.quantity, product.price) != (
                int(want["quantity"]),
                Decimal(str(want["price"])),
            ):
                wrong.append(sku)
        return wrong


@pytest.fixture
def story(hub_cli: Any, tmp_path: Path) -> Iterator[Story]:
    """The story (on the CLI's database: SQLite and PostgreSQL), its sandbox stopped at the
    end."""
    made = Story(hub_cli, hub_cli.url, tmp_path)
    try:
        yield made
    finally:
        made.harness.stop()


def _check_orders(story: Story, order_ids: list[str]) -> None:
    counts = story.hub_orders()
    assert sorted(counts) == sorted(order_ids), "an order was lost or is foreign"
    assert set(counts.values()) == {1}, f"an order was imported twice: {counts}"
    assert story.exported(order_ids) == order_ids, "an order was never marked exported"


GET_ORDERS_POINTS = [
    "get_orders.stored",
    "get_orders.acknowledged",
    "get_orders.chunk",
    "channeladvisor.page",
]


@pytest.mark.parametrize("point", GET_ORDERS_POINTS)
def test_get_orders_killed_at_a_commit_point_imports_each_order_once(
    story: Story, point: str
) -> None:
    order_ids = story.orders(3)
    story.killed(point, "orders", "get", CONNECTION)
    story.cli("orders", "get", CONNECTION)
    _check_orders(story, order_ids)
    # And a further run finds nothing new.
    again = story.cli.json("orders", "get", CONNECTION)
    assert again["counts"].get("ok", 0) == 0


@pytest.mark.parametrize("point", ["sync_orders.sent", "channeladvisor.shipped"])
def test_sync_orders_killed_after_ship_sends_each_shipment_once(story: Story, point: str) -> None:
    order_ids = story.orders(2)
    story.cli("orders", "get", CONNECTION)
    story.ship_all(order_ids)
    story.killed(point, "orders", "sync", CONNECTION)
    story.cli("orders", "sync", CONNECTION)
    found = story.fulfillments(order_ids)
    assert sorted(found) == ["hub-1", "hub-2"], "a shipment was lost"
    assert set(found.values()) == {1}, f"a shipment reached the channel twice: {found}"
    orders = story.cli.json("orders", "list", "--connection", CONNECTION)
    assert {o["status"] for o in orders} == {"shipped"}
    # Nothing is left to send.
    assert story.cli.json("orders", "sync", CONNECTION)["records"] == []


@pytest.mark.parametrize("point", ["sync_listings.sent", "channeladvisor.batch"])
def test_sync_listings_killed_mid_sync_ends_with_the_catalog_values(
    story: Story, point: str
) -> None:
    story.cli("listings", "link", CONNECTION)
    story.killed(point, "listings", "sync", CONNECTION)
    story.cli("listings", "sync", CONNECTION)
    assert story.channel_matches_catalog() == []
    # Settled: nothing is sent again.
    assert story.cli.json("listings", "sync", CONNECTION)["records"] == []


def test_link_killed_before_storing_links_again(story: Story) -> None:
    story.killed("link_listings.answered", "listings", "link", CONNECTION)
    assert {row["status"] for row in story.cli.json("listings", "list", CONNECTION)} <= {"unlinked"}
    story.cli("listings", "link", CONNECTION)
    rows = story.cli.json("listings", "list", CONNECTION)
    assert {row["sku"]: row["status"] for row in rows} == dict.fromkeys(SKUS, "linked")


def test_a_refreshed_token_lost_in_a_crash_is_refreshed_again(story: Story) -> None:
    story.sandbox.expire_access_tokens()
    story.killed("channeladvisor.token", "listings", "link", CONNECTION)
    story.cli("listings", "link", CONNECTION)
    shown = story.cli.json("connections", "show", CONNECTION)
    assert shown["health"] != "needs_reauth", shown
    rows = story.cli.json("listings", "list", CONNECTION)
    assert {row["status"] for row in rows} == {"linked"}


def test_every_commit_point_is_tested_here() -> None:
    tested = {
        *GET_ORDERS_POINTS,
        "sync_orders.sent",
        "channeladvisor.shipped",
        "sync_listings.sent",
        "channeladvisor.batch",
        "link_listings.answered",
        "channeladvisor.token",
    }
    assert tested == set(POINTS)


def test_every_commit_point_is_in_the_code() -> None:
    root = Path(__file__).resolve().parents[2]
    sources = [
        *root.joinpath("hub_core").rglob("*.py"),
        *root.joinpath("plugins", "channeladvisor", "hub_channeladvisor").rglob("*.py"),
    ]
    text = "\n".join(p.read_text() for p in sources if p.name != "crash.py")
    missing = [point for point in POINTS if f'crash_point("{point}")' not in text]
    assert missing == []


def test_a_crash_point_does_nothing_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    crash_point("get_orders.stored")  # unset: nothing happens
    monkeypatch.setenv(CRASH_ENV, "sync_orders.sent")
    crash_point("get_orders.stored")  # another point: nothing happens


def test_a_crash_point_kills_at_the_nth_time(tmp_path: Path) -> None:
    code = (
        "from hub_core.crash import crash_point\n"
        "for n in range(1, 4):\n"
        "    print(n, flush=True)\n"
        "    crash_point('get_orders.chunk')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, CRASH_ENV: "get_orders.chunk:2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2"]


# --- the worker killed at a commit point ------------------------------------------------------

#: Upper bound of every wait on a worker (seconds).
WORKER_WAIT = 180.0


class Worker:
    """``hub worker`` (one thread) as a child process with its log; stopped by its own pid."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        hub = str(Path(sys.executable).with_name("hub"))
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [hub, "worker", "--concurrency", "1"], env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_for_death(self, timeout: float = WORKER_WAIT) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM (warm shutdown), SIGKILL if it is still there after 30 s."""
        stop_process(self.process)


class WorkerStory:
    """The story on PostgreSQL, with workers on Redis taking the test's own queue."""

    def __init__(self, story: Story, broker: str, workdir: Path) -> None:
        import secrets

        self.story = story
        self.broker = broker
        self.log = workdir / "worker.log"
        self.queue = f"hub-chaos-test-{secrets.token_hex(4)}"
        self.env = {
            **os.environ,
            "HUB_DATABASE_URL": story.url,
            "HUB_BROKER_URL": broker,
            "HUB_QUEUE": self.queue,
            # A killed worker's task is handed out again 10 s after it was taken (a sweep every
            # second), and its run's lease expires 4 s after the last renewal: the real
            # mechanisms, made quick.
            "HUB_BROKER_VISIBILITY_TIMEOUT": "10",
            "HUB_BROKER_RESTORE_SECONDS": "1",
            "HUB_LEASE_SECONDS": "4",
        }
        self.env.pop(CRASH_ENV, None)
        self.workers: list[Worker] = []

    def worker(self, crash_at: str | None = None) -> Worker:
        env = {**self.env, CRASH_ENV: crash_at} if crash_at else self.env
        self.workers.append(Worker(self.log, env))
        return self.workers[-1]

    def dispatch(self, operation: str) -> Any:
        """Enqueue one task of ``operation``, as ``hub dispatch --wait`` does."""
        from hub_core.worker.app import make_app
        from hub_core.worker.dispatch import Planned, enqueue

        planned = [Planned(CONNECTION, [operation])]
        os.environ["HUB_QUEUE"] = self.queue
        try:
            enqueue(make_app(self.broker), planned, wait=True)
        finally:
            del os.environ["HUB_QUEUE"]
        return planned

    def killed_then_redelivered(self, point: str, operation: str) -> dict[str, Any]:
        """A worker dies at ``point`` holding the task; a new one gets it again and finishes.

        :return: the finished task's document (``hub dispatch --wait --json``'s).
        """
        from hub_core.worker.dispatch import collect

        armed = self.worker(crash_at=point)
        planned = self.dispatch(operation)
        assert armed.wait_for_death() == -signal.SIGKILL, self.log.read_text()[-3000:]
        self.worker()
        [(document, code)] = collect(planned, WORKER_WAIT)
        assert code == 0 and document["status"] == "ok", document
        return document

    def redeliveries(self) -> int:
        return self.log.read_text(errors="replace").count(" redelivered: ")

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def worker_story(postgres_cli: Any, chaos_redis: str, tmp_path: Path) -> Iterator[WorkerStory]:
    """The story on PostgreSQL with the chaos Redis as the broker (skips without either)."""
    made = WorkerStory(Story(postgres_cli, postgres_cli.url, tmp_path), chaos_redis, tmp_path)
    try:
        yield made
    finally:
        made.close()
        made.story.harness.stop()


def test_a_worker_killed_after_storing_orders_gets_the_task_again_and_imports_each_once(
    worker_story: WorkerStory,
) -> None:
    story = worker_story.story
    order_ids = story.orders(3)
    # Killed with the first orders committed and not yet marked exported on the channel.
    worker_story.killed_then_redelivered("get_orders.stored", "get_orders")
    _check_orders(story, order_ids)
    # Once (a worker of another chaos run sharing the database may hand it out once more).
    assert worker_story.redeliveries() >= 1
    runs = story.cli.json("runs", "list", "--connection", CONNECTION)
    # The killed run, marked failed when its lease was taken over, and the redelivered one.
    statuses = Counter(r["status"] for r in runs if r["operation"] == "get_orders")
    assert statuses["failed"] == 1 and statuses["ok"] >= 1 and sum(statuses.values()) == (
        1 + statuses["ok"]
    ), statuses


def test_a_worker_killed_after_ship_was_answered_gets_the_task_again_and_ships_once(
    worker_story: WorkerStory,
) -> None:
    story = worker_story.story
    order_ids = story.orders(2)
    story.cli("orders", "get", CONNECTION)
    story.ship_all(order_ids)
    # Killed when ChannelAdvisor has accepted the first Ship and the hub has not stored it.
    worker_story.killed_then_redelivered("channeladvisor.shipped", "sync_orders")
    found = story.fulfillments(order_ids)
    assert sorted(found) == ["hub-1", "hub-2"], "a shipment was lost"
    assert set(found.values()) == {1}, f"a shipment reached the channel twice: {found}"
    assert [s.channel_order_id for s in story.harness.received_shipments()].count(
        order_ids[0]
    ) == 1
    orders = story.cli.json("orders", "list", "--connection", CONNECTION)
    assert {o["status"] for o in orders} == {"shipped"}
    # Once (a worker of another chaos run sharing the database may hand it out once more).
    assert worker_story.redeliveries() >= 1
