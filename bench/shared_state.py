"""What one run at a time and the shared rate budget cost: prints numbers, asserts nothing.

* ``lease``: an empty operation run (``RunRecorder`` with a connection: run row, lease taken,
  lease released with the run's last write) against the same without a connection (no lease),
  on SQLite and, when reachable, PostgreSQL; milliseconds per run.
* ``limiter``: a request's pass through the limiter (no network), in-process against Redis
  (``--redis-url``; slot, rate script, answer script, slot release); microseconds per request.

Usage::

    .venv/bin/python bench/shared_state.py [--runs 200] [--requests 2000] \\
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test] \\
        [--redis-url redis://127.0.0.1:6379/15] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hub_core.services import Hub
from hub_core.services.connections import add_connection, get_connection
from hub_core.services.runs import RunRecorder


def _per_call(action: Callable[[], None], count: int) -> float:
    """Seconds per call (median of three rounds of ``count`` calls)."""
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            action()
        rounds.append((time.perf_counter() - start) / count)
    return statistics.median(rounds)


@contextlib.contextmanager
def _throwaway_database(url: str) -> Iterator[str]:
    """A new database on the server of ``url`` (dropped afterwards): the one named there is
    only used to connect."""
    import psycopg
    from psycopg import sql
    from sqlalchemy import make_url

    base = make_url(url)
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"hub_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def bench_lease(url: str, runs: int, workdir: Path) -> dict[str, float]:
    """Milliseconds per empty run, with and without a lease."""
    hub = Hub.open(url)
    try:
        store = workdir / f"fake-{secrets.token_hex(3)}.json"
        name = f"bench-{secrets.token_hex(3)}"
        add_connection(hub, name, "fake", {"store": str(store)})
        with hub.db.session() as session:
            connection = get_connection(session, name)

        def leased() -> None:
            with RunRecorder(hub, "get_orders", connection):
                pass

        def unleased() -> None:
            with RunRecorder(hub, "catalog_import"):
                pass

        with_lease = _per_call(leased, runs)
        without = _per_call(unleased, runs)
    finally:
        hub.db.dispose()
    return {
        "run_with_lease_ms": round(with_lease * 1000, 2),
        "run_without_lease_ms": round(without * 1000, 2),
        "lease_cost_ms": round((with_lease - without) * 1000, 2),
    }


def bench_limiter(redis_url: str | None, requests: int) -> dict[str, Any]:
    """Microseconds per request through the in-process and the Redis limiter."""
    import os

    from hub_channeladvisor.client import limiter

    base = f"https://bench-{uuid.uuid4().hex[:8]}.test"
    results: dict[str, Any] = {}
    big = {"requests_per_minute": 10**9, "max_in_flight": 1000}
    os.environ.pop(limiter.REDIS_URL_ENV, None)
    limiter.reset_registry()
    local = limiter.limiter_for(base, 1, "app", **big)

    def through(chosen: limiter.Limiter) -> Callable[[], None]:
        def one() -> None:
            with chosen.slot(1):
                pass

        return one

    results["in_process_us"] = round(_per_call(through(local), requests) * 1e6, 1)
    if redis_url:
        os.environ[limiter.REDIS_URL_ENV] = redis_url
        limiter.reset_registry()
        try:
            shared = limiter.limiter_for(base, 1, "app", **big)
            results["redis_us"] = round(_per_call(through(shared), requests) * 1e6, 1)
        except Exception as exc:  # a benchmark reports, it does not stop
            results["redis_us"] = f"unavailable: {exc}"
        finally:
            os.environ.pop(limiter.REDIS_URL_ENV, None)
            import redis

            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"{limiter.REDIS_PREFIX}:*{base}*"):
                client.delete(key)
            client.close()
    return results


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"lease": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        report["lease"]["sqlite"] = bench_lease(
            f"sqlite:///{workdir / 'hub.db'}", args.runs, workdir
        )
        if args.postgres_url:
            try:
                with _throwaway_database(args.postgres_url) as url:
                    report["lease"]["postgresql"] = bench_lease(url, args.runs, workdir)
            except Exception as exc:  # a benchmark reports, it does not stop
                report["lease"]["postgresql"] = f"unavailable: {exc}"
    report["limiter"] = bench_limiter(args.redis_url or None, args.requests)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for backend, numbers in report["lease"].items():
        print(f"lease   {backend:11} {numbers}")
    print(f"limiter {report['limiter']}")


if __name__ == "__main__":
    main()
