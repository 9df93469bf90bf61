"""The rate budget shared by every process through Redis (``HUB_REDIS_URL``): the same limits
as the in-process limiter, counted in one place by an atomic script.

These tests need the real Redis (``HUB_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``):
they skip with the reason when it is unreachable, and fail under ``CI=true``. Each test uses
its own keys (a base URL of its own), deleted afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub_channeladvisor.client import limiter, outcomes
from hub_channeladvisor.client.limiter import (
    REDIS_URL_ENV,
    RedisInFlight,
    RedisRateWindow,
    limiter_for,
)
from hub_core.errors import ChannelError

REDIS_ENV = "HUB_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The test Redis, or a skip (a failure under ``CI=true``) naming why it is missing."""
    redis = pytest.importorskip("redis")
    url = os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as exc:
        reason = f"Redis is unreachable at {url} ({exc}); set {REDIS_ENV} to run these tests"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason}. CI=true requires Redis.", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def shared(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``HUB_REDIS_URL`` set; yields a base URL of this test's own (its keys are deleted)."""
    import redis

    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    monkeypatch.setattr(outcomes, "sleep", __import__("time").sleep)  # really wait here
    base = f"https://ca-{uuid.uuid4().hex[:12]}.test"
    yield base
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{limiter.REDIS_PREFIX}:*{base}*"):
        client.delete(key)
    client.close()


def _other_process() -> None:
    """What a second process has: none of this process's limiters or clients."""
    limiter.reset_registry()


def test_with_redis_url_the_limits_live_in_redis(shared: str) -> None:
    made = limiter_for(shared, 1, "app", requests_per_minute=10, max_in_flight=2)
    assert isinstance(made.rate, RedisRateWindow) and isinstance(made.in_flight, RedisInFlight)
    assert (made.rate.per_minute, made.in_flight.limit) == (10, 2)
    assert made.rate.acquire(1) == 0
    made.rate.acquire(3)  # a batch of two parts plus the batch itself
    _other_process()
    again = limiter_for(shared, 1, "app", requests_per_minute=10)
    assert again is not made and again.rate.used() == 4  # one budget for every process
    assert again.rate.available() == 6
    assert limiter_for(shared, 2, "app", requests_per_minute=10).rate.used() == 0


def test_processes_sharing_a_profile_share_its_budget(
    shared: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(limiter.WINDOW_ENV, "0.5")
    first = limiter_for(shared, 1, "app", requests_per_minute=5).rate
    assert [first.acquire(1) for _ in range(5)] == [0] * 5
    _other_process()
    second = limiter_for(shared, 1, "app", requests_per_minute=5).rate
    assert second.window == 0.5
    assert second.acquire(1) > 0  # it waited for the first process's sends to leave
    assert second.total_units == 1 and second.total_waited > 0


def test_a_pause_after_a_429_holds_every_process(shared: str) -> None:
    first = limiter_for(shared, 1, "app")
    first.pause(0.3)
    _other_process()
    assert limiter_for(shared, 1, "app").rate.acquire(1) > 0


def test_in_flight_slots_are_shared_and_a_dead_holders_slot_expires(shared: str) -> None:
    import redis

    client = redis.Redis.from_url(os.environ[REDIS_URL_ENV])
    key = f"{limiter.REDIS_PREFIX}:in_flight:{shared}:app"
    dead = RedisInFlight(client, key, 1, ttl=0.3)
    held = dead.slot()
    held.__enter__()  # a worker killed while its request was in flight: never released
    alive = RedisInFlight(client, key, 1, ttl=30)
    got: list[int] = []

    def take() -> None:
        with alive.slot():
            got.append(alive.current)

    taker = threading.Thread(target=take)
    taker.start()
    taker.join(timeout=30)
    assert got == [1]  # once the dead slot expired, exactly one slot in use: this one
    assert alive.peak == 1
    client.close()


def test_an_unreachable_redis_is_one_clear_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, "redis://:s3cret-pw@127.0.0.1:9/0")
    with pytest.raises(ChannelError) as caught:
        limiter_for("https://ca.test", 1, "app")
    message = caught.value.message
    assert "Cannot reach Redis at redis://:***@127.0.0.1:9/0 (HUB_REDIS_URL)" in message
    assert "s3cret-pw" not in message and "unset HUB_REDIS_URL" in message
    assert int(caught.value.exit_code) == 1


def test_the_cli_names_an_unreachable_redis_and_exits_1(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from hub_core.cli import cli

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    _set_up(url, tmp_path, sandbox, ["shop"])
    monkeypatch.setenv(REDIS_URL_ENV, "redis://127.0.0.1:9/0")
    sandbox.sandbox.reset_log()
    result = CliRunner().invoke(cli, ["--database-url", url, "listings", "link", "shop"], obj={})
    assert result.exit_code == 1, result.output
    assert "Cannot reach Redis at redis://127.0.0.1:9/0 (HUB_REDIS_URL)" in result.stderr
    assert "Traceback" not in result.output
    assert sandbox.sandbox.request_log()["total_units"] == 0  # nothing was sent


# --- two processes on one sandbox profile -------------------------------------------------

#: The profile's limit per window, scaled down: one ``$batch`` of lookups (100 parts plus the
#: batch) fits in a window, two do not.
LIMIT = 120
WINDOW = 1.0
#: SKUs each process links: two batches each.
SKUS = 200


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    """The ChannelAdvisor contract harness (an in-process sandbox) with scaled limits."""
    from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness

    harness = ChannelAdvisorHarness(tmp_path)
    harness.start()
    harness.sandbox.configure(
        rate_limit_per_minute=LIMIT, rate_window_seconds=WINDOW, products_page_size=10
    )
    # A large catalog on small pages: the plugin links by batched lookups, not by a sweep.
    harness.sandbox.seed_products(count=3000)
    yield harness
    harness.stop()


def _hub(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    hub_exe = Path(sys.executable).with_name("hub")
    command = [str(hub_exe)] if hub_exe.exists() else [sys.executable, "-m", "hub_core.cli"]
    return subprocess.Popen(
        [*command, *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _most_units_in_any_window(entries: list[dict[str, Any]], window: float) -> int:
    """The most rate units the sandbox admitted within any ``window`` seconds."""
    sends = sorted((e["time"], e["units"]) for e in entries if e["units"] and e["status"] != 429)
    most, start, total = 0, 0, 0
    for end_time, units in sends:
        total += units
        while sends[start][0] <= end_time - window:
            total -= sends[start][1]
            start += 1
        most = max(most, total)
    return most


def _set_up(url: str, tmp_path: Path, sandbox: Any, names: list[str]) -> None:
    """The catalog and one connection per name, all on the sandbox's one profile."""
    from hub_core.services import Hub
    from hub_core.services.catalog import import_catalog
    from hub_core.services.connections import add_connection

    catalog = tmp_path / "catalog.csv"
    rows = [f"R-{n},Item {n},3,9.99" for n in range(SKUS)]
    catalog.write_text("sku,title,quantity,price\n" + "\n".join(rows) + "\n", encoding="utf-8")
    hub = Hub.open(url)
    try:
        import_catalog(hub, catalog)
        for name in names:
            add_connection(hub, name, "channeladvisor", sandbox.connection_values())
    finally:
        hub.db.dispose()


def _race(tmp_path: Path, sandbox: Any, env: dict[str, str], names: list[str]) -> dict[str, Any]:
    """``hub listings link`` on two connections of one profile, in two processes at once."""
    sandbox.sandbox.reset_log()
    sandbox.sandbox.rate_limiter.reset()
    racers = [_hub(tmp_path, env, "listings", "link", name) for name in names]
    for racer in racers:
        _out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err
    return sandbox.sandbox.request_log()


def test_two_processes_on_one_profile_never_pass_its_limit(
    shared: str, sandbox: Any, tmp_path: Path
) -> None:
    for n in range(SKUS):
        sandbox.add_product(f"R-{n}", 3, 9.99)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    _set_up(url, tmp_path, sandbox, ["a", "b", "c", "d"])
    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        limiter.REQUESTS_PER_MINUTE_ENV: str(LIMIT),
        limiter.WINDOW_ENV: str(WINDOW),
    }
    log = _race(tmp_path, sandbox, env, ["a", "b"])
    entries = log["entries"]
    units = sum(e["units"] for e in entries)
    assert units >= 3 * LIMIT  # enough traffic that the shared budget had to hold it back
    assert log["batches"] == 4
    assert log["throttled_rate"] == 0, "the sandbox answered 429 for the rate"
    assert _most_units_in_any_window(entries, WINDOW) <= LIMIT
    assert log["throttled_in_flight"] == 0

    # The control: without Redis each process counts only its own sends, and the profile's
    # limit is passed (the sandbox refuses some with 429; the client retries them).
    env.pop(REDIS_URL_ENV)
    control = _race(tmp_path, sandbox, env, ["c", "d"])
    assert control["throttled_rate"] > 0
