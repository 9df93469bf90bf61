"""Chaos: exactly-once through network faults, throttling, lost answers and SIGKILLs.

Against the ChannelAdvisor sandbox (served from this process), the hub runs as child
processes for ``--cycles`` cycles of:

    catalog changes -> link -> sync listings -> new orders on the channel (some cancelled
    there after the import) -> get orders -> shipments recorded (partial and full) -> sync
    orders

Each operation runs either as a CLI command (``hub orders get shop``, as a merchant's cron
would run it) or as a task dispatched to a Celery worker (``hub worker``), chosen at random
among ``--via`` (default both). With the worker, the hub's database is a throw-away
PostgreSQL database and the broker a Redis database (``--broker``) with a queue of the run's
own. A fraction ``--fault-rate`` of the requests fail (500, 503, 429, connection reset,
timeout, 401 in mid-run, an answer lost after the change was applied), and the process
running the operation (the CLI, or the worker) is killed with SIGKILL ``--kills`` times in
all: at a commit point (``HUB_CRASH_AT``, see ``hub_core/crash.py``) or after a random delay,
inside or between the calls of an operation. A killed CLI command is run again, as the next
cron run would; a killed worker is restarted, and the broker hands its unacknowledged task
to it again (``redeliveries``). Then faults are turned off, ``hub run`` settles everything,
and the sandbox is compared with the hub:

* every order created on the channel is imported once (``duplicate_orders``,
  ``lost_orders``) and marked exported there (``unacknowledged_orders``);
* every shipment the hub holds reaches the channel once (``duplicate_shipments``: a hub
  shipment id found more than once in the order's fulfillments; ``lost_shipments``: a hub
  shipment of a live order not on the channel, or not ``sent`` in the hub);
* every linked listing has the catalog's quantity and price on the channel
  (``mismatched_listings``).

    .venv/bin/python bench/chaos.py [--cycles 8] [--kills 20] [--fault-rate 0.2] \\
        [--seed 1] [--via cli,worker] [--postgres URL] [--broker URL] [--json]

It asserts nothing; ``tests/chaos/`` runs a short version and asserts the zeros.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.crash import CRASH_ENV, POINTS
from hub_core.db import Database
from hub_core.services.leases import expire_all
from hub_core.testing.processes import stop_process

CONNECTION = "shop"
#: The fault kinds of a chaos run; each gets an equal share of the fault rate.
FAULT_KINDS = ("500", "503", "429", "reset", "timeout", "401", "lost_response")
#: Seconds the client waits for an answer (the ``timeout`` fault holds it longer).
READ_TIMEOUT = 2.0
#: How long a command may run before the run is called stuck (it is then killed).
COMMAND_LIMIT = 240.0
#: The commit points each operation passes (a kill at one of them is a sure hit).
OPERATION_POINTS = {
    "link": ["link_listings.answered", "channeladvisor.page", "channeladvisor.token"],
    "sync_listings": ["sync_listings.sent", "channeladvisor.batch", "channeladvisor.token"],
    "get_orders": [
        "get_orders.stored",
        "get_orders.acknowledged",
        "get_orders.chunk",
        "channeladvisor.page",
        "channeladvisor.token",
    ],
    "sync_orders": ["sync_orders.sent", "channeladvisor.shipped", "channeladvisor.token"],
}
OPERATION_COMMANDS = {
    "link": ["listings", "link", CONNECTION],
    "sync_listings": ["listings", "sync", CONNECTION],
    "get_orders": ["orders", "get", CONNECTION],
    "sync_orders": ["orders", "sync", CONNECTION],
}
#: The worker's task for each operation (``hub dispatch --operation``).
OPERATION_TASKS = {
    "link": "link_listings",
    "sync_listings": "sync_listings",
    "get_orders": "get_orders",
    "sync_orders": "sync_orders",
}
assert all(p in POINTS for points in OPERATION_POINTS.values() for p in points)
#: Where an operation runs: a CLI command, or a task of a Celery worker.
VIAS = ("cli", "worker")
DEFAULT_POSTGRES = os.environ.get(
    "HUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: A Redis database of its own (the queue is the run's own too).
DEFAULT_BROKER = "redis://127.0.0.1:6379/13"
#: Seconds before Redis hands a killed worker's unacknowledged task out again (production
#: keeps the default hour; a task running longer than this is handed out again too, which
#: must be as harmless as a redelivery after a kill), and between the worker's sweeps for
#: such tasks.
VISIBILITY_TIMEOUT = 15
RESTORE_SECONDS = 2
KILLED = -signal.SIGKILL


class ThrowawayPostgres:
    """A PostgreSQL database made for the run and dropped after it."""

    def __init__(self, admin_url: str) -> None:
        import psycopg
        from psycopg import sql
        from sqlalchemy import make_url

        base = make_url(admin_url)
        self.name = f"hub_chaos_{os.getpid()}_{secrets.token_hex(3)}"
        self.admin = psycopg.connect(
            host=base.host or "127.0.0.1", port=base.port or 5432,
            user=base.username or "postgres", password=base.password,
            dbname=base.database or "postgres", autocommit=True, connect_timeout=5,
        )  # fmt: skip
        self.admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.url = base.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        from psycopg import sql

        self.admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
        )
        self.admin.close()


def _die_with_parent() -> None:
    """In the worker's child process: SIGKILL it when the run dies (Linux), so that a run
    killed itself (a test's timeout) leaves no worker behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Worker:
    """``hub worker`` as a child process (one thread, so a kill hits the task it holds):
    started, SIGKILLed and restarted by its own pid; every start appends to one log."""

    def __init__(self, hub_bin: str, env: dict[str, str], log: Path) -> None:
        self.hub_bin = hub_bin
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        #: The ``HUB_CRASH_AT`` this process was started with.
        self.armed: str | None = None
        self.starts = 0

    def start(self, crash_at: str | None = None) -> None:
        """Start a worker (stopping the one running), dying at ``crash_at`` if given."""
        self.stop()
        env = dict(self.env)
        if crash_at:
            env[CRASH_ENV] = crash_at
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.hub_bin, "worker", "--concurrency", "1", "--loglevel", "INFO"],
                env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )  # fmt: skip
        self.armed = crash_at
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def died(self) -> bool:
        """Whether the worker was running and was killed (at a crash point, or by the run).

        :raises SystemExit: it ended otherwise (it could not start: the log says why).
        """
        code = None if self.process is None else self.process.poll()
        if code is None:
            return False
        if code != KILLED:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"hub worker exited {code}:\n{tail}")
        return True

    def kill(self) -> None:
        """SIGKILL: no goodbye, the task in hand unacknowledged."""
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (Celery's warm shutdown), SIGKILL if it is still there after 30 s."""
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None

    def redeliveries(self) -> int:
        """Tasks the worker got again (hub_core/worker/tasks.py logs each one)."""
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count(" redelivered: ")


class Chaos:
    """One chaos run: the sandbox, a hub database, the plan of kills, and the tallies."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = workdir
        self.vias: list[str] = args.via
        self.hub_bin = str(Path(sys.executable).with_name("hub"))
        self.env = {
            **os.environ,
            "HUB_HOME": str(workdir / "home"),
            "HUB_CHANNELADVISOR_READ_TIMEOUT": str(READ_TIMEOUT),
        }
        self.env.pop(CRASH_ENV, None)
        self.postgres: ThrowawayPostgres | None = None
        self.worker: Worker | None = None
        self.app: Any = None
        self.queue = f"hub-chaos-{secrets.token_hex(4)}"
        if "worker" in self.vias:
            # The worker's processes share the database: PostgreSQL, as in production.
            self.postgres = ThrowawayPostgres(args.postgres)
            self.database_url = self.postgres.url
            worker_env = {
                **self.env,
                "HUB_DATABASE_URL": self.database_url,
                "HUB_BROKER_URL": args.broker,
                "HUB_QUEUE": self.queue,
                "HUB_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
                "HUB_BROKER_RESTORE_SECONDS": str(RESTORE_SECONDS),
            }
            self.worker = Worker(self.hub_bin, worker_env, workdir / "worker.log")
        else:
            self.database_url = f"sqlite:///{workdir / 'hub.db'}"
        self.harness = ChannelAdvisorHarness(workdir)
        self.skus: list[str] = []
        self.created_orders: list[str] = []
        self.cancelled_orders: set[str] = set()
        self.cancelled_before_import: set[str] = set()
        self.cancelled_at: dict[str, datetime] = {}
        self.kills = 0
        self.kills_by_way: Counter[str] = Counter()
        self.kills_by_process: Counter[str] = Counter()
        self.operations_by_process: Counter[str] = Counter()
        #: Worker kills with a task in hand: each task must be handed out again and finish.
        self.tasks_killed = 0
        self.commands = 0
        self.exit_codes: Counter[int] = Counter()
        self.steps_left = args.cycles * len(OPERATION_COMMANDS)

    # -- the hub, as a child process -------------------------------------------------------

    def hub(self, *argv: str, crash_at: str | None = None, kill_after: float | None = None):
        """Run ``hub ARGV``; kill it at ``crash_at``, or ``kill_after`` seconds into its
        talking to the channel.

        :return: (exit code, stdout); -9 when it was killed.
        """
        env = dict(self.env)
        if crash_at:
            env[CRASH_ENV] = crash_at
        command = [self.hub_bin, "--database-url", self.database_url, *argv]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if kill_after is not None:
            self._kill_inside(process, kill_after)
        try:
            out, err = process.communicate(timeout=COMMAND_LIMIT)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.communicate()
            raise SystemExit(f"hub {' '.join(argv)} ran past {COMMAND_LIMIT} s") from None
        self.commands += 1
        code = process.returncode
        if os.environ.get("HUB_CHAOS_TRACE"):
            # Connection values are secrets (tokens): never echoed.
            shown = [
                "=".join(a.split("=", 2)[:2]) + "=***" if a.startswith("--set=") else a
                for a in argv
            ]
            print(f"[{code:>3}] hub {' '.join(shown)[:70]}", file=sys.stderr)
            if code not in (0, -signal.SIGKILL):
                print("      " + err.strip().replace("\n", "\n      ")[-1500:], file=sys.stderr)
        self.exit_codes[code] += 1
        if code == KILLED:
            self.killed("cli", crash_at)
        return code, out

    def killed(self, process: str, crash_at: str | None) -> None:
        """Count a kill of ``process`` (cli, worker); the dead run's lease is given up."""
        # Time passes: the dead run's lease expires and the next run may take over (the real
        # expiry, HUB_LEASE_SECONDS, is tested in tests/test_leases.py).
        db = Database(self.database_url, upgrade=False)
        try:
            expire_all(db)
        finally:
            db.dispose()
        self.kills += 1
        self.kills_by_way["commit_point" if crash_at else "timer"] += 1
        self.kills_by_process[process] += 1

    def _kill_inside(self, process: subprocess.Popen[str], delay: float) -> None:
        """SIGKILL ``process`` ``delay`` seconds after the channel saw its first request (a
        kill while Python is still starting would test nothing)."""
        seen = self.harness.sandbox.request_log(entries=False)["total"]
        deadline = time.monotonic() + COMMAND_LIMIT
        while process.poll() is None and time.monotonic() < deadline:
            if self.harness.sandbox.request_log(entries=False)["total"] > seen:
                try:
                    process.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                return
            time.sleep(0.02)

    def hub_json(self, *argv: str) -> Any:
        """A read-only command's JSON (never killed, never faulted: it reads the database)."""
        code, out = self.hub(*argv, "--json")
        if code != 0:
            raise SystemExit(f"hub {' '.join(argv)} --json exited {code}")
        return json.loads(out)

    def operation(self, name: str) -> None:
        """Run one operation (by the CLI or a worker), maybe killing it: kills are spread over
        the steps left."""
        # One via: no draw, so a CLI-only run keeps the random sequence of earlier versions.
        via = self.rng.choice(self.vias) if len(self.vias) > 1 else self.vias[0]
        self.operations_by_process[via] += 1
        kills_left = self.args.kills - self.kills
        chance = kills_left / max(1, self.steps_left)
        self.steps_left -= 1
        command = OPERATION_COMMANDS[name]

        def run(crash_at: str | None = None, kill_after: float | None = None) -> int:
            if via == "worker":
                return self.dispatch(name, crash_at=crash_at, kill_after=kill_after)
            return self.hub(*command, crash_at=crash_at, kill_after=kill_after)[0]

        if self.rng.random() >= chance:
            run()
            return
        # A planned kill can miss (the point was not reached, the run ended first): try again,
        # at most three times; the operation is run again anyway, as cron would.
        for _ in range(3):
            if self.rng.random() < 0.5:
                point = self.rng.choice(OPERATION_POINTS[name])
                code = run(crash_at=f"{point}:{self.rng.randint(1, 2)}")
            else:
                code = run(kill_after=self.rng.uniform(0.0, 1.5))
            if code == KILLED:
                break
        if code == KILLED and via == "cli":
            # The next run (cron's, a retry) starts from what the killed one committed. (A
            # worker's task is handed out again by the broker: that was its next run.)
            self.hub(*command)

    def dispatch(
        self, name: str, *, crash_at: str | None = None, kill_after: float | None = None
    ) -> int:
        """Run one operation as a task of the worker, as ``hub dispatch --wait`` does; kill the
        worker at ``crash_at`` (it is started with ``HUB_CRASH_AT``) or ``kill_after`` seconds
        into the task's talking to the channel, restart it, and wait for the task to finish.

        :return: the exit code ``hub dispatch --wait`` gives the run; -9 when the worker was
            killed holding the task (which then ran again, redelivered).
        """
        from hub_core.worker.dispatch import Planned, enqueue
        from hub_core.worker.tasks import step_exit_code

        worker = self.worker
        assert worker is not None
        began = time.monotonic()
        if crash_at or worker.armed or not worker.alive():
            worker.start(crash_at)
        planned = [Planned(CONNECTION, [OPERATION_TASKS[name]])]
        seen = self.harness.sandbox.request_log(entries=False)["total"]
        enqueue(self.app, planned, wait=True)
        result = planned[0].results[0]
        killed = False
        kill_at: float | None = None
        deadline = time.monotonic() + COMMAND_LIMIT
        while not result.ready():
            now = time.monotonic()
            if now > deadline:
                raise SystemExit(f"the worker's {name} ran past {COMMAND_LIMIT} s")
            if kill_after is not None and not killed:
                if kill_at is None:
                    if self.harness.sandbox.request_log(entries=False)["total"] > seen:
                        kill_at = now + kill_after
                elif now >= kill_at:
                    worker.kill()
            if worker.died():
                killed = True
                self.worker_killed(began)
                kill_after = None
            time.sleep(0.05)
        if worker.died():
            # Killed after the result was stored and before the task was acknowledged.
            killed = True
            self.worker_killed(began)
        if worker.armed:
            worker.start()  # a planned crash point that was not reached must not linger
        self.commands += 1
        step = result.get(propagate=False)
        code = int(step_exit_code(step)) if isinstance(step, dict) else 1
        if os.environ.get("HUB_CHAOS_TRACE"):
            seconds = time.monotonic() - began
            print(
                f"[{code:>3}] worker {name} {crash_at or ''}{' (killed)' if killed else ''} "
                f"{seconds:.1f} s",
                file=sys.stderr,
            )
        self.exit_codes[code] += 1
        return KILLED if killed else code

    # -- the story -------------------------------------------------------------------------

    def set_up(self) -> None:
        """The channel's products, the hub's catalog and connection, a shipping mapping."""
        self.harness.start()
        sandbox = self.harness.sandbox
        sandbox.seed = self.args.seed
        # Short pages and tokens: paging and token refreshes happen inside every operation.
        sandbox.configure(token_ttl=20, products_page_size=7, orders_page_size=3)
        for index in range(self.args.products):
            sku = f"CHAOS-{index:03d}"
            self.harness.add_product(sku, 5, Decimal("10.00"))
            self.skus.append(sku)
        rows = [(sku, 1 + i % 9, f"{10 + i}.50") for i, sku in enumerate(self.skus)]
        rows.append(("NOT-ON-CHANNEL", 3, "5.00"))  # a state (not_found), not a failure
        self.import_catalog(rows)
        values = [f"--set={k}={v}" for k, v in self.harness.connection_values().items()]
        self.must("connections", "add", CONNECTION, "--channel", "channeladvisor", *values)
        self.must(
            "shipping-mappings",
            "add",
            CONNECTION,
            "--channel-text",
            self.harness.shipping_text,
            "--policy",
            "standard",
        )

    def must(self, *argv: str) -> None:
        """A set-up command that must succeed."""
        code, _ = self.hub(*argv)
        if code != 0:
            raise SystemExit(f"hub {' '.join(argv)} exited {code}")

    def import_catalog(self, rows: list[tuple[str, int, str]]) -> None:
        """``hub catalog import`` of these (sku, quantity, price) rows."""
        path = self.workdir / "catalog.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sku", "title", "quantity", "price"])
            for sku, quantity, price in rows:
                writer.writerow([sku, f"Product {sku}", quantity, price])
        self.must("catalog", "import", str(path))

    def change_catalog(self) -> None:
        """New quantities and prices for a few SKUs."""
        chosen = self.rng.sample(self.skus, k=min(len(self.skus), self.rng.randint(2, 6)))
        rows = [
            (
                sku,
                self.rng.randint(0, 40),
                f"{self.rng.randint(5, 60)}.{self.rng.randint(0, 99):02d}",
            )
            for sku in chosen
        ]
        self.import_catalog(rows)

    def new_orders(self) -> None:
        """One to three orders arrive on the channel."""
        for _ in range(self.rng.randint(1, 3)):
            skus = self.rng.sample(self.skus, k=self.rng.randint(1, 3))
            lines = [(sku, self.rng.randint(1, 3)) for sku in skus]
            self.created_orders.append(self.harness.add_order(lines, self.harness.shipping_text))

    def cancel_on_channel(self) -> None:
        """Now and then the marketplace cancels an order: one the hub has imported (maybe
        with a shipment recorded, not yet sent), or a new one before the hub saw it."""
        roll = self.rng.random()
        if roll < 0.35:
            orders = self.hub_json("orders", "list", "--connection", CONNECTION)
            live = [
                o["channel_order_id"]
                for o in orders
                if o["status"] in ("imported", "partially_shipped")
                and o["channel_order_id"] not in self.cancelled_orders
            ]
            if live:
                self._cancel(self.rng.choice(live))
        elif roll < 0.5:
            order_id = self.harness.add_order(
                [(self.rng.choice(self.skus), 1)], self.harness.shipping_text
            )
            self.created_orders.append(order_id)
            self.cancelled_before_import.add(order_id)
            self._cancel(order_id)

    def _cancel(self, order_id: str) -> None:
        self.harness.cancel_order(order_id)
        self.cancelled_orders.add(order_id)
        self.cancelled_at[order_id] = datetime.now(UTC)

    def record_shipments(self) -> None:
        """Ship some open orders: the whole order, or one line in part."""
        orders = self.hub_json("orders", "list", "--connection", CONNECTION)
        open_orders = [o for o in orders if o["status"] in ("imported", "partially_shipped")]
        for order in self.rng.sample(open_orders, k=min(len(open_orders), 3)):
            argv = [
                "orders",
                "ship",
                CONNECTION,
                order["channel_order_id"],
                "--tracking",
                f"1Z{self.rng.randrange(10**9):09d}",
                "--carrier",
                self.harness.carrier,
                "--class",
                self.harness.shipping_class,
            ]
            unshipped = [
                line for line in order["lines"] if line["quantity"] > line["shipped_quantity"]
            ]
            if unshipped and self.rng.random() < 0.5:
                line = self.rng.choice(unshipped)
                argv += ["--item", f"{line['sku']}=1"]
            self.hub(*argv)

    def arm_faults(self) -> None:
        """Each fault kind gets an equal share of the fault rate (timeouts outlast the
        client's read timeout)."""
        share = self.args.fault_rate / len(FAULT_KINDS)
        for kind in FAULT_KINDS:
            # Batch parts get the status kinds too; connection kinds hit whole requests. A 401
            # is an access token refused in mid-run: API requests only (the token endpoint
            # refuses with OAuth errors, which are not transient).
            self.harness.sandbox.add_fault(
                kind,
                rate=share,
                delay_s=READ_TIMEOUT + 1.0,
                pattern="/v1/" if kind == "401" else None,
            )

    def faults(self) -> dict[str, Any]:
        """Faults injected, in total and by kind."""
        by_kind: Counter[str] = Counter()
        for rule in self.harness.sandbox.faults.rules:
            by_kind[rule.kind] += rule.injected
        requests = self.harness.sandbox.request_log(entries=False)["total"]
        return {
            "total": sum(by_kind.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "requests": requests,
        }

    def cycle(self) -> None:
        """One cycle of the story, under faults and kills."""
        self.change_catalog()
        self.operation("link")
        self.operation("sync_listings")
        self.new_orders()
        self.operation("get_orders")
        self.record_shipments()
        self.cancel_on_channel()
        self.operation("sync_orders")

    def settle(self) -> float:
        """Faults off; the worker's tasks all finished (redeliveries included); ``hub run``
        until it exits 0 twice in a row (at most 8 runs)."""
        started = time.monotonic()
        self.harness.sandbox.clear_faults()
        if self.worker is not None:
            self.drain()
        clean = 0
        for _ in range(8):
            code, _ = self.hub("run", CONNECTION)
            clean = clean + 1 if code == 0 else 0
            if clean == 2:
                break
        return round(time.monotonic() - started, 2)

    def worker_killed(self, began: float) -> None:
        """The worker died holding a task: count the kill, start a new worker, to which the
        broker hands the task again."""
        assert self.worker is not None
        if os.environ.get("HUB_CHAOS_TRACE"):
            print(f"      killed after {time.monotonic() - began:.1f} s", file=sys.stderr)
        self.killed("worker", self.worker.armed)
        self.tasks_killed += 1
        self.worker.start()

    def in_broker(self) -> int:
        """Messages of the run's queue waiting, or handed out and not yet acknowledged."""
        import redis

        client = redis.Redis.from_url(self.args.broker)
        try:
            # kombu keeps one list per priority, named after the queue.
            waiting = sum(
                client.llen(key)
                for key in client.scan_iter(match=f"{self.queue}*")
                if client.type(key) == b"list"
            )
            unacked = sum(
                1 for raw in client.hvals("unacked") if json.loads(raw)[2] == self.queue
            )
        finally:
            client.close()
        return waiting + unacked

    def drain(self) -> None:
        """Wait until the broker holds nothing of the run (a task handed out again after a
        kill runs now, at the latest): bounded by a few visibility timeouts."""
        assert self.worker is not None
        if not self.worker.alive() or self.worker.armed:
            self.worker.start()
        deadline = time.monotonic() + 6 * VISIBILITY_TIMEOUT + 60
        while self.in_broker() and time.monotonic() < deadline:
            time.sleep(0.5)

    def forget_queue(self) -> None:
        """Delete what the run left in the broker (its queue's lists, its unacked entries)."""
        import redis

        client = redis.Redis.from_url(self.args.broker)
        try:
            for key in list(client.scan_iter(match=f"{self.queue}*")):
                client.delete(key)
            client.delete(f"_kombu.binding.{self.queue}", f"_kombu.binding_permanent.{self.queue}")
            for tag, raw in client.hgetall("unacked").items():
                if json.loads(raw)[2] == self.queue:
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)
        finally:
            client.close()

    # -- the comparison --------------------------------------------------------------------

    def compare(self) -> dict[str, Any]:
        """The sandbox against the hub (see the module docstring)."""
        sandbox = self.harness.sandbox
        hub_orders = self.hub_json("orders", "list", "--connection", CONNECTION)
        ids = Counter(o["channel_order_id"] for o in hub_orders)
        status = {o["channel_order_id"]: o["status"] for o in hub_orders}
        eligible = set(self.created_orders) - self.cancelled_before_import
        channel_orders = {oid: sandbox.get_order(int(oid)) or {} for oid in self.created_orders}
        unacknowledged = [
            oid for oid, o in channel_orders.items() if not o.get("exported_by") and oid in ids
        ]

        shipments = self.hub_shipments()
        on_channel: Counter[str] = Counter()
        for order in channel_orders.values():
            for fulfillment in order.get("Fulfillments", []):
                ref = fulfillment.get("SellerFulfillmentID")
                if ref:
                    on_channel[ref] += 1
        shipped_after_cancel = 0
        for oid, cancelled_at in self.cancelled_at.items():
            for fulfillment in channel_orders[oid].get("Fulfillments", []):
                created = datetime.fromisoformat(
                    fulfillment["CreatedDateUtc"].replace("Z", "+00:00")
                )
                if str(fulfillment.get("SellerFulfillmentID") or "").startswith("hub-") and (
                    created > cancelled_at
                ):
                    shipped_after_cancel += 1
        live = [s for s in shipments if s["sync_status"] != "cancelled"]
        lost = [
            s
            for s in live
            if s["channel_order_id"] not in self.cancelled_orders
            and (on_channel[s["shipment_id"]] == 0 or s["sync_status"] != "sent")
        ]

        catalog = {p["sku"]: p for p in self.hub_json("catalog", "list")}
        listings = self.hub_json("listings", "list", CONNECTION)
        mismatched = []
        for listing in listings:
            if listing["status"] != "linked":
                continue
            product = self.harness.product(listing["sku"])
            want = catalog[listing["sku"]]
            if (
                product is None
                or product.quantity != int(want["quantity"])
                or product.price != Decimal(str(want["price"]))
            ):
                mismatched.append(listing["sku"])
        cancelled_after_import = self.cancelled_orders - self.cancelled_before_import
        return {
            "eligible_orders": len(eligible),
            "imported_orders": len(ids),
            "duplicate_orders": sum(n - 1 for n in ids.values() if n > 1),
            "lost_orders": len(eligible - set(ids)),
            "cancelled_orders": len(self.cancelled_orders),
            "cancelled_not_marked": sum(
                1 for oid in cancelled_after_import if status.get(oid) != "cancelled"
            ),
            "imported_after_cancel": len(self.cancelled_before_import & set(ids)),
            "shipped_after_cancel": shipped_after_cancel,
            "unacknowledged_orders": len(unacknowledged),
            "shipments": len(live),
            "duplicate_shipments": sum(n - 1 for n in on_channel.values() if n > 1),
            "lost_shipments": len(lost),
            "linked_listings": sum(1 for x in listings if x["status"] == "linked"),
            "mismatched_listings": len(mismatched),
            "mismatched_skus": mismatched[:10],
        }

    def hub_shipments(self) -> list[dict[str, Any]]:
        """Every shipment the hub holds, from its database (read only)."""
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        from hub_core.db import Database
        from hub_core.models import Shipment

        db = Database(self.database_url)
        try:
            with db.session() as session:
                rows = session.scalars(select(Shipment).options(selectinload(Shipment.order))).all()
                return [
                    {
                        "shipment_id": f"hub-{s.id}",
                        "channel_order_id": s.order.channel_order_id,
                        "sync_status": s.sync_status,
                    }
                    for s in rows
                ]
        finally:
            db.dispose()

    def run(self) -> dict[str, Any]:
        """The whole run; the figures."""
        started = time.monotonic()
        redeliveries = 0
        try:
            if self.worker is not None:
                from hub_core.worker.app import QUEUE_ENV, make_app

                os.environ[QUEUE_ENV] = self.queue  # the tasks this process sends go there
                self.app = make_app(self.args.broker)
            self.set_up()
            if self.worker is not None:
                self.worker.start()
            self.arm_faults()
            for _ in range(self.args.cycles):
                self.cycle()
            faults = self.faults()
            settle_seconds = self.settle()
            figures = self.compare()
        finally:
            self.harness.stop()
            if self.worker is not None:
                self.worker.stop()
                redeliveries = self.worker.redeliveries()
                self.forget_queue()
            if self.postgres is not None:
                self.postgres.drop()
        return {
            "cycles": self.args.cycles,
            "via": self.vias,
            "database": "postgresql" if self.postgres else "sqlite",
            "kills": self.kills,
            "kills_planned": self.args.kills,
            "kills_by_way": dict(self.kills_by_way),
            "kills_by_process": {via: self.kills_by_process[via] for via in self.vias},
            "operations_by_process": {via: self.operations_by_process[via] for via in self.vias},
            "worker_tasks_killed": self.tasks_killed,
            "redeliveries": redeliveries,
            "worker_starts": self.worker.starts if self.worker else 0,
            "fault_rate": self.args.fault_rate,
            "seed": self.args.seed,
            "faults": faults["total"],
            "faults_by_kind": faults["by_kind"],
            "requests_under_faults": faults["requests"],
            **figures,
            "settle_seconds": settle_seconds,
            "commands": self.commands,
            "exit_codes": {str(k): v for k, v in sorted(self.exit_codes.items())},
            "seconds": round(time.monotonic() - started, 1),
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (contract: --cycles --kills --fault-rate --seed --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=8, help="story cycles (default 8)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to aim for (20)")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="failing requests (0.2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument("--products", type=int, default=24, help="channel products (24)")
    parser.add_argument(
        "--via", default="cli,worker",
        help="where operations run, chosen at random per operation: cli, worker (default both)",
    )  # fmt: skip
    parser.add_argument(
        "--postgres", default=DEFAULT_POSTGRES,
        help="PostgreSQL to make the run's throw-away database in (with the worker)",
    )  # fmt: skip
    parser.add_argument(
        "--broker", default=DEFAULT_BROKER, help=f"Redis broker of the worker ({DEFAULT_BROKER})"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.kills < 0 or not 0 <= args.fault_rate <= 1 or args.products < 3:
        parser.error("--cycles >= 1, --kills >= 0, 0 <= --fault-rate <= 1, --products >= 3")
    args.via = [v.strip() for v in args.via.split(",") if v.strip()]
    if not args.via or any(v not in VIAS for v in args.via) or len(set(args.via)) < len(args.via):
        parser.error("--via takes cli, worker or cli,worker")
    if "worker" in args.via and not args.broker.startswith(("redis://", "rediss://")):
        parser.error("--broker must be a Redis URL (redis://HOST:PORT/DB)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run, print the figures; exit 1 when exactly-once was broken."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hub-chaos-") as tmp:
        figures = Chaos(args, Path(tmp)).run()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        width = max(map(len, figures))
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    broken = sum(
        figures[k]
        for k in (
            "duplicate_orders",
            "lost_orders",
            "duplicate_shipments",
            "lost_shipments",
            "mismatched_listings",
            "cancelled_not_marked",
            "imported_after_cancel",
            "shipped_after_cancel",
        )
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
