"""One task at a time per (connection, operation) among the workers, on PostgreSQL.

A session-level advisory lock held on its own connection while the task runs: a second
worker's task for the same pair finds it taken and waits its turn (``RunInProgress``, retried
by Celery); a killed worker's lock goes with its connection. This covers workers only, and
stands until the database lease of issue 12 (one run at a time for CLI processes too, design
§9) is on main; then the lease does this job and this module can go.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from hub_core.errors import RunInProgress
from hub_core.services.context import Hub


def lock_key(connection: str, operation: str) -> int:
    """A stable signed 64-bit key for the pair (PostgreSQL's advisory lock space)."""
    digest = hashlib.blake2b(f"hub:{connection}:{operation}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def exclusive(hub: Hub, connection: str, operation: str) -> Iterator[None]:
    """Hold the pair's lock while the block runs, or raise ``RunInProgress`` at once."""
    if hub.db.engine.dialect.name != "postgresql":
        yield  # SQLite: one machine; its writers queue up behind the file lock
        return
    key = lock_key(connection, operation)
    with hub.db.engine.connect() as conn:
        if not conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
            conn.rollback()
            raise RunInProgress(
                f"{operation} of {connection!r} is running in another worker; "
                "this one runs when it is done."
            )
        conn.commit()  # hold no transaction open; the lock belongs to the session
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()
