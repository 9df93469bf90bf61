"""Chaos: exactly-once through network faults, throttling, lost answers and SIGKILLs.

Against the ChannelAdvisor sandbox (served from this process), the hub's CLI runs as child
processes, exactly as a merchant's cron would run it, for ``--cycles`` cycles of:

    catalog changes -> link -> sync listings -> new orders on the channel (some cancelled
    there after the import) -> get orders -> shipments recorded (partial and full) -> sync
    orders

while a fraction ``--fault-rate`` of the requests fail (500, 503, 429, connection reset,
timeout, 401 in mid-run, an answer lost after the change was applied), and the hub is
killed with SIGKILL ``--kills`` times: at a commit point (``HUB_CRASH_AT``, see
``hub_core/crash.py``) or after a random delay, inside or between the calls of an
operation. Then faults are turned off, ``hub run`` settles everything, and the sandbox is
compared with the hub:

* every order created on the channel is imported once (``duplicate_orders``,
  ``lost_orders``) and marked exported there (``unacknowledged_orders``);
* every shipment the hub holds reaches the channel once (``duplicate_shipments``: a hub
  shipment id found more than once in the order's fulfillments; ``lost_shipments``: a hub
  shipment of a live order not on the channel, or not ``sent`` in the hub);
* every linked listing has the catalog's quantity and price on the channel
  (``mismatched_listings``).

    .venv/bin/python bench/chaos.py [--cycles 8] [--kills 20] [--fault-rate 0.2] \\
        [--seed 1] [--json]

It asserts nothing; ``tests/chaos/`` runs a short version and asserts the zeros.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
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
assert all(p in POINTS for points in OPERATION_POINTS.values() for p in points)


class Chaos:
    """One chaos run: the sandbox, a hub database, the plan of kills, and the tallies."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = workdir
        self.database_url = f"sqlite:///{workdir / 'hub.db'}"
        self.hub_bin = str(Path(sys.executable).with_name("hub"))
        self.env = {
            **os.environ,
            "HUB_HOME": str(workdir / "home"),
            "HUB_CHANNELADVISOR_READ_TIMEOUT": str(READ_TIMEOUT),
        }
        self.env.pop(CRASH_ENV, None)
        self.harness = ChannelAdvisorHarness(workdir)
        self.skus: list[str] = []
        self.created_orders: list[str] = []
        self.cancelled_orders: set[str] = set()
        self.cancelled_before_import: set[str] = set()
        self.cancelled_at: dict[str, datetime] = {}
        self.kills = 0
        self.kills_by_way: Counter[str] = Counter()
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
            print(f"[{code:>3}] hub {' '.join(argv)[:70]}", file=sys.stderr)
            if code not in (0, -signal.SIGKILL):
                print("      " + err.strip().replace("\n", "\n      ")[-1500:], file=sys.stderr)
        self.exit_codes[code] += 1
        if code == -signal.SIGKILL:
            # Time passes: the dead run's lease expires and the next run may take over.
            db = Database(self.database_url, upgrade=False)
            try:
                expire_all(db)
            finally:
                db.dispose()
            self.kills += 1
            self.kills_by_way["commit_point" if crash_at else "timer"] += 1
        return code, out

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
        """Run one operation, maybe killing it: kills are spread over the steps left."""
        kills_left = self.args.kills - self.kills
        chance = kills_left / max(1, self.steps_left)
        self.steps_left -= 1
        command = OPERATION_COMMANDS[name]
        if self.rng.random() >= chance:
            self.hub(*command)
            return
        # A planned kill can miss (the point was not reached, the run ended first): try again,
        # at most three times; the operation is run again anyway, as cron would.
        for _ in range(3):
            if self.rng.random() < 0.5:
                point = self.rng.choice(OPERATION_POINTS[name])
                code, _ = self.hub(*command, crash_at=f"{point}:{self.rng.randint(1, 2)}")
            else:
                code, _ = self.hub(*command, kill_after=self.rng.uniform(0.0, 1.5))
            if code == -signal.SIGKILL:
                break
        if code == -signal.SIGKILL:
            # The next run (cron's, a retry) starts from what the killed one committed.
            self.hub(*command)

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
        """Faults off; ``hub run`` until it exits 0 twice in a row (at most 8 runs)."""
        started = time.monotonic()
        self.harness.sandbox.clear_faults()
        clean = 0
        for _ in range(8):
            code, _ = self.hub("run", CONNECTION)
            clean = clean + 1 if code == 0 else 0
            if clean == 2:
                break
        return round(time.monotonic() - started, 2)

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
        self.set_up()
        try:
            self.arm_faults()
            for _ in range(self.args.cycles):
                self.cycle()
            faults = self.faults()
            settle_seconds = self.settle()
            figures = self.compare()
        finally:
            self.harness.stop()
        return {
            "cycles": self.args.cycles,
            "kills": self.kills,
            "kills_planned": self.args.kills,
            "kills_by_way": dict(self.kills_by_way),
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
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.kills < 0 or not 0 <= args.fault_rate <= 1 or args.products < 3:
        parser.error("--cycles >= 1, --kills >= 0, 0 <= --fault-rate <= 1, --products >= 3")
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
