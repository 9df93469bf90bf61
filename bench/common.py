"""Shared helpers of the network benchmarks (listing sync, link, get orders).

* the bound: the least time any client could need for some work under ChannelAdvisor's
  limits, ``max(rate-budget units / rate, round trips x latency / in-flight cap)``;
* the machine the numbers come from, and peak RSS;
* the table and ``--json`` output shared by every script;
* workers: a part of a benchmark run in a child process (``python bench/X.py --worker ...``),
  so that its wall time and peak RSS are its own and it does not share the GIL with the
  sandbox serving it.

The sandbox helpers (start a scaled sandbox, a hub with a ChannelAdvisor connection to it)
are further down.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
#: ChannelAdvisor's limits (reference §5): per profile and minute, and in flight.
REAL_RATE_PER_MINUTE = 2000
REAL_WINDOW_SECONDS = 60.0
REAL_IN_FLIGHT = 5
#: Requests per ``$batch`` (reference §6).
BATCH_PARTS = 100


# --- the bound ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bound:
    """The least wall time of some work under the limits (issue 6).

    :param units: rate-budget units the work must spend (a batch is 1 + its parts).
    :param round_trips: HTTP round trips it needs at the least.
    :param rate_per_minute: the profile's rate limit (scaled).
    :param latency: seconds of one round trip.
    :param in_flight: requests allowed at once.
    """

    units: int
    round_trips: int
    rate_per_minute: float
    latency: float
    in_flight: int = REAL_IN_FLIGHT
    #: Seconds of the sliding rate window (for :attr:`window_seconds`).
    window: float = 0.0

    @property
    def rate_seconds(self) -> float:
        """Time to spend the units at the rate."""
        return self.units / self.rate_per_minute * 60.0

    @property
    def latency_seconds(self) -> float:
        """Time to make the round trips, ``in_flight`` at once (whole rounds: one round trip
        takes a latency however few there are)."""
        return math.ceil(self.round_trips / self.in_flight) * self.latency

    @property
    def seconds(self) -> float:
        """The bound: the larger of the two."""
        return max(self.rate_seconds, self.latency_seconds)

    @property
    def window_seconds(self) -> float:
        """The least time to spend the units in a sliding window that holds a full window's
        budget (2,000 units) at once: ``floor((units - 1) / 2000)`` windows. Below
        :attr:`rate_seconds` by up to one window: a client may burst at the start."""
        if not self.window:
            return self.rate_seconds
        burst = self.rate_per_minute * self.window / 60.0
        return math.floor(max(self.units - 1, 0) / burst) * self.window

    @property
    def strict_seconds(self) -> float:
        """The bound with the burst allowed: ``max(window_seconds, latency_seconds)``."""
        return max(self.window_seconds, self.latency_seconds)

    @property
    def limited_by(self) -> str:
        """Which limit sets the bound."""
        return "rate" if self.rate_seconds >= self.latency_seconds else "latency"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "units": self.units,
            "round_trips": self.round_trips,
            "rate_per_minute": self.rate_per_minute,
            "latency_s": self.latency,
            "in_flight": self.in_flight,
            "rate_seconds": round(self.rate_seconds, 3),
            "latency_seconds": round(self.latency_seconds, 3),
            "seconds": round(self.seconds, 3),
            "limited_by": self.limited_by,
            "window_seconds": round(self.window_seconds, 3),
            "strict_seconds": round(self.strict_seconds, 3),
        }


def batched(parts: int, per_batch: int = BATCH_PARTS) -> tuple[int, int]:
    """(round trips, rate units) of ``parts`` requests sent in full batches."""
    batches = math.ceil(parts / per_batch)
    return batches, parts + batches


def ratio(seconds: float | None, bound: float) -> float | None:
    """``seconds / bound`` rounded, or None."""
    if seconds is None or bound <= 0:
        return None
    return round(seconds / bound, 3)


# --- the machine and memory ---------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where the numbers come from: cores, CPU model, Python, OS."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {
        "nproc": cores,
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB.

    Linux's ``VmHWM`` (the high-water mark of this address space, fresh after ``exec``), not
    ``ru_maxrss``: a child's ``ru_maxrss`` starts at its parent's RSS at ``fork`` and survives
    ``exec``, so a worker forked from a benchmark holding the sandbox would report the
    benchmark's size, not its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- output -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Column:
    """One table column: the row key, its header, and how to show a value."""

    key: str
    header: str
    fmt: str = ""

    def show(self, value: Any) -> str:
        """The cell text of ``value`` (``-`` when there is none)."""
        if value is None or value == "":
            return "-"
        if self.fmt and isinstance(value, int | float):
            return format(value, self.fmt)
        return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[c.header for c in columns]]
    cells += [[c.show(row.get(c.key)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = []
    for number, row in enumerate(cells):
        text = "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        lines.append(text.rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(report: Mapping[str, Any], as_json: bool, render: Callable[[Mapping[str, Any]], str]):
    """Print the report: JSON (one document) with ``--json``, else ``render(report)``."""
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
    else:
        print(render(report))


def note(text: str) -> None:
    """Progress for the reader, on stderr (stdout holds only the report)."""
    print(text, file=sys.stderr, flush=True)


# --- workers ------------------------------------------------------------------------------


def run_worker(
    script: str, worker: str, args: Sequence[str], *, env: Mapping[str, str] | None = None
) -> Any:
    """Run ``python bench/<script> --worker WORKER ARGS``; return the JSON it prints last.

    The child's stderr passes through; its peak RSS is its own (``ru_maxrss`` of the child,
    which the worker reports itself).
    """
    command = [sys.executable, str(BENCH_DIR / script), "--worker", worker, *args]
    completed = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {script} {worker} exited {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def worker_reply(result: Mapping[str, Any]) -> None:
    """What a worker prints last: its result, its own peak RSS and the CPU seconds it used
    (user + system, every thread, its whole life), as one JSON line."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = round(usage.ru_utime + usage.ru_stime, 2)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb(), "cpu_s": cpu}, default=str))
    sys.stdout.flush()


# --- the hub side -------------------------------------------------------------------------

#: The connection every benchmark creates.
CONNECTION = "bench"
SEED_CHUNK = 20_000


def open_hub(directory: Path) -> Any:
    """A hub on a fresh SQLite file in ``directory`` (migrated), with the installed plugins."""
    from hub_core.services import Hub

    return Hub.open(f"sqlite:///{directory / 'hub.db'}")


def database_url(directory: Path) -> str:
    """The URL of the hub database :func:`open_hub` made in ``directory``."""
    return f"sqlite:///{directory / 'hub.db'}"


def seed_linked(hub: Any, connection: str, products: Sequence[tuple[str, str, int, Any]]) -> None:
    """Put products in the catalog, each linked and in sync (as after link + sync).

    Written straight to the database, as ``bench/local_overhead.py`` does: linking 100k SKUs
    through the channel would cost more than the sync being measured.

    :param products: ``(sku, channel product id, quantity, price)``.
    """
    from sqlalchemy import insert, select

    from hub_core.models import CatalogProduct, Connection, Listing, SyncCursor
    from hub_core.services.catalog import bump_counter
    from hub_core.services.listings import LISTINGS_CURSOR

    with hub.db.session() as session:
        connection_id = session.scalar(select(Connection.id).where(Connection.name == connection))
        seq = bump_counter(session)
        for start in range(0, len(products), SEED_CHUNK):
            chunk = products[start : start + SEED_CHUNK]
            session.execute(
                insert(CatalogProduct),
                [
                    {
                        "id": start + i + 1,
                        "sku": sku,
                        "title": f"Product {sku}",
                        "quantity": quantity,
                        "price": price,
                        "change_seq": seq,
                    }
                    for i, (sku, _, quantity, price) in enumerate(chunk)
                ],
            )
            session.execute(
                insert(Listing),
                [
                    {
                        "connection_id": connection_id,
                        "product_id": start + i + 1,
                        "sku": sku,
                        "status": "linked",
                        "channel_product_id": product_id,
                        "pushed_quantity": quantity,
                        "pushed_price": price,
                        "pending": False,
                    }
                    for i, (sku, product_id, quantity, price) in enumerate(chunk)
                ],
            )
        session.add(SyncCursor(connection_id=connection_id, name=LISTINGS_CURSOR, value=seq))


def change_catalog(hub: Any, changes: Mapping[str, tuple[int, Any]]) -> None:
    """Change products in one catalog transaction: ``{sku: (quantity, price)}``."""
    from sqlalchemy import bindparam, update

    from hub_core.models import CatalogProduct
    from hub_core.services.catalog import bump_counter

    with hub.db.session() as session:
        seq = bump_counter(session)
        statement = (
            update(CatalogProduct)
            .where(CatalogProduct.sku == bindparam("b_sku"))
            .values(quantity=bindparam("b_quantity"), price=bindparam("b_price"), change_seq=seq)
            .execution_options(synchronize_session=False)
        )
        rows = [
            {"b_sku": sku, "b_quantity": quantity, "b_price": price}
            for sku, (quantity, price) in changes.items()
        ]
        for start in range(0, len(rows), SEED_CHUNK):
            session.connection().execute(statement, rows[start : start + SEED_CHUNK])


# --- the sandbox side ---------------------------------------------------------------------

TOKEN_ENDPOINT = "POST /oauth2/token"


@dataclasses.dataclass(frozen=True)
class Scale:
    """The sandbox's and the client's limits, time scaled by ``factor``.

    The real limit is 2,000 units in any 60 seconds (a sliding window). Scaled, it is 2,000
    units in any ``60 / factor`` seconds: the rate is ``2000 x factor`` a minute and a burst
    is still at most 2,000 units, so a scaled run has the shape of a real one, only shorter.
    Latency is NOT scaled (it is set on its own).
    """

    factor: float
    latency_ms: float
    jitter_ms: float

    @property
    def window(self) -> float:
        """Seconds of the sliding rate window."""
        return REAL_WINDOW_SECONDS / self.factor

    @property
    def rate_per_minute(self) -> float:
        """Rate-budget units a minute."""
        return REAL_RATE_PER_MINUTE * self.factor

    @property
    def latency(self) -> float:
        """Mean seconds the sandbox adds to a request (fixed + half the jitter)."""
        return (self.latency_ms + self.jitter_ms / 2) / 1000.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "factor": self.factor,
            "rate_per_minute": self.rate_per_minute,
            "window_s": round(self.window, 3),
            "burst_units": REAL_RATE_PER_MINUTE,
            "in_flight": REAL_IN_FLIGHT,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
        }

    def args(self) -> list[str]:
        """The worker arguments that carry the scale."""
        return [
            "--scale",
            str(self.factor),
            "--latency-ms",
            str(self.latency_ms),
            "--jitter-ms",
            str(self.jitter_ms),
        ]


def add_scale_options(parser: Any, *, scale: float = 20.0) -> None:
    """``--scale``, ``--latency-ms``, ``--jitter-ms`` and ``--json`` (and the worker switch)."""
    parser.add_argument(
        "--scale",
        type=float,
        default=scale,
        help=f"time scale F of the rate limit: 2000 units per 60/F s (default {scale:g})",
    )
    parser.add_argument("--latency-ms", type=float, default=30.0, help="sandbox latency")
    parser.add_argument("--jitter-ms", type=float, default=10.0, help="uniform jitter on top")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--worker", default="", help=argparse_suppress())


def argparse_suppress() -> str:
    """``argparse.SUPPRESS`` (hides internal options from ``--help``)."""
    import argparse

    return argparse.SUPPRESS


def scale_of(args: Any) -> Scale:
    """The :class:`Scale` of parsed options."""
    return Scale(args.scale, args.latency_ms, args.jitter_ms)


class BenchSandbox:
    """The ChannelAdvisor sandbox of a benchmark, served from this process's threads.

    The hub and the naive client run in worker processes, so the sandbox does not share a
    GIL with the client it measures.
    """

    def __init__(self, scale: Scale, *, seed: int = 1, **settings: Any) -> None:
        from hub_channeladvisor_sandbox import Sandbox

        self.scale = scale
        self.sandbox = Sandbox(
            seed=seed,
            token_ttl=24 * 3600,
            rate_limit_per_minute=REAL_RATE_PER_MINUTE,
            rate_window_seconds=scale.window,
            max_in_flight=REAL_IN_FLIGHT,
            latency_ms=scale.latency_ms,
            latency_jitter_ms=scale.jitter_ms,
            # The benchmarks read counts, never bodies: parsing each request's body for the
            # log would be the test double's CPU, on the cores the hub runs on.
            max_logged_bodies=0,
            **settings,
        )
        self.url = self.sandbox.start()

    def __enter__(self) -> BenchSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sandbox.stop()

    def connection_values(self) -> dict[str, str]:
        """The ``--set`` values of a ChannelAdvisor connection to this sandbox."""
        from hub_channeladvisor_sandbox import (
            DEMO_APPLICATION_ID,
            DEMO_PROFILE_ID,
            DEMO_REFRESH_TOKEN,
            DEMO_SHARED_SECRET,
        )

        return {
            "base_url": self.url,
            "access_token": self.sandbox.issue_access_token(),
            "refresh_token": DEMO_REFRESH_TOKEN,
            "profile_id": str(DEMO_PROFILE_ID),
            "application_id": DEMO_APPLICATION_ID,
            "shared_secret": DEMO_SHARED_SECRET,
        }

    def fresh(self) -> None:
        """Start a measured phase: no spent rate budget, an empty log, no in-flight peak.

        Each phase runs in a new worker whose client starts with an empty window, so the
        sandbox's must be empty too.
        """
        self.sandbox.rate_limiter.reset()
        self.sandbox.reset_log()

    def stats(self) -> dict[str, Any]:
        """What the sandbox saw since :meth:`fresh` (from its request log)."""
        log = self.sandbox.request_log(entries=False)
        counts: dict[str, int] = log["counts"]
        token = counts.get(TOKEN_ENDPOINT, 0)
        top_level = log["total"] - log["batch_parts"]
        return {
            "http_requests": top_level - token,
            "token_requests": token,
            "batches": log["batches"],
            "batch_parts": log["batch_parts"],
            "units": log["total_units"],
            "status_429": log["status_429"],
            "throttled_rate": log["throttled_rate"],
            "throttled_in_flight": log["throttled_in_flight"],
            "max_in_flight": log["max_in_flight"],
            "counts": {k: v for k, v in sorted(counts.items()) if k != TOKEN_ENDPOINT},
        }


def add_bench_connection(hub: Any, sandbox: BenchSandbox, **settings: str) -> None:
    """Add the ``bench`` ChannelAdvisor connection to the sandbox."""
    from hub_core.services.connections import add_connection

    add_connection(hub, CONNECTION, "channeladvisor", {**sandbox.connection_values(), **settings})


def scale_client(hub: Any, scale: Scale) -> Any:
    """Scale the ChannelAdvisor client's limiter of the ``bench`` connection like the sandbox,
    through its public switches: ``limiter_for``'s rate and in-flight arguments, and the
    window from ``HUB_CHANNELADVISOR_RATE_WINDOW_SECONDS`` (set here, before the limiter of
    the profile is first made). Returns the limiter, whose counters tell how long the client
    waited.
    """
    from hub_channeladvisor.client.limiter import WINDOW_ENV, limiter_for
    from hub_core.services.connections import show_connection

    os.environ[WINDOW_ENV] = repr(scale.window)
    config = show_connection(hub, CONNECTION)
    values = config.get("config", config)
    limiter = limiter_for(
        str(values["base_url"]).rstrip("/"),
        int(values["profile_id"]),
        str(values["application_id"]),
        requests_per_minute=REAL_RATE_PER_MINUTE,
        max_in_flight=REAL_IN_FLIGHT,
    )
    if limiter.rate.window != scale.window:
        raise RuntimeError("the client's rate window was made before it could be scaled")
    return limiter


def clear_shared_limits(redis_url: str, base_url: str) -> None:
    """Forget what the Redis limiter holds for the sandbox at ``base_url`` (a fresh phase:
    the sandbox forgets its spent budget too)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"hub:channeladvisor:*{base_url}*"):
            client.delete(key)
    finally:
        client.close()


def limiter_stats(limiter: Any) -> dict[str, Any]:
    """What the client's limiter saw: units sent, seconds waited for the rate, in-flight peak."""
    return {
        "client_units": limiter.rate.total_units,
        "client_rate_wait_s": round(limiter.rate.total_waited, 2),
        "client_max_in_flight": limiter.in_flight.peak,
    }


def current_rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def profiled(path: str | None, call: Callable[[], Any]) -> Any:
    """Run ``call``; with a ``path``, under cProfile, saving the stats there."""
    if not path:
        return call()
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(call)
    finally:
        profile.dump_stats(path)
        note(f"profile written to {path} (read it with: python -m pstats {path})")
