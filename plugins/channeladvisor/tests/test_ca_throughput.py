"""Performance to the bound (issue 14), in counts: against the sandbox with a scaled rate
window and real waits, the client never earns a 429, never has more than 5 requests in
flight, sends batches and Exports in parallel, and sends exactly the requests each phase
needs. (Seconds are for ``bench/``; nothing here asserts a time.)"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("hub_channeladvisor_sandbox")

from hub_channeladvisor.client import limiter, outcomes
from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor_sandbox import DEMO_APPLICATION_ID, Sandbox
from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness
from hub_core.channel import ChannelConnection
from hub_core.testing.contract import World, open_world

#: The scaled limits: 400 units in any 0.5 s (the real 2,000 a minute, 24 times faster).
RATE = 400
WINDOW_SECONDS = 0.5
EXPORT = "POST /v1/Orders({id})/Export"


@pytest.fixture
def real_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client really waits here (the suite's default only records the waits)."""
    monkeypatch.setattr(outcomes, "sleep", time.sleep)


@pytest.fixture
def world(tmp_path: Path, real_waits: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A hub connected to a sandbox whose rate window and the client's are both scaled."""
    monkeypatch.setenv(limiter.REQUESTS_PER_MINUTE_ENV, str(RATE))
    monkeypatch.setenv(limiter.WINDOW_ENV, str(WINDOW_SECONDS))
    with open_world(ChannelAdvisorHarness, tmp_path) as opened:
        sandbox(opened).configure(
            rate_limit_per_minute=RATE,
            rate_window_seconds=WINDOW_SECONDS,
            max_in_flight=5,
            latency_ms=15,
            latency_jitter_ms=5,
        )
        opened.connect()
        yield opened


def sandbox(world: World) -> Sandbox:
    return world.harness.sandbox  # type: ignore[attr-defined]


def log_of(world: World) -> dict[str, Any]:
    return sandbox(world).request_log(entries=False)


def peak_in_flight(log: dict[str, Any]) -> int:
    return int(log["max_in_flight_by_application"].get(DEMO_APPLICATION_ID, 0))


def test_a_rate_bound_sync_sends_batches_in_parallel_and_earns_no_429(world: World) -> None:
    skus = [f"SKU-{n:06d}" for n in range(1, 651)]
    sandbox(world).seed_products(count=len(skus))
    world.catalog([(sku, 3, "4.50") for sku in skus])
    world.link()
    sandbox(world).reset_log()

    result = world.sync()
    assert result["counts"]["sent"] == len(skus)
    log = log_of(world)
    # 650 quantities + 650 prices: 13 batches of 100 parts, 1,313 units, over 3 windows.
    assert (log["batches"], log["batch_parts"], log["total_units"]) == (13, 1300, 1313)
    assert log["status_429"] == 0
    assert 1 <= peak_in_flight(log) <= 5
    # Nothing changed: a second sync sends nothing.
    sandbox(world).reset_log()
    assert world.sync()["records"] == []
    assert log_of(world)["total"] == 0


def test_lookups_go_out_in_parallel_up_to_the_in_flight_limit(world: World) -> None:
    sandbox(world).configure(latency_ms=40, rate_limit_per_minute=100_000)
    skus = [f"SKU-{n:06d}" for n in range(1, 701)]
    sandbox(world).seed_products(count=len(skus))
    sandbox(world).reset_log()
    connection = ChannelConnection(
        name="shop",
        channel="channeladvisor",
        config=world.harness.connection_values(),
        settings={},
        secret_keys=("access_token", "refresh_token", "shared_secret"),
    )
    with ChannelAdvisorClient(connection, requests_per_minute=100_000) as client:
        answers = client.lookup_skus(skus)
    assert [len(answers[sku]) for sku in skus] == [1] * len(skus)
    log = log_of(world)
    assert (log["batches"], log["batch_parts"]) == (7, 700)
    assert log["status_429"] == 0
    # Seven batches of 40 ms each: several at once, never more than five.
    assert 2 <= peak_in_flight(log) <= 5


def test_get_orders_exports_in_parallel_after_storing_and_earns_no_429(world: World) -> None:
    orders = 230
    sandbox(world).seed_products(count=1)
    created = datetime.now(UTC).isoformat()
    sandbox(world).seed_orders(
        {
            "CreatedDateUtc": created,
            "RequestedShippingCarrier": "UPS",
            "RequestedShippingClass": "Ground",
            "Items": [{"Sku": "SKU-000001", "Quantity": 1}],
        }
        for _ in range(orders)
    )
    world.map("UPS - Ground")
    sandbox(world).reset_log()

    result = world.get_orders()
    assert result["counts"]["acknowledged"] == orders
    log = log_of(world)
    counts = log["counts"]
    assert counts[EXPORT] == orders  # one Export per order, none twice
    assert log["status_429"] == 0
    assert 1 <= peak_in_flight(log) <= 5
    # Pages of 20. Exports run while the next pages are read, so the `exported=false` list
    # shrinks under the next links' $skip and the plugin reads the query again until a pass
    # brings nothing new: more pages than 12, but each pass reads fewer (here at most a
    # quarter of the orders' Exports in page reads, plus the cancellation check's one).
    pages = counts["GET /v1/Orders"]
    assert math.ceil(orders / 20) + 1 <= pages <= math.ceil(orders / 20) * 3 + 1

    sandbox(world).reset_log()
    again = world.get_orders()
    assert again["counts"].get("acknowledged", 0) == 0
    assert log_of(world)["counts"].get(EXPORT, 0) == 0
