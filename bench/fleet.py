"""A fleet: M ChannelAdvisor connections run by the scheduler and W Celery workers (issue 12).

Each connection has its own sandbox profile (and refresh token) holding the catalog's SKUs;
while the phase runs, catalog products change (every connection then has listings to sync),
orders arrive on random profiles, and imported orders get shipped (so sync orders has work).
``hub schedule`` runs every operation at the default intervals divided by ``--scale``
(``HUB_SCHEDULE_SCALE``), and W ``hub worker`` processes (``--concurrency`` threads each) do
the work, on a throw-away PostgreSQL database and a Redis (or RabbitMQ) broker.

Reported per W: operations finished per minute, schedule lag (due -> start, from the workers'
logs) p50/p95, the busiest profile's units in any 60 s against ChannelAdvisor's 2,000, 429s,
database connections in use (``pg_stat_activity``, sampled), and worker RSS (sampled). It
asserts nothing. The lag is given twice: over every task, and in the steady state (tasks due
after the cold start, ``--warmup`` seconds, when every operation of every connection is due
at once).

The workers share ChannelAdvisor's rate budget through Redis (``--redis``, default
``HUB_REDIS_URL`` or ``redis://127.0.0.1:6379/0``), as a fleet should run; ``--redis off``
measures them with a budget each (two workers then pass the 5 in flight per application).

    .venv/bin/python bench/fleet.py [--connections 200] [--workers 1,2] [--duration 120]
        [--scale 60] [--concurrency 4] [--latency-ms 30] [--broker redis://...]
        [--redis redis://...|off] [--warmup S] [--json]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Column, emit, machine, note, table

HUB = str(Path(sys.executable).with_name("hub"))
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: ChannelAdvisor's limit: units per profile in any 60 s.
LIMIT = 2000
WINDOW = 60.0
FIRST_PROFILE = 50_000_000
SKUS = 20
#: Operations a connection needs a minute at the default intervals (1h, 15m, 15m, 15m).
OPS_PER_CONNECTION_MINUTE = 1 / 60 + 3 / 15


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile (nearest rank), or None."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Database:
    """A throw-away PostgreSQL database (created, dropped)."""

    def __init__(self, base: str) -> None:
        import psycopg
        from sqlalchemy import make_url

        self.base = make_url(base)
        self.name = f"hub_fleet_{os.getpid()}_{secrets.token_hex(3)}"
        self.admin = psycopg.connect(
            host=self.base.host, port=self.base.port or 5432, user=self.base.username,
            dbname=self.base.database, autocommit=True,
        )  # fmt: skip
        self.admin.execute(f'CREATE DATABASE "{self.name}"')
        self.url = self.base.set(database=self.name).render_as_string(hide_password=False)

    def connections_in_use(self) -> int:
        """Backends connected to the database now."""
        row = self.admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def drop(self) -> None:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Fleet:
    """One phase: a sandbox with M profiles, a fresh database, the scheduler, W workers."""

    def __init__(self, args: argparse.Namespace, workers: int, workdir: Path) -> None:
        from hub_channeladvisor_sandbox import DEMO_APPLICATION_ID, DEMO_SHARED_SECRET, Sandbox

        self.args = args
        self.workers = workers
        self.workdir = workdir
        self.app_id, self.secret = DEMO_APPLICATION_ID, DEMO_SHARED_SECRET
        self.sandbox = Sandbox(
            seed=1, token_ttl=24 * 3600, latency_ms=args.latency_ms,
            latency_jitter_ms=args.jitter_ms, max_logged_bodies=0,
        )  # fmt: skip
        self.sandbox.log.max_entries = 2_000_000
        self.url = self.sandbox.start()
        self.db = Database(args.postgres)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stop = threading.Event()
        self.samples: dict[str, list[float]] = defaultdict(list)

    # -- set-up ------------------------------------------------------------------------------

    def setup(self) -> None:
        from hub_channeladvisor_sandbox.constants import DEFAULT_PROFILES
        from hub_core.db import Database as HubDatabase
        from hub_core.plugins import Registry
        from hub_core.services import Hub
        from hub_core.services.catalog import import_catalog
        from hub_core.services.connections import add_connection
        from hub_core.services.shipping import add_mapping

        self.hub = Hub(db=HubDatabase(self.db.url), registry=Registry.load())
        catalog = self.workdir / "catalog.csv"
        catalog.write_text(
            "sku,title,quantity,price\n"
            + "".join(f"SKU-{n:06d},Product {n},10,9.99\n" for n in range(1, SKUS + 1))
        )
        import_catalog(self.hub, str(catalog))
        for number in range(self.args.connections):
            profile = FIRST_PROFILE + number
            refresh = f"fleet-refresh-{number}"
            # The sandbox has no admin call for a new profile: add one like its defaults.
            with self.sandbox.store.lock:
                self.sandbox.store.profiles.add(
                    {**DEFAULT_PROFILES[0], "ID": profile, "AccountName": f"Shop {number}"}
                )
            self.sandbox.add_refresh_token(refresh, self.app_id, (profile,))
            self.sandbox.seed_products(count=SKUS, profile_id=profile, start_index=1)
            add_connection(
                self.hub, f"shop-{number:04d}", "channeladvisor",
                {
                    "access_token": self.sandbox.issue_access_token(refresh),
                    "refresh_token": refresh, "profile_id": str(profile),
                    "application_id": self.app_id, "shared_secret": self.secret,
                    "base_url": self.url,
                },
            )  # fmt: skip
            add_mapping(self.hub, f"shop-{number:04d}", "UPS - Ground", "standard")
        self.sandbox.set_carriers({"UPS": ["Ground"]})

    # -- activity ----------------------------------------------------------------------------

    def activity(self) -> None:
        """Listings change, orders arrive, imported orders get shipped: once a scaled minute
        (every 60/F s), on a fixed random stream."""
        from sqlalchemy import select

        from hub_core.models import Connection, Order
        from hub_core.services.catalog import set_product
        from hub_core.services.shipments import ship_order

        rng = random.Random(7)
        tick = 60.0 / self.args.scale
        while not self.stop.wait(tick):
            for sku in rng.sample(range(1, SKUS + 1), 3):
                set_product(self.hub, f"SKU-{sku:06d}", quantity=rng.randrange(0, 50))
            arriving = max(1, self.args.connections // 10)
            for number in rng.sample(range(self.args.connections), arriving):
                self.sandbox.seed_orders(
                    [{
                        "Items": [{"Sku": f"SKU-{rng.randrange(1, SKUS + 1):06d}", "Quantity": 1}],
                        "RequestedShippingCarrier": "UPS", "RequestedShippingClass": "Ground",
                        "ProfileID": FIRST_PROFILE + number,
                    }],
                    profile_id=FIRST_PROFILE + number,
                )  # fmt: skip
            with self.hub.db.session() as session:
                waiting = session.execute(
                    select(Connection.name, Order.channel_order_id)
                    .join(Connection, Order.connection_id == Connection.id)
                    .where(Order.status == "imported")
                    .limit(max(1, self.args.connections // 10))
                ).all()
            for connection, order_id in waiting:
                try:
                    ship_order(
                        self.hub, connection, order_id, tracking=f"T{order_id}", carrier="UPS",
                        shipping_class="Ground",
                    )  # fmt: skip
                except Exception as exc:  # measured elsewhere; keep the activity going
                    note(f"  ship {order_id}: {exc}")

    def sample(self) -> None:
        """Database connections in use and worker RSS, once a second."""
        while not self.stop.wait(1.0):
            self.samples["db_connections"].append(self.db.connections_in_use())
            for index, process in enumerate(self.processes[1:]):
                self.samples[f"rss_{index}"].append(rss_mb(process.pid))

    # -- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "HUB_DATABASE_URL": self.db.url,
            "HUB_BROKER_URL": self.args.broker,
            "HUB_QUEUE": f"fleet-{self.db.name}",
            "HUB_SCHEDULE_SCALE": str(self.args.scale),
            "HUB_SCHEDULE_REFRESH": "5",
        }
        env.pop("HUB_REDIS_URL", None)
        if self.args.redis != "off":
            env["HUB_REDIS_URL"] = self.args.redis
        with (self.workdir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([HUB, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def run(self) -> dict[str, Any]:
        note(f"W={self.workers}: setting up {self.args.connections} connections")
        self.setup()
        self.sandbox.reset_log()
        self.spawn("schedule", "schedule")
        for index in range(self.workers):
            self.spawn(f"worker-{index}", "worker", "--concurrency", str(self.args.concurrency))
        threads = [threading.Thread(target=f, daemon=True) for f in (self.activity, self.sample)]
        for thread in threads:
            thread.start()
        started = time.time()
        note(f"W={self.workers}: running {self.args.duration:g} s")
        self.stop.wait(self.args.duration)
        self.stop.set()
        finished = time.time()
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        for thread in threads:
            thread.join(timeout=30)
        return self.report(started, finished)

    # -- numbers -----------------------------------------------------------------------------

    def report(self, started: float, finished: float) -> dict[str, Any]:
        from sqlalchemy import func, select

        from hub_core.models import Run

        with self.hub.db.session() as session:
            runs = session.execute(
                select(Run.operation, Run.status, func.count()).group_by(Run.operation, Run.status)
            ).all()
        done = sum(n for _, status, n in runs if status != "running")
        by_status: dict[str, int] = defaultdict(int)
        for _, status, n in runs:
            by_status[status] += n
        lags, steady = [], []
        # Steady state: tasks due after the cold start (when everything was due at once).
        warm = started + self.args.warmup
        for index in range(self.workers):
            text = (self.workdir / f"worker-{index}.log").read_text(errors="replace")
            for lag, due in re.findall(r"schedule-lag \S+ \S+ lag=(\S+) due=(\S+)", text):
                lags.append(float(lag))
                if datetime.fromisoformat(due).timestamp() >= warm:
                    steady.append(float(lag))
        log = self.sandbox.request_log()
        per_profile: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for entry in log["entries"]:
            if entry["units"] and entry["profile_id"] is not None:
                per_profile[entry["profile_id"]].append((entry["time"], entry["units"]))
        peak = 0
        for spent in per_profile.values():
            for index, (start, _) in enumerate(spent):
                peak = max(peak, sum(u for when, u in spent[index:] if when < start + WINDOW))
        minutes = (finished - started) / 60.0
        rss = [max(self.samples[f"rss_{i}"], default=0.0) for i in range(self.workers)]
        ops_per_minute = done / minutes
        due_per_minute = self.args.connections * OPS_PER_CONNECTION_MINUTE * self.args.scale
        self.hub.db.dispose()
        self.sandbox.stop()
        self.db.drop()
        return {
            "workers": self.workers,
            "connections": self.args.connections,
            "concurrency": self.args.concurrency,
            "minutes": round(minutes, 2),
            "operations": done,
            "ops_per_minute": round(ops_per_minute, 1),
            "due_per_minute": round(due_per_minute, 1),
            "runs_by_status": dict(by_status),
            "lag_p50_s": percentile(lags, 0.5),
            "lag_p95_s": percentile(lags, 0.95),
            "lag_samples": len(lags),
            "steady_lag_p50_s": percentile(steady, 0.5),
            "steady_lag_p95_s": percentile(steady, 0.95),
            "steady_lag_samples": len(steady),
            "warmup_s": self.args.warmup,
            "shared_budget": self.args.redis != "off",
            "peak_profile_units_60s": peak,
            "limit_units_60s": LIMIT,
            "http_requests": log["total"],
            "status_429": log["status_429"],
            "throttled_in_flight": log["throttled_in_flight"],
            # Most requests the sandbox admitted at once for the application (limit 5).
            "max_in_flight": log["max_in_flight"],
            "max_concurrent_attempts": log["max_concurrent_attempts"],
            "db_connections_max": max(self.samples["db_connections"], default=0),
            "db_connections_mean": round(statistics.fmean(self.samples["db_connections"]), 1)
            if self.samples["db_connections"]
            else None,
            "worker_rss_mb_max": round(max(rss, default=0.0), 1),
            # Saturated (did less than was due): the workers' capacity is what they did, and
            # at the real default intervals it serves this many connections.
            "saturated": ops_per_minute < due_per_minute * 0.95,
            "connections_served_at_defaults": round(ops_per_minute / OPS_PER_CONNECTION_MINUTE),
        }


COLUMNS = [
    Column("workers", "W"),
    Column("connections", "M"),
    Column("ops_per_minute", "ops/min", ",.0f"),
    Column("due_per_minute", "due/min", ",.0f"),
    Column("lag_p50_s", "lag p50 s", ".2f"),
    Column("lag_p95_s", "lag p95 s", ".2f"),
    Column("steady_lag_p50_s", "steady p50 s", ".2f"),
    Column("steady_lag_p95_s", "steady p95 s", ".2f"),
    Column("peak_profile_units_60s", "peak units/60s"),
    Column("limit_units_60s", "limit"),
    Column("status_429", "429s"),
    Column("max_in_flight", "in flight max"),
    Column("db_connections_max", "db conns max"),
    Column("worker_rss_mb_max", "worker RSS MB", ".0f"),
    Column("saturated", "saturated"),
    Column("connections_served_at_defaults", "serves at defaults", ",d"),
]


def render(report: dict[str, Any]) -> str:
    return table(report["phases"], COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--scale", type=float, default=60.0, help="intervals divided by F")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker")
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument(
        "--broker", default=os.environ.get("HUB_BROKER_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--postgres", default=os.environ.get("HUB_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("HUB_REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="HUB_REDIS_URL of the workers (the shared rate budget), or 'off'",
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="cold start, seconds (default duration/3)"
    )
    parser.add_argument("--keep", metavar="DIR", help="keep the processes' logs in DIR")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.duration / 3
    import tempfile

    from cryptography.fernet import Fernet

    # One key for this process (which adds the connections) and its workers, none on disk.
    os.environ.setdefault("HUB_SECRET_KEY", Fernet.generate_key().decode())

    phases = []
    for workers in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory(prefix="hub-fleet-") as scratch:
            workdir = Path(args.keep or scratch) / f"w{workers}"
            workdir.mkdir(parents=True, exist_ok=True)
            phases.append(Fleet(args, workers, workdir).run())
    emit({"machine": machine(), "args": vars(args), "phases": phases}, args.json, render)


if __name__ == "__main__":
    main()
