"""Migrations: a new database is created at head, an older one is migrated (never dropped),
upgrading twice is a no-op, and the models agree with the migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from hub_core.db import Database, alembic_config
from hub_core.models import Base


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _first_revision() -> str:
    revisions = list(ScriptDirectory.from_config(alembic_config()).walk_revisions())
    return revisions[-1].revision


def _alembic(url: str, action: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade REVISION`` on ``url``, as an operator would."""
    config = alembic_config()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def test_a_new_database_is_created_at_head(fresh_database_url: str) -> None:
    db = Database(fresh_database_url)
    try:
        assert db.current_revision() == _head()
        tables = set(inspect(db.engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
    finally:
        db.dispose()


def test_the_models_match_the_migrations(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert differences == []
    finally:
        db.dispose()


def test_upgrading_twice_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    calls: list[str] = []
    real_upgrade = command.upgrade

    def counting_upgrade(config: Any, revision: str, **kwargs: Any) -> None:
        calls.append(revision)
        real_upgrade(config, revision, **kwargs)

    monkeypatch.setattr(command, "upgrade", counting_upgrade)
    db = Database(url, upgrade=False)
    try:
        assert db.current_revision() is None
        db.upgrade()
        assert calls == ["head"] and db.current_revision() == _head()
        db.upgrade()
        Database(url).dispose()
        assert calls == ["head"]
    finally:
        db.dispose()


def test_an_older_database_is_migrated_and_keeps_its_data(
    fresh_database_url: str, hub_cli: Any
) -> None:
    url = fresh_database_url
    _alembic(url, "upgrade", _first_revision())
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO catalog_products (sku, title, quantity, price, change_seq, updated_at)"
                " VALUES ('OLD-1', 'Kept', 3, 4.5, 0, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (operation, status, counts, message, started_at)"
                " VALUES ('catalog_import', 'ok', '{}', '', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    cli = type(hub_cli)(url)
    listed = cli.json("catalog", "list")
    assert [(p["sku"], p["title"], p["quantity"]) for p in listed] == [("OLD-1", "Kept", 3)]
    # Runs from before triggers were recorded read as CLI runs of an unknown host.
    [run] = cli.json("runs", "list")
    assert (run["trigger"], run["host"]) == ("cli", "")
    db = Database(url, upgrade=False)
    assert db.current_revision() == _head()
    db.dispose()


def test_migrations_go_down_to_base_and_up_again(fresh_database_url: str) -> None:
    Database(fresh_database_url).dispose()
    _alembic(fresh_database_url, "downgrade", "base")
    db = Database(fresh_database_url, upgrade=False)
    try:
        assert db.current_revision() is None
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.upgrade()
        assert db.current_revision() == _head()
        assert {"orders", "leases"} <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_the_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from hub_core.cli import cli

    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["catalog", "list"], obj={})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").is_file()


def test_bad_database_urls(hub_cli: Any) -> None:
    bad = type(hub_cli)("nosuchdriver://x/y")
    assert "Cannot use the database URL" in bad("catalog", "list", code=2).stderr
    # Nothing listens on port 9: exit 1 (a failure, not bad usage), naming the database.
    down = type(hub_cli)("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")
    result = down("catalog", "list", code=1)
    assert "Cannot open the database" in result.stderr and "127.0.0.1:9" in result.stderr


def test_pool_settings_of_a_server_database(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub_core.db import pool_settings
    from hub_core.errors import InvalidInput

    url = "postgresql+psycopg://hub@db/hub"
    monkeypatch.delenv("HUB_DATABASE_POOL_SIZE", raising=False)
    monkeypatch.delenv("HUB_DATABASE_MAX_OVERFLOW", raising=False)
    assert pool_settings(url) == {
        "pool_size": 5,
        "max_overflow": 5,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
    }
    assert pool_settings("sqlite:///hub.db") == {}
    monkeypatch.setenv("HUB_DATABASE_POOL_SIZE", "2")
    monkeypatch.setenv("HUB_DATABASE_MAX_OVERFLOW", "0")
    db = Database(url, upgrade=False)
    try:
        assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (2, 0)  # type: ignore[attr-defined]
    finally:
        db.dispose()
    monkeypatch.setenv("HUB_DATABASE_POOL_SIZE", "many")
    with pytest.raises(InvalidInput, match="HUB_DATABASE_POOL_SIZE must be a whole number"):
        pool_settings(url)
