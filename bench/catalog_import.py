"""Catalog import of a large file: wall time and peak RSS (issue 11; targets of issue 14).

Writes a CSV of N rows (1M by default; ``sku,title,quantity,price,upc,msrp,cost``), then, in a
worker process of its own (so the peak RSS is the import's), imports it into a fresh SQLite
database, imports it again unchanged, and imports a copy with 10% of the rows changed.
Targets (issue 14): 60 s and 300 MB for the first import. Nothing is asserted.

    .venv/bin/python bench/catalog_import.py [--rows 1000000] [--json]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Column, emit, machine, note, open_hub, run_worker, table, worker_reply

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 300.0


def write_catalog(path: Path, rows: int, changed_every: int = 0) -> None:
    """Write ``rows`` products; with ``changed_every`` N, every N-th has a new quantity."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "title", "quantity", "price", "upc", "msrp", "cost"])
        for i in range(rows):
            quantity = i % 50
            if changed_every and i % changed_every == 0:
                quantity += 1
            writer.writerow(
                [
                    f"SKU-{i:07d}",
                    f"Product {i} — a reasonably long title, as catalogs have",
                    quantity,
                    f"{10 + i % 100}.99",
                    f"{i:012d}",
                    f"{20 + i % 100}.00",
                    "",
                ]
            )


def worker(directory: Path, files: list[Path]) -> None:
    """Import each file in turn into one fresh database; print one JSON line of timings."""
    from hub_core.services.catalog import import_catalog

    hub = open_hub(directory)
    results = []
    for path in files:
        started, cpu = time.perf_counter(), time.process_time()
        result = import_catalog(hub, path)
        results.append(
            {
                "file": path.name,
                "seconds": round(time.perf_counter() - started, 2),
                # The machine is shared: CPU time is the import's own work.
                "cpu_seconds": round(time.process_time() - cpu, 2),
                "status": result.status,
                "counts": dict(result.counts),
            }
        )
    worker_reply({"imports": results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.worker:
        worker(Path(args.dir), [Path(p) for p in rest])
        return
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        first, changed = directory / "catalog.csv", directory / "catalog-10pct.csv"
        note(f"writing {args.rows:,} rows ...")
        write_catalog(first, args.rows)
        write_catalog(changed, args.rows, changed_every=10)
        size_mb = round(first.stat().st_size / 1e6, 1)
        note("importing (fresh database, again unchanged, then 10% changed) ...")
        reply: dict[str, Any] = run_worker(
            "catalog_import.py",
            "import",
            ["--dir", str(directory), str(first), str(first), str(changed)],
        )
    names = ["first import", "unchanged again", "10% changed"]
    rows = [
        {
            "phase": name,
            "seconds": item["seconds"],
            "cpu_seconds": item["cpu_seconds"],
            **item["counts"],
        }
        for name, item in zip(names, reply["imports"], strict=True)
    ]
    report = {
        "rows": args.rows,
        "file_mb": size_mb,
        "phases": rows,
        "peak_rss_mb": reply["peak_rss_mb"],
        "targets": {"seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_RSS_MB},
        "machine": machine(),
    }

    def render(data: Any) -> str:
        columns = [
            Column("phase", "phase"),
            Column("seconds", "wall s", ".1f"),
            Column("cpu_seconds", "CPU s", ".1f"),
            Column("created", "created", ","),
            Column("updated", "updated", ","),
            Column("unchanged", "unchanged", ","),
        ]
        return (
            f"catalog import of {data['rows']:,} rows ({data['file_mb']} MB CSV)\n"
            + table(data["phases"], columns)
            + f"\npeak RSS of the importing process: {data['peak_rss_mb']} MB "
            f"(target {TARGET_RSS_MB:.0f} MB; first import target {TARGET_SECONDS:.0f} s)"
        )

    emit(report, args.json, render)


if __name__ == "__main__":
    main()
