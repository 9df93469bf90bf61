"""Local overhead: how long and how much memory the hub needs to decide what to send.

A catalog of N SKUs (1M by default), all linked to one connection and in sync, then 0.1%, 1%
and 10% of them changed. Measures ``pending_updates`` (the query sync listings runs) with no
network. The claim under test: the cost grows with the changes, not with the catalog.

    .venv/bin/python bench/local_overhead.py [--skus 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import insert, select, update

from hub_core.db import Database
from hub_core.models import CatalogProduct, Connection, Counter, Listing, SyncCursor
from hub_core.services.catalog import bump_counter, current_counter
from hub_core.services.listings import LISTINGS_CURSOR, pending_updates

CHUNK = 50_000


def build(db: Database, skus: int) -> int:
    """Create ``skus`` products, each linked and pushed; return the connection id."""
    with db.session() as session:
        connection = Connection(name="bench", channel="fake", config={"store": "x"})
        session.add(connection)
        session.flush()
        session.add(Counter(name="catalog", value=1))
        for start in range(0, skus, CHUNK):
            stop = min(start + CHUNK, skus)
            session.execute(
                insert(CatalogProduct),
                [
                    {
                        "id": i + 1,
                        "sku": f"SKU-{i:07d}",
                        "title": f"Product {i}",
                        "quantity": i % 50,
                        "price": 10 + (i % 100),
                        "change_seq": 1,
                    }
                    for i in range(start, stop)
                ],
            )
            session.execute(
                insert(Listing),
                [
                    {
                        "connection_id": connection.id,
                        "product_id": i + 1,
                        "sku": f"SKU-{i:07d}",
                        "status": "linked",
                        "channel_product_id": str(100000 + i),
                        "pushed_quantity": i % 50,
                        "pushed_price": 10 + (i % 100),
                        "pending": False,
                    }
                    for i in range(start, stop)
                ],
            )
        session.add(SyncCursor(connection_id=connection.id, name=LISTINGS_CURSOR, value=1))
        return connection.id


def change(db: Database, skus: int, count: int, rng: random.Random) -> None:
    """Change the quantity of ``count`` random products in one catalog transaction."""
    ids = rng.sample(range(1, skus + 1), count)
    with db.session() as session:
        seq = bump_counter(session)
        for start in range(0, len(ids), CHUNK):
            session.execute(
                update(CatalogProduct)
                .where(CatalogProduct.id.in_(ids[start : start + CHUNK]))
                .values(quantity=CatalogProduct.quantity + 1000, change_seq=seq)
            )


def _detect(db: Database, connection_id: int) -> int:
    with db.sessions() as session:
        connection = session.get(Connection, connection_id)
        found = pending_updates(session, connection, current_counter(session))
        session.rollback()
    return len(found)


def measure(db: Database, connection_id: int) -> dict[str, float]:
    """Time of one change detection, then its peak Python memory in a second, traced pass
    (tracing slows allocation down, so it is kept out of the timed pass)."""
    started = time.perf_counter()
    found = _detect(db, connection_id)
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    _detect(db, connection_id)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"updates": found, "seconds": round(elapsed, 3), "peak_mb": round(peak / 2**20, 1)}


def reset(db: Database, connection_id: int) -> None:
    """Mark everything sent: move the cursor to the last change."""
    with db.session() as session:
        cursor = session.scalar(select(SyncCursor).where(SyncCursor.connection_id == connection_id))
        cursor.value = current_counter(session)
        session.execute(
            update(Listing).values(
                pushed_quantity=select(CatalogProduct.quantity)
                .where(CatalogProduct.id == Listing.product_id)
                .scalar_subquery()
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    rng = random.Random(7)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        started = time.perf_counter()
        connection_id = build(db, args.skus)
        build_seconds = time.perf_counter() - started
        baseline = measure(db, connection_id)
        rows.append({"changed_pct": 0.0, "changed": 0, **baseline})
        for pct in (0.1, 1.0, 10.0):
            count = int(args.skus * pct / 100)
            change(db, args.skus, count, rng)
            result = measure(db, connection_id)
            rows.append({"changed_pct": pct, "changed": count, **result})
            reset(db, connection_id)
        db.dispose()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "benchmark": "local_overhead",
        "catalog_skus": args.skus,
        "build_seconds": round(build_seconds, 1),
        "peak_rss_mb": round(rss_mb, 1),
        "rows": rows,
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(f"catalog: {args.skus:,} SKUs, all linked (built in {build_seconds:.1f} s)")
    print(f"{'changed':>10} {'%':>6} {'found':>8} {'seconds':>8} {'peak MB':>8}")
    for row in rows:
        print(
            f"{row['changed']:>10,} {row['changed_pct']:>6} {row['updates']:>8,} "
            f"{row['seconds']:>8.3f} {row['peak_mb']:>8.1f}"
        )
    print(f"peak RSS of the whole run: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
