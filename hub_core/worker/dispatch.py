"""``hub dispatch``: check what to enqueue, enqueue it, and (``--wait``) collect the runs.

Everything is checked before the first task is sent (the connections exist, their channels
support the operations, the broker answers), so a refused command enqueues nothing and a
repeated one never finds half of its tasks already queued.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from sqlalchemy import select

from hub_core.errors import ExitCode, HubError, NeedsReauth, NotSupported
from hub_core.models import Connection
from hub_core.services.connections import HEALTH_NEEDS_REAUTH, get_connection
from hub_core.services.context import Hub
from hub_core.services.schedule import SCHEDULED_OPERATIONS
from hub_core.worker.app import check_broker, check_result_backend
from hub_core.worker.tasks import TASK_NAME, step_exit_code


@dataclasses.dataclass
class Planned:
    """The operations to enqueue for one connection, in ``hub run`` order."""

    connection: str
    operations: list[str]
    results: list[AsyncResult] = dataclasses.field(default_factory=list)


def plan(
    hub: Hub, name: str | None, operations: Sequence[str]
) -> tuple[list[Planned], list[str]]:
    """What to enqueue: for ``name``, or every connection when ``name`` is None.

    Without ``operations``: every operation the channel supports. For one connection, an
    operation its channel does not support is refused (exit 3) and a connection that must be
    reconnected stops with the fix (exit 1); with ``--all`` both are left out with a note.

    :return: the plan and the notes for stderr.
    """
    asked = [op for op in SCHEDULED_OPERATIONS if op in operations] if operations else []
    notes: list[str] = []
    with hub.db.session() as session:
        if name is not None:
            rows = [get_connection(session, name)]
        else:
            rows = list(session.scalars(select(Connection).order_by(Connection.name)))
        found = [(row.name, row.channel, row.health, row.health_message) for row in rows]
    planned: list[Planned] = []
    for connection, channel_name, health, health_message in found:
        channel = hub.registry.channel(channel_name)
        if health == HEALTH_NEEDS_REAUTH:
            if name is not None:
                raise NeedsReauth(channel.reauth_message(connection, health_message))
            notes.append(f"{connection}: skipped, it must be reconnected (needs_reauth)")
            continue
        wanted = asked or list(SCHEDULED_OPERATIONS)
        unsupported = [op for op in wanted if not channel.supports(op)]
        if unsupported and asked and name is not None:
            raise NotSupported(
                f"The {channel.title} channel does not support {', '.join(unsupported)}; "
                f"nothing was enqueued. See 'hub channels'."
            )
        supported = [op for op in wanted if channel.supports(op)]
        if supported:
            planned.append(Planned(connection, supported))
    return planned, notes


def enqueue(app: Celery, planned: Sequence[Planned], *, wait: bool) -> None:
    """Send one task per (connection, operation), after checking the broker (and, to wait,
    the result backend)."""
    check_broker(app)
    if wait:
        check_result_backend(app)
    with app.producer_or_acquire() as producer:
        for item in planned:
            for operation in item.operations:
                item.results.append(
                    app.send_task(
                        TASK_NAME,
                        args=(item.connection, operation),
                        kwargs={"trigger": "dispatch"},
                        producer=producer,
                        ignore_result=not wait,
                    )
                )


def collect(
    planned: Sequence[Planned], timeout: float
) -> list[tuple[dict[str, Any], ExitCode]]:
    """Wait (at most ``timeout`` seconds in all) for every task; one ``hub run`` document and
    exit code per connection."""
    deadline = time.monotonic() + timeout
    documents: list[tuple[dict[str, Any], ExitCode]] = []
    for item in planned:
        steps: list[dict[str, Any]] = []
        for operation, result in zip(item.operations, item.results, strict=True):
            try:
                step = result.get(timeout=max(deadline - time.monotonic(), 0.1), propagate=False)
            except CeleryTimeout:
                raise HubError(
                    f"Gave up waiting after {timeout:g} s: {operation} of {item.connection} "
                    f"(task {result.id}) has not finished. It still runs when a worker takes it; "
                    f"see 'hub runs list --connection {item.connection}'. Is a worker running "
                    "('hub worker')?"
                ) from None
            if not isinstance(step, dict):  # the task raised: an internal error in the worker
                step = {"operation": operation, "status": "failed", "message": f"{step!r}"}
            steps.append(step)
        documents.append(summarize(item.connection, steps))
    return documents


def summarize(connection: str, steps: list[dict[str, Any]]) -> tuple[dict[str, Any], ExitCode]:
    """``hub run``'s document and exit code: 1 if a step failed, 4 if some records failed."""
    codes = [step_exit_code(step) for step in steps]
    code = (
        ExitCode.FAILED
        if ExitCode.FAILED in codes
        else ExitCode.PARTIAL
        if ExitCode.PARTIAL in codes
        else ExitCode.OK
    )
    status = {ExitCode.OK: "ok", ExitCode.PARTIAL: "partial"}.get(code, "failed")
    return {"connection": connection, "status": status, "operations": steps}, code
