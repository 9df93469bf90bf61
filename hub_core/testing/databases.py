"""Throw-away PostgreSQL databases for tests: the hub's own suite and the contract suite.

A test session creates one database (``hub_test_<pid>_<random>``) on the server named by
``HUB_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
migrates it once, empties every table before each test (much faster than migrating again)
and drops it at the end. When the server cannot be reached the PostgreSQL cases are skipped
with the reason, except under ``CI=true``, where they fail. Needs ``hub-core[postgres]``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pytest
from sqlalchemy import make_url

POSTGRES_ENV = "HUB_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

#: Every table of the hub but Alembic's, emptied before each PostgreSQL test.
_TRUNCATE = "TRUNCATE {} RESTART IDENTITY CASCADE"


def in_ci() -> bool:
    """Whether this run is CI (``CI=true``): a missing service fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str, service: str = "PostgreSQL") -> NoReturn:
    """Skip the test with ``reason``, or fail it under ``CI=true``."""
    if in_ci():
        pytest.fail(f"{reason}. CI=true requires {service}.", pytrace=False)
    pytest.skip(reason)


def admin_dsn(url: str) -> str:
    """A libpq DSN for psycopg itself (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a throw-away database (dropped at the end) and yield its URL (no tables yet).

    Skips (fails under ``CI=true``) when psycopg is missing or the server is unreachable.
    """
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        skip_or_fail("psycopg is not installed (pip install 'hub-core[postgres]')")

    base = make_url(os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL))
    params: dict[str, Any] = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 5432,
        "user": base.username or "postgres",
        "dbname": base.database or "postgres",
        "connect_timeout": 3,
        "autocommit": True,
    }
    if base.password:
        params["password"] = base.password
    try:
        admin = psycopg.connect(**params)
    except Exception as exc:
        skip_or_fail(
            f"PostgreSQL is unreachable at {params['host']}:{params['port']} "
            f"({exc.__class__.__name__}: {' '.join(str(exc).split())}); set {POSTGRES_ENV} to run "
            "the PostgreSQL cases"
        )
    name = f"hub_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


def migrate(url: str) -> str:
    """Bring the database at ``url`` to the hub's head; return ``url``."""
    from hub_core.db import Database

    Database(url).dispose()
    return url


def empty_tables(url: str) -> str:
    """Empty every hub table of the database at ``url`` (ids restart at 1); return ``url``."""
    import psycopg
    from psycopg import sql

    from hub_core.models import Base

    tables = [t.name for t in Base.metadata.sorted_tables]
    with psycopg.connect(admin_dsn(url), autocommit=True) as admin:
        # A connection a previous test left inside a transaction would block TRUNCATE: fail
        # fast naming it rather than hang.
        admin.execute("SET lock_timeout = '10s'")
        admin.execute(
            sql.SQL(_TRUNCATE).format(sql.SQL(", ").join(sql.Identifier(t) for t in tables))
        )
    return url
