"""Secrets at rest: where the key comes from, and rotating it (``hub secrets status|rotate-key``).

The encryption itself is :mod:`hub_core.crypto`; which fields are secret, the channels'
connection schemas (:func:`~hub_core.services.connections.secret_keys`).
"""

from __future__ import annotations

import stat
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import select

from hub_core.crypto import (
    GENERATE_HINT,
    KEY_ENV,
    KeyRing,
    SecretKeyError,
    find_keyring,
    has_encrypted,
    is_encrypted,
    key_file,
    missing_key_error,
    plain_secrets,
    where_looked,
    write_key_file,
)
from hub_core.errors import InvalidInput
from hub_core.models import Connection
from hub_core.plugins import PluginLoadWarning, Registry
from hub_core.services.connections import secret_keys
from hub_core.services.context import Hub


def installed_secret_keys(registry: Registry | None = None) -> dict[str, tuple[str, ...]]:
    """Channel name -> its secret connection keys, for the installed channels (or ``registry``'s).

    Loading the installed plugins here is quiet: a plugin that cannot load is reported by the
    commands that use it, and its connections are left as they are.
    """
    if registry is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginLoadWarning)
            registry = Registry.load()
    return {
        name: secret_keys(channel.connection_schema) for name, channel in registry.channels.items()
    }


def _decrypt_all(ring: KeyRing, name: str, config: Mapping[str, Any]) -> None:
    """Decrypt every encrypted value of a connection's config (raise if one fails)."""
    for key, value in config.items():
        if is_encrypted(value):
            ring.decrypt(value, f"{key} of connection {name!r}")


def _readable(ring: KeyRing | None, name: str, config: Mapping[str, Any]) -> bool:
    """Whether ``ring`` decrypts every encrypted value of the config (None: only if none)."""
    if ring is None:
        return not has_encrypted([config])
    try:
        _decrypt_all(ring, name, config)
    except SecretKeyError:
        return False
    return True


def _file_mode(path: Path | None) -> dict[str, Any] | None:
    """A file's path and mode, and whether only its owner can read it (None: no such file)."""
    if path is None or not path.exists():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    return {"path": str(path.resolve()), "mode": f"{mode:04o}", "private": not mode & 0o077}


def status(hub: Hub) -> dict[str, Any]:
    """Where the key comes from, and how the connections' secrets are stored (never a key)."""
    ring = find_keyring()
    secret_map = installed_secret_keys(hub.registry)
    with hub.db.session() as session:
        rows = list(session.execute(select(Connection.name, Connection.channel, Connection.config)))
    encrypted = sum(1 for r in rows if has_encrypted([r.config]))
    unreadable = sorted(r.name for r in rows if not _readable(ring, r.name, r.config))
    plain = sorted(r.name for r in rows if plain_secrets(r.config, secret_map.get(r.channel, ())))
    key: dict[str, Any] = {
        "source": ring.source if ring else "none",
        "location": ring.location if ring else None,
        "keys": len(ring.keys) if ring else 0,
        "looked_in": where_looked(),
        "file": _file_mode(Path(ring.location)) if ring and ring.source == "file" else None,
    }
    if ring is None:
        key["note"] = (
            f"No key yet: the key file {key_file()} is created (0600) when a secret is first "
            f"stored, unless {KEY_ENV} is set."
        )
    return {
        "key": key,
        "connections": len(rows),
        "connections_encrypted": encrypted,
        "connections_with_plain_secrets": plain,
        # Connections whose secrets the key cannot decrypt (all of them when it is missing).
        "connections_not_decryptable": unreadable,
        "database_file": _file_mode(hub.db.sqlite_path),
    }


def _reseal(hub: Hub, ring: KeyRing, secret_map: Mapping[str, tuple[str, ...]]) -> tuple[int, int]:
    """Re-encrypt every secret with the ring's first key in one transaction; plain ones too.

    Returns (connections rewritten, plain-text values encrypted).
    """
    rewritten = plain_count = 0
    with hub.db.session() as session:
        rows = session.scalars(select(Connection).order_by(Connection.id).with_for_update())
        for row in rows:
            keys = secret_map.get(row.channel, ())
            config = dict(row.config)
            changed = False
            for key, value in row.config.items():
                if is_encrypted(value):
                    config[key] = ring.rotate(value, f"{key} of connection {row.name!r}")
                    changed = True
                elif key in keys and value is not None:
                    config[key] = ring.encrypt(value)
                    plain_count += 1
                    changed = True
            if changed:
                row.config = config
                rewritten += 1
    return rewritten, plain_count


def _check_decryptable(hub: Hub, ring: KeyRing) -> None:
    """Fail (changing nothing) unless the ring decrypts every stored secret."""
    with hub.db.session() as session:
        for name, config in session.execute(select(Connection.name, Connection.config)):
            _decrypt_all(ring, name, config)


def rotate_key(hub: Hub, *, keep_old: bool = False) -> dict[str, Any]:
    """Re-encrypt every connection's secrets with a new key, in one transaction.

    With the key file: a new key is written first (the old ones kept after it, so a crash at
    any point leaves every secret decryptable), then every secret is re-encrypted, then the old
    keys are dropped from the file unless ``keep_old``. With ``HUB_SECRET_KEY`` the hub cannot
    change the variable: it re-encrypts with its first key, so putting a new key first and
    running this retires the others.
    """
    secret_map = installed_secret_keys(hub.registry)
    ring = find_keyring()
    if ring is None:
        if hub.db.has_encrypted_secrets():
            raise missing_key_error("The database")
        old_keys: tuple[bytes, ...] = ()
    else:
        _check_decryptable(hub, ring)
        old_keys = ring.keys
    if ring is not None and ring.source == "environment":
        if keep_old:
            raise InvalidInput(
                f"--keep-old applies to the key file; the keys come from {KEY_ENV}, which the "
                "hub does not change. Keep or drop keys in the variable itself."
            )
        rewritten, plain = _reseal(hub, ring, secret_map)
        hub.db.secrets.forget()
        note = f"Re-encrypted with the first key of {KEY_ENV}. " + (
            f"You can now remove the other {len(ring.keys) - 1} key(s) from {KEY_ENV}."
            if len(ring.keys) > 1
            else f"To change the key, generate one ({GENERATE_HINT}), set {KEY_ENV}=NEW,OLD, "
            f"run 'hub secrets rotate-key', then set {KEY_ENV}=NEW."
        )
        return _rotated(ring, rewritten, plain, note)
    path = key_file()
    new_key = Fernet.generate_key()
    write_key_file(path, (new_key, *old_keys))
    new_ring = KeyRing((new_key, *old_keys), "file", str(path))
    try:
        rewritten, plain = _reseal(hub, new_ring, secret_map)
    except BaseException:
        # Nothing was committed: put the old key file back (or none, if there was none).
        if old_keys:
            write_key_file(path, old_keys)
        else:
            path.unlink(missing_ok=True)
        raise
    if not keep_old:
        write_key_file(path, (new_key,))
    hub.db.secrets.forget()
    note = (
        f"The old key{'s are' if len(old_keys) > 1 else ' is'} kept after the new one in "
        f"{path}, for other databases that share it."
        if keep_old and old_keys
        else "The old key is gone: a copy of the database made before now needs the old key."
        if old_keys
        else "A new key file was created."
    )
    return _rotated(KeyRing((new_key,), "file", str(path)), rewritten, plain, note)


def _rotated(ring: KeyRing, rewritten: int, plain: int, note: str) -> dict[str, Any]:
    return {
        "key": {"source": ring.source, "location": ring.location},
        "connections_reencrypted": rewritten,
        "plain_values_encrypted": plain,
        "note": note,
    }
