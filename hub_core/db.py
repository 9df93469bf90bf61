"""Engine, sessions and migrations.

SQLite file by default (``hub.db`` in the current directory), any SQLAlchemy URL otherwise.
The database is brought up to date with Alembic on first use: an older database is migrated,
never dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hub_core.errors import HubError, InvalidInput

DATABASE_ENV = "HUB_DATABASE_URL"
DEFAULT_URL = "sqlite:///hub.db"


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``HUB_DATABASE_URL``, else ``sqlite:///hub.db``."""
    return url or os.environ.get(DATABASE_ENV) or DEFAULT_URL


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets a reader run beside a writer; busy_timeout makes concurrent CLI runs wait
    # for each other instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Let SQLAlchemy's "begin" event open transactions (pysqlite's own are deferred).
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock at once, so two hub processes queue up behind
    # busy_timeout instead of failing when a reader tries to become a writer.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config() -> Config:
    """The Alembic configuration of the hub's migrations."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("hub_core") / "migrations"))
    return config


class Database:
    """One database: an engine, a session factory, and its migrations."""

    def __init__(self, url: str | None = None, *, upgrade: bool = True, **engine_kwargs: Any):
        self.url = database_url(url)
        try:
            self.engine: Engine = create_engine(self.url, **engine_kwargs)
        except (ArgumentError, ImportError, SQLAlchemyError) as exc:
            raise InvalidInput(
                f"Cannot use the database URL: {exc.__class__.__name__}: {exc}. "
                "Give a SQLAlchemy URL such as sqlite:///hub.db or "
                "postgresql+psycopg://user@host/dbname."
            ) from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if upgrade:
            self.upgrade()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def current_revision(self) -> str | None:
        """The migration revision the database is at (None for an empty database)."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self) -> None:
        """Bring the schema up to the latest migration (cheap when already there)."""
        config = alembic_config()
        head = ScriptDirectory.from_config(config).get_current_head()
        try:
            if self.current_revision() == head:
                return
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise HubError(
                f"Cannot open the database {self.safe_url}: {exc.orig}. "
                "Check --database-url / HUB_DATABASE_URL and that the server is running."
            ) from None

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
