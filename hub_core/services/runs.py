"""Runs: one row per operation call, with counts and per-record outcomes."""

from __future__ import annotations

import socket
from collections import Counter
from types import TracebackType
from typing import Any

from sqlalchemy import delete, insert, select

from hub_core.channel import Outcome
from hub_core.errors import HubError, InvalidInput, LeaseLost, NotFound, NotSupported
from hub_core.models import Connection, Run, RunRecord, utcnow
from hub_core.services import leases
from hub_core.services.context import Hub, OperationResult, RecordResult, RunContext

RECORDS_PER_INSERT = 5000


class RunRecorder:
    """Records one operation call as a :class:`~hub_core.models.Run`.

    The run row is committed when the operation starts (so a crash leaves a ``running`` row
    behind as evidence) and finished with counts and records when it ends. An error is
    stored with its user message and re-raised; input refused before any record (exit 2 or 3)
    removes the run, since nothing changed. What it keeps — records, the run's message, the
    error, and the channel messages a service stores with :meth:`clean` — is masked with the
    hub's redactor, which knows the secrets of every connection the hub opened.

    A run of a channel operation is recorded for its :class:`RunContext` (``context``): the
    connection comes from there, and the context's resources (the plugin's HTTP client) are
    closed when the run ends.
    """

    def __init__(
        self,
        hub: Hub,
        operation: str,
        connection: Connection | None = None,
        *,
        context: RunContext | None = None,
    ) -> None:
        self.hub = hub
        self.operation = operation
        self.context = context
        self.redactor = hub.redactor
        if context is not None:
            connection = context.row
            self.redactor.include(context.connection.redactor, key=("connection", context.name))
        self.connection_id = connection.id if connection else None
        self.connection_name = connection.name if connection else None
        self.records: list[RecordResult] = []
        self.counts: Counter[str] = Counter()
        self.run_id: int | None = None
        self.status = "running"
        self.message = ""
        self.extra: dict[str, Any] = {}
        self.lease: leases.LeaseKeeper | None = None

    def __enter__(self) -> RunRecorder:
        with self.hub.db.session() as session:
            run = Run(
                connection_id=self.connection_id,
                connection_name=self.connection_name,
                operation=self.operation,
                trigger=self.hub.trigger,
                host=socket.gethostname(),
            )
            session.add(run)
            session.flush()
            self.run_id = run.id
            if self.connection_id is not None:
                # In the run's own transaction: refused, the run row is never committed.
                leases.acquire(
                    session,
                    self.connection_id,
                    self.operation,
                    run.id,
                    connection_name=self.connection_name,
                )
        if self.connection_id is not None:
            self.lease = leases.LeaseKeeper(
                self.hub.db, self.connection_id, self.operation, run.id
            ).start()
        return self

    def commit_point(self) -> None:
        """Called at each commit point, before the next channel write: raises
        :class:`~hub_core.errors.LeaseLost` when this run no longer holds its lease, so a run
        that lost it stops there (failed) and sends nothing more."""
        if self.lease is not None:
            self.lease.check()

    def record(self, ref: str, outcome: Outcome | str, message: str = "") -> None:
        """Add the outcome of one record."""
        outcome = Outcome(outcome)
        self.records.append(
            RecordResult(ref=ref, outcome=outcome.value, message=self.clean(message))
        )
        self.counts[outcome.value] += 1

    def clean(self, message: str) -> str:
        """``message`` (a channel's, to be stored) with the connection's secrets masked."""
        return self.redactor.text(message)

    def count(self, key: str, amount: int = 1) -> None:
        """Add to an operation-specific count."""
        self.counts[key] += amount

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._finish(exc_type, exc)
        finally:
            if self.context is not None:
                self.context.close()  # the run has ended: so have its resources

    def _finish(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        if self.lease is not None:
            self.lease.stop()
        if isinstance(exc, InvalidInput | NotSupported) and not self.records and not self.counts:
            # Refused before anything happened (exit 2 or 3: nothing changed): no run either.
            with self.hub.db.session() as session:
                if self.connection_id is not None:
                    leases.release(session, self.connection_id, self.operation, self.run_id)
                session.execute(delete(Run).where(Run.id == self.run_id))
            self.run_id = None
            return
        if exc is not None:
            self.redactor.exception(exc)  # stored here, printed next
            self.status = "failed"
            self.message = (
                exc.message if isinstance(exc, HubError) else f"{exc_type.__name__}: {exc}"
            )
        else:
            failed = self.counts.get(Outcome.FAILED.value, 0)
            self.status = "partial" if failed else "ok"
        if self.lease is not None and self.lease.lost and not isinstance(exc, LeaseLost):
            # Lost after its last commit point: what it did is stored, but another run may
            # have worked alongside it, so it does not count as a clean run.
            lost = f"lease lost: {self.lease.reason}"
            self.status = "failed"
            self.message = f"{self.message} ({lost})" if self.message else lost
        with self.hub.db.session() as session:
            if self.connection_id is not None:
                leases.release(session, self.connection_id, self.operation, self.run_id)
            run = session.get(Run, self.run_id)
            assert run is not None
            run.status = self.status
            run.counts = dict(self.counts)
            run.message = self.message
            run.finished_at = utcnow()
            # In slices: one executemany of 100k records holds ~100 MB of parameters at once.
            for start in range(0, len(self.records), RECORDS_PER_INSERT):
                session.execute(
                    insert(RunRecord),
                    [
                        {"run_id": self.run_id, **r.to_json()}
                        for r in self.records[start : start + RECORDS_PER_INSERT]
                    ],
                )
        if isinstance(exc, HubError):
            exc.run_result = self.result()

    def result(self) -> OperationResult:
        """The operation's result (after the ``with`` block)."""
        return OperationResult(
            run_id=self.run_id,
            operation=self.operation,
            status=self.status,
            counts=dict(self.counts),
            records=self.records,
            message=self.message,
            extra=self.extra,
        )


def run_to_json(run: Run, *, records: bool = True) -> dict[str, Any]:
    """A stored run in the JSON shape of operation commands, plus its timing."""
    data: dict[str, Any] = {
        "run_id": run.id,
        "operation": run.operation,
        "status": run.status,
        "counts": run.counts,
        "connection": run.connection_name,
        "message": run.message,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "trigger": run.trigger,
        "host": run.host,
    }
    if records:
        data["records"] = [
            {"ref": r.ref, "outcome": r.outcome, "message": r.message} for r in run.records
        ]
    return data


def list_runs(hub: Hub, connection: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The latest runs, newest first, optionally of one connection."""
    with hub.db.session() as session:
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if connection:
            if session.scalar(select(Connection.id).where(Connection.name == connection)) is None:
                raise NotFound(f"No connection named {connection!r}. See 'hub connections list'.")
            query = query.where(Run.connection_name == connection)
        return [run_to_json(run, records=False) for run in session.scalars(query)]


def show_run(hub: Hub, run_id: int) -> dict[str, Any]:
    """One run with its records."""
    with hub.db.session() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"No run with id {run_id}. See 'hub runs list'.")
        return run_to_json(run)
