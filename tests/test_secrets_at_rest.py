"""Secrets at rest (issue 11, deliverables 1 and 2): secret fields encrypted with Fernet, the key
from HUB_SECRET_KEY or a 0600 key file in the hub's home, `hub secrets status|rotate-key`, clear
errors for a missing or wrong key that change nothing, the data migration of plain-text rows
written by hub-core 0.1.0, and private (0600) SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import create_engine, text

from hub_core.crypto import KEY_ENV, MARKER, KeyRing
from hub_core.db import Database, alembic_config
from hub_core.plugins import Registry
from hub_core.services import Hub
from hub_core.services.connections import open_run
from hub_fake_channel.store import FakeStore


@pytest.fixture
def hub_cli(sqlite_url: str, registry: Registry) -> Any:
    """The CLI on the SQLite file these tests read byte by byte (their PostgreSQL variants
    use ``hub``)."""
    from tests.conftest import HubCli

    return HubCli(sqlite_url, registry)

SECRET = "sk-at-rest-3c9d1e7f"
TODAY_DUMP = Path(__file__).parent / "data" / "hub-0.1.0-plain-secrets.sql"
#: The secrets in TODAY_DUMP, as hub-core 0.1.0 stored them (plain text).
TODAY_SECRETS = {
    "ca-shop": {
        "access_token": "today-access-token-1f2e3d",
        "refresh_token": "today-refresh-token-4c5b6a",
        "shared_secret": "today-shared-secret-7d8e9f",
    },
    "fake-shop": {"api_key": "today-fake-api-key-0a1b2c"},
}

Snapshot = Callable[[Any], dict[str, list[tuple[Any, ...]]]]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _key_file(home: Path) -> Path:
    return home / "secret.key"


def _add(cli: Any, store: FakeStore, name: str = "shop", code: int = 0) -> Any:
    return cli(
        "connections", "add", name, "--channel", "fake",
        "--set", f"store={store.path}", "--set", f"api_key={SECRET}", code=code,
    )  # fmt: skip


def _stored_config(url: str, name: str = "shop") -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            raw = conn.execute(
                text("SELECT config FROM connections WHERE name = :n"), {"n": name}
            ).scalar_one()
    finally:
        engine.dispose()
    return json.loads(raw) if isinstance(raw, str) else raw


def _opened(url: str, registry: Registry, name: str) -> dict[str, Any]:
    """The connection's values as a plugin gets them (decrypted)."""
    hub = Hub(db=Database(url), registry=registry)
    try:
        return dict(open_run(hub, name).connection.config)
    finally:
        hub.db.dispose()


def _raw(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The common umask, under which files are created world-readable unless the hub says not."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def any_hub_cli(hub_cli: Any, database_url: str) -> Any:
    """The CLI on a fresh database: once SQLite, once PostgreSQL."""
    return type(hub_cli)(database_url)


# --- encryption and the key -----------------------------------------------------------------


def test_a_secret_is_stored_encrypted_with_a_key_file_created_0600_on_first_use(
    hub_cli: Any,
    store: FakeStore,
    sqlite_url: str,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    umask_022: None,
) -> None:
    home = tmp_path / "new-home"  # does not exist yet: the hub creates it, private
    monkeypatch.setenv("HUB_HOME", str(home))
    hub_cli("catalog", "list")
    assert not home.exists()  # no secret stored yet, no key made
    added = _add(hub_cli, store)
    key_file = _key_file(home)
    assert f"Created the key that encrypts connection secrets: {key_file}" in added.stderr
    assert "Created the key" not in _add(hub_cli, store, name="again").stderr
    assert _mode(home) == 0o700 and _mode(key_file) == 0o600
    stored = _stored_config(sqlite_url)
    assert stored["store"] == str(store.path)  # only secret fields are encrypted
    assert set(stored["api_key"]) == {MARKER}
    key = key_file.read_text().strip().encode()
    assert json.loads(Fernet(key).decrypt(stored["api_key"][MARKER].encode())) == SECRET
    assert SECRET.encode() not in _raw(sqlite_url)
    assert _opened(sqlite_url, registry, "shop")["api_key"] == SECRET
    hub_cli("connections", "test", "shop")
    assert hub_cli.json("connections", "show", "shop")["config"]["api_key"] == "***"


def test_the_key_from_hub_secret_key_is_used_and_no_key_file_is_written(
    hub_cli: Any,
    store: FakeStore,
    sqlite_url: str,
    isolated_hub_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv(KEY_ENV, key.decode())
    _add(hub_cli, store)
    assert not _key_file(isolated_hub_home).exists()
    token = _stored_config(sqlite_url)["api_key"][MARKER]
    assert json.loads(Fernet(key).decrypt(token.encode())) == SECRET
    status = hub_cli.json("secrets", "status")
    assert status["key"]["source"] == "environment" and status["key"]["location"] == KEY_ENV
    assert key.decode() not in json.dumps(status)
    assert status["connections_encrypted"] == 1


def test_a_missing_key_is_an_error_naming_where_it_looked_and_changes_nothing(
    any_hub_cli: Any,
    store: FakeStore,
    database_url: str,
    isolated_hub_home: Path,
    db_snapshot: Snapshot,
) -> None:
    _add(any_hub_cli, store)
    key_file = _key_file(isolated_hub_home)
    key_file.unlink()
    before = db_snapshot(database_url)
    for args in (
        ("connections", "test", "shop"),
        ("listings", "link", "shop"),
        ("connections", "configure", "shop", "--set", "order_days=3"),
        (
            "connections",
            "add",
            "other",
            "--channel",
            "fake",
            "--set",
            f"store={store.path}",
            "--set",
            "api_key=another-secret",
        ),
        ("secrets", "rotate-key"),
    ):
        result = any_hub_cli(*args, code=1)
        assert "no key was found" in result.stderr, result.stderr
        assert KEY_ENV in result.stderr and str(key_file) in result.stderr
        assert "nothing was changed" in result.stderr
        assert not key_file.exists()  # a new key would decrypt nothing: none is made
    assert db_snapshot(database_url) == before
    status = any_hub_cli.json("secrets", "status")
    assert status["key"]["source"] == "none" and status["connections_not_decryptable"] == ["shop"]
    assert "NOT READABLE: shop" in any_hub_cli("secrets", "status").stdout
    # Commands that need no secret still work.
    any_hub_cli("connections", "list")
    assert any_hub_cli.json("connections", "show", "shop")["config"]["api_key"] == "***"


def test_a_wrong_key_is_an_error_and_changes_nothing(
    any_hub_cli: Any,
    store: FakeStore,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    db_snapshot: Snapshot,
) -> None:
    _add(any_hub_cli, store)
    before = db_snapshot(database_url)
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    for args in (("connections", "test", "shop"), ("secrets", "rotate-key")):
        result = any_hub_cli(*args, code=1)
        assert "Cannot decrypt api_key of connection 'shop'" in result.stderr
        assert f"the environment variable {KEY_ENV}" in result.stderr
    assert any_hub_cli.json("secrets", "status")["connections_not_decryptable"] == ["shop"]
    assert db_snapshot(database_url) == before


def test_a_malformed_key_is_refused_without_echoing_it(
    hub_cli: Any, store: FakeStore, monkeypatch: pytest.MonkeyPatch, db_snapshot: Snapshot,
    sqlite_url: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(KEY_ENV, "correct-horse-battery-staple")
    before = db_snapshot(sqlite_url)
    result = _add(hub_cli, store, code=1)
    assert f"Key 1 in the environment variable {KEY_ENV} is not a Fernet key" in result.stderr
    assert "Fernet.generate_key" in result.stderr  # how to make one
    assert "correct-horse" not in result.output
    assert db_snapshot(sqlite_url) == before


# --- hub secrets status | rotate-key ----------------------------------------------------------


def test_secrets_status_says_where_the_key_comes_from(
    hub_cli: Any, store: FakeStore, sqlite_url: str, isolated_hub_home: Path
) -> None:
    before = hub_cli("secrets", "status").stdout
    assert "none yet" in before and str(_key_file(isolated_hub_home)) in before
    assert hub_cli.json("secrets", "status")["key"]["source"] == "none"
    _add(hub_cli, store)
    shown = hub_cli("secrets", "status").stdout
    assert f"key file {_key_file(isolated_hub_home)}" in shown
    assert "1 of 1 connection(s) encrypted" in shown and "NOT READABLE" not in shown
    assert hub_cli.json("secrets", "status")["connections_not_decryptable"] == []
    # The test's database is a copy, made with the umask's mode: status says so, and the fix.
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    path.chmod(0o644)
    assert f"mode 0644, readable by others: chmod 600 {path}" in hub_cli("secrets", "status").stdout
    path.chmod(0o600)
    assert f"database:  {path} (mode 0600, private)" in hub_cli("secrets", "status").stdout
    key_file = _key_file(isolated_hub_home)
    assert f"key file:  {key_file} (mode 0600, private)" in hub_cli("secrets", "status").stdout
    key_file.chmod(0o644)  # as a hand-made key file may be
    assert f"readable by others: chmod 600 {key_file}" in hub_cli("secrets", "status").stdout
    assert _key_file(isolated_hub_home).read_text().strip() not in shown


def test_rotate_key_re_encrypts_every_connection_with_a_new_key(
    any_hub_cli: Any,
    store: FakeStore,
    database_url: str,
    isolated_hub_home: Path,
    registry: Registry,
    tmp_path: Path,
) -> None:
    other = FakeStore(tmp_path / "other.json")
    other.create()
    _add(any_hub_cli, store)
    _add(any_hub_cli, other, name="other")
    key_file = _key_file(isolated_hub_home)
    old_key = key_file.read_text().strip().encode()
    data = any_hub_cli.json("secrets", "rotate-key")
    assert data["connections_reencrypted"] == 2
    new_key = key_file.read_text().strip().encode()
    assert new_key != old_key and len(key_file.read_text().split()) == 1
    assert _mode(key_file) == 0o600
    for name in ("shop", "other"):
        token = _stored_config(database_url, name)["api_key"][MARKER].encode()
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(token)
        assert json.loads(Fernet(new_key).decrypt(token)) == SECRET
        assert _opened(database_url, registry, name)["api_key"] == SECRET
        any_hub_cli("connections", "test", name)


def test_rotate_key_keep_old_keeps_the_old_key_after_the_new_one(
    hub_cli: Any, store: FakeStore, isolated_hub_home: Path
) -> None:
    _add(hub_cli, store)
    key_file = _key_file(isolated_hub_home)
    old_key = key_file.read_text().strip()
    said = hub_cli("secrets", "rotate-key", "--keep-old").stdout
    assert f"Re-encrypted the secrets of 1 connection(s) with the key from {key_file}" in said
    assert "old key is kept after the new one" in said
    keys = key_file.read_text().split()
    assert len(keys) == 2 and keys[1] == old_key and keys[0] != old_key
    hub_cli("connections", "test", "shop")


def test_a_failed_rotation_changes_nothing(
    any_hub_cli: Any,
    store: FakeStore,
    database_url: str,
    isolated_hub_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db_snapshot: Snapshot,
) -> None:
    other = FakeStore(tmp_path / "other.json")
    other.create()
    _add(any_hub_cli, store)
    _add(any_hub_cli, other, name="other")
    key_file = _key_file(isolated_hub_home)
    key_before = key_file.read_text()
    before = db_snapshot(database_url)
    calls: list[str] = []
    real_rotate = KeyRing.rotate

    def rotate_once_then_fail(self: KeyRing, stored: Any, what: str) -> dict[str, str]:
        calls.append(what)
        if len(calls) == 2:  # the second connection: the first one is already re-encrypted
            raise OSError("disk full")
        return real_rotate(self, stored, what)

    monkeypatch.setattr(KeyRing, "rotate", rotate_once_then_fail)
    any_hub_cli("secrets", "rotate-key", code=1, internal_error=True)
    assert len(calls) == 2
    assert db_snapshot(database_url) == before
    assert key_file.read_text() == key_before
    monkeypatch.setattr(KeyRing, "rotate", real_rotate)
    any_hub_cli("connections", "test", "other")


def test_rotate_key_with_keys_from_the_environment(
    hub_cli: Any, store: FakeStore, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, old)
    _add(hub_cli, store)
    single = hub_cli("secrets", "rotate-key").stdout
    assert f"set {KEY_ENV}=NEW,OLD" in single and old not in single
    monkeypatch.setenv(KEY_ENV, f"{new},{old}")
    assert hub_cli.json("secrets", "rotate-key")["connections_reencrypted"] == 1
    monkeypatch.setenv(KEY_ENV, new)  # the old key is retired
    hub_cli("connections", "test", "shop")
    assert hub_cli("secrets", "rotate-key", "--keep-old", code=2).stderr


def _insert_plain(url: str, name: str, store: FakeStore) -> None:
    """A row as the migration leaves it when the channel was not installed: secret in plain."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO connections (name, channel, config, settings, health, "
                "health_message, created_at, updated_at) VALUES (:n, 'fake', :c, '{}', "
                "'unknown', '', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
            ),
            {"n": name, "c": json.dumps({"store": str(store.path), "api_key": SECRET})},
        )
    engine.dispose()


def test_plain_secrets_are_encrypted_by_the_first_operation(
    hub_cli: Any, store: FakeStore, sqlite_url: str, registry: Registry
) -> None:
    _insert_plain(sqlite_url, "late", store)
    assert SECRET.encode() in _raw(sqlite_url)
    hub_cli("connections", "test", "late")
    assert SECRET.encode() not in _raw(sqlite_url)
    assert set(_stored_config(sqlite_url, "late")["api_key"]) == {MARKER}
    assert _opened(sqlite_url, registry, "late")["api_key"] == SECRET


def test_plain_secrets_are_named_by_status_and_encrypted_by_rotate_key(
    hub_cli: Any, store: FakeStore, sqlite_url: str, registry: Registry
) -> None:
    _insert_plain(sqlite_url, "late", store)
    assert hub_cli.json("secrets", "status")["connections_with_plain_secrets"] == ["late"]
    assert "late: encrypt with 'hub secrets rotate-key'" in hub_cli("secrets", "status").stdout
    assert hub_cli.json("secrets", "rotate-key")["plain_values_encrypted"] == 1
    assert SECRET.encode() not in _raw(sqlite_url)
    assert hub_cli.json("secrets", "status")["connections_with_plain_secrets"] == []
    assert _opened(sqlite_url, registry, "late")["api_key"] == SECRET


# --- the migration of databases made by hub-core 0.1.0 ----------------------------------------


def test_a_database_made_by_hub_core_0_1_0_is_encrypted_on_first_use_data_intact(
    hub_cli: Any, tmp_path: Path, isolated_hub_home: Path, registry: Registry
) -> None:
    path = tmp_path / "today.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(TODAY_DUMP.read_text(encoding="utf-8"))
    conn.close()
    url = f"sqlite:///{path}"
    assert all(s.encode() in path.read_bytes() for c in TODAY_SECRETS.values() for s in c.values())
    cli = type(hub_cli)(url)
    listed = cli.json("connections", "list")  # first use: migrated
    assert [c["name"] for c in listed] == ["ca-shop", "fake-shop"]
    assert listed[1]["settings"]["order_days"] == 3
    assert [p["sku"] for p in cli.json("catalog", "list")] == ["KEEP-1"]
    raw = _raw(url)
    for name, secrets in TODAY_SECRETS.items():
        opened = _opened(url, registry, name)
        for key, value in secrets.items():
            assert value.encode() not in raw
            assert set(_stored_config(url, name)[key]) == {MARKER}
            assert opened[key] == value
    assert _opened(url, registry, "ca-shop")["profile_id"] == 12345678
    assert _mode(_key_file(isolated_hub_home)) == 0o600


def _alembic(url: str, action: str, revision: str) -> None:
    config = alembic_config()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def test_the_migration_encrypts_and_its_downgrade_decrypts(
    fresh_database_url: str, registry: Registry
) -> None:
    _alembic(fresh_database_url, "upgrade", "head")  # an empty schema (it ends at 0001)
    _alembic(fresh_database_url, "downgrade", "0001")
    engine = create_engine(fresh_database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO connections (name, channel, config, settings, health, "
                "health_message, created_at, updated_at) VALUES ('shop', 'fake', :c, '{}', "
                "'unknown', '', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"
            ),
            {"c": json.dumps({"store": "x.json", "api_key": SECRET})},
        )
    engine.dispose()
    _alembic(fresh_database_url, "upgrade", "head")
    assert set(_stored_config(fresh_database_url)["api_key"]) == {MARKER}
    assert _opened(fresh_database_url, registry, "shop")["api_key"] == SECRET
    _alembic(fresh_database_url, "downgrade", "0001")
    assert _stored_config(fresh_database_url) == {"store": "x.json", "api_key": SECRET}


# --- a private database -----------------------------------------------------------------------


def test_the_cli_creates_a_sqlite_database_0600(
    hub_cli: Any, tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "new.db"
    type(hub_cli)(f"sqlite:///{path}")("catalog", "list")
    assert _mode(path) == 0o600


def test_sqlite_wal_shm_and_journal_files_are_private(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "private.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.engine.connect() as conn:  # open: the -wal and -shm files exist
            conn.execute(text("INSERT INTO counters (name, value) VALUES ('x', 1)"))
            files = [Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(p.exists() for p in files)
            assert [_mode(p) for p in [path, *files]] == [0o600] * 3
    finally:
        db.dispose()
    # A rollback journal (journal_mode=DELETE, as a tool may set) gets the same mode.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO counters (name, value) VALUES ('y', 1)")
        journal = Path(f"{path}-journal")
        assert journal.exists() and _mode(journal) == 0o600
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_after_a_lost_key_a_new_key_and_the_secrets_given_again_recover_the_connection(
    hub_cli: Any,
    store: FakeStore,
    sqlite_url: str,
    isolated_hub_home: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _add(hub_cli, store)
    _key_file(isolated_hub_home).unlink()  # lost
    hub_cli("connections", "test", "shop", code=1)
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    hub_cli("connections", "configure", "shop", "--set", "api_key=a-new-api-key")
    hub_cli("connections", "test", "shop")
    assert _opened(sqlite_url, registry, "shop")["api_key"] == "a-new-api-key"


def test_processes_creating_the_key_file_at_once_all_get_the_same_key(
    isolated_hub_home: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from hub_core.crypto import create_key_file

    with ThreadPoolExecutor(8) as pool:
        rings = list(pool.map(lambda _: create_key_file(), range(16)))
    key_file = _key_file(isolated_hub_home)
    assert len({ring.keys for ring in rings}) == 1
    assert key_file.read_text().split() == [rings[0].keys[0].decode()]
    assert [p.name for p in isolated_hub_home.iterdir()] == ["secret.key"]  # no leftovers
    assert _mode(key_file) == 0o600
