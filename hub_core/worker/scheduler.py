"""The scheduler of ``hub schedule``: a celery beat scheduler whose schedule is the database.

Every ``HUB_SCHEDULE_REFRESH`` seconds (default 30) it reads the connections and their
``schedule_*`` settings (see :mod:`hub_core.services.schedule`): one entry per (connection,
supported operation) not ``off``. A connection added, removed or reconfigured is picked up
at the next refresh, without a restart; one that ``needs_reauth`` is left out until its
credentials are fixed. A new entry is due one interval after the last run of that operation
(whoever started it: CLI, dispatch or schedule), at once if it never ran.

Each task carries the time it was due, so the worker can log the schedule lag.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.beat import ScheduleEntry, Scheduler
from celery.schedules import schedule as every
from sqlalchemy import select

from hub_core.errors import InvalidInput
from hub_core.models import Connection, Run
from hub_core.services.connections import HEALTH_NEEDS_REAUTH
from hub_core.services.schedule import intervals
from hub_core.worker.tasks import TASK_NAME

log = logging.getLogger("hub.schedule")

REFRESH_ENV = "HUB_SCHEDULE_REFRESH"
DEFAULT_REFRESH = 30.0


def refresh_seconds() -> float:
    """How often the schedule is read from the database (``HUB_SCHEDULE_REFRESH``)."""
    raw = os.environ.get(REFRESH_ENV, "").strip()
    if not raw:
        return DEFAULT_REFRESH
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise InvalidInput(
            f"{REFRESH_ENV}={raw!r} must be a positive number of seconds, e.g. 30."
        )
    return value


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DatabaseScheduler(Scheduler):
    """Beat's scheduler, its entries read from the hub's database (see module docs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._entries: dict[str, ScheduleEntry] = {}
        self._read_at: float | None = None
        self._refresh = refresh_seconds()
        self._hub: Any = None
        kwargs["max_interval"] = min(kwargs.get("max_interval") or self._refresh, self._refresh)
        super().__init__(*args, **kwargs)

    # -- beat's interface -------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Read the schedule now (beat's own entries are not used)."""
        self._read()

    @property
    def schedule(self) -> dict[str, ScheduleEntry]:  # type: ignore[override]
        """The entries, read again from the database when the last read is old."""
        if self._read_at is None or time.monotonic() - self._read_at >= self._refresh:
            self._read()
        return self._entries

    def sync(self) -> None:
        """Nothing to save: the runs table is the memory of when each operation last ran."""

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send the entry's task with the time it was due."""
        interval = entry.schedule.run_every
        due = _aware(entry.last_run_at) + interval
        try:
            self.app.send_task(
                entry.task,
                args=entry.args,
                kwargs={**entry.kwargs, "due": due.isoformat()},
                producer=producer,
                **entry.options,
            )
        except Exception as exc:  # the broker is gone: beat retries at the next interval
            log.error("hub schedule: cannot send %s: %s", entry.name, exc)
        else:
            log.info("hub schedule: sent %s (due %s)", entry.name, due.isoformat())

    # -- the database -----------------------------------------------------------------------

    def _open(self) -> Any:
        if self._hub is None:
            from hub_core.db import Database
            from hub_core.plugins import Registry
            from hub_core.services.context import Hub

            self._hub = Hub(db=Database(None, pool_pre_ping=True), registry=Registry.load())
        return self._hub

    def _read(self) -> None:
        """Rebuild the entries from the connections; keep the timing of unchanged ones."""
        self._read_at = time.monotonic()
        try:
            hub = self._open()
            wanted = self._wanted(hub)
        except Exception as exc:  # keep the last schedule while the database is away
            log.error("hub schedule: cannot read the schedule: %s", exc)
            return
        entries: dict[str, ScheduleEntry] = {}
        new: list[tuple[str, int, str, float]] = []
        for name, (connection_id, connection, _operation, seconds) in wanted.items():
            old = self._entries.get(name)
            if old is not None and old.schedule.run_every.total_seconds() == seconds:
                entries[name] = old
            else:
                new.append((name, connection_id, connection, seconds))
        if new:
            last_runs = self._last_runs(hub, [(cid, name) for name, cid, _, _ in new])
            for name, _cid, connection, seconds in new:
                operation = name.rsplit(":", 1)[1]
                now = self.app.now()
                last = last_runs.get(name)
                # Never ran: due now. Ran before: due one interval after that run started.
                last_run_at = _aware(last) if last else now - timedelta(seconds=seconds)
                entries[name] = ScheduleEntry(
                    name=name,
                    task=TASK_NAME,
                    args=(connection, operation),
                    kwargs={"trigger": "schedule"},
                    schedule=every(timedelta(seconds=seconds), app=self.app),
                    last_run_at=last_run_at,
                    # A task still queued when the next one is due is dropped, not piled up.
                    options={"ignore_result": True, "expires": seconds},
                    app=self.app,
                )
        if set(entries) != set(self._entries) or new:
            log.info("hub schedule: %d entries", len(entries))
        self._entries = entries

    def _wanted(self, hub: Any) -> dict[str, tuple[int, str, str, float]]:
        """``name -> (connection id, connection, operation, seconds)`` of every entry."""
        wanted: dict[str, tuple[int, str, str, float]] = {}
        with hub.db.session() as session:
            rows = session.execute(
                select(Connection.id, Connection.name, Connection.channel, Connection.settings)
                .where(Connection.health != HEALTH_NEEDS_REAUTH)
                .order_by(Connection.name)
            ).all()
        for connection_id, name, channel_name, settings in rows:
            channel = hub.registry.channels.get(channel_name)
            if channel is None:
                continue  # its plugin is not installed here
            for operation, seconds in intervals(settings or {}).items():
                if channel.supports(operation):
                    wanted[f"{name}:{operation}"] = (connection_id, name, operation, seconds)
        return wanted

    def _last_runs(self, hub: Any, keys: list[tuple[int, str]]) -> dict[str, datetime]:
        """When each (connection id, entry name) last started a run of its operation."""
        found: dict[str, datetime] = {}
        with hub.db.session() as session:
            for connection_id, name in keys:
                operation = name.rsplit(":", 1)[1]
                started = session.scalar(
                    select(Run.started_at)
                    .where(Run.connection_id == connection_id, Run.operation == operation)
                    .order_by(Run.id.desc())
                    .limit(1)
                )
                if started is not None:
                    found[name] = started
        return found

    def close(self) -> None:
        """Close the database connections."""
        if self._hub is not None:
            self._hub.db.dispose()
        super().close()
