"""Running at scale with the real services (issue 12, deliverable 6): ``hub worker`` processes
on a throw-away PostgreSQL database, Redis and RabbitMQ as brokers, ``hub schedule``, and the
ChannelAdvisor sandbox (in this process) as the channel.

Each test starts its workers as subprocesses and stops them by their own pid; every wait is
bounded. A missing service skips the test with the reason, except under ``CI=true``, where it
fails. Each test has its own queue (``HUB_QUEUE``), so tests and developers sharing a broker
never take each other's tasks.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.db import Database
from hub_core.models import Order, Run, Shipment
from hub_core.plugins import Registry
from hub_core.services import Hub
from hub_core.services.connections import add_connection, configure_connection
from hub_core.services.shipments import ship_order
from hub_core.services.shipping import add_mapping
from hub_core.testing.databases import skip_or_fail
from hub_core.testing.processes import stop_process
from hub_core.worker.app import make_app
from hub_core.worker.dispatch import Planned, collect, enqueue
from hub_fake_channel.store import FakeStore

REDIS_URL = os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("HUB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
HUB = str(Path(sys.executable).with_name("hub"))
#: Upper bound of every wait in these tests (seconds).
WAIT = 120.0


def _require(service: str, url: str) -> str:
    """``url`` when the broker answers; else skip (fail under CI=true) naming it."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        skip_or_fail(
            f"{service} is unreachable at {url} ({exc.__class__.__name__}: {exc})", service
        )
    return url


@pytest.fixture(scope="module")
def redis_broker() -> str:
    return _require("Redis", REDIS_URL)


@pytest.fixture(scope="module")
def rabbitmq_broker() -> str:
    return _require("RabbitMQ", RABBITMQ_URL)


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pytest.fail(f"gave up after {timeout:g} s waiting for {what}")


class HubProcess:
    """A ``hub`` subprocess (worker or scheduler) with its log; stopped by its own pid."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HubProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [HUB, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, tasks in hand unacknowledged."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (Celery's warm shutdown), SIGKILL if it is still there after 30 s."""
        if self.process is not None:
            stop_process(self.process)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Scale:
    """One test's world: a PostgreSQL hub, a broker with the test's own queue, processes."""

    def __init__(self, database_url: str, broker: str, workdir: Path, registry: Registry) -> None:
        self.database_url = database_url
        self.broker = broker
        self.workdir = workdir
        self.queue = f"hub-test-{secrets.token_hex(4)}"
        self.hub = Hub(db=Database(database_url), registry=registry)
        self.processes: list[HubProcess] = []
        self.env = {
            **os.environ,
            "HUB_DATABASE_URL": database_url,
            "HUB_BROKER_URL": broker,
            "HUB_QUEUE": self.queue,
        }

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> HubProcess:
        name = f"{args[0]}-{len(self.processes)}"
        process = HubProcess(list(args), {**self.env, **(env or {})}, self.workdir / f"{name}.log")
        self.processes.append(process.start())
        return process

    def worker(self, concurrency: int = 2, env: dict[str, str] | None = None) -> HubProcess:
        return self.spawn("worker", "--concurrency", str(concurrency), env=env)

    def dispatch(self, connection: str, operation: str, times: int = 1) -> list[Planned]:
        """Enqueue ``times`` tasks of one operation, as ``hub dispatch --wait`` does."""
        planned = [Planned(connection, [operation]) for _ in range(times)]
        os.environ["HUB_QUEUE"] = self.queue
        try:
            enqueue(make_app(self.broker), planned, wait=True)
        finally:
            del os.environ["HUB_QUEUE"]
        return planned

    def runs(self, operation: str) -> list[Run]:
        with self.hub.db.session() as session:
            return list(session.scalars(select(Run).where(Run.operation == operation)))

    def count(self, model: Any, *where: Any) -> int:
        with self.hub.db.session() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        self.hub.db.dispose()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ChannelAdvisorHarness]:
    harness = ChannelAdvisorHarness(tmp_path / "sandbox")
    harness.start()
    yield harness
    harness.stop()


@pytest.fixture(autouse=True)
def _one_secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This process and its workers encrypt and decrypt connection secrets with one key."""
    from cryptography.fernet import Fernet

    monkeypatch.setenv("HUB_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("HUB_HOME", str(tmp_path))


def _world(postgres_url: str, broker: str, tmp_path: Path, registry: Registry) -> Iterator[Scale]:
    scale = Scale(postgres_url, broker, tmp_path, registry)
    try:
        yield scale
    finally:
        scale.close()


@pytest.fixture
def on_redis(
    postgres_url: str, redis_broker: str, tmp_path: Path, registry: Registry
) -> Iterator[Scale]:
    yield from _world(postgres_url, redis_broker, tmp_path, registry)


@pytest.fixture
def on_rabbitmq(
    postgres_url: str, rabbitmq_broker: str, tmp_path: Path, registry: Registry
) -> Iterator[Scale]:
    yield from _world(postgres_url, rabbitmq_broker, tmp_path, registry)


def _channeladvisor(scale: Scale, sandbox: ChannelAdvisorHarness, orders: int) -> list[str]:
    """A connection ``ca`` to the sandbox with a mapping and ``orders`` orders waiting."""
    add_connection(scale.hub, "ca", "channeladvisor", sandbox.connection_values())
    add_mapping(scale.hub, "ca", sandbox.shipping_text, "standard")
    for number in range(3):
        sandbox.add_product(f"SKU-{number}", 100, 5)
    return [
        sandbox.add_order([(f"SKU-{n % 3}", 1 + n % 2)], sandbox.shipping_text)
        for n in range(orders)
    ]


def _ship_all(scale: Scale, order_ids: list[str]) -> None:
    for order_id in order_ids:
        ship_order(
            scale.hub, "ca", order_id, tracking=f"T-{order_id}", carrier="UPS",
            shipping_class="Ground",
        )  # fmt: skip


def _ships_per_order(sandbox: ChannelAdvisorHarness) -> Counter[str]:
    """Ship requests ChannelAdvisor accepted, per order."""
    return Counter(s.channel_order_id for s in sandbox.received_shipments())


def _fulfillment_ids(sandbox: ChannelAdvisorHarness, order_ids: list[str]) -> Counter[str]:
    """The hub's shipment ids among the orders' fulfillments, with how often each occurs."""
    found: Counter[str] = Counter()
    for order_id in order_ids:
        order = sandbox.sandbox.get_order(int(order_id))
        assert order is not None
        for fulfillment in order["Fulfillments"]:
            if str(fulfillment.get("SellerFulfillmentID") or "").startswith("hub-"):
                found[fulfillment["SellerFulfillmentID"]] += 1
    return found


# --- two workers racing on one connection -----------------------------------------------------


def test_two_workers_racing_import_each_order_once_and_send_each_shipment_once(
    on_redis: Scale, sandbox: ChannelAdvisorHarness
) -> None:
    scale = on_redis
    sandbox.sandbox.configure(latency_ms=5)
    order_ids = _channeladvisor(scale, sandbox, orders=30)
    scale.worker(concurrency=2)
    scale.worker(concurrency=2)

    documents = collect(scale.dispatch("ca", "get_orders", times=4), WAIT)
    assert all(doc["status"] == "ok" for doc, _ in documents), documents
    assert scale.count(Order) == 30
    assert sandbox.acknowledged_orders() == set(order_ids)
    imported = Counter(
        r["ref"]
        for doc, _ in documents
        for r in doc["operations"][0]["records"]
        if r["outcome"] == "ok"
    )
    assert set(imported) == set(order_ids) and set(imported.values()) == {1}

    _ship_all(scale, order_ids)
    documents = collect(scale.dispatch("ca", "sync_orders", times=4), WAIT)
    assert all(doc["status"] == "ok" for doc, _ in documents), documents
    assert scale.count(Shipment, Shipment.sync_status == "sent") == 30
    ships = _ships_per_order(sandbox)
    assert set(ships) == set(order_ids) and set(ships.values()) == {1}
    assert set(_fulfillment_ids(sandbox, order_ids).values()) == {1}
    assert len(scale.runs("get_orders")) == 4 and len(scale.runs("sync_orders")) == 4


# --- a worker killed in the middle --------------------------------------------------------------


def test_a_worker_killed_during_get_orders_converges_after_restart(
    on_redis: Scale, sandbox: ChannelAdvisorHarness
) -> None:
    """Redis hands the unacknowledged task to the restarted worker after the visibility
    timeout; orders stored but not yet exported are exported then, none imported twice."""
    scale = on_redis
    sandbox.sandbox.configure(latency_ms=60)
    order_ids = _channeladvisor(scale, sandbox, orders=60)
    # The killed run's lease expires after 4 s; the redelivered task waits for that.
    fast_redelivery = {"HUB_BROKER_VISIBILITY_TIMEOUT": "3", "HUB_LEASE_SECONDS": "4"}
    worker = scale.worker(concurrency=1, env=fast_redelivery)
    planned = scale.dispatch("ca", "get_orders")

    # Orders are stored, then each is marked exported: kill it between two exports.
    wait_for("the first orders exported", lambda: len(sandbox.acknowledged_orders()) >= 3)
    worker.kill()
    assert len(sandbox.acknowledged_orders()) < 60, "not killed in the middle of get orders"
    stored = scale.count(Order)

    scale.worker(concurrency=1, env=fast_redelivery)
    [(document, code)] = collect(planned, WAIT)  # the same task, redelivered
    assert document["status"] == "ok" and code == 0, document
    assert stored <= scale.count(Order) == 60
    assert sandbox.acknowledged_orders() == set(order_ids)
    with scale.hub.db.session() as session:
        assert session.scalar(select(func.count()).where(Order.acknowledged_at.is_(None))) == 0
    runs = scale.runs("get_orders")
    # The killed run, marked abandoned when its lease was taken over, and the one that finished.
    assert sorted(r.status for r in runs) == ["failed", "ok"], [(r.status, r.message) for r in runs]


def test_a_worker_killed_during_sync_orders_converges_after_restart_on_rabbitmq(
    on_rabbitmq: Scale, sandbox: ChannelAdvisorHarness
) -> None:
    """RabbitMQ redelivers as soon as the killed worker's connection drops; shipments that
    reached ChannelAdvisor before the kill are found there, not sent again."""
    scale = on_rabbitmq
    order_ids = _channeladvisor(scale, sandbox, orders=40)
    from hub_core.services.orders import get_orders

    assert get_orders(scale.hub, "ca").status == "ok"
    _ship_all(scale, order_ids)
    sandbox.sandbox.configure(latency_ms=60)
    worker = scale.worker(concurrency=1)
    planned = scale.dispatch("ca", "sync_orders")

    wait_for("the first shipments sent", lambda: len(_ships_per_order(sandbox)) >= 3)
    worker.kill()
    assert len(_ships_per_order(sandbox)) < 40, "not killed in the middle of sync orders"

    scale.worker(concurrency=1)
    [(document, code)] = collect(planned, WAIT)
    assert document["status"] == "ok" and code == 0, document
    assert scale.count(Shipment, Shipment.sync_status == "sent") == 40
    ships = _ships_per_order(sandbox)
    assert set(ships) == set(order_ids) and set(ships.values()) == {1}
    assert set(_fulfillment_ids(sandbox, order_ids).values()) == {1}


# --- the scheduler ------------------------------------------------------------------------------


def test_the_scheduler_dispatches_on_time_and_follows_the_database(
    on_redis: Scale, tmp_path: Path
) -> None:
    scale = on_redis
    off = {f"schedule_{op}": "off" for op in ("link_listings", "sync_listings", "sync_orders")}

    def fake(name: str, **settings: str) -> None:
        store = FakeStore(tmp_path / f"{name}.json")
        store.create()
        add_connection(scale.hub, name, "fake", {"store": str(store.path), **off, **settings})

    fake("every2s", schedule_get_orders="2s")
    fake("quiet", schedule_get_orders="off")

    def starts(connection: str) -> list[float]:
        with scale.hub.db.session() as session:
            return [
                started.timestamp()
                for started in session.scalars(
                    select(Run.started_at)
                    .where(Run.connection_name == connection)
                    .order_by(Run.id)
                )
            ]

    worker = scale.worker(concurrency=2)
    scheduler = scale.spawn("schedule", env={"HUB_SCHEDULE_REFRESH": "1"})
    wait_for("five scheduled runs", lambda: len(starts("every2s")) >= 5)
    # Every 2 s (the first may wait for the worker to start): never twice for one due time,
    # never a due time skipped.
    gaps = [b - a for a, b in itertools.pairwise(starts("every2s")[1:])]
    assert all(1.5 <= gap <= 4.5 for gap in gaps), gaps
    sent = re.findall(r"sent every2s:get_orders \(due (\S+)\)", scheduler.text())
    assert len(sent) == len(set(sent)) >= 5
    lags = [float(x) for x in re.findall(r"connection=every2s \S+ lag=(\S+)", worker.text())]
    assert len(lags) >= 5 and all(lag < 2.0 for lag in lags[1:]), lags  # before the next is due
    assert starts("quiet") == []
    assert {r.operation for r in scale.runs("get_orders")} == {"get_orders"}
    assert not scale.runs("link_listings") and not scale.runs("sync_orders")

    # Reconfigured and added while it runs: picked up without a restart.
    configure_connection(scale.hub, "every2s", {"schedule_get_orders": "off"})
    fake("added", schedule_get_orders="2s")
    wait_for("the added connection's runs", lambda: len(starts("added")) >= 2)
    settled = len(starts("every2s"))
    wait_for("two more runs of the added one", lambda: len(starts("added")) >= 4)
    assert len(starts("every2s")) <= settled + 1  # at most one already in the queue


# --- one rate budget for every process --------------------------------------------------------

#: The shared budget (issue 12, item 4: ``HUB_REDIS_URL``) is built on another branch; until it
#: is installed, this test is expected to fail (and fails loudly once it passes: remove this).
SHARED_BUDGET = any(
    "HUB_REDIS_URL" in path.read_text(errors="replace")
    for package in ("hub_channeladvisor", "hub_core")
    for path in Path(__import__(package).__file__).parent.rglob("*.py")
)


@pytest.mark.xfail(
    not SHARED_BUDGET,
    reason="the Redis-shared rate budget (HUB_REDIS_URL) is not installed yet",
    strict=True,
)
def test_two_workers_and_a_cli_process_on_one_profile_never_pass_its_limit(
    on_redis: Scale, sandbox: ChannelAdvisorHarness, redis_broker: str
) -> None:
    """Three connections on one profile, each with 20 changed listings (one $batch of 21
    units): two workers and a CLI process send 63 units against a limit of 40 per window (the
    window scaled to 15 s, in the sandbox and the clients alike). The sandbox's log must show
    at most 40 in any window, and no 429 for the rate."""
    scale = on_redis
    limit = 40
    window = 15.0
    for number in range(20):
        sandbox.add_product(f"SKU-{number}", 1, 5)
    catalog = scale.workdir / "catalog.csv"
    catalog.write_text(
        "sku,title,quantity,price\n" + "".join(f"SKU-{n},T,1,5\n" for n in range(20))
    )
    from hub_core.services.catalog import import_catalog, set_product
    from hub_core.services.listings import link_listings, sync_listings

    import_catalog(scale.hub, str(catalog))
    for name in ("a", "b", "c"):
        add_connection(scale.hub, name, "channeladvisor", sandbox.connection_values())
        link_listings(scale.hub, name)
        sync_listings(scale.hub, name)
    for number in range(20):
        set_product(scale.hub, f"SKU-{number}", quantity=7)
    sandbox.sandbox.configure(rate_limit_per_minute=limit, rate_window_seconds=window)
    sandbox.sandbox.rate_limiter.reset()
    sandbox.sandbox.reset_log()

    shared = {
        "HUB_REDIS_URL": redis_broker,
        "HUB_CHANNELADVISOR_REQUESTS_PER_MINUTE": str(limit),
        "HUB_CHANNELADVISOR_RATE_WINDOW_SECONDS": str(window),
    }
    scale.worker(concurrency=2, env=shared)
    scale.worker(concurrency=2, env=shared)
    planned = scale.dispatch("a", "sync_listings") + scale.dispatch("b", "sync_listings")
    cli = scale.spawn("--database-url", scale.database_url, "listings", "sync", "c", env=shared)
    documents = collect(planned, WAIT)
    assert cli.process is not None and cli.process.wait(timeout=WAIT) == 0, cli.text()
    assert all(doc["status"] == "ok" for doc, _ in documents), documents

    log = sandbox.sandbox.request_log()
    assert log["throttled_rate"] == 0 and log["status_429"] == 0
    spent = [(e["time"], e["units"]) for e in log["entries"] if e["units"]]
    assert sum(units for _, units in spent) == 3 * 21
    busiest = max(
        sum(units for when, units in spent if start <= when < start + window)
        for start, _ in spent
    )
    assert busiest <= limit


# --- hub dispatch through the CLI -------------------------------------------------------------


def test_dispatch_wait_prints_the_runs_like_hub_run(
    on_redis: Scale, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from hub_core.cli import cli

    scale = on_redis
    store = FakeStore(tmp_path / "fake.json")
    store.create()
    store.add_product("SKU-1", "Mug", 0, "1.00")
    store.add_order([("SKU-1", 1)], shipping_text="UPS - Ground", order_id="O-1")
    add_connection(scale.hub, "shop", "fake", {"store": str(store.path)})
    add_mapping(scale.hub, "shop", "UPS - Ground", "standard")
    monkeypatch.setenv("HUB_BROKER_URL", scale.broker)
    monkeypatch.setenv("HUB_QUEUE", scale.queue)
    scale.worker(concurrency=2)

    def hub(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["--database-url", scale.database_url, *args])
        assert "Traceback" not in result.output, result.output
        return result

    result = hub("dispatch", "shop", "--wait", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["connection"] == "shop" and data["status"] == "ok"
    assert [s["operation"] for s in data["operations"]] == [
        "link_listings", "sync_listings", "get_orders", "sync_orders",
    ]  # fmt: skip
    assert [r["ref"] for r in data["operations"][2]["records"]] == ["O-1"]
    assert all(isinstance(s["run_id"], int) for s in data["operations"])

    # Some records failed: exit 4, as `hub run` would.
    ship_order(scale.hub, "shop", "O-1", tracking="T1", carrier="UPS", shipping_class="Ground")
    store.fail("sync_orders", ref="hub-1", times=1)
    result = hub("dispatch", "shop", "--operation", "sync_orders", "--wait")
    assert result.exit_code == 4, result.output
    assert "sync_orders" in result.stdout and "partial" in result.stdout
    result = hub("dispatch", "--all", "--operation", "sync_orders", "--wait", "--json")
    assert result.exit_code == 0, result.output
    [again] = json.loads(result.stdout)
    assert again["operations"][0]["counts"] == {"ok": 1}
    assert len(store.shipments_received()) == 1

    # Without --wait: the tasks are enqueued, nothing is printed but their ids.
    result = hub("dispatch", "--all", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["enqueued"]) == 4


def test_a_dispatch_refused_for_an_unreachable_result_backend_enqueues_nothing(
    on_redis: Scale, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker answers but ``--wait``'s result backend does not: one clear error naming it
    (exit 1) and an empty queue, so the repeated command enqueues each task once."""
    import redis
    from click.testing import CliRunner

    from hub_core.cli import cli

    scale = on_redis
    store = FakeStore(tmp_path / "fake.json")
    store.create()
    add_connection(scale.hub, "shop", "fake", {"store": str(store.path)})
    monkeypatch.setenv("HUB_BROKER_URL", scale.broker)
    monkeypatch.setenv("HUB_QUEUE", scale.queue)
    monkeypatch.setenv("HUB_RESULT_BACKEND", "redis://:pw-not-shown@127.0.0.1:9/0")
    queue = redis.Redis.from_url(scale.broker)

    def dispatch(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--database-url", scale.database_url, "dispatch", *args])

    try:
        result = dispatch("shop", "--wait")
        assert result.exit_code == 1, result.output
        assert "Cannot reach the result backend redis://:**@127.0.0.1:9/0" in result.output
        assert "pw-not-shown" not in result.output and "Traceback" not in result.output
        assert queue.llen(scale.queue) == 0  # nothing enqueued
        monkeypatch.delenv("HUB_RESULT_BACKEND")
        again = dispatch("shop")
        assert again.exit_code == 0, again.output
        assert queue.llen(scale.queue) == 4  # one task per operation, once
    finally:
        queue.delete(scale.queue)
        queue.close()
