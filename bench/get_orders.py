"""Get orders: importing O new orders and marking each one exported, against the bound.

The sandbox holds O new orders (ready to ship, created in the last two days, 1-3 lines, a
mapped shipping method); the hub has shipping mappings for them. The hub's ``get_orders``
runs in a worker process: it pages through ``Orders?exported=false`` (the sandbox answers 20
orders a page, as ChannelAdvisor's docs say), stores the orders, then sends one
``POST Orders(ID)/Export`` per order, never batched (reference §4.5, §6).

The bound: ``max(units / rate, round trips x L / 5)`` with ``pages + O`` requests, each one
unit and one round trip (pages = ``ceil(O / 20)``). It assumes the pages could overlap with
the exports; they cannot overlap each other (each next link comes with the page before).

    .venv/bin/python bench/get_orders.py [--orders 1000,10000] [--scale 20] [--latency-ms 30]
        [--jitter-ms 10] [--profile FILE] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import Bound, Column

#: Shipping methods of the generated orders, each mapped to a hub policy.
METHODS = [("UPS", "Ground"), ("FedEx", "Home Delivery"), ("USPS", "Priority Mail")]
PRODUCTS = 200


# --- the worker ---------------------------------------------------------------------------


def worker_get_orders(args: argparse.Namespace) -> None:
    """Run the hub's get orders once and report its time, outcome and peak RSS."""
    from hub_core.services import Hub
    from hub_core.services.orders import get_orders

    hub = Hub.open(args.db)
    limiter = common.scale_client(hub, common.scale_of(args))
    rss_before = common.current_rss_mb()
    started = time.perf_counter()
    result = common.profiled(args.profile, lambda: get_orders(hub, common.CONNECTION))
    seconds = time.perf_counter() - started
    hub.db.dispose()
    common.worker_reply(
        {
            "seconds": round(seconds, 3),
            "status": result.status,
            "counts": result.counts,
            "failed": result.failed,
            "rss_before_mb": rss_before,
            **common.limiter_stats(limiter),
        }
    )


# --- the run ------------------------------------------------------------------------------


def seed_orders(sandbox: common.BenchSandbox, count: int) -> None:
    """``count`` new orders, all eligible for import with the default settings."""
    rng = random.Random(count)
    sb = sandbox.sandbox
    sb.seed_products(
        [
            {"Sku": f"SKU-{i:07d}", "Quantity": 100, "BuyItNowPrice": 5.0 + i % 50}
            for i in range(1, PRODUCTS + 1)
        ]
    )
    now = dt.datetime.now(dt.UTC)
    orders = []
    for n in range(count):
        carrier, shipping_class = METHODS[n % len(METHODS)]
        lines = rng.sample(range(1, PRODUCTS + 1), rng.randint(1, 3))
        orders.append(
            {
                "SiteOrderID": f"BENCH-{n:07d}",
                "CreatedDateUtc": (now - dt.timedelta(minutes=rng.uniform(5, 2880))).isoformat(),
                "RequestedShippingCarrier": carrier,
                "RequestedShippingClass": shipping_class,
                "Items": [{"Sku": f"SKU-{i:07d}", "Quantity": rng.randint(1, 3)} for i in lines],
            }
        )
    sb.seed_orders(orders)


def exported_count(sandbox: common.BenchSandbox) -> int:
    """Orders the sandbox holds as exported by the demo application."""
    from hub_channeladvisor_sandbox import DEMO_APPLICATION_ID

    store = sandbox.sandbox.store
    with store.lock:
        return sum(
            1 for row in store.orders.rows.values() if DEMO_APPLICATION_ID in row["_exported_by"]
        )


def run_case(
    sandbox: common.BenchSandbox, scale: common.Scale, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One get orders of ``count`` new orders; one row."""
    from hub_core.services.shipping import add_mapping

    sandbox.sandbox.reset()
    common.note(f"{count:,} orders: seeding")
    seed_orders(sandbox, count)
    with tempfile.TemporaryDirectory() as tmp:
        hub = common.open_hub(Path(tmp))
        common.add_bench_connection(hub, sandbox)
        for carrier, shipping_class in METHODS:
            add_mapping(hub, common.CONNECTION, f"{carrier} - {shipping_class}", "standard")
        hub.db.dispose()
        common.note(f"{count:,} orders: hub get orders")
        sandbox.fresh()
        extra = ["--profile", f"{args.profile}.{count}"] if args.profile else []
        result = common.run_worker(
            "get_orders.py",
            "get-orders",
            ["--db", common.database_url(Path(tmp)), *scale.args(), *extra],
        )
        log = sandbox.stats()
    counts = log["counts"]
    pages = counts.get("GET /v1/Orders", 0)
    exports = counts.get("POST /v1/Orders({id})/Export", 0)
    refetches = counts.get("GET /v1/Orders({id})", 0)
    ideal_pages = math.ceil(count / int(sandbox.sandbox.orders_page_size))
    requests = ideal_pages + count
    bound = Bound(requests, requests, scale.rate_per_minute, scale.latency, window=scale.window)
    return {
        "orders": count,
        "imported": sum(
            v for k, v in result["counts"].items() if k in ("imported", "held", "cancelled")
        ),
        "exported": exported_count(sandbox),
        "pages": pages,
        "ideal_pages": ideal_pages,
        "exports": exports,
        "refetches": refetches,
        "http_requests": log["http_requests"],
        "units": log["units"],
        "seconds": result["seconds"],
        "bound_s": round(bound.seconds, 3),
        "x_bound": common.ratio(result["seconds"], bound.seconds),
        "status_429": log["status_429"],
        "max_in_flight": log["max_in_flight"],
        "peak_rss_mb": result["peak_rss_mb"],
        "bound": bound.to_json(),
        "worker": result,
        "sandbox": log,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every order count, then the report."""
    scale = common.scale_of(args)
    with common.BenchSandbox(scale) as sandbox:
        rows = [run_case(sandbox, scale, int(count), args) for count in args.orders.split(",")]
    targets = {
        f"get_{row['orders']}_within_1.2x_bound": {
            "goal": 1.2,
            "value": row["x_bound"],
            "met": row["x_bound"] is not None and row["x_bound"] <= 1.2,
        }
        for row in rows
    }
    return {
        "benchmark": "get_orders",
        "machine": common.machine(),
        "scale": scale.to_json(),
        "rows": rows,
        "targets": targets,
    }


COLUMNS = [
    Column("orders", "orders", ","),
    Column("imported", "imported", ","),
    Column("exported", "exported", ","),
    Column("pages", "pages", ","),
    Column("exports", "Export req", ","),
    Column("refetches", "re-reads", ","),
    Column("http_requests", "HTTP req", ","),
    Column("units", "units", ","),
    Column("seconds", "wall s", ".2f"),
    Column("bound_s", "bound s", ".2f"),
    Column("x_bound", "x bound", ".2f"),
    Column("status_429", "429s", ","),
    Column("max_in_flight", "in flight", ""),
    Column("peak_rss_mb", "peak RSS MB", ".0f"),
]


def render(report: Mapping[str, Any]) -> str:
    """The table and the targets, as text."""
    scale = report["scale"]
    lines = [
        "get orders: O new orders, imported and each marked exported",
        f"sandbox: latency {scale['latency_ms']:g} ms + up to {scale['jitter_ms']:g} ms jitter; "
        f"rate 2,000 units per {scale['window_s']:g} s (F={scale['factor']:g}); 5 in flight; "
        "20 orders a page",
        "",
        common.table(report["rows"], COLUMNS),
        "",
        "targets:",
    ]
    for name, target in report["targets"].items():
        lines.append(
            f"  {name}: {target['value']} ({'met' if target['met'] else 'MISSED'}, goal "
            f"{target['goal']})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="1000,10000", help="comma list of order counts O")
    parser.add_argument(
        "--profile", help="write a cProfile of each hub run to FILE.<orders> (main thread)"
    )
    parser.add_argument("--db", help=argparse.SUPPRESS)
    common.add_scale_options(parser)
    args = parser.parse_args()
    if args.worker:
        worker_get_orders(args)
    else:
        common.emit(run(args), args.json, render)


if __name__ == "__main__":
    main()
