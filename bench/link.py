"""Link: finding N catalog SKUs in a ChannelAdvisor catalog of M products, both ways.

For each case N:M the sandbox holds M products and the hub's catalog N of their SKUs (none
linked). Three runs, each in a worker process against a fresh rate budget:

* **lookups** — ``link_listings`` with the plugin's batched SKU lookups (``$batch`` of 100
  ``Sku eq`` queries, up to 5 in flight), forced by ``HUB_CHANNELADVISOR_LINK_STRATEGY``;
* **sweep** — the same with the catalog sweep forced (every page of ``$select=ID,Sku``,
  following ``@odata.nextLink``; pages come one after another, so its bound has one in
  flight);
* **hub** — ``link_listings`` as a user runs it: the plugin chooses (for N > 100 it reads the
  first catalog page to learn M, see ``plan_link``).

Each run stores its links. Target (issue 14): the plugin's choice within 1.2x of the faster
of the two ways.

The default cases show each way winning: 100 of 100k (lookups), 2,000 of 2,000 (sweep) and
1,000 of 2,000 (close in time; the sweep spends far fewer rate units).

    .venv/bin/python bench/link.py [--cases 100:100000,1000:2000,2000:2000] [--scale 20]
        [--latency-ms 30] [--jitter-ms 10] [--json]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import Bound, Column

STRATEGIES = ("lookup", "sweep", "hub")
#: The plugin's switch that forces one way of linking.
LINK_STRATEGY_ENV = "HUB_CHANNELADVISOR_LINK_STRATEGY"


# --- workers ------------------------------------------------------------------------------


def worker_link(args: argparse.Namespace) -> None:
    """Link the catalog's SKUs (``link_listings``, links stored) and report time and outcome.

    ``--strategy lookup`` or ``sweep`` forces the plugin's way through its public switch,
    ``HUB_CHANNELADVISOR_LINK_STRATEGY``; ``hub`` leaves the choice to the plugin.
    """
    from hub_core.services import Hub
    from hub_core.services.listings import link_listings

    os.environ[LINK_STRATEGY_ENV] = "auto" if args.strategy == "hub" else args.strategy
    hub = Hub.open(args.db)
    limiter = common.scale_client(hub, common.scale_of(args))
    started = time.perf_counter()
    result = link_listings(hub, common.CONNECTION)
    seconds = time.perf_counter() - started
    hub.db.dispose()
    common.worker_reply(
        {
            "seconds": round(seconds, 3),
            "found": result.counts.get("linked", 0),
            **common.limiter_stats(limiter),
        }
    )


# --- the run ------------------------------------------------------------------------------


def parse_cases(text: str) -> list[tuple[int, int]]:
    """``"100:100000,1000:2000"`` -> ``[(100, 100000), (1000, 2000)]`` (N SKUs of M)."""
    cases = []
    for item in text.split(","):
        n, m = (int(x) for x in item.split(":"))
        if not 0 < n <= m:
            raise SystemExit(f"a case is N:M with 0 < N <= M, got {item!r}")
        cases.append((n, m))
    return cases


def seed_catalog(hub: Any, skus: Sequence[str]) -> None:
    """Put ``skus`` in the hub's catalog (not linked)."""
    from sqlalchemy import insert

    from hub_core.models import CatalogProduct
    from hub_core.services.catalog import bump_counter

    with hub.db.session() as session:
        seq = bump_counter(session)
        session.execute(
            insert(CatalogProduct),
            [
                {"sku": sku, "title": sku, "quantity": 1, "price": 10, "change_seq": seq}
                for sku in skus
            ],
        )


def run_case(
    sandbox: common.BenchSandbox, scale: common.Scale, n: int, m: int
) -> list[dict[str, Any]]:
    """The three runs of one case; one row each."""
    from hub_channeladvisor.listings import plan_link

    sandbox.sandbox.reset()
    common.note(f"case {n:,} of {m:,}: seeding")
    sandbox.sandbox.seed_products(
        [{"Sku": f"SKU-{i:07d}", "Quantity": 1, "BuyItNowPrice": 9.99} for i in range(1, m + 1)]
    )
    skus = sorted(f"SKU-{i:07d}" for i in random.Random(n * 7 + m).sample(range(1, m + 1), n))
    page_size = int(sandbox.sandbox.products_page_size)
    pages = math.ceil(m / page_size)
    batches, lookup_units = common.batched(n)
    plan = plan_link(
        n, m, page_size, has_more=pages > 1, rate_available=common.REAL_RATE_PER_MINUTE
    )
    bounds = {
        "lookup": Bound(
            lookup_units, batches, scale.rate_per_minute, scale.latency, window=scale.window
        ),
        "sweep": Bound(
            pages, pages, scale.rate_per_minute, scale.latency, in_flight=1, window=scale.window
        ),
    }
    rows = []
    for strategy in STRATEGIES:
        with tempfile.TemporaryDirectory() as tmp:
            hub = common.open_hub(Path(tmp))
            common.add_bench_connection(hub, sandbox)
            seed_catalog(hub, skus)
            hub.db.dispose()
            common.note(f"case {n:,} of {m:,}: {strategy}")
            sandbox.fresh()
            result = common.run_worker(
                "link.py",
                "link",
                [
                    "--db",
                    common.database_url(Path(tmp)),
                    "--strategy",
                    strategy,
                    *scale.args(),
                ],
            )
            log = sandbox.stats()
        chosen = strategy
        if strategy == "hub":
            chosen = "sweep" if log["batches"] == 0 and n > 100 else "lookup"
        bound = bounds[chosen]
        rows.append(
            {
                "case": f"{n:,} of {m:,}",
                "skus": n,
                "catalog": m,
                "run": strategy if strategy != "hub" else f"hub (chose {chosen})",
                "strategy": chosen,
                "found": result["found"],
                "http_requests": log["http_requests"],
                "units": log["units"],
                "seconds": result["seconds"],
                "bound_s": round(bound.strict_seconds, 3),
                "x_bound": common.ratio(result["seconds"], bound.strict_seconds),
                "status_429": log["status_429"],
                "plugin_plan": plan.strategy,
                "plugin_reason": plan.reason,
                "worker": result,
                "sandbox": log,
            }
        )
    lookup, sweep = rows[0], rows[1]
    faster = "lookup" if lookup["seconds"] <= sweep["seconds"] else "sweep"
    for row in rows:
        row["faster"] = faster
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every case, then the report."""
    scale = common.scale_of(args)
    rows: list[dict[str, Any]] = []
    with common.BenchSandbox(scale) as sandbox:
        for n, m in parse_cases(args.cases):
            rows += run_case(sandbox, scale, n, m)
    cases = []
    for start in range(0, len(rows), len(STRATEGIES)):
        lookup, sweep, hub = rows[start : start + len(STRATEGIES)]
        cases.append(
            {
                "case": lookup["case"],
                "faster": lookup["faster"],
                "fewer_units": "lookup" if lookup["units"] <= sweep["units"] else "sweep",
                "plugin_chose": hub["strategy"],
                "plugin_reason": hub["plugin_reason"],
                # Target (issue 14): the plugin's run within 1.2x of the faster way.
                "hub_x_faster": common.ratio(
                    hub["seconds"], min(lookup["seconds"], sweep["seconds"])
                ),
            }
        )
    targets = {
        f"choice_{case['case']}_within_1.2x_of_the_faster": {
            "goal": 1.2,
            "value": case["hub_x_faster"],
            "met": case["hub_x_faster"] is not None and case["hub_x_faster"] <= 1.2,
        }
        for case in cases
    }
    return {
        "benchmark": "link",
        "machine": common.machine(),
        "scale": scale.to_json(),
        "rows": rows,
        "cases": cases,
        "targets": targets,
    }


COLUMNS = [
    Column("case", "N of M"),
    Column("run", "run"),
    Column("found", "found", ","),
    Column("http_requests", "HTTP req", ","),
    Column("units", "units", ","),
    Column("seconds", "wall s", ".2f"),
    Column("bound_s", "bound s", ".2f"),
    Column("x_bound", "x bound", ".2f"),
    Column("status_429", "429s", ","),
]


def render(report: Mapping[str, Any]) -> str:
    """The table and the choices, as text."""
    scale = report["scale"]
    lines = [
        "link: N catalog SKUs against a ChannelAdvisor catalog of M products",
        f"sandbox: latency {scale['latency_ms']:g} ms + up to {scale['jitter_ms']:g} ms jitter; "
        f"rate 2,000 units per {scale['window_s']:g} s (F={scale['factor']:g}); products "
        "page 100",
        "bound: max(units in 2,000-unit windows, round trips x latency / in flight), with 5 in "
        "flight for lookups and 1 for the sweep (each next link comes with the page before)",
        "",
        common.table(report["rows"], COLUMNS),
        "",
    ]
    for case in report["cases"]:
        lines.append(
            f"{case['case']}: faster {case['faster']}, fewer units {case['fewer_units']}; the "
            f"plugin chose {case['plugin_chose']} ({case['plugin_reason']}): "
            f"x{case['hub_x_faster']} of the faster (goal 1.2)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default="100:100000,1000:2000,2000:2000",
        help="comma list of N:M (N catalog SKUs of a channel catalog of M products)",
    )
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", choices=STRATEGIES, help=argparse.SUPPRESS)
    common.add_scale_options(parser)
    args = parser.parse_args()
    if args.worker:
        worker_link(args)
    else:
        common.emit(run(args), args.json, render)


if __name__ == "__main__":
    main()
