"""Running at scale without the services: schedule settings, ``hub dispatch`` / ``hub worker``
/ ``hub schedule`` refusals, the task's retries, and the scheduler's reading of the database.

The tests with real workers, brokers and PostgreSQL are in ``test_scale.py``.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import MaxRetriesExceededError, Retry
from sqlalchemy import func, select

from hub_core.errors import ChannelError, ExitCode, NotFound, RunInProgress
from hub_core.models import Order
from hub_core.services import Hub
from hub_core.services.connections import add_connection, configure_connection, open_run
from hub_core.services.context import OperationResult
from hub_core.services.schedule import intervals, parse_interval
from hub_core.worker import tasks
from hub_core.worker.app import make_app
from hub_core.worker.scheduler import DatabaseScheduler
from hub_fake_channel.store import FakeStore

#: Nothing listens here: an unreachable broker.
DEAD_BROKER = "redis://:pw-not-shown@127.0.0.1:9/0"


# --- schedule settings ------------------------------------------------------------------------


def test_every_connection_takes_schedule_settings_with_defaults(cli_shop: Any) -> None:
    settings = cli_shop.json("connections", "show", "shop")["settings"]
    assert settings["schedule_link_listings"] == "1h"
    assert settings["schedule_sync_listings"] == "15m"
    assert settings["schedule_get_orders"] == "15m"
    assert settings["schedule_sync_orders"] == "15m"
    cli_shop(
        "connections", "configure", "shop",
        "--set", "schedule_get_orders=5m", "--set", "schedule_link_listings=off",
    )  # fmt: skip
    settings = cli_shop.json("connections", "show", "shop")["settings"]
    assert settings["schedule_get_orders"] == "5m" and settings["schedule_link_listings"] == "off"
    # The plugin never sees them: operations still load the channel's own settings.
    cli_shop("listings", "link", "shop")


def test_a_channeladvisor_connection_takes_them_too(hub_cli: Any) -> None:
    hub_cli(
        "connections", "add", "ca", "--channel", "channeladvisor",
        "--set", "access_token=a", "--set", "refresh_token=r", "--set", "profile_id=1",
        "--set", "application_id=app", "--set", "shared_secret=s3cr3t",
        "--set", "schedule_sync_orders=1h",
    )  # fmt: skip
    assert hub_cli.json("connections", "show", "ca")["settings"]["schedule_sync_orders"] == "1h"


def test_a_bad_interval_is_refused_naming_every_bad_key(cli_shop: Any, db_snapshot: Any) -> None:
    before = db_snapshot(cli_shop.url)
    result = cli_shop(
        "connections", "configure", "shop",
        "--set", "schedule_get_orders=soon", "--set", "schedule_sync_orders=0m",
        code=2,
    )  # fmt: skip
    assert "schedule_get_orders" in result.output and "'soon'" in result.output
    assert "schedule_sync_orders" in result.output
    assert "15m" in result.output and "off" in result.output  # how to fix it
    assert db_snapshot(cli_shop.url) == before


def test_unknown_key_message_lists_the_schedule_settings(cli_shop: Any) -> None:
    result = cli_shop("connections", "configure", "shop", "--set", "schedule_nope=1h", code=2)
    assert "schedule_get_orders" in result.output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), (" 1H ", 3600), ("off", None)],
)
def test_parse_interval(text: str, seconds: int | None) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "1.5h", "-1h", "0s", "1w", "never"])
def test_parse_interval_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 15m"):
        parse_interval(text)


def test_intervals_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    assert intervals({"schedule_link_listings": "off"}) == {
        "sync_listings": 900,
        "get_orders": 900,
        "sync_orders": 900,
    }
    monkeypatch.setenv("HUB_SCHEDULE_SCALE", "60")
    assert intervals({})["link_listings"] == 60


# --- hub dispatch, hub worker, hub schedule: refusals -----------------------------------------


def test_dispatch_needs_a_name_or_all(cli_shop: Any) -> None:
    assert "NAME or --all" in cli_shop("dispatch", code=2).output
    assert "NAME or --all" in cli_shop("dispatch", "shop", "--all", code=2).output


def test_dispatch_unknown_connection_or_operation_exits_2(cli_shop: Any) -> None:
    monkey = pytest.MonkeyPatch()
    monkey.setenv("HUB_BROKER_URL", DEAD_BROKER)  # checked only after the input: never reached
    try:
        assert "No connection named 'nope'" in cli_shop("dispatch", "nope", code=2).output
        result = cli_shop("dispatch", "shop", "--operation", "publish", code=2)
        assert "get_orders" in result.output
    finally:
        monkey.undo()


@pytest.mark.parametrize("command", [["dispatch", "shop"], ["worker"], ["schedule"]])
def test_an_unreachable_broker_is_one_clear_error_naming_it(
    cli_shop: Any, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("HUB_BROKER_URL", DEAD_BROKER)
    monkeypatch.setenv("HUB_DATABASE_URL", cli_shop.url)  # `hub worker` exports it
    result = cli_shop(*command, code=1)
    assert "Cannot reach the broker redis://:**@127.0.0.1:9/0" in result.output
    assert "pw-not-shown" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_worker_with_an_unreachable_shared_budget_refuses_to_start(
    cli_shop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HUB_REDIS_URL`` set but dead: one clear error naming it (exit 1), before any task."""
    monkeypatch.setenv("HUB_DATABASE_URL", cli_shop.url)
    monkeypatch.setenv("HUB_REDIS_URL", "redis://:pw-not-shown@127.0.0.1:9/0")
    # A live broker: only Redis is down.
    monkeypatch.setattr("hub_core.worker.app.check_broker", lambda app: None)
    started: list[Any] = []
    monkeypatch.setattr("celery.Celery.worker_main", lambda *args: started.append(args))
    result = cli_shop("worker", code=1)
    assert "Cannot reach Redis at redis://:**@127.0.0.1:9/0 (HUB_REDIS_URL)" in result.output
    assert "pw-not-shown" not in result.output and started == []
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HUB_SCHEDULE_SCALE", "fast"), ("HUB_SCHEDULE_REFRESH", "-1"),
     ("HUB_BROKER_VISIBILITY_TIMEOUT", "soon"), ("HUB_BROKER_RESTORE_SECONDS", "0")],
)  # fmt: skip
def test_bad_scale_settings_stop_the_scheduler_with_exit_2(
    cli_shop: Any, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("HUB_BROKER_URL", DEAD_BROKER)
    monkeypatch.setenv("HUB_DATABASE_URL", cli_shop.url)
    monkeypatch.setenv(variable, value)
    result = cli_shop("schedule", code=2)
    assert variable in result.output and "e.g." in result.output


def test_dispatch_json_error_is_one_document(
    cli_shop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_BROKER_URL", DEAD_BROKER)
    result = cli_shop("dispatch", "shop", "--wait", "--json", code=1)
    assert "Cannot reach the broker" in result.output
    assert result.stdout.strip() == "" or "error" in json.loads(result.stdout)


def test_an_unreachable_database_is_one_clear_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, hub_cli: Any
) -> None:
    url = "postgresql+psycopg://hub:secret-pw@127.0.0.1:9/hub"
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    for command in (["dispatch", "shop"], ["worker"], ["schedule"]):
        result = hub_cli.__class__(url)(*command, code=1)
        assert "Cannot open the database postgresql+psycopg://hub:***@127.0.0.1:9/hub" in (
            result.output
        )
        assert "secret-pw" not in result.output


def test_dispatch_refuses_an_operation_the_channel_does_not_support(
    hub_cli: Any, make_stub: Any, make_registry: Any
) -> None:
    stub = make_stub(capabilities={"sync_orders": "not_supported"})
    registry = make_registry((stub, "stub"))
    hub_cli(
        "connections", "add", "s", "--channel", "stub", "--set", "account=a", "--set", "token=t",
        registry=registry,
    )  # fmt: skip
    result = hub_cli("dispatch", "s", "--operation", "sync_orders", code=3, registry=registry)
    assert "sync_orders" in result.output and "nothing was enqueued" in result.output


def test_dispatch_a_connection_that_needs_reauth_exits_1_with_the_fix(hub: Hub, shop: str) -> None:
    from hub_core.worker.dispatch import plan

    open_run(hub, shop).connection.mark_needs_reauth("refused")
    with pytest.raises(Exception, match="hub connections configure shop"):
        plan(hub, shop, [])
    planned, notes = plan(hub, None, [])
    assert planned == [] and "needs_reauth" in notes[0]


def test_connections_list_says_a_needs_reauth_connection_is_not_scheduled(
    cli_shop: Any, store: FakeStore
) -> None:
    hub = Hub.open(cli_shop.url)
    try:
        open_run(hub, "shop").connection.mark_needs_reauth("refused")
    finally:
        hub.db.dispose()
    assert "must be reconnected, skipped until then" in cli_shop("connections", "list").output
    assert cli_shop.json("connections", "list")[0]["scheduled"] is False


def test_dispatch_plan_in_order_and_only_supported(
    hub: Hub, shop: str, make_stub: Any, make_registry: Any
) -> None:
    from hub_core.worker.dispatch import plan

    [planned], _ = plan(hub, shop, ["sync_orders", "link_listings"])
    assert planned.operations == ["link_listings", "sync_orders"]
    with pytest.raises(NotFound):
        plan(hub, "nope", [])


# --- the task ---------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, retries: int, redelivered: bool = False) -> None:
        self.retries = retries
        self.id = "task-1"
        self.delivery_info = {"redelivered": redelivered}


class FakeTask:
    """Stands for the bound Celery task: records retries as Celery's ``retry`` would."""

    def __init__(self, retries: int = 0, max_retries: int = 6, redelivered: bool = False) -> None:
        self.request = FakeRequest(retries, redelivered)
        self.retried: list[dict[str, Any]] = []
        self.max_retries = max_retries

    def retry(self, countdown: float, max_retries: int) -> Retry:
        if self.request.retries >= max_retries:
            raise MaxRetriesExceededError()
        self.retried.append({"countdown": countdown, "max_retries": max_retries})
        raise Retry()


@pytest.fixture
def task_hub(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Hub:
    monkeypatch.setattr(tasks, "_hub", hub)
    return hub


def _operation_raising(exc: Exception, calls: list[str]) -> Any:
    def operation(hub: Hub, connection: str) -> OperationResult:
        calls.append(hub.trigger)
        raise exc

    return operation


def test_task_runs_the_operation_with_its_trigger(
    task_hub: Hub, shop: str, store: FakeStore
) -> None:
    store.add_order([("SKU-1", 1)], shipping_text="UPS - Ground", order_id="O-1")
    step = tasks.run_operation(FakeTask(), shop, "get_orders", trigger="schedule")
    assert step["status"] == "ok" and [r["ref"] for r in step["records"]] == ["O-1"]
    assert task_hub.trigger == "cli"  # the shared hub is not changed by a task


def test_a_redelivered_task_runs_again_harmlessly_and_says_so(
    task_hub: Hub, shop: str, store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Its worker died after the run: the broker hands the task over again (acks_late)."""
    store.add_order([("SKU-1", 1)], shipping_text="UPS - Ground", order_id="O-1")
    first = tasks.run_operation(FakeTask(), shop, "get_orders")
    assert [r["ref"] for r in first["records"]] == ["O-1"]
    assert "redelivered" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="hub.worker"):
        again = tasks.run_operation(FakeTask(redelivered=True), shop, "get_orders")
    assert again["status"] == "ok" and again["records"] == []
    assert "hub task task-1 redelivered: get_orders on shop runs again" in caplog.text
    with task_hub.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_task_retries_a_transient_failure_with_backoff(
    task_hub: Hub, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setitem(
        tasks.OPERATIONS, "get_orders", _operation_raising(ChannelError("503"), calls)
    )
    task = FakeTask(retries=3)
    with pytest.raises(Retry):
        tasks.run_operation(task, shop, "get_orders", trigger="dispatch")
    assert calls == ["dispatch"]
    [retry] = task.retried
    assert 0 <= retry["countdown"] <= 2 * 2**3 and retry["max_retries"] == tasks.TRANSIENT_RETRIES
    # Out of retries: the run's failure comes back as its document, not an exception.
    step = tasks.run_operation(FakeTask(retries=tasks.TRANSIENT_RETRIES), shop, "get_orders")
    assert step["status"] == "failed" and "503" in step["message"]


def test_task_waits_for_a_run_in_progress(
    task_hub: Hub, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    busy = RunInProgress("get_orders of shop is running since 10:00 (run 3)", run_id=3, since=None)
    monkeypatch.setitem(tasks.OPERATIONS, "get_orders", _operation_raising(busy, calls))
    task = FakeTask()
    with pytest.raises(Retry):
        tasks.run_operation(task, shop, "get_orders")
    assert task.retried == [
        {"countdown": tasks.IN_PROGRESS_COUNTDOWN, "max_retries": tasks.IN_PROGRESS_RETRIES}
    ]


def test_task_does_not_retry_a_user_error(task_hub: Hub, shop: str, store: FakeStore) -> None:
    task = FakeTask()
    step = tasks.run_operation(task, "gone", "get_orders")
    assert step["status"] == "failed" and "No connection named 'gone'" in step["message"]
    assert task.retried == []
    assert tasks.step_exit_code(step) == ExitCode.FAILED


def test_task_reports_a_requirement_as_skipped(
    task_hub: Hub, make_stub: Any, make_registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make_registry((make_stub(requirements={"shipping_mappings": "required"}), "stub"))
    monkeypatch.setattr(task_hub, "registry", registry)
    add_connection(task_hub, "s", "stub", {"account": "a", "token": "t"})
    step = tasks.run_operation(FakeTask(), "s", "get_orders")
    assert step["status"] == "skipped" and tasks.step_exit_code(step) == ExitCode.OK


def test_task_settings_are_those_of_the_issue() -> None:
    app = make_app("redis://127.0.0.1:6379/0")
    task = app.tasks[tasks.TASK_NAME]
    assert task.acks_late is True and task.reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert make_app("amqp://guest:guest@127.0.0.1:5672//").conf.result_backend == "rpc://"


def test_the_sweep_for_abandoned_tasks_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUB_BROKER_VISIBILITY_TIMEOUT", raising=False)
    monkeypatch.delenv("HUB_BROKER_RESTORE_SECONDS", raising=False)
    options = make_app("redis://127.0.0.1:6379/0").conf.broker_transport_options
    assert options == {"visibility_timeout": 3600}  # kombu's sweep, about every 100 s
    monkeypatch.setenv("HUB_BROKER_VISIBILITY_TIMEOUT", "30")
    monkeypatch.setenv("HUB_BROKER_RESTORE_SECONDS", "5")
    options = make_app("redis://127.0.0.1:6379/0").conf.broker_transport_options
    assert options == {
        "visibility_timeout": 30, "unacked_restore_interval": 5, "unacked_restore_throttle": 1
    }


# --- the scheduler reads the database -----------------------------------------------------------


def _scheduler(url: str, monkeypatch: pytest.MonkeyPatch) -> DatabaseScheduler:
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_SCHEDULE_REFRESH", "3600")
    return DatabaseScheduler(app=make_app("redis://127.0.0.1:6379/0"))


def test_scheduler_entries_follow_the_connections(
    hub: Hub, shop: str, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = _scheduler(hub.db.url, monkeypatch)
    try:
        entries = scheduler.schedule
        assert sorted(entries) == [
            "shop:get_orders", "shop:link_listings", "shop:sync_listings", "shop:sync_orders",
        ]  # fmt: skip
        assert entries["shop:link_listings"].schedule.run_every == timedelta(hours=1)
        assert entries["shop:get_orders"].args == ("shop", "get_orders")
        assert entries["shop:get_orders"].kwargs == {"trigger": "schedule"}
        # Never ran: due at once.
        assert entries["shop:get_orders"].is_due()[0] is True

        # Reconfigured, added, needs_reauth: picked up at the next read, no restart.
        configure_connection(
            hub, shop, {"schedule_get_orders": "off", "schedule_sync_orders": "1h"}
        )
        other = FakeStore(store.path.with_name("other.json"))
        other.create()
        add_connection(hub, "other", "fake", {"store": str(other.path)})
        kept = entries["shop:sync_listings"]
        scheduler._read()
        entries = scheduler.schedule
        assert "shop:get_orders" not in entries
        assert entries["shop:sync_orders"].schedule.run_every == timedelta(hours=1)
        assert entries["shop:sync_listings"] is kept  # unchanged: its timing is kept
        assert "other:get_orders" in entries
        open_run(hub, "other").connection.mark_needs_reauth("refused")
        scheduler._read()
        assert not [name for name in scheduler.schedule if name.startswith("other:")]
    finally:
        scheduler.close()


def test_scheduler_counts_from_the_last_run_whoever_started_it(
    hub: Hub, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub_core.services.listings import sync_listings

    sync_listings(hub, shop)  # a CLI run just now
    scheduler = _scheduler(hub.db.url, monkeypatch)
    try:
        due, wait = scheduler.schedule["shop:sync_listings"].is_due()
        assert due is False and 890 < wait <= 900
        assert scheduler.schedule["shop:get_orders"].is_due()[0] is True
    finally:
        scheduler.close()


def test_scheduler_sends_the_due_time(
    hub: Hub, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = _scheduler(hub.db.url, monkeypatch)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(scheduler.app, "send_task", lambda name, **kw: sent.append(kw))
    try:
        entry = scheduler.schedule["shop:get_orders"]
        scheduler.apply_entry(entry)
        [call] = sent
        assert call["args"] == ("shop", "get_orders")
        assert call["kwargs"]["trigger"] == "schedule" and "due" in call["kwargs"]
        assert call["ignore_result"] is True and call["expires"] == 900
    finally:
        scheduler.close()
