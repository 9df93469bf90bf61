"""Engine, sessions and migrations.

SQLite file by default (``hub.db`` in the hub's home, :func:`hub_core.home.hub_home`), any
SQLAlchemy URL otherwise. The database is brought up to date with Alembic on first use: an
older database is migrated, never dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hub_core.crypto import SecretCodec, has_encrypted
from hub_core.errors import HubError, InvalidInput
from hub_core.home import create_private_file, ensure_hub_home, hub_home

DATABASE_ENV = "HUB_DATABASE_URL"
DEFAULT_DB_NAME = "hub.db"


def default_url() -> str:
    """``sqlite:///`` the file ``hub.db`` in :func:`hub_home`."""
    return f"sqlite:///{hub_home() / DEFAULT_DB_NAME}"
#: Connection pool of a server database (PostgreSQL), per process: connections kept open, and
#: how many more may be opened at a busy moment.
POOL_SIZE_ENV = "HUB_DATABASE_POOL_SIZE"
MAX_OVERFLOW_ENV = "HUB_DATABASE_MAX_OVERFLOW"
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 5
#: Seconds after which a pooled connection is replaced (servers and proxies drop idle ones).
POOL_RECYCLE_SECONDS = 1800


def _env_count(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidInput(f"{name} must be a whole number, 0 or more; got {raw!r}.")
    return value


def pool_settings(url: str) -> dict[str, Any]:
    """Engine arguments of the connection pool: for a server database, ``pool_size`` and
    ``max_overflow`` from the environment, connections checked before use and recycled; for
    SQLite, SQLAlchemy's defaults."""
    if url.startswith("sqlite"):
        return {}
    return {
        "pool_size": _env_count(POOL_SIZE_ENV, DEFAULT_POOL_SIZE),
        "max_overflow": _env_count(MAX_OVERFLOW_ENV, DEFAULT_MAX_OVERFLOW),
        "pool_pre_ping": True,
        "pool_recycle": POOL_RECYCLE_SECONDS,
    }


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``HUB_DATABASE_URL``, else :func:`default_url`."""
    return url or os.environ.get(DATABASE_ENV) or default_url()


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
        #: True once :meth:`upgrade` found an empty database and created the schema.
        self.created = False
        if url is None and not os.environ.get(DATABASE_ENV):
            # Only the default location is ours to create; a URL given names its own place.
            ensure_hub_home()
        try:
            settings = {**pool_settings(self.url), **engine_kwargs}
            self.engine: Engine = create_engine(self.url, **settings)
        except (ArgumentError, ImportError, SQLAlchemyError) as exc:
            raise InvalidInput(
                f"Cannot use the database URL: {exc.__class__.__name__}: {exc}. "
                "Give a SQLAlchemy URL such as sqlite:///hub.db or "
                "postgresql+psycopg://user@host/dbname."
            ) from None
        self.secrets = SecretCodec(self.has_encrypted_secrets)
        if self.engine.dialect.name == "sqlite":
            self._create_private_sqlite_file()
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if upgrade:
            self.upgrade()

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None (another database, or an in-memory one)."""
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database)

    def _create_private_sqlite_file(self) -> None:
        # Created 0600 before SQLite opens it; SQLite gives its -wal, -shm and -journal files
        # the database file's mode, so they are private too.
        path = self.sqlite_path
        if path is not None and path.parent.is_dir():
            create_private_file(path)

    def has_encrypted_secrets(self) -> bool:
        """Whether any connection holds an encrypted secret (so a lost key must not be replaced)."""
        from hub_core.models import Connection

        with self.session() as session:
            return has_encrypted(session.scalars(select(Connection.config)))

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
            current = self.current_revision()
            if current == head:
                return
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
            self.created = current is None
        except OperationalError as exc:
            raise HubError(
                f"Cannot open the database {self.safe_url}: {exc.orig}. "
                "Check --database-url / HUB_DATABASE_URL and that the server is running."
            ) from None

    @property
    def location(self) -> str:
        """Where the database is, for people: a SQLite file's absolute path, else the URL."""
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            return str(Path(database).resolve())
        return self.safe_url

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
