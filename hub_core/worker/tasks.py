"""The hub's one Celery task: run one operation of one connection (design §9).

``hub.run_operation(connection, operation, trigger, due)`` calls the same service as the CLI
(``hub listings link``, ``hub orders get``, ...) and is recorded as a run like a CLI run, with
its trigger. It returns the operation's JSON document (``hub run``'s step shape) so that
``hub dispatch --wait`` prints what ``hub run`` would.

Redelivery is harmless: every operation is idempotent (orders are unique per connection,
shipments are looked up on the channel before they are sent again, listings send only what
changed). Transient failures (the channel's network or 5xx answers, an unreachable database)
are retried by Celery with exponential backoff and jitter; another run of the same
(connection, operation) in progress makes the task wait its turn.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task
from celery.exceptions import MaxRetriesExceededError
from celery.signals import worker_process_init
from celery.utils.time import get_exponential_backoff_interval
from sqlalchemy.exc import DBAPIError, OperationalError

from hub_core.errors import (
    AuthError,
    ChannelError,
    ExitCode,
    HubError,
    NotSupported,
    RequirementNotMet,
    RunInProgress,
)
from hub_core.redaction import Redactor
from hub_core.services.context import Hub
from hub_core.services.operations import STEPS

log = logging.getLogger("hub.worker")

TASK_NAME = "hub.run_operation"
OPERATIONS = dict(STEPS)
#: Retries of a transient failure, waiting 2, 4, 8 ... up to 300 seconds (full jitter).
TRANSIENT_RETRIES = 6
BACKOFF_FACTOR = 2
BACKOFF_MAX = 300
#: Retries while another run of the same (connection, operation) works, this far apart.
IN_PROGRESS_RETRIES = 300
IN_PROGRESS_COUNTDOWN = 2

#: Set by ``hub worker``: operations run at once in this process (sizes the database pool).
CONCURRENCY_ENV = "HUB_WORKER_CONCURRENCY"

_hub: Hub | None = None
_hub_lock = threading.Lock()


class DatabaseUnavailable(HubError):
    """The database could not be reached for a task (retried)."""


def worker_hub() -> Hub:
    """This worker process's hub (database from ``HUB_DATABASE_URL``), opened once."""
    global _hub
    with _hub_lock:
        if _hub is None:
            from hub_core.db import Database
            from hub_core.plugins import Registry

            # A running task holds one pooled connection for its work and one for its lock.
            slots = 2 * _concurrency() + 1
            try:
                database = Database(None, pool_pre_ping=True, pool_size=slots, max_overflow=5)
            except HubError as exc:
                raise DatabaseUnavailable(exc.message) from None
            _hub = Hub(db=database, registry=Registry.load())
        return _hub


def _concurrency() -> int:
    raw = os.environ.get(CONCURRENCY_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 4


@worker_process_init.connect
def _forget_inherited_hub(**_kwargs: Any) -> None:
    """A forked pool process opens its own connections, never its parent's."""
    global _hub
    _hub = None


def _transient(exc: BaseException) -> bool:
    """Worth retrying later: the channel's network/server trouble, the database gone."""
    if isinstance(exc, AuthError):
        return False
    return isinstance(exc, ChannelError | DatabaseUnavailable | OperationalError | DBAPIError)


def _failed_step(operation: str, exc: HubError) -> dict[str, Any]:
    if exc.run_result is not None:
        return exc.run_result.to_json()
    if isinstance(exc, NotSupported):
        return {"operation": operation, "status": "not_supported", "message": exc.message}
    if isinstance(exc, RequirementNotMet):
        return {"operation": operation, "status": "skipped", "message": exc.message}
    return {"operation": operation, "status": "failed", "message": exc.message}


def step_exit_code(step: dict[str, Any]) -> ExitCode:
    """The exit code ``hub run`` gives a step: 1 failed, 4 some records failed, else 0."""
    return {"failed": ExitCode.FAILED, "partial": ExitCode.PARTIAL}.get(
        step.get("status", ""), ExitCode.OK
    )


def run_operation(
    task: Task, connection: str, operation: str, trigger: str = "dispatch", due: str | None = None
) -> dict[str, Any]:
    """Run ``operation`` on ``connection`` once; return its JSON step (see module docs)."""
    if operation not in OPERATIONS:
        return {"operation": operation, "status": "failed", "message": "unknown operation"}
    if (task.request.delivery_info or {}).get("redelivered"):
        # Its worker died holding it (or it outlived the broker's visibility timeout): run it
        # again, which is harmless (see the module docs). Counted by bench/chaos.py.
        log.warning(
            "hub task %s redelivered: %s on %s runs again", task.request.id, operation, connection
        )
    if due:
        # How late the scheduler's task started (from due to start), for `bench/fleet.py`.
        lag = (datetime.now(UTC) - datetime.fromisoformat(due)).total_seconds()
        log.info(
            "hub schedule-lag connection=%s operation=%s lag=%.3f due=%s",
            connection,
            operation,
            lag,
            due,
        )
    try:
        # Each task its own view of the hub: the trigger is per run, the pools are shared,
        # and its own redactor: it knows this task's connection, not every earlier one.
        hub = dataclasses.replace(worker_hub(), trigger=trigger, redactor=Redactor())
        # The run's lease (hub_core.services.leases) keeps one run per (connection, operation)
        # across workers and CLI processes: a second one raises RunInProgress.
        with hub.redactor.active():  # the task's log records: masked with its secrets
            result = OPERATIONS[operation](hub, connection)
        step = result.to_json()
    except RunInProgress as exc:
        try:
            raise task.retry(countdown=IN_PROGRESS_COUNTDOWN, max_retries=IN_PROGRESS_RETRIES)
        except MaxRetriesExceededError:
            return _failed_step(operation, exc)
    except Exception as exc:
        if not _transient(exc):
            if isinstance(exc, HubError):
                return _failed_step(operation, exc)
            raise
        countdown = get_exponential_backoff_interval(
            BACKOFF_FACTOR, task.request.retries, BACKOFF_MAX, full_jitter=True
        )
        log.warning(
            "hub %s on %s failed (%s), retry %d in %ds",
            operation,
            connection,
            getattr(exc, "message", exc.__class__.__name__),
            task.request.retries + 1,
            countdown,
        )
        try:
            raise task.retry(countdown=countdown, max_retries=TRANSIENT_RETRIES) from None
        except MaxRetriesExceededError:
            message = exc.message if isinstance(exc, HubError) else str(exc.__class__.__name__)
            return _failed_step(operation, HubError(message))
    log.info(
        "hub run %s: %s on %s %s (trigger %s, host %s)",
        step.get("run_id"),
        operation,
        connection,
        step.get("status"),
        trigger,
        socket.gethostname(),
    )
    return step


def register(app: Celery) -> None:
    """Add the hub's task to ``app``."""
    app.task(
        name=TASK_NAME,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        # Exceptions only for internal errors; failures come back as the run's document.
        max_retries=TRANSIENT_RETRIES,
    )(run_operation)


__all__ = ["OPERATIONS", "TASK_NAME", "register", "run_operation", "step_exit_code", "worker_hub"]
