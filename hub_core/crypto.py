"""Secrets at rest: the key, and the encryption of a connection's secret fields (design §10).

Every secret field of a connection (the channel's schema names them, see
``hub_core.services.connections.secret_keys``) is stored as ``{"$fernet": TOKEN}``: the
value, as JSON, encrypted with Fernet from ``cryptography``. The other fields stay readable,
so listing connections needs no key.

The key comes from ``HUB_SECRET_KEY`` (one or more Fernet keys, comma-separated) or else from
the key file ``secret.key`` in the hub's home (one key a line), created with mode 0600 the
first time a secret is stored. The first key encrypts; every key decrypts (``MultiFernet``),
which is how a key is rotated without losing anything.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hub_core.errors import HubError
from hub_core.home import HOME_ENV, ensure_hub_home, hub_home

KEY_ENV = "HUB_SECRET_KEY"
KEY_FILE_NAME = "secret.key"
#: The one key of a JSON object that holds an encrypted value.
MARKER = "$fernet"
GENERATE_HINT = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class SecretKeyError(HubError):
    """The key is missing, malformed or not the one the secrets were encrypted with (exit 1)."""


def key_file() -> Path:
    """Where the key file is (or would be created): ``secret.key`` in the hub's home."""
    return hub_home() / KEY_FILE_NAME


def where_looked() -> str:
    """Where the hub looks for the key, in order, for error messages."""
    return (
        f"the environment variable {KEY_ENV}, then the key file {key_file()} "
        f"(in the hub's home: {HOME_ENV}, else the per-user app directory)"
    )


@dataclasses.dataclass(frozen=True)
class KeyRing:
    """The keys in use: the first encrypts, all decrypt. ``source`` is ``environment``/``file``."""

    keys: tuple[bytes, ...]
    source: str
    location: str

    @functools.cached_property
    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(key) for key in self.keys])

    def describe(self) -> str:
        """Where the keys come from, in words (never the keys)."""
        if self.source == "environment":
            return f"the environment variable {self.location}"
        return f"the key file {self.location}"

    def encrypt(self, value: Any) -> dict[str, str]:
        """``value`` (anything JSON can hold) encrypted with the first key, as stored."""
        token = self._fernet.encrypt(json.dumps(value).encode("utf-8"))
        return {MARKER: token.decode("ascii")}

    def decrypt(self, stored: Mapping[str, str], what: str) -> Any:
        """The value of an encrypted ``stored`` field; ``what`` names it in errors."""
        try:
            return json.loads(self._fernet.decrypt(stored[MARKER].encode("ascii")))
        except (InvalidToken, ValueError, TypeError, AttributeError):
            raise SecretKeyError(
                f"Cannot decrypt {what} with the key from {self.describe()}: it is not the key "
                f"the secret was encrypted with. The hub looks for the key in {where_looked()}. "
                f"Set {KEY_ENV} to the key this database was encrypted with, or restore the key "
                "file; nothing was changed."
            ) from None

    def rotate(self, stored: Mapping[str, str], what: str) -> dict[str, str]:
        """``stored`` re-encrypted with the first key."""
        return self.encrypt(self.decrypt(stored, what))


def parse_keys(text: str, where: str) -> tuple[bytes, ...]:
    """The Fernet keys in ``text`` (comma- or line-separated); ``where`` names it in errors."""
    parts = [p.strip() for p in text.replace("\n", ",").split(",")]
    keys = tuple(p.encode("ascii", "replace") for p in parts if p and not p.startswith("#"))
    if not keys:
        raise SecretKeyError(f"{where} holds no key. Generate one with: {GENERATE_HINT}")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"Key {number} in {where} is not a Fernet key (32 url-safe base64-encoded "
                f"bytes). Generate one with: {GENERATE_HINT}"
            ) from None
    return keys


def find_keyring() -> KeyRing | None:
    """The keys from ``HUB_SECRET_KEY``, else from the key file; None when neither exists."""
    configured = os.environ.get(KEY_ENV, "")
    if configured.strip():
        return KeyRing(
            parse_keys(configured, f"the environment variable {KEY_ENV}"), "environment", KEY_ENV
        )
    path = key_file()
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(
            f"Cannot read the key file {path}: {exc.__class__.__name__}: {exc}. Check that it is "
            f"yours and readable, or set {KEY_ENV}."
        ) from None
    return KeyRing(parse_keys(text, f"the key file {path}"), "file", str(path))


def missing_key_error(what: str) -> SecretKeyError:
    """The error for encrypted secrets and no key at all."""
    return SecretKeyError(
        f"{what[:1].upper()}{what[1:]} holds encrypted secrets but no key was found: the hub "
        f"looked in {where_looked()}. Set {KEY_ENV} to the key the database was encrypted with, or "
        "restore the key file (a new key cannot decrypt them); nothing was changed."
    )


def write_key_file(path: Path, keys: Iterable[bytes]) -> None:
    """Write ``keys`` (first = the one that encrypts) to ``path``, atomically, mode 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = _private_temporary(path, (key.decode("ascii") for key in keys))
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _private_temporary(path: Path, lines: Iterable[str]) -> Path:
    """A new file next to ``path`` (mode 0600, a unique name) holding ``lines``, synced."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
        handle.flush()
        os.fsync(handle.fileno())
    return Path(name)


def create_key_file() -> KeyRing:
    """Create the key file with a new key (0600, in a 0700 home); keep one that appeared.

    The key is written to a temporary file first and then linked into place: the link fails
    if another process made the key file meanwhile (its key is used), and nobody ever reads a
    key file that is still empty.
    """
    ensure_hub_home()
    path = key_file()
    key = Fernet.generate_key()
    temporary = _private_temporary(path, [key.decode("ascii")])
    try:
        os.link(temporary, path)
    except FileExistsError:  # another process was first: use its key
        ring = find_keyring()
        assert ring is not None
        return ring
    finally:
        temporary.unlink(missing_ok=True)
    return KeyRing((key,), "file", str(path))


def is_encrypted(value: Any) -> bool:
    """Whether a stored field value is encrypted."""
    return isinstance(value, Mapping) and set(value) == {MARKER}


def plain_secrets(config: Mapping[str, Any], secret_keys: Iterable[str]) -> list[str]:
    """The secret keys of ``config`` still stored in plain text."""
    return [k for k in secret_keys if config.get(k) is not None and not is_encrypted(config[k])]


def has_encrypted(configs: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any of the stored configs holds an encrypted value."""
    return any(is_encrypted(v) for config in configs for v in config.values())


class SecretCodec:
    """Seals and opens connection configs, loading the key only when a secret needs it.

    ``database_has_secrets`` answers whether the database holds encrypted values already: the
    key file is created on first use only when it does not, so a lost key is reported instead
    of replaced by a new one that decrypts nothing.
    """

    def __init__(self, database_has_secrets: Callable[[], bool]) -> None:
        self._database_has_secrets = database_has_secrets
        self._ring: KeyRing | None = None
        #: The key file this codec created (first use), so the CLI can say where it is.
        self.created: KeyRing | None = None

    def keyring(self, *, create: bool, what: str = "The database") -> KeyRing:
        """The key ring; with ``create``, make the key file when no key exists anywhere yet."""
        if self._ring is None:
            ring = find_keyring()
            if ring is None:
                if not create or self._database_has_secrets():
                    raise missing_key_error(what)
                ring = self.created = create_key_file()
            self._ring = ring
        return self._ring

    def forget(self) -> None:
        """Read the key again on next use (after a rotation)."""
        self._ring = None

    def seal(self, config: Mapping[str, Any], secret_keys: Iterable[str]) -> dict[str, Any]:
        """``config`` with every plain-text secret field encrypted (``None`` stays ``None``)."""
        sealed = dict(config)
        for key in secret_keys:
            value = sealed.get(key)
            if value is not None and not is_encrypted(value):
                sealed[key] = self.keyring(create=True).encrypt(value)
        return sealed

    def open(self, config: Mapping[str, Any], what: str) -> dict[str, Any]:
        """``config`` with every encrypted field decrypted; ``what`` names it in errors."""
        opened = dict(config)
        for key, value in config.items():
            if is_encrypted(value):
                ring = self.keyring(create=False, what=what)
                opened[key] = ring.decrypt(value, f"{key} of {what}")
        return opened
