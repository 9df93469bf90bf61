"""One run at a time per (connection, operation): the lease, its renewal and expiry, and what a
run records about where it ran (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hub_core.errors import InvalidInput, RunInProgress
from hub_core.models import Connection, Lease, Order, Run, utcnow
from hub_core.services import Hub
from hub_core.services.connections import add_connection, get_connection
from hub_core.services.leases import LEASE_SECONDS_ENV, lease_seconds
from hub_core.services.runs import RunRecorder, show_run
from hub_fake_channel.store import FakeStore


def _connection(hub: Hub, name: str) -> Connection:
    with hub.db.session() as session:
        return get_connection(session, name)


def _leases(hub: Hub) -> list[tuple[int, str, int]]:
    with hub.db.session() as session:
        return [
            (lease.connection_id, lease.operation, lease.run_id)
            for lease in session.scalars(select(Lease).order_by(Lease.operation))
        ]


@pytest.fixture
def two_shops(hub: Hub, shop: str, store: FakeStore) -> tuple[Connection, Connection]:
    """``shop`` and ``other``, two connections to fake stores."""
    other = FakeStore(store.path.with_name("other.json"))
    other.create()
    add_connection(hub, "other", "fake", {"store": str(other.path)})
    return _connection(hub, shop), _connection(hub, "other")


def test_a_second_run_of_the_same_operation_is_refused_naming_the_first(
    hub: Hub, two_shops: tuple[Connection, Connection]
) -> None:
    shop, other = two_shops
    with RunRecorder(hub, "get_orders", shop) as first:
        with pytest.raises(RunInProgress) as refused, RunRecorder(hub, "get_orders", shop):
            pytest.fail("the second run started")  # pragma: no cover
        # Another operation of the same connection, and the same operation of another
        # connection, run beside it.
        with RunRecorder(hub, "sync_orders", shop) as beside:
            pass
        with RunRecorder(hub, "get_orders", other) as elsewhere:
            pass
        assert _leases(hub) == [(shop.id, "get_orders", first.run_id)]
    error = refused.value
    assert error.run_id == first.run_id and int(error.exit_code) == 1
    assert error.message.startswith(
        f"get_orders of 'shop' is already running: run {first.run_id}, started "
    )
    assert "hub runs show" in error.message and "lease expires at" in error.message
    assert error.since is not None and error.expires_at > error.since
    # The refused run left no row behind; the finished ones left no lease.
    with hub.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 3
    assert {beside.status, elsewhere.status, first.status} == {"ok"}
    assert _leases(hub) == []
    with RunRecorder(hub, "get_orders", shop) as again:
        pass
    assert again.status == "ok"


def test_the_cli_exits_1_naming_the_run_in_progress(hub: Hub, cli_shop: Any) -> None:
    shop = _connection(hub, "shop")
    with RunRecorder(hub, "sync_orders", shop) as running:
        result = cli_shop("orders", "sync", "shop", code=1)
        assert f"sync_orders of 'shop' is already running: run {running.run_id}" in result.stderr
        assert "Traceback" not in result.output
    assert cli_shop.json("orders", "sync", "shop")["status"] == "ok"


def test_a_refused_run_or_a_failed_one_releases_its_lease(
    hub: Hub, two_shops: tuple[Connection, Connection]
) -> None:
    shop, _ = two_shops
    with pytest.raises(RuntimeError), RunRecorder(hub, "get_orders", shop):
        raise RuntimeError("boom")
    assert _leases(hub) == []
    with pytest.raises(InvalidInput), RunRecorder(hub, "get_orders", shop) as refused:
        raise InvalidInput("bad input: nothing changed")
    assert refused.run_id is None and _leases(hub) == []
    with RunRecorder(hub, "get_orders", shop) as after:
        pass
    assert after.status == "ok"


def test_an_expired_lease_is_taken_over_and_its_run_marked_abandoned(
    hub: Hub, two_shops: tuple[Connection, Connection]
) -> None:
    shop, _ = two_shops
    dead = RunRecorder(hub, "get_orders", shop).__enter__()  # a process that never finishes
    dead.lease.stop()  # ...and stopped renewing
    with pytest.raises(RunInProgress):
        RunRecorder(hub, "get_orders", shop).__enter__()
    with hub.db.session() as session:
        session.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    with RunRecorder(hub, "get_orders", shop) as successor:
        assert _leases(hub) == [(shop.id, "get_orders", successor.run_id)]
    abandoned = show_run(hub, dead.run_id)
    assert abandoned["status"] == "failed" and abandoned["finished_at"] is not None
    assert abandoned["message"].startswith("abandoned: its process stopped renewing the lease")
    assert f"run {successor.run_id} took over" in abandoned["message"]
    assert _leases(hub) == []


def test_a_working_run_renews_its_lease(
    hub: Hub, two_shops: tuple[Connection, Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEASE_SECONDS_ENV, "0.4")
    shop, _ = two_shops
    with RunRecorder(hub, "get_orders", shop) as run:
        assert run.lease is not None and run.lease.interval == pytest.approx(0.1)
        with hub.db.session() as session:
            first_expiry = session.scalar(select(Lease.expires_at))
        for _ in range(200):  # at most 10 s
            if run.lease.renewals >= 3:
                break
            time.sleep(0.05)
        with hub.db.session() as session:
            renewed_expiry = session.scalar(select(Lease.expires_at))
        assert run.lease.renewals >= 3
        assert renewed_expiry > first_expiry
        # Several lease durations later the run still holds it.
        with pytest.raises(RunInProgress):
            RunRecorder(hub, "get_orders", shop).__enter__()
    assert run.status == "ok" and not run.lease.lost


def test_a_run_whose_lease_was_taken_over_says_so(
    hub: Hub, two_shops: tuple[Connection, Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEASE_SECONDS_ENV, "0.4")
    shop, _ = two_shops
    with RunRecorder(hub, "get_orders", shop) as stalled:
        with hub.db.session() as session:  # as if it had stalled past its expiry
            session.execute(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
        with RunRecorder(hub, "get_orders", shop) as successor:
            assert stalled.lease is not None
            for _ in range(200):  # at most 10 s for its renewal thread to notice
                if stalled.lease.lost:
                    break
                time.sleep(0.05)
            assert stalled.lease.lost
            assert _leases(hub) == [(shop.id, "get_orders", successor.run_id)]
    # It noticed only after its last commit point: failed all the same, saying why.
    lost = show_run(hub, stalled.run_id)
    assert lost["status"] == "failed"
    assert (
        f"lease lost: its lease expired while this run stalled and run {successor.run_id} took over"
        in lost["message"]
    )
    assert show_run(hub, successor.run_id)["status"] == "ok"
    assert _leases(hub) == []


def test_the_lease_duration_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEASE_SECONDS_ENV, raising=False)
    assert lease_seconds() == 60
    monkeypatch.setenv(LEASE_SECONDS_ENV, "5")
    assert lease_seconds() == 5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(LEASE_SECONDS_ENV, bad)
        assert lease_seconds() == 60


# --- trigger and host ---------------------------------------------------------------------


def test_runs_record_their_trigger_and_host(hub: Hub, cli_shop: Any) -> None:
    cli_shop("orders", "sync", "shop")
    shop = _connection(hub, "shop")
    hub.trigger = "dispatch"
    with RunRecorder(hub, "get_orders", shop) as dispatched:
        pass
    runs = {r["run_id"]: r for r in cli_shop.json("runs", "list")}
    by_cli = next(r for r in runs.values() if r["operation"] == "sync_orders")
    host = socket.gethostname()
    assert (by_cli["trigger"], by_cli["host"]) == ("cli", host)
    shown = cli_shop.json("runs", "show", str(dispatched.run_id))
    assert (shown["trigger"], shown["host"]) == ("dispatch", host)
    text = cli_shop("runs", "show", str(dispatched.run_id)).stdout
    assert f"by dispatch on {host}" in text


# --- a crashed run ------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    """The ChannelAdvisor contract harness: an in-process sandbox."""
    from hub_channeladvisor_sandbox.harness import ChannelAdvisorHarness

    harness = ChannelAdvisorHarness(tmp_path)
    harness.start()
    yield harness
    harness.stop()


def _count_orders(hub: Hub) -> int:
    with hub.db.session() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


def test_a_run_killed_mid_way_is_resumed_after_its_lease_expires(
    hub: Hub, hub_cli: Any, database_url: str, sandbox: Any, tmp_path: Path
) -> None:
    """``hub orders get`` killed with SIGKILL while acknowledging: the next run is refused
    while the dead run's lease lasts, then takes over and heals, importing nothing twice."""
    ids = [sandbox.add_order([(f"K-{n}", 1)], sandbox.shipping_text) for n in range(150)]
    values = [f"--set={k}={v}" for k, v in sandbox.connection_values().items()]
    hub_cli("connections", "add", "shop", "--channel", "channeladvisor", *values)
    hub_cli(
        "shipping-mappings", "add", "shop", "--channel-text", sandbox.shipping_text, "--policy", "s"
    )
    sandbox.sandbox.configure(latency_ms=15)  # each acknowledgement (one call each) takes time
    hub_exe = Path(sys.executable).with_name("hub")
    command = [str(hub_exe)] if hub_exe.exists() else [sys.executable, "-m", "hub_core.cli"]
    # Long enough that the refusal below comes before the expiry even on a busy machine.
    env = {**os.environ, "HUB_DATABASE_URL": database_url, LEASE_SECONDS_ENV: "10"}
    process = subprocess.Popen(
        [*command, "orders", "get", "shop"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(1200):  # at most 60 s until its first batch of orders is committed
            if _count_orders(hub) or process.poll() is not None:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    committed = _count_orders(hub)
    assert 0 < committed < len(ids) or len(sandbox.acknowledged_orders()) < committed
    [dead] = [r for r in hub_cli.json("runs", "list") if r["operation"] == "get_orders"]
    assert dead["status"] == "running"

    refused = hub_cli("orders", "get", "shop", code=1)
    assert f"is already running: run {dead['run_id']}" in refused.stderr
    with hub.db.session() as session:
        expires = session.scalar(select(Lease.expires_at))
    assert expires is not None
    time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 0.2)

    resumed = hub_cli.json("orders", "get", "shop")
    assert resumed["status"] == "ok"
    imported = [r["ref"] for r in resumed["records"] if r["outcome"] == "ok"]
    assert len(imported) + committed == len(ids)  # the rest, and nothing again
    assert sorted(o["channel_order_id"] for o in hub_cli.json("orders", "list")) == sorted(ids)
    assert sandbox.acknowledged_orders() == set(ids)
    assert hub_cli.json("runs", "show", str(dead["run_id"]))["status"] == "failed"
    assert _count_orders(hub) == len(ids)
