"""One run at a time per (connection, operation), across processes and machines.

A run takes the lease row of its connection and operation in the transaction that creates the
run, renews its expiry from a background thread while it works, and deletes it in the
transaction that finishes the run. A second run finds a live lease and gets
:class:`~hub_core.errors.RunInProgress` naming the run in progress and since when. A run whose
process died (SIGKILL, a lost machine) stops renewing: once its lease has expired the next run
takes it over, marks the dead run ``failed`` and resumes from what was committed.

The lease lasts ``HUB_LEASE_SECONDS`` (default 60) and is renewed every quarter of that, so
three renewals in a row may fail before another run can take over. Expiry compares the clocks
of the machines involved: keep them in sync (NTP) to well under the lease duration.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from hub_core.db import Database
from hub_core.errors import LeaseLost, RunInProgress
from hub_core.models import Lease, Run, utcnow

LEASE_SECONDS_ENV = "HUB_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 60.0

log = logging.getLogger(__name__)


def lease_seconds() -> float:
    """How long a lease lasts without renewal (``HUB_LEASE_SECONDS``, default 60)."""
    try:
        value = float(os.environ.get(LEASE_SECONDS_ENV, ""))
    except ValueError:
        return DEFAULT_LEASE_SECONDS
    return value if value > 0 else DEFAULT_LEASE_SECONDS


def holder_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _in_progress(session: Session, lease: Lease, connection_name: str | None) -> RunInProgress:
    run = session.get(Run, lease.run_id)
    where = f" on {run.host}" if run is not None and run.host else ""
    how = f" ({run.trigger})" if run is not None else ""
    since = lease.acquired_at.isoformat(timespec="seconds")
    expires = lease.expires_at.isoformat(timespec="seconds")
    return RunInProgress(
        f"{lease.operation} of {connection_name!r} is already running: run {lease.run_id}, "
        f"started {since}{where}{how}. Wait for it to finish (see 'hub runs show "
        f"{lease.run_id}'). If its process died, its lease expires at {expires} and the next "
        "run takes over from what it committed.",
        run_id=lease.run_id,
        since=lease.acquired_at,
        expires_at=lease.expires_at,
    )


def _current(session: Session, connection_id: int, operation: str) -> Lease | None:
    return session.scalar(
        select(Lease)
        .where(Lease.connection_id == connection_id, Lease.operation == operation)
        .execution_options(populate_existing=True)
    )


def acquire(
    session: Session,
    connection_id: int,
    operation: str,
    run_id: int,
    *,
    connection_name: str | None = None,
    seconds: float | None = None,
) -> None:
    """Take the lease for ``run_id`` in the caller's transaction, or raise RunInProgress.

    Atomic on SQLite (the write lock) and PostgreSQL (the primary key, and a compare-and-swap
    on the expired holder), so two callers racing never both get it.
    """
    seconds = seconds or lease_seconds()
    now = utcnow()
    values = {
        "run_id": run_id,
        "holder": holder_name(),
        "acquired_at": now,
        "expires_at": now + timedelta(seconds=seconds),
    }
    current = _current(session, connection_id, operation)
    if current is None:
        try:
            with session.begin_nested():
                session.add(Lease(connection_id=connection_id, operation=operation, **values))
            return
        except IntegrityError:  # another run inserted it first
            current = _current(session, connection_id, operation)
            if current is None:  # ...and has finished already: a plain retry is safe
                raise RunInProgress(
                    f"{operation} of {connection_name!r} was started by another process at "
                    "the same moment. Run it again.",
                    run_id=0,
                    since=now,
                ) from None
    if current.expires_at > now:
        raise _in_progress(session, current, connection_name)
    # Expired: its process died or stalled. Take it over only if nobody else did meanwhile.
    dead_run = current.run_id
    taken = session.execute(
        update(Lease)
        .where(
            Lease.connection_id == connection_id,
            Lease.operation == operation,
            Lease.run_id == dead_run,
            Lease.expires_at <= now,
        )
        .values(**values)
    )
    if taken.rowcount != 1:
        current = _current(session, connection_id, operation)
        assert current is not None
        raise _in_progress(session, current, connection_name)
    session.execute(
        update(Run)
        .where(Run.id == dead_run, Run.status == "running")
        .values(
            status="failed",
            finished_at=now,
            message=(
                f"abandoned: its process stopped renewing the lease (expired "
                f"{current.expires_at.isoformat(timespec='seconds')}); run {run_id} took over"
            ),
        )
    )


def release(session: Session, connection_id: int, operation: str, run_id: int) -> None:
    """Give the lease back (in the transaction that finishes the run)."""
    session.execute(
        Lease.__table__.delete().where(
            Lease.connection_id == connection_id,
            Lease.operation == operation,
            Lease.run_id == run_id,
        )
    )


def expire_all(db: Database) -> int:
    """End every lease now, as if its time had passed; return how many (a testing aid for
    tests and chaos runs that kill processes and do not want to wait for the expiry)."""
    with db.session() as session:
        return session.execute(
            update(Lease).values(expires_at=utcnow() - timedelta(seconds=1))
        ).rowcount


class LeaseKeeper:
    """Renews a run's lease from a daemon thread until :meth:`stop`.

    ``lost`` becomes true when the lease was taken over (this process stalled past its expiry).
    The run calls :meth:`check` at each commit point, before its next channel write: it
    renews once more and raises :class:`~hub_core.errors.LeaseLost` when the lease is another
    run's, or when no renewal succeeded before the lease's expiry (the database was away, so
    another run may have taken it over).
    """

    def __init__(
        self,
        db: Database,
        connection_id: int,
        operation: str,
        run_id: int,
        *,
        seconds: float | None = None,
    ) -> None:
        self.db = db
        self.connection_id = connection_id
        self.operation = operation
        self.run_id = run_id
        self.seconds = seconds or lease_seconds()
        self.interval = self.seconds / 4
        self.renewals = 0
        self.lost = False
        #: Why the lease is lost ("" while it is held).
        self.reason = ""
        #: The expiry of the last renewal that succeeded: held surely until then.
        self.held_until: datetime = utcnow() + timedelta(seconds=self.seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"hub-lease-{operation}-{run_id}", daemon=True
        )

    def start(self) -> LeaseKeeper:
        """Start renewing."""
        self._thread.start()
        return self

    def renew(self) -> bool:
        """Push the expiry forward once; False when the lease is no longer this run's."""
        expires: datetime = utcnow() + timedelta(seconds=self.seconds)
        with self.db.session() as session:
            renewed = session.execute(
                update(Lease)
                .where(
                    Lease.connection_id == self.connection_id,
                    Lease.operation == self.operation,
                    Lease.run_id == self.run_id,
                )
                .values(expires_at=expires)
            ).rowcount
        self.renewals += 1
        if renewed == 1:
            self.held_until = expires
        else:
            self._lose(self._taken_over_reason())
        return renewed == 1

    def _lose(self, reason: str) -> None:
        if not self.lost:
            self.lost, self.reason = True, reason
            log.warning("run %s lost its lease on %s: %s", self.run_id, self.operation, reason)

    def _taken_over_reason(self) -> str:
        with self.db.session() as session:
            holder = _current(session, self.connection_id, self.operation)
            other = holder.run_id if holder is not None else None
        if other is None:
            return "its lease was taken away (expired while this run stalled)"
        return f"its lease expired while this run stalled and run {other} took over"

    def check(self) -> None:
        """At a commit point: raise LeaseLost unless this run surely still holds its lease.

        Renews once (a cheap update by primary key), so a lease taken over is seen here, at
        the latest, rather than a quarter of the lease later.
        """
        if not self.lost:
            try:
                self.renew()
            except SQLAlchemyError as exc:
                # The database is away: go on only while the last renewal still holds.
                if utcnow() >= self.held_until:
                    self._lose(
                        "its lease could not be renewed before it expired "
                        f"({self.held_until.isoformat(timespec='seconds')}): "
                        f"{exc.__class__.__name__}"
                    )
        if self.lost:
            raise LeaseLost(
                f"Run {self.run_id} ({self.operation}) stopped: {self.reason}. It stopped at a "
                "commit point, before sending anything more to the channel; what it did is "
                "recorded, and the next run goes on from there."
            )

    def _loop(self) -> None:
        # Ends when the run ends (stop); each wait is bounded by the renewal interval.
        while not self._stop.wait(self.interval):
            try:
                if not self.renew():
                    return  # lost: the run stops at its next commit point (check)
            except SQLAlchemyError as exc:  # the database is away: try again next interval
                log.warning("run %s could not renew its lease: %s", self.run_id, exc)

    def stop(self) -> None:
        """Stop renewing (the caller releases the lease)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.seconds)
