"""The limiter: 2,000 rate units a minute per profile (batch parts count), 5 in flight."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from hub_channeladvisor import plugin
from hub_channeladvisor.client import limiter
from hub_channeladvisor.client.api import ChannelAdvisorClient
from hub_channeladvisor.client.limiter import InFlight, RateWindow, limiter_for
from hub_core.channel import CatalogItem, ListingUpdate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_window_waits_for_the_oldest_sends_to_leave() -> None:
    clock = FakeClock()
    window = RateWindow(10, clock=clock, sleep=clock.sleep)
    assert window.acquire(4) == 0.0
    clock.now += 20
    assert window.acquire(4) == 0.0
    assert window.available() == 2
    # 4 more do not fit until the first 4 leave the window, 40 s from now.
    assert window.acquire(4) == pytest.approx(40.0)
    assert clock.slept == [pytest.approx(40.0)]
    assert window.used() == 8 and window.total_units == 12


def test_rate_window_pause_is_waited_once() -> None:
    clock = FakeClock()
    window = RateWindow(10, clock=clock, sleep=clock.sleep)
    window.pause(5)
    assert window.acquire() == pytest.approx(5.0)
    assert window.acquire() == 0.0


def test_a_batch_larger_than_the_limit_is_not_stuck() -> None:
    clock = FakeClock()
    window = RateWindow(50, clock=clock, sleep=clock.sleep)
    assert window.acquire(101) == 0.0


def test_in_flight_never_passes_the_limit() -> None:
    slots = InFlight(2)
    release = threading.Event()
    entered = threading.Semaphore(0)

    def work() -> None:
        with slots.slot():
            entered.release()
            release.wait(5)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
    assert not entered.acquire(timeout=0.05)  # the third waits for a slot
    assert slots.current == 2
    release.set()
    for thread in threads:
        thread.join(5)
    assert slots.peak == 2 and slots.current == 0


def test_registry_shares_per_profile_and_per_application() -> None:
    a = limiter_for("https://ca.test", 1, "app")
    b = limiter_for("https://ca.test", 1, "app")
    c = limiter_for("https://ca.test", 2, "app")
    d = limiter_for("https://ca.test", 2, "other-app")
    assert a.rate is b.rate and a.in_flight is b.in_flight
    assert c.rate is not a.rate and c.in_flight is a.in_flight
    assert d.rate is c.rate and d.in_flight is not c.in_flight
    assert a.rate.per_minute == 2000 and a.in_flight.limit == 5


def test_limits_scale_by_constructor_args_and_environment(conn, monkeypatch) -> None:
    client = ChannelAdvisorClient(conn(), requests_per_minute=120, max_in_flight=2)
    assert (client.limiter.rate.per_minute, client.limiter.in_flight.limit) == (120, 2)
    limiter.reset_registry()
    monkeypatch.setenv("HUB_CHANNELADVISOR_REQUESTS_PER_MINUTE", "60")
    monkeypatch.setenv("HUB_CHANNELADVISOR_MAX_IN_FLIGHT", "3")
    client = ChannelAdvisorClient(conn())
    assert (client.limiter.rate.per_minute, client.limiter.in_flight.limit) == (60, 3)


def test_the_limiter_counts_every_batch_part_plus_the_batch(ca, conn) -> None:
    ca.batch(lambda parts: [{"status": 204}] * len(parts))
    updates = [
        ListingUpdate(
            f"S{i}",
            str(100 + i),
            {"quantity": i, "price": Decimal("1.50")},
            CatalogItem(f"S{i}", "t", i, Decimal("1.50")),
        )
        for i in range(130)
    ]
    connection = conn()
    plugin.hub_sync_listings(connection=connection, updates=updates)
    # 260 parts: batches of 100, 100 and 60 (sent in parallel, so in any order), each
    # counting its parts plus itself.
    assert sorted((len(b) for b in ca.batches), reverse=True) == [100, 100, 60]
    rate = limiter_for("https://ca.test", 12345678, "app-id-1").rate
    assert rate.total_units == 260 + 3


def test_operations_of_one_profile_share_the_window(ca, conn) -> None:
    ca.get("Products", {"json": {"value": []}})
    items = [CatalogItem("A", "t", 1, Decimal(1))]
    plugin.hub_link_listings(connection=conn(), items=items)
    plugin.hub_link_listings(connection=conn(), items=items)
    assert limiter_for("https://ca.test", 12345678, "app-id-1").rate.total_units == 2


def test_a_full_window_with_a_sleep_that_does_not_move_the_clock_ends(waits) -> None:
    # The test suite's sleep records waits without sleeping; the window must still let go.
    window = RateWindow(3)
    for _ in range(3):
        window.acquire()
    assert window.acquire() == pytest.approx(60.0, abs=1.0)
    assert len(waits) == 1


def test_units_are_counted_from_the_answer_not_only_from_the_send() -> None:
    # ChannelAdvisor counts a batch's parts as it works through them, up to the answer: the
    # client's window keeps them until a whole window after the answer arrived.
    clock = FakeClock()
    window = RateWindow(10, window=60, clock=clock, sleep=clock.sleep)
    first, waited = window.send(8)
    assert waited == 0.0
    clock.now += 2.0  # the answer takes 2 s
    window.answered(first)
    clock.now += 58.5  # 60.5 s after the send, 58.5 s after the answer
    assert window.available() == 2
    # 4 more fit only once the 8 leave, a window after the answer: 1.5 s from now.
    assert window.acquire(4) == pytest.approx(1.5)
    assert window.total_units == 12


def test_a_request_longer_than_the_window_is_counted_again_at_its_answer() -> None:
    clock = FakeClock()
    window = RateWindow(10, window=60, clock=clock, sleep=clock.sleep)
    sent, _ = window.send(6)
    clock.now += 61.0  # pruned from the window while still in flight
    assert window.used() == 0
    window.answered(sent)
    assert window.used() == 6 and window.available() == 4


def test_the_limiter_slot_counts_the_units_again_when_the_block_ends() -> None:
    clock = FakeClock()
    rate = RateWindow(10, window=60, clock=clock, sleep=clock.sleep)
    slots = limiter.Limiter(rate=rate, in_flight=InFlight(5))
    with slots.slot(10):
        clock.now += 5.0
    clock.now += 57.0  # 62 s after the send, 57 s after the answer: still counted
    assert rate.available() == 0
    clock.now += 3.0
    assert rate.available() == 10
